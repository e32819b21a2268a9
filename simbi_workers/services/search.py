"""The search host service: a full-text index of services and users.

The documents are the rows of search_documents; the index follows that table (see the
schema module), so deleting rows there, as DestroyUserWorker does, also removes them
from results. SQLite matches with FTS5 and ranks by bm25; PostgreSQL matches a
generated tsvector with plainto_tsquery and ranks by ts_rank. Both tokenize without
stemming ('simple' on PostgreSQL, unicode61 on SQLite), so a word matches the same
documents on either.

User text never reaches the query syntax: on SQLite each word becomes a quoted FTS5
string (operators such as OR, NEAR( or * are then plain words); on PostgreSQL
plainto_tsquery ignores operators. Every value is a bound parameter.
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import text as sql_text

from simbi_workers.errors import PermanentJobError
from simbi_workers.services.db import Database, _translated
from simbi_workers.store.schema import SEARCH_FTS

RECORD_TYPES = ("service", "user")
MAX_ID = 2**63 - 1
MAX_TITLE_CHARS = 1_000
# The TS workers cut a longer body to this length (search_worker.ts, MAX_BODY_CHARS).
MAX_BODY_CHARS = 50_000
MAX_QUERY_CHARS = 500
MAX_LIMIT = 100
# bm25 weights of the FTS5 columns (title, body): a title hit outranks a body hit.
TITLE_WEIGHT = 10.0
BODY_WEIGHT = 1.0
SNIPPET_WORDS = 16

# Runs of letters and digits, as FTS5's unicode61 tokenizer cuts them.
_WORD = re.compile(r"[^\W_]+")

_UPSERT = """
INSERT INTO search_documents (record_type, record_id, owner_id, title, body, updated_at)
VALUES (:record_type, :record_id, :owner_id, :title, :body, CURRENT_TIMESTAMP)
ON CONFLICT (record_type, record_id) DO UPDATE SET owner_id = excluded.owner_id,
    title = excluded.title, body = excluded.body, updated_at = excluded.updated_at
"""

_REMOVE = "DELETE FROM search_documents WHERE record_type = :record_type AND record_id = :record_id"

_SQLITE_QUERY = f"""
SELECT d.record_type, d.record_id, d.title,
    snippet({SEARCH_FTS}, 1, '[', ']', '...', {SNIPPET_WORDS}) AS snippet,
    -bm25({SEARCH_FTS}, {TITLE_WEIGHT}, {BODY_WEIGHT}) AS rank
FROM {SEARCH_FTS} JOIN search_documents AS d ON d.rowid = {SEARCH_FTS}.rowid
WHERE {SEARCH_FTS} MATCH :match {{type_filter}}
ORDER BY rank DESC, d.record_type, d.record_id
LIMIT :limit
"""

# The inner query ranks and cuts to the limit, so ts_headline (costly) runs on the hits only.
_POSTGRES_QUERY = f"""
SELECT hit.record_type, hit.record_id, hit.title, hit.rank,
    ts_headline('simple', hit.body, hit.q,
        'StartSel=[, StopSel=], MaxWords={SNIPPET_WORDS}, MinWords=5') AS snippet
FROM (
    SELECT d.record_type, d.record_id, d.title, d.body, q, ts_rank(d.search_vector, q) AS rank
    FROM search_documents AS d, plainto_tsquery('simple', :text) AS q
    WHERE d.search_vector @@ q {{type_filter}}
    ORDER BY rank DESC, d.record_type, d.record_id
    LIMIT :limit
) AS hit
ORDER BY hit.rank DESC, hit.record_type, hit.record_id
"""

_TYPE_FILTER = "AND d.record_type = :record_type"


class Search:
    HOST_METHODS = ("upsert", "remove", "query")

    def __init__(self, db: Database):
        self.engine = db.engine

    def upsert(
        self, record_type: str, record_id: int, owner_id: int, title: str, body: str
    ) -> dict[str, Any]:
        """Index one record, replacing its earlier text. `owner_id` is the user the document
        names (for a user, the user), so that all of a user's documents can be deleted."""
        params = {
            "record_type": _record_type(record_type),
            "record_id": _id("record_id", record_id),
            "owner_id": _id("owner_id", owner_id),
            "title": _text("title", title, MAX_TITLE_CHARS, required=True),
            "body": _text("body", body, MAX_BODY_CHARS, required=False),
        }
        with _translated(_UPSERT), self.engine.begin() as conn:
            conn.execute(sql_text(_UPSERT), params)
        return {"record_type": record_type, "record_id": record_id, "indexed": True}

    def remove(self, record_type: str, record_id: int) -> dict[str, Any]:
        """Drop one record's document; a record that was never indexed is not an error."""
        params = {
            "record_type": _record_type(record_type),
            "record_id": _id("record_id", record_id),
        }
        with _translated(_REMOVE), self.engine.begin() as conn:
            removed = conn.execute(sql_text(_REMOVE), params).rowcount
        return {"record_type": record_type, "record_id": record_id, "removed": removed > 0}

    def query(
        self, text: str, record_type: str | None = None, limit: int = 20
    ) -> dict[str, list[dict[str, Any]]]:
        """The documents that contain every word of `text`, best first: {"hits": [...]},
        each hit {record_type, record_id, title, snippet, rank}. A higher rank is a better
        match; ranks compare within one query only. The snippet is an excerpt of the body
        with the matched words in [brackets], or None for an empty body."""
        words = _words(text)
        if record_type is not None:
            _record_type(record_type)
        limit = _limit(limit)
        if not words:
            # Only punctuation ("*", "-", '"'): nothing to match, and no reason to fail.
            return {"hits": []}

        params: dict[str, Any] = {"limit": limit, "record_type": record_type}
        if self.engine.dialect.name == "sqlite":
            sql = _SQLITE_QUERY
            params["match"] = " ".join(f'"{word}"' for word in words)
        else:
            sql = _POSTGRES_QUERY
            # The text itself, so that PostgreSQL's parser finds the same tokens (an email
            # address, say) in the query as in the documents.
            params["text"] = text.replace("\x00", " ")
        sql = sql.format(type_filter=_TYPE_FILTER if record_type else "")

        with _translated(sql), self.engine.connect() as conn:
            rows = conn.execute(sql_text(sql), params).mappings().all()
        return {"hits": [_hit(row) for row in rows]}


def _hit(row) -> dict[str, Any]:
    return {
        "record_type": row["record_type"],
        "record_id": row["record_id"],
        "title": row["title"],
        "snippet": row["snippet"] or None,
        "rank": float(row["rank"]),
    }


def _words(query: Any) -> list[str]:
    if not isinstance(query, str):
        raise PermanentJobError(f"search.query: text must be a string, received {query!r}")
    if not query.strip():
        raise PermanentJobError(
            f"search.query: text must contain a word to search for, received {query!r}"
        )
    if len(query) > MAX_QUERY_CHARS:
        raise PermanentJobError(
            f"search.query: text must be at most {MAX_QUERY_CHARS} characters, "
            f"received {len(query)}"
        )
    return _WORD.findall(query)


def _record_type(value: Any) -> str:
    if value in RECORD_TYPES:
        return value
    known = " or ".join(RECORD_TYPES)
    raise PermanentJobError(f"search: record_type must be {known}, received {value!r}")


def _id(name: str, value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and 0 < value <= MAX_ID:
        return value
    raise PermanentJobError(
        f"search: {name} must be a whole number from 1 to 2**63-1, received {value!r}"
    )


def _limit(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= MAX_LIMIT:
        return value
    raise PermanentJobError(f"search.query: limit must be 1 to {MAX_LIMIT}, received {value!r}")


def _text(name: str, value: Any, most: int, *, required: bool) -> str:
    if not isinstance(value, str):
        raise PermanentJobError(f"search.upsert: {name} must be a string, received {value!r}")
    # PostgreSQL text cannot hold NUL, and it has no meaning in a search document.
    value = value.replace("\x00", "")
    if required and not value.strip():
        raise PermanentJobError(f"search.upsert: {name} must not be blank, received {value!r}")
    if len(value) > most:
        raise PermanentJobError(
            f"search.upsert: {name} must be at most {most} characters, received {len(value)}"
        )
    return value
