"""Enqueue jobs by worker name: perform_async, perform_in, perform_at, perform_bulk.

Everything is checked before anything reaches Redis: the worker exists in queues.yaml,
the argument count matches, every argument is JSON-native, the payload is not too big.
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import redis

from simbi_workers import catalog as catalog_module
from simbi_workers import keys, lua, wire
from simbi_workers.catalog import Catalog, WorkerSpec
from simbi_workers.config import Settings
from simbi_workers.config import settings as default_settings
from simbi_workers.errors import JobInputError

BULK_CHUNK = 1000
MAX_DELAY_SECONDS = 10 * 365 * 86_400


class Client:
    def __init__(
        self,
        connection: redis.Redis | None = None,
        catalog: Catalog | None = None,
        settings: Settings | None = None,
    ):
        self.settings = settings or default_settings()
        self.catalog = catalog or catalog_module.load(self.settings.queues_file)
        self._connection = connection

    @property
    def connection(self) -> redis.Redis:
        # Connected on first use, so a bad call is refused even when Redis is down.
        if self._connection is None:
            from simbi_workers.redis_connection import connect

            self._connection = connect(self.settings)
        return self._connection

    def set(self, *, unique_seconds: int | None = None) -> Options:
        """Options for the next calls, Sidekiq's `Worker.set(...)`:
        `client.set(unique_seconds=60).perform_async("ScoreWorker", 7, "user", 2)`."""
        if unique_seconds is not None and (
            isinstance(unique_seconds, bool)
            or not isinstance(unique_seconds, int)
            or unique_seconds < 1
        ):
            raise JobInputError(
                f"unique_seconds must be a positive whole number, got {unique_seconds!r}"
            )
        return Options(self, unique_seconds)

    def perform_async(self, worker: str, *args: Any) -> str:
        return self.set().perform_async(worker, *args)

    def perform_in(self, delay: float | timedelta, worker: str, *args: Any) -> str:
        return self.set().perform_in(delay, worker, *args)

    def perform_at(self, when: datetime | float | int, worker: str, *args: Any) -> str:
        return self.set().perform_at(when, worker, *args)

    def perform_bulk(self, worker: str, args_list: Iterable[Sequence[Any]]) -> list[str]:
        return self.set().perform_bulk(worker, args_list)

    def _enqueue(
        self,
        worker: str,
        batches: list[list[Any]],
        run_at: float | None,
        unique_seconds: int | None,
    ) -> list[str]:
        spec = self._spec(worker)
        window = unique_seconds or spec.unique_seconds
        jobs = [self._build(spec, args, window) for args in batches]

        ids: list[str] = []
        for start in range(0, len(jobs), BULK_CHUNK):
            ids.extend(self._write_chunk(spec, jobs[start : start + BULK_CHUNK], run_at, window))
        return ids

    def _write_chunk(
        self, spec: WorkerSpec, jobs: list[wire.Job], run_at: float | None, window: int | None
    ) -> list[str]:
        """Write the jobs in one enqueue.lua call; a unique one whose twin still waits, is
        scheduled or runs is not written, and its twin's id stands in its place."""
        now = wire.utc_now_text()
        rows = [self._row(job, now) for job in jobs]
        head = [spec.queue, "" if run_at is None else run_at, window or "", now]
        argv = [*head, (len(rows[0]) - 2) // 2, *itertools.chain.from_iterable(rows)]
        ids = lua.script(self.connection, "enqueue")(args=argv)
        return [job_id.decode() for job_id in ids]

    def _row(self, job: wire.Job, now: str) -> list[Any]:
        """One job's part of enqueue.lua's ARGV: id, lock key, then field/value pairs."""
        fields = wire.job_fields(
            job,
            now=now,
            result_ttl=self.settings.result_ttl_seconds,
            failure_ttl=self.settings.failure_ttl_seconds,
        )
        return [job.id, job.unique_key or "", *itertools.chain.from_iterable(fields.items())]

    def _spec(self, worker: str) -> WorkerSpec:
        spec = self.catalog.workers.get(worker)
        if spec is None:
            close = suggest(str(worker), list(self.catalog.workers))
            hint = f" (did you mean {close}?)" if close else ""
            raise JobInputError(
                f"unknown worker {worker!r}{hint}: {self.catalog.path} declares no such worker"
            )
        return spec

    def _build(self, spec: WorkerSpec, args: list[Any], window: int | None) -> wire.Job:
        check_arguments(spec, args, self.settings.max_payload_bytes)
        unique_key = keys.unique_lock(spec.name, wire.unique_digest(args)) if window else None
        return wire.Job(
            id=wire.new_id(),
            worker=spec.name,
            args=args,
            queue=spec.queue,
            attempt=0,
            timeout_seconds=spec.timeout_seconds,
            unique_key=unique_key,
            secret_positions=spec.secret_positions,
        )


class Options:
    """A client with per-call options; see Client.set."""

    def __init__(self, client: Client, unique_seconds: int | None):
        self.client = client
        self.unique_seconds = unique_seconds

    def perform_async(self, worker: str, *args: Any) -> str:
        return self.client._enqueue(worker, [list(args)], None, self.unique_seconds)[0]

    def perform_in(self, delay: float | timedelta, worker: str, *args: Any) -> str:
        seconds = _seconds(delay)
        if not 0 <= seconds <= MAX_DELAY_SECONDS:
            raise JobInputError(
                f"perform_in: the delay must be from 0 to {MAX_DELAY_SECONDS:,} s "
                f"(ten years), got {seconds} s"
            )
        run_at = datetime.now(UTC).timestamp() + seconds
        return self.client._enqueue(worker, [list(args)], run_at, self.unique_seconds)[0]

    def perform_at(self, when: datetime | float | int, worker: str, *args: Any) -> str:
        run_at = _epoch(when)
        if run_at - datetime.now(UTC).timestamp() > MAX_DELAY_SECONDS:
            raise JobInputError(
                f"perform_at: {when!r} is more than ten years ahead; the latest time is "
                f"{MAX_DELAY_SECONDS:,} s from now"
            )
        return self.client._enqueue(worker, [list(args)], run_at, self.unique_seconds)[0]

    def perform_bulk(self, worker: str, args_list: Iterable[Sequence[Any]]) -> list[str]:
        batches = [_argument_list(worker, index, args) for index, args in enumerate(args_list)]
        return self.client._enqueue(worker, batches, None, self.unique_seconds)


def _argument_list(worker: str, index: int, args: Any) -> list[Any]:
    # A string is a sequence too, but "abc" as ["a", "b", "c"] is never what was meant.
    if not isinstance(args, list | tuple):
        shown = repr(args)[:60]
        raise JobInputError(
            f"perform_bulk({worker}): item {index} must be a list of arguments, got "
            f"{type(args).__name__} {shown}; for one argument each, write [[1], [2], …]"
        )
    return list(args)


def check_arguments(spec: WorkerSpec, args: list[Any], max_payload_bytes: int | None) -> None:
    """Refuse a call that the worker could never run, before it reaches Redis."""
    if len(args) != spec.arity:
        names = ", ".join(spec.args) or "none"
        raise JobInputError(
            f"{spec.name} takes {spec.arity} argument(s) ({names}), got {len(args)}"
        )
    for index, arg in enumerate(args):
        wire.check_json_native(arg, f"args[{index}]")

    if max_payload_bytes is None:
        return
    size = len(json.dumps(args, ensure_ascii=False).encode("utf-8"))
    if size > max_payload_bytes:
        raise JobInputError(
            f"{spec.name}: the arguments are {size:,} bytes as JSON, over the limit of "
            f"{max_payload_bytes:,} (SIMBI_MAX_PAYLOAD_BYTES); store large data elsewhere "
            "and pass its key"
        )


def _seconds(delay: Any) -> float:
    if isinstance(delay, timedelta):
        return delay.total_seconds()
    if isinstance(delay, int | float) and not isinstance(delay, bool):
        return _as_float(delay, "perform_in: the delay")
    raise JobInputError(
        f"perform_in: the delay must be a number of seconds or a timedelta, got {delay!r}"
    )


def _as_float(number: int | float, what: str) -> float:
    # float() of an int past 1.8e308 raises OverflowError, and its repr past 4,300 digits
    # ValueError: neither may escape, nor may a message try to show the number.
    try:
        return float(number)
    except OverflowError:
        raise JobInputError(f"{what} is an integer too large for a float (over 1.8e308)") from None


def suggest(name: str, known: list[str]) -> str | None:
    """The known name nearest to `name` (edit distance, ignoring case; the first of a tie),
    if it is within a third of its length. Simple on purpose: the TypeScript and Ruby
    clients compute the same hint (clients/vectors.json)."""
    best, best_distance = None, len(name) // 3 + 1
    for candidate in known:
        distance = _edit_distance(name.lower(), candidate.lower())
        if distance < best_distance:
            best, best_distance = candidate, distance
    return best


def _edit_distance(a: str, b: str) -> int:
    previous = list(range(len(b) + 1))
    for i, char_a in enumerate(a, 1):
        current = [i]
        for j, char_b in enumerate(b, 1):
            cost = 0 if char_a == char_b else 1
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost))
        previous = current
    return previous[-1]


def _epoch(when: datetime | float | int) -> float:
    if isinstance(when, datetime):
        if when.tzinfo is None:
            raise JobInputError("perform_at: give a timezone-aware datetime (or a Unix time)")
        return when.timestamp()
    if isinstance(when, (int, float)) and not isinstance(when, bool):
        seconds = _as_float(when, "perform_at: the time")
        if math.isfinite(seconds):
            return seconds
    raise JobInputError(f"perform_at: expected a datetime or Unix time, got {when!r}")


_default: Client | None = None


def default_client() -> Client:
    global _default
    if _default is None:
        _default = Client()
    return _default


def perform_async(worker: str, *args: Any) -> str:
    return default_client().perform_async(worker, *args)


def perform_in(delay: float | timedelta, worker: str, *args: Any) -> str:
    return default_client().perform_in(delay, worker, *args)


def perform_at(when: datetime | float | int, worker: str, *args: Any) -> str:
    return default_client().perform_at(when, worker, *args)


def perform_bulk(worker: str, args_list: Iterable[Sequence[Any]]) -> list[str]:
    return default_client().perform_bulk(worker, args_list)
