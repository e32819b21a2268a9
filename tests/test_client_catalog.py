"""The generated catalogue files are current, and the helpers cover queues.yaml exactly."""

import inspect

from simbi_workers import catalog, client_catalog, helpers


def test_the_checked_in_client_catalogue_is_current():
    loaded = catalog.load(catalog.DEFAULT_QUEUES_FILE)
    expected = client_catalog.json_text(loaded, "../queues.yaml")

    assert client_catalog.JSON_PATH.read_text(encoding="utf-8") == expected, (
        "clients/catalog.json is stale: run .venv/bin/python -m simbi_workers.client_catalog"
    )


def test_the_generated_typescript_worker_table_is_current():
    loaded = catalog.load(catalog.DEFAULT_QUEUES_FILE)

    assert client_catalog.TS_PATH.read_text(encoding="utf-8") == client_catalog.typescript_text(
        loaded
    ), "workers.generated.ts is stale: run .venv/bin/python -m simbi_workers.client_catalog"


def test_every_worker_has_exactly_one_helper():
    loaded = catalog.load(catalog.DEFAULT_QUEUES_FILE)
    named = [worker for table in helpers.CATEGORIES.values() for worker in table.values()]

    assert sorted(named) == sorted(loaded.workers)
    assert len(named) == len(set(named)) == 37


def test_each_helper_takes_its_workers_args_by_name(settings):
    loaded = catalog.load(catalog.DEFAULT_QUEUES_FILE)
    for category, table in helpers.CATEGORIES.items():
        namespace = getattr(helpers, category)
        for method, worker in table.items():
            names = list(inspect.signature(getattr(namespace, method)).parameters)
            assert names == list(loaded.workers[worker].args), f"{category}.{method}"
            delayed = list(inspect.signature(getattr(namespace, f"{method}_in")).parameters)
            assert delayed == ["delay", *loaded.workers[worker].args]


def test_a_helper_enqueues_its_worker_through_the_default_client(settings, redis_conn):
    from datetime import UTC, datetime

    from simbi_workers import keys

    job_id = helpers.Emails.send_intro(7, "first")
    later = helpers.Users.pay_simbi_at(datetime(2030, 1, 1, tzinfo=UTC), 1, 2, 25, "trade", "k")

    assert redis_conn.hget(keys.job(job_id), "simbi_worker") == b"SendIntroWorker"
    assert redis_conn.zscore(keys.scheduled("critical"), later) == 1893456000.0


def test_the_readme_lists_every_helper_under_its_class():
    readme = (catalog.DEFAULT_QUEUES_FILE.parent / "README.md").read_text(encoding="utf-8")
    listed = {}
    for line in readme.splitlines():
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        if len(cells) == 2 and cells[0].strip("`") in helpers.CATEGORIES:
            listed[cells[0].strip("`")] = sorted(name.strip("` ") for name in cells[1].split(","))

    assert listed == {category: sorted(table) for category, table in helpers.CATEGORIES.items()}
