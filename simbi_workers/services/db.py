"""The db host service: SQLAlchemy 2 Core on SQLite (default) or PostgreSQL.

Parameters are always bound by the driver (`:name` placeholders), never spliced in.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Engine

from simbi_workers.store.schema import metadata


class Database:
    HOST_METHODS = ("query", "execute")

    def __init__(self, url: str):
        self.url = url
        self.engine = _engine(url)

    def create_tables(self) -> list[str]:
        metadata.create_all(self.engine)
        return sorted(metadata.tables)

    def query(self, sql: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        with self.engine.connect() as conn:
            result = conn.execute(text(sql), params or {})
            return {"rows": [_jsonable_row(row._mapping) for row in result]}

    def execute(self, sql: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        with self.engine.begin() as conn:
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
