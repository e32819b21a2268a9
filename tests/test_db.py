"""The db host service and `db init`, on SQLite and on a real PostgreSQL."""

import pytest

from simbi_workers.errors import PermanentJobError
from simbi_workers.services import Services, UnknownHostCall
from simbi_workers.services.db import BadStatement, ConstraintViolation, Database


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
        r"query, execute\)",
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
