"""The db host service and `db init`, on SQLite and on a real PostgreSQL."""

import pytest

from simbi_workers.errors import PermanentJobError
from simbi_workers.services import Services, UnknownHostCall
from simbi_workers.services.db import (
    BadStatement,
    ConstraintViolation,
    Database,
    RowCountMismatch,
)


def test_tables_are_created_and_parameters_are_bound(database_url):
    db = Database(database_url)

    tables = db.create_tables()
    db.create_tables()  # a second run keeps what is there

    assert {"users", "uploads", "images"} <= set(tables)
    hostile = "Robert'); DROP TABLE users;--"
    inserted = db.execute(
        "INSERT INTO users (email, first_name) VALUES (:email, :first_name)",
        {"email": "ada@example.com", "first_name": hostile},
    )
    assert inserted == {"rowcount": 1}
    rows = db.query(
        "SELECT first_name, tier, simbi_balance FROM users WHERE email = :email",
        {"email": "ada@example.com"},
    )["rows"]
    assert rows == [{"first_name": hostile, "tier": "bronze", "simbi_balance": 0}]


def test_children_reach_only_the_declared_host_methods(settings, redis_conn):
    services = Services(settings, redis_conn)
    services.db.create_tables()

    assert services.call("db", "query", {"sql": "SELECT 1 AS one"}) == {"rows": [{"one": 1}]}
    with pytest.raises(
        UnknownHostCall,
        match=r"unknown method db.create_tables \(known: "
        r"query, execute, transaction\)",
    ):
        services.call("db", "create_tables", {})
    with pytest.raises(UnknownHostCall, match="unknown host service 'shell'"):
        services.call("shell", "run", {})
    with pytest.raises(PermanentJobError, match=r"db\.query: bad parameters"):
        services.call("db", "query", {"statement": "SELECT 1"})


def test_db_init_from_the_command_line(settings, tmp_path):
    from click.testing import CliRunner

    from simbi_workers.cli import main

    result = CliRunner().invoke(main, ["db", "init"])

    assert result.exit_code == 0, result.output
    assert "users" in result.output
    assert (tmp_path / "var" / "simbi.db").exists()


def test_driver_errors_say_whether_a_retry_can_help(database_url):
    db = Database(database_url)
    db.create_tables()
    insert = "INSERT INTO users (email, first_name) VALUES (:email, 'Ada')"
    db.execute(insert, {"email": "ada@example.com"})

    with pytest.raises(ConstraintViolation, match="constraint violated") as duplicate:
        db.execute(insert, {"email": "ada@example.com"})
    with pytest.raises(BadStatement, match="bad statement 'SELECT nope FROM users'"):
        db.query("SELECT nope FROM users")

    assert duplicate.value.retryable is False


# Transactions: all statements commit or none


def _two_users(db: Database) -> None:
    db.create_tables()
    for email, balance in (("ada@example.com", 50), ("bob@example.com", 0)):
        db.execute(
            "INSERT INTO users (email, first_name, simbi_balance) VALUES (:e, 'X', :b)",
            {"e": email, "b": balance},
        )


def _transfer(amount: int, key: str) -> list[dict]:
    return [
        {
            "sql": "UPDATE users SET simbi_balance = simbi_balance - :a "
            "WHERE id = 1 AND simbi_balance >= :a",
            "params": {"a": amount},
            "expect_rows": 1,
            "label": "debit of user 1",
        },
        {
            "sql": "UPDATE users SET simbi_balance = simbi_balance + :a WHERE id = 2",
            "params": {"a": amount},
            "expect_rows": 1,
        },
        {
            "sql": "INSERT INTO simbi_transactions (from_user_id, to_user_id, amount, "
            "idempotency_key) VALUES (1, 2, :a, :k) RETURNING id",
            "params": {"a": amount, "k": key},
        },
    ]


def _balances(db: Database) -> list[int]:
    rows = db.query("SELECT simbi_balance FROM users ORDER BY id")["rows"]
    return [row["simbi_balance"] for row in rows]


def test_a_transaction_commits_every_statement_and_returns_each_result(database_url):
    db = Database(database_url)
    _two_users(db)

    results = db.transaction(_transfer(30, "order-1"))["results"]

    assert [r["rowcount"] for r in results] == [1, 1, 1]
    assert results[2]["rows"] == [{"id": 1}]
    assert _balances(db) == [20, 30]


def test_a_statement_touching_the_wrong_row_count_rolls_back_the_whole_unit(database_url):
    db = Database(database_url)
    _two_users(db)

    with pytest.raises(RowCountMismatch) as error:
        db.transaction(_transfer(80, "order-1"))

    assert str(error.value) == (
        "debit of user 1: touched 0 row(s), required 1; the transaction was rolled back"
    )
    assert error.value.retryable is False
    assert _balances(db) == [50, 0]
    assert db.query("SELECT COUNT(*) AS n FROM simbi_transactions")["rows"] == [{"n": 0}]


def test_a_constraint_broken_late_undoes_the_statements_before_it(database_url):
    db = Database(database_url)
    _two_users(db)
    db.transaction(_transfer(10, "order-1"))

    with pytest.raises(ConstraintViolation):
        db.transaction(_transfer(10, "order-1"))  # the same idempotency key

    assert _balances(db) == [40, 10]


@pytest.mark.parametrize(
    ("statements", "message"),
    [
        ([], "statements must be a non-empty list"),
        ([{"sql": "SELECT 1"}] * 101, "101 statements, more than 100"),
        ([{"query": "SELECT 1"}], r"statements\[0\] must be an object with an 'sql' string"),
        ([{"sql": "SELECT 1", "expect_rows": "1"}], r"statements\[0\]\.expect_rows"),
        ([{"sql": "SELECT 1", "param": {}}], r"statements\[0\]: unknown key\(s\) param"),
    ],
)
def test_a_malformed_transaction_is_refused_before_anything_runs(database_url, statements, message):
    db = Database(database_url)
    _two_users(db)

    with pytest.raises(BadStatement, match=message):
        db.transaction(statements)


@pytest.mark.postgres
def test_a_rails_style_postgres_url_reaches_postgresql(postgres_server, monkeypatch):
    from simbi_workers.config import Settings

    scheme, rest = postgres_server.split("://", 1)
    assert scheme.startswith("postgresql")
    monkeypatch.setenv("DATABASE_URL", f"postgres://{rest}")

    db = Database(Settings().database_url_or_default)

    assert db.query("SELECT 1 AS one", {}) == {"rows": [{"one": 1}]}
