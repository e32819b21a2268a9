"""clients/vectors.json through the Python client: the expected Redis state and refusals
the TypeScript and Ruby clients are held to (clients/typescript/test, clients/ruby/test).

SIMBI_WRITE_VECTORS=1 rewrites each case's `expect` from what the Python client does; the
inputs stay as written by hand.
"""

from __future__ import annotations

import json
import os
import re
import sys
import zlib
from pathlib import Path
from typing import Any

import pytest

from simbi_workers import catalog
from simbi_workers.client import Client
from simbi_workers.config import Settings
from simbi_workers.errors import JobInputError

VECTORS = Path(__file__).resolve().parent.parent / "clients" / "vectors.json"


def _unlimited_ints(action):
    """One vector holds an integer past Python's 4,300-digit limit, for the clients to
    refuse: reading and writing the file lifts that limit, the client under test does not."""
    limit = sys.get_int_max_str_digits()
    sys.set_int_max_str_digits(0)
    try:
        return action()
    finally:
        sys.set_int_max_str_digits(limit)


DOCUMENT = _unlimited_ints(lambda: json.loads(VECTORS.read_text(encoding="utf-8")))
RQ_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z")
CASES = [case for case in DOCUMENT["cases"] if "python" in case.get("runtimes", ["python"])]


def perform(client: Client, call: dict[str, Any]) -> str | list[str]:
    options = client.set(unique_seconds=call.get("unique_seconds"))
    worker = call["worker"]
    if call["call"] == "perform_bulk":
        return options.perform_bulk(worker, call["args_list"])
    if call["call"] == "perform_in":
        return options.perform_in(call["in"], worker, *call["args"])
    if call["call"] == "perform_at":
        return options.perform_at(call["at"], worker, *call["args"])
    return options.perform_async(worker, *call["args"])


def dump(connection) -> dict[str, Any]:
    """Every key in the database by type, a job's data field decompressed."""
    state = {}
    for key in connection.scan_iter():
        kind = connection.type(key).decode()
        entry: dict[str, Any] = {"type": kind, "expires": connection.pttl(key) > 0}
        if kind == "string":
            entry["value"] = connection.get(key).decode()
        elif kind == "hash":
            fields = connection.hgetall(key)
            entry["fields"] = {name.decode(): _field(name, value) for name, value in fields.items()}
        elif kind == "list":
            entry["items"] = [item.decode() for item in connection.lrange(key, 0, -1)]
        elif kind == "set":
            entry["members"] = sorted(member.decode() for member in connection.smembers(key))
        elif kind == "zset":
            pairs = connection.zrange(key, 0, -1, withscores=True)
            entry["members"] = [[member.decode(), score] for member, score in pairs]
        state[key.decode()] = entry
    return state


def _field(name: bytes, value: bytes) -> Any:
    if name == b"data":
        return {"zlib": zlib.decompress(value).decode("utf-8")}
    return value.decode("utf-8")


def normalize(value: Any, ids: list[str]) -> Any:
    """Job ids become {id0}, {id1}, ... (in the order the calls returned them) and RQ
    times become {now}, in keys and values alike; keys are sorted."""
    if isinstance(value, dict):
        pairs = ((normalize(key, ids), normalize(item, ids)) for key, item in value.items())
        return dict(sorted(pairs))
    if isinstance(value, list):
        return [normalize(item, ids) for item in value]
    if isinstance(value, str):
        if RQ_TIME.fullmatch(value):
            return "{now}"
        for index, job_id in enumerate(ids):
            value = value.replace(job_id, f"{{id{index}}}")
    return value


def run_case(case: dict[str, Any], redis_conn, monkeypatch) -> dict[str, Any]:
    for name, value in case.get("settings", {}).items():
        monkeypatch.setenv(name, str(value))
    loaded = catalog.load(catalog.DEFAULT_QUEUES_FILE)
    client = Client(connection=redis_conn, catalog=loaded, settings=Settings())

    returns = []
    try:
        for call in case["calls"]:
            returns.append(perform(client, call))
    except JobInputError as exc:
        return {"refused": str(exc).replace(str(loaded.path), "{queues_file}")}

    flat = [job_id for result in returns for job_id in _as_list(result)]
    ids = list(dict.fromkeys(flat))
    return {"returns": normalize(returns, ids), "redis": normalize(dump(redis_conn), ids)}


def _as_list(result: str | list[str]) -> list[str]:
    return result if isinstance(result, list) else [result]


@pytest.mark.parametrize("case", CASES, ids=[case["name"] for case in CASES])
def test_the_python_client_matches_the_shared_vector(case, settings, redis_conn, monkeypatch):
    outcome = run_case(case, redis_conn, monkeypatch)

    if os.environ.get("SIMBI_WRITE_VECTORS") == "1":
        case["expect"] = outcome
        _write(DOCUMENT)
    assert outcome == case.get("expect"), "run with SIMBI_WRITE_VECTORS=1 if this change is meant"


def test_the_vectors_cover_every_kind_of_refusal():
    refusals = " | ".join(case["expect"].get("refused", "") for case in DOCUMENT["cases"])

    for fragment in (
        "unknown worker",
        "argument(s)",
        "over the limit",
        "lone surrogate",
        "the key '",
        "must be a list of arguments",
        "the delay must be from",
        "a number of seconds or a timedelta",
        "more than ten years ahead",
        "unique_seconds must be",
        "levels deep",
        "digits",
        "too large for a float",
    ):
        assert fragment in refusals


def _write(document: dict[str, Any]) -> None:
    text = _unlimited_ints(lambda: json.dumps(document, indent=2, ensure_ascii=False))
    # A lone surrogate cannot be written as UTF-8: keep it as its JSON escape.
    text = re.sub("[\ud800-\udfff]", lambda match: f"\\u{ord(match.group()):04x}", text)
    VECTORS.write_text(text + "\n", encoding="utf-8")
