"""The read-only commands a newcomer runs first: workers, check, stats."""

import json
from pathlib import Path

from simbi_workers.client import Client
from tests.harness import run_cli

cli = run_cli


def test_workers_lists_the_catalogue_with_policies(worker_env):
    result = cli({**worker_env, "COLUMNS": "200"}, "workers")

    assert result.returncode == 0, result.stderr
    upload_line = next(line for line in result.stdout.splitlines() if "UploadImageWorker" in line)
    for cell in ("python", "paperclip", "image_id, upload_id", "timeout 120s", "concurrency 3"):
        assert cell in upload_line


def test_check_says_how_to_create_a_missing_database(worker_env):
    result = cli({**worker_env, "COLUMNS": "200"}, "check")

    assert result.returncode == 1
    line = next(line for line in result.stdout.splitlines() if " database " in line)
    assert "FAIL" in line and "run `simbi-workers db init`" in line


def test_check_reports_every_part_ok_on_a_ready_machine(worker_env):
    assert cli(worker_env, "db", "init").returncode == 0
    result = cli({**worker_env, "COLUMNS": "200"}, "check")

    assert result.returncode == 0, result.stdout + result.stderr
    names = ("queues.yaml", "ruby", "node", "typescript build", "runtimes", "redis", "database")
    for name in names:
        line = next(line for line in result.stdout.splitlines() if f" {name} " in line)
        assert " ok " in line


def test_check_fails_and_says_why_when_redis_is_unreachable(worker_env):
    result = cli({**worker_env, "COLUMNS": "200", "REDIS_URL": "redis://127.0.0.1:1/0"}, "check")

    assert result.returncode == 1
    redis_line = next(line for line in result.stdout.splitlines() if " redis " in line)
    assert "FAIL" in redis_line and "Connection refused" in result.stdout


def test_stats_json_counts_waiting_jobs_per_queue(worker_env, redis_conn):
    Client(connection=redis_conn).perform_bulk("PyEchoWorker", [[1], [2], [3]])

    result = cli(worker_env, "stats", "--json")

    assert result.returncode == 0, result.stderr
    numbers = json.loads(result.stdout)
    assert numbers["queues"]["default"]["size"] == 3
    assert numbers["queues"]["default"]["latency_seconds"] >= 0
    assert numbers["totals"]["enqueued"] == 3


def test_enqueue_without_any_redis_tells_how_to_get_one(worker_env, tmp_path):
    env = {k: v for k, v in worker_env.items() if k != "REDIS_URL"}
    env["SIMBI_VAR_DIR"] = str(tmp_path / "empty-var")

    result = cli(env, "enqueue", "PyEchoWorker", "1")

    assert result.returncode == 1
    assert "REDIS_URL is not set and no local Redis is running" in result.stderr
    assert "simbi-workers start" in result.stderr


def test_workers_shows_when_each_cron_entry_runs_next(worker_env, tmp_path):
    import re

    path = tmp_path / "queues.yaml"
    path.write_text(
        "queues:\n  default: {priority: 5}\nworkers:\n"
        "  PyNoopWorker: {runtime: python, args: [], cron: '*/5 * * * *'}\n"
        "  PyEchoWorker: {runtime: python, args: [value], cron: '0 3 * * *', cron_args: [7]}\n"
    )
    env = {**worker_env, "COLUMNS": "200", "SIMBI_QUEUES_FILE": str(path)}

    result = cli(env, "workers")

    assert result.returncode == 0, result.stderr
    noop = next(line for line in result.stdout.splitlines() if "PyNoopWorker" in line)
    minute = re.search(r"next \d{4}-\d\d-\d\d \d\d:(\d\d) UTC", noop)
    assert minute and int(minute.group(1)) % 5 == 0
    echo = next(line for line in result.stdout.splitlines() if "PyEchoWorker" in line)
    assert "cron 0 3 * * * UTC with [7] (next " in echo and " 03:00 UTC)" in echo


def test_check_fails_on_the_mail_row_for_a_bad_smtp_url_without_printing_the_password(
    worker_env,
):
    env = {**worker_env, "COLUMNS": "200", "SMTP_URL": "smtp://mailer:hunter2s3cr3t@[::1"}

    result = cli(env, "check")

    assert result.returncode == 1
    mail_line = next(line for line in result.stdout.splitlines() if " mail " in line)
    assert "FAIL" in mail_line
    assert "SMTP_URL is not a valid smtp:// or smtps:// URL" in result.stdout
    assert "hunter2s3cr3t" not in result.stdout + result.stderr


def test_check_has_a_row_for_each_provider_saying_where_messages_go(worker_env):
    env = {
        name: value
        for name, value in worker_env.items()
        if not name.startswith(("SMTP_", "TWILIO_", "FCM_", "ONESIGNAL_"))
    }
    env["COLUMNS"] = "200"

    result = cli(env, "check")

    lines = result.stdout.splitlines()
    for name, detail in (("mail", "outbox"), ("sms", "outbox"), ("push", "to outbox")):
        line = next(line for line in lines if f" {name} " in line)
        assert " ok " in line and detail in line


def test_check_fails_when_a_runtime_does_not_serve_what_queues_yaml_gives_it(worker_env, tmp_path):
    catalog = tmp_path / "queues.yaml"
    text = Path(worker_env["SIMBI_QUEUES_FILE"]).read_text()
    catalog.write_text(text + "  NoSuchPythonWorker: {runtime: python, args: []}\n")

    result = cli({**worker_env, "COLUMNS": "200", "SIMBI_QUEUES_FILE": str(catalog)}, "check")

    assert result.returncode == 1
    line = next(line for line in result.stdout.splitlines() if " runtimes " in line)
    assert "FAIL" in line
    assert "missing (in queues.yaml, not served): NoSuchPythonWorker" in " ".join(
        result.stdout.split()
    )


def test_check_says_to_run_db_init_when_the_database_has_no_tables(worker_env):
    sqlite_file = Path(worker_env["SIMBI_VAR_DIR"]) / "simbi.db"
    sqlite_file.touch()  # an empty database file, as a failed or foreign setup leaves

    result = cli({**worker_env, "COLUMNS": "200"}, "check")

    assert result.returncode == 1
    line = next(line for line in result.stdout.splitlines() if " database " in line)
    assert "FAIL" in line and "lacks 25 of the app tables" in line
    assert "run `simbi-workers db init`" in " ".join(result.stdout.replace("│", " ").split())
