"""The search host service on SQLite (FTS5) and PostgreSQL (a tsvector column), the
`simbi-workers search` command, and the three search workers through the real Node child."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import text

from simbi_workers.errors import PermanentJobError
from simbi_workers.services.db import Database
from simbi_workers.services.search import Search
from simbi_workers.store import schema
from tests import provider_fixtures
from tests.app_records import AppRecords
from tests.harness import run_cli
from tests.provider_fixtures import perform, result_of, run_next

make_worker = provider_fixtures.make_worker


@pytest.fixture
def database(database_url):
    db = Database(database_url)
    db.create_tables()
    yield db
    db.engine.dispose()


@pytest.fixture
def search(database) -> Search:
    return Search(database)


def found(search: Search, query: str, **options) -> list[tuple[str, int]]:
    return [
        (hit["record_type"], hit["record_id"]) for hit in search.query(query, **options)["hits"]
    ]


def test_a_title_hit_ranks_above_a_body_only_hit(search):
    search.upsert("service", 2, 7, "Piano tuning", "I also teach guitar basics")
    search.upsert("service", 1, 7, "Guitar lessons", "Learn chords with a patient teacher")
    search.upsert("user", 9, 9, "Ada Lovelace", "maths and poetry")

    hits = search.query("guitar")["hits"]

    assert [(hit["record_type"], hit["record_id"]) for hit in hits] == [
        ("service", 1),
        ("service", 2),
    ]
    assert hits[0]["title"] == "Guitar lessons"
    assert hits[0]["rank"] > hits[1]["rank"] > 0
    assert hits[1]["snippet"] == "I also teach [guitar] basics"


def test_every_word_must_match_in_any_case(search):
    search.upsert("service", 1, 7, "Guitar lessons", "for beginners")
    search.upsert("service", 2, 7, "Guitar repair", "strings and frets")

    assert found(search, "GUITAR Beginners") == [("service", 1)]
    assert found(search, "guitar ukulele") == []


def test_an_update_replaces_the_old_text(search, database):
    search.upsert("service", 1, 7, "Guitar lessons", "chords")

    search.upsert("service", 1, 8, "Violin lessons", "bowing")

    assert found(search, "guitar") == []
    assert found(search, "chords") == []
    assert found(search, "violin bowing") == [("service", 1)]
    (row,) = database.query("SELECT owner_id, title FROM search_documents")["rows"]
    assert row == {"owner_id": 8, "title": "Violin lessons"}


def test_remove_drops_the_document_and_removing_a_missing_one_is_fine(search):
    search.upsert("service", 1, 7, "Guitar lessons", "")
    search.upsert("user", 1, 1, "Guitar Hero", "")

    assert search.remove("service", 1)["removed"] is True
    assert search.remove("service", 1)["removed"] is False
    assert search.remove("user", 404)["removed"] is False

    assert found(search, "guitar") == [("user", 1)]


def test_deleting_the_rows_of_an_owner_drops_their_documents(search, database):
    search.upsert("user", 5, 5, "Grace Hopper", "compilers")
    search.upsert("service", 11, 5, "Compilers explained", "")
    search.upsert("service", 12, 6, "Compilers for kids", "")

    database.execute("DELETE FROM search_documents WHERE owner_id = :user", {"user": 5})

    assert found(search, "compilers") == [("service", 12)]


def test_the_type_filter_and_the_limit(search):
    for record_id in range(1, 6):
        search.upsert("service", record_id, 1, f"Yoga class {record_id}", "")
    search.upsert("user", 1, 1, "Yoga teacher", "")

    assert found(search, "yoga", record_type="user") == [("user", 1)]
    assert len(found(search, "yoga", record_type="service")) == 5
    assert len(found(search, "yoga", limit=2)) == 2


HOSTILE_QUERIES = [
    '"',
    'guitar"',
    '"guitar" OR "piano',
    "NEAR(guitar piano)",
    "NEAR(",
    "*",
    "guit*",
    "-",
    "-guitar",
    "OR",
    "guitar OR piano",
    "title:guitar",
    "^guitar",
    "'; DROP TABLE search_documents; --",
    "' OR 1=1 --",
    ") OR (1=1",
    "a\x00b",
    "%",
    "\\",
]


@pytest.mark.parametrize("query", HOSTILE_QUERIES)
def test_a_hostile_query_neither_fails_nor_matches_everything(search, database, query):
    search.upsert("service", 1, 7, "Guitar lessons", "chords")
    search.upsert("service", 2, 7, "Piano lessons", "scales")

    hits = found(search, query)

    assert len(hits) < 2
    count = database.query("SELECT COUNT(*) AS n FROM search_documents")["rows"][0]["n"]
    assert count == 2


def test_a_word_that_reads_as_an_operator_matches_only_as_a_word(search):
    search.upsert("service", 1, 7, "Guitar lessons", "chords")
    search.upsert("service", 2, 7, "Piano or keyboard", "near the station")

    assert found(search, "OR") == [("service", 2)]
    assert found(search, "NEAR(") == [("service", 2)]
    assert found(search, "guitar OR piano") == []


@pytest.mark.parametrize("query", ["", "   ", "\n\t"])
def test_an_empty_query_is_a_clear_error(search, query):
    with pytest.raises(PermanentJobError, match="text must contain a word to search for"):
        search.query(query)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda s: s.query("x", record_type="talk"), "record_type must be service or user"),
        (lambda s: s.query("x", limit=0), "limit must be 1 to 100, received 0"),
        (lambda s: s.query("x" * 501), "at most 500 characters, received 501"),
        (lambda s: s.upsert("service", 0, 1, "t", ""), "record_id must be a whole number"),
        (lambda s: s.upsert("service", 1, True, "t", ""), "owner_id must be a whole number"),
        (lambda s: s.upsert("service", 1, 1, "  ", ""), "title must not be blank"),
        (lambda s: s.upsert("service", 1, 1, "t", None), "body must be a string"),
        (lambda s: s.remove("users", 1), "record_type must be service or user, received 'users'"),
    ],
)
def test_bad_arguments_are_permanent_and_named(search, call, message):
    with pytest.raises(PermanentJobError, match=message):
        call(search)


def test_db_init_indexes_documents_written_before_the_index_existed(database, search):
    with database.engine.begin() as conn:
        if database.engine.dialect.name == "sqlite":
            conn.execute(text(f"DROP TABLE {schema.SEARCH_FTS}"))
            for name in ("search_documents_ai", "search_documents_ad", "search_documents_au"):
                conn.execute(text(f"DROP TRIGGER {name}"))
        else:
            conn.execute(text("ALTER TABLE search_documents DROP COLUMN search_vector"))
        conn.execute(
            text(
                "INSERT INTO search_documents (record_type, record_id, owner_id, title) "
                "VALUES ('user', 3, 3, 'Katherine Johnson')"
            )
        )

    database.create_tables()

    assert found(search, "katherine") == [("user", 3)]


# The command


@pytest.fixture
def cli_env(worker_env, tmp_path):
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    database = Database(url)
    database.create_tables()
    Search(database).upsert("service", 4, 1, "Guitar lessons", "Bring your own guitar")
    Search(database).upsert("user", 1, 1, "Gita Guitarist", "")
    database.engine.dispose()
    return {**worker_env, "DATABASE_URL": url}


def test_the_search_command_prints_the_hits_in_a_table(cli_env):
    result = run_cli(cli_env, "search", "guitar")

    assert result.returncode == 0, result.stderr
    assert "1 hit(s) for 'guitar'" in result.stdout
    assert "Guitar lessons" in result.stdout
    assert "Bring your own [guitar]" in result.stdout


def test_the_search_command_filters_by_type(cli_env):
    result = run_cli(cli_env, "search", "guitarist", "--type", "user", "--limit", "5")

    assert result.returncode == 0, result.stderr
    assert "Gita Guitarist" in result.stdout


def test_the_search_command_says_so_when_nothing_matches(cli_env):
    result = run_cli(cli_env, "search", "[bold]ukulele")

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "no documents match '[bold]ukulele'"


def test_the_search_command_refuses_an_empty_query_in_one_line(cli_env):
    result = run_cli(cli_env, "search", " ")

    assert result.returncode == 1
    assert result.stderr.strip() == (
        "error: search.query: text must contain a word to search for, received ' '"
    )


def test_the_search_command_without_tables_says_to_run_db_init(worker_env, tmp_path):
    env = {**worker_env, "DATABASE_URL": f"sqlite:///{tmp_path / 'empty.db'}"}

    result = run_cli(env, "search", "guitar")

    assert result.returncode == 1
    assert "run `simbi-workers db init` first" in result.stderr


# The workers, through the real Node child and the real search service


@pytest.fixture
def marketplace(make_worker, database_url, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", database_url)
    process = make_worker()
    return process, AppRecords(process.services.db.engine)


def test_search_index_worker_indexes_an_active_service_with_its_owner(marketplace):
    process, records = marketplace
    owner = records.user("Ada", last_name="Lovelace")
    service = records.service(owner, "Guitar lessons", description="Chords and scales")

    result = result_of(perform(process, "SearchIndexWorker", "service", service))

    assert result == {"record_type": "service", "record_id": service, "action": "indexed"}
    (hit,) = process.services.search.query("lovelace")["hits"]
    assert (hit["record_type"], hit["record_id"], hit["title"]) == (
        "service",
        service,
        "Guitar lessons",
    )
    assert hit["snippet"] == "Chords and scales\nmusic\nAda [Lovelace]"
    (row,) = records.rows(schema.search_documents)
    assert row["owner_id"] == owner


def test_search_index_worker_removes_a_service_that_is_no_longer_active(marketplace):
    process, records = marketplace
    service = records.service(records.user(), "Pottery class")
    result_of(perform(process, "SearchIndexWorker", "service", service))
    records.update(schema.services, service, status="paused")

    result = result_of(perform(process, "SearchIndexWorker", "service", service))

    assert result["action"] == "removed"
    assert result["reason"] == "is paused, not active"
    assert result["was_indexed"] is True
    assert process.services.search.query("pottery")["hits"] == []


def test_search_index_worker_indexes_a_user_and_removes_them_once_deleted(marketplace):
    process, records = marketplace
    user = records.user("Grace", last_name="Hopper", bio="Teaches compilers")
    result_of(perform(process, "SearchIndexWorker", "user", user))
    assert found(process.services.search, "compilers", record_type="user") == [("user", user)]

    records.update(schema.users, user, deleted_at=dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
    result = result_of(perform(process, "SearchIndexWorker", "user", user))

    assert result["reason"] == "is deleted"
    assert found(process.services.search, "grace") == []


def test_search_index_worker_removes_a_record_that_no_longer_exists(marketplace):
    process, records = marketplace
    user = records.user("Katherine")
    result_of(perform(process, "SearchIndexWorker", "user", user))
    records.delete(schema.users, user)

    result = result_of(perform(process, "SearchIndexWorker", "user", user))

    assert result == {
        "record_type": "user",
        "record_id": user,
        "action": "removed",
        "reason": "does not exist",
        "was_indexed": True,
    }
    assert records.rows(schema.search_documents) == []


def test_search_index_worker_refuses_another_record_type_for_good(marketplace):
    process, _records = marketplace

    fields = perform(process, "SearchIndexWorker", "talk", 1)

    assert fields["status"] == b"failed"
    error = fields["simbi_error"].decode()
    assert 'record_type must be one of service, user, received "talk"' in error


def test_search_remove_worker_removes_the_document_and_a_missing_one_is_fine(marketplace):
    process, records = marketplace
    service = records.service(records.user(), "Bike repair")
    result_of(perform(process, "SearchIndexWorker", "service", service))

    first = result_of(perform(process, "SearchRemoveWorker", "service", service))
    second = result_of(perform(process, "SearchRemoveWorker", "service", service))

    assert first["removed"] is True
    assert second["removed"] is False
    assert found(process.services.search, "bike") == []


def test_search_bulk_index_worker_indexes_25_services_in_batches_of_10(marketplace):
    process, records = marketplace
    owner = records.user("Yo-Yo", last_name="Ma")
    ids = [records.service(owner, f"Cello lesson {n}") for n in range(25)]
    paused = records.service(owner, "Cello repair", status="paused")
    Search(process.services.db).upsert("service", paused, owner, "Cello repair", "")

    first = result_of(perform(process, "SearchBulkIndexWorker", "service", 0, 10))
    second = result_of(run_next(process, first["next_job_id"]))
    third = result_of(run_next(process, second["next_job_id"]))

    assert (first["indexed"], first["next_after_id"], first["done"]) == (10, ids[9], False)
    assert (second["indexed"], second["next_after_id"], second["done"]) == (10, ids[19], False)
    assert (third["indexed"], third["removed"], third["done"]) == (5, 1, True)
    assert third["next_job_id"] is None
    assert process.fetcher.fetch() is None, "the last batch enqueued another"
    hits = found(process.services.search, "cello", limit=100)
    assert sorted(record_id for _type, record_id in hits) == ids


def test_search_bulk_index_worker_drops_documents_of_deleted_records(marketplace):
    process, records = marketplace
    user = records.user("Ada")
    Search(process.services.db).upsert("user", user + 100, user + 100, "Ghost user", "")

    result = result_of(perform(process, "SearchBulkIndexWorker", "user", 0, 50))

    assert (result["indexed"], result["orphans_removed"], result["done"]) == (1, 1, True)
    assert found(process.services.search, "ghost") == []
    assert found(process.services.search, "ada") == [("user", user)]
