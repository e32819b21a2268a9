"""The db host service: SQLAlchemy 2 Core on SQLite (default) or PostgreSQL.

Parameters are always bound by the driver (`:name` placeholders), never spliced in.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
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
    HOST_METHODS = ("query", "execute")

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


def _engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=2, max_overflow=2)


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    # WAL lets several worker processes read while one writes.
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _jsonable_row(mapping) -> dict[str, Any]:
    row = {}
    for key, value in mapping.items():
        if hasattr(value, "isoformat"):
            value = value.isoformat()
        row[key] = value
    return row
