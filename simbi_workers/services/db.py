"""The db host service: SQLAlchemy 2 Core on SQLite (default) or PostgreSQL.

Parameters are always bound by the driver (`:name` placeholders), never spliced in.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import create_engine, event, exc, text
from sqlalchemy.engine import Engine

from simbi_workers.errors import JobError, PermanentJobError
from simbi_workers.store.schema import metadata


class ConstraintViolation(PermanentJobError):
    """A statement broke a unique, foreign-key or check constraint: retrying cannot help,
    but a worker may expect it (a second run of a once-only step, say)."""


class BadStatement(PermanentJobError):
    """The SQL itself is wrong: a syntax error, an unknown table or column."""


class RowCountMismatch(PermanentJobError):
    """A statement of a transaction touched another number of rows than it required, so
    the whole transaction was rolled back (a debit that found no balance large enough)."""


# Most statements one transaction may hold: a unit of work, not a bulk load.
MAX_STATEMENTS = 100


@contextmanager
def _translated(sql: str) -> Iterator[None]:
    """Turn driver errors into job errors whose retryability says what a retry can do."""
    try:
        yield
    except OverflowError as error:
        raise BadStatement(f"a parameter is out of the database's range: {error}") from None
    except exc.IntegrityError as error:
        raise ConstraintViolation(f"constraint violated: {_reason(error)}") from None
    except (exc.ProgrammingError, exc.DataError) as error:
        raise BadStatement(f"bad statement {sql[:120]!r}: {_reason(error)}") from None
    except exc.OperationalError as error:
        # SQLite reports both a locked database and a missing table as OperationalError.
        reason = _reason(error)
        if "no such" in reason or "syntax error" in reason:
            raise BadStatement(f"bad statement {sql[:120]!r}: {reason}") from None
        raise JobError(f"database unavailable: {reason}") from None


def _reason(error: exc.DBAPIError) -> str:
    return str(error.orig).strip().splitlines()[0] if error.orig else str(error)


class Database:
    HOST_METHODS = ("query", "execute", "transaction")

    def __init__(self, url: str):
        self.url = url
        self.engine = _engine(url)

    def create_tables(self) -> list[str]:
        metadata.create_all(self.engine)
        return sorted(metadata.tables)

    def query(self, sql: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        with _translated(sql), self.engine.connect() as conn:
            result = conn.execute(text(sql), params or {})
            return {"rows": [_jsonable_row(row._mapping) for row in result]}

    def execute(self, sql: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        with _translated(sql), self.engine.begin() as conn:
            result = conn.execute(text(sql), params or {})
            return {"rowcount": result.rowcount}

    def transaction(self, statements: list[dict[str, Any]]) -> dict[str, Any]:
        """Run statements as one unit: all commit or none. A statement may carry
        `expect_rows`: touching another number of rows rolls everything back with
        RowCountMismatch, whose message names the statement's `label` (or its index)."""
        steps = [_Step.parse(i, item) for i, item in enumerate(_statement_list(statements))]
        results = []
        with self.engine.begin() as conn:
            for step in steps:
                with _translated(step.sql):
                    result = conn.execute(text(step.sql), step.params)
                    outcome = _outcome(result)
                step.check(outcome)
                results.append(outcome)
        return {"results": results}


def _statement_list(statements: Any) -> list:
    if not isinstance(statements, list) or not statements:
        raise BadStatement("transaction: statements must be a non-empty list")
    if len(statements) > MAX_STATEMENTS:
        raise BadStatement(
            f"transaction: {len(statements)} statements, more than {MAX_STATEMENTS}: "
            "split the work into several transactions"
        )
    return statements


@dataclass(frozen=True)
class _Step:
    index: int
    sql: str
    params: dict[str, Any]
    expect_rows: int | None
    label: str

    @classmethod
    def parse(cls, index: int, item: Any) -> _Step:
        where = f"transaction: statements[{index}]"
        if not isinstance(item, dict) or not isinstance(item.get("sql"), str):
            raise BadStatement(f"{where} must be an object with an 'sql' string")
        unknown = set(item) - {"sql", "params", "expect_rows", "label"}
        if unknown:
            raise BadStatement(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
        params = item.get("params") or {}
        expect = item.get("expect_rows")
        if not isinstance(params, dict):
            raise BadStatement(f"{where}.params must be an object")
        if expect is not None and (isinstance(expect, bool) or not isinstance(expect, int)):
            raise BadStatement(f"{where}.expect_rows must be a whole number")
        label = str(item.get("label") or f"statement {index}")
        return cls(index, item["sql"], params, expect, label)

    def check(self, outcome: dict[str, Any]) -> None:
        touched = outcome["rowcount"]
        if self.expect_rows is not None and touched != self.expect_rows:
            raise RowCountMismatch(
                f"{self.label}: touched {touched} row(s), required {self.expect_rows}; "
                "the transaction was rolled back"
            )


def _outcome(result) -> dict[str, Any]:
    # An UPDATE ... RETURNING both returns rows and touches them: count the rows returned.
    if result.returns_rows:
        rows = [_jsonable_row(row._mapping) for row in result]
        return {"rows": rows, "rowcount": len(rows)}
    return {"rowcount": result.rowcount}


def _engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=2, max_overflow=2)


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    # The driver's own BEGIN is deferred: two transactions that read and then write would
    # fail at once with "database is locked". _sqlite_begin takes the write lock up front
    # instead, so a second writer waits (up to the 30 s timeout) and then sees the first's
    # commit. WAL lets readers go on meanwhile.
    dbapi_conn.isolation_level = None
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _sqlite_begin(conn) -> None:
    conn.exec_driver_sql("BEGIN IMMEDIATE")


def _jsonable_row(mapping) -> dict[str, Any]:
    row = {}
    for key, value in mapping.items():
        if hasattr(value, "isoformat"):
            value = value.isoformat()
        row[key] = value
    return row
