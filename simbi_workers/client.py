"""Enqueue jobs by worker name: perform_async, perform_in, perform_at, perform_bulk.

Everything is checked before anything reaches Redis: the worker exists in queues.yaml,
the argument count matches, every argument is JSON-native, the payload is not too big.
"""

from __future__ import annotations

import difflib
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
WAKEUP_TOKENS_MAX = 256


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
        """Write the jobs; a unique one whose twin still waits, is scheduled or runs is not
        written, and its twin's id stands in its place."""
        twins = self._claim(jobs, window) if window else {}
        fresh = [job for job in jobs if job.id not in twins]
        if fresh:
            try:
                self._write(spec, fresh, run_at)
            except redis.RedisError:
                if window:
                    self._release_claims(fresh)
                raise
        return [twins.get(job.id, job.id) for job in jobs]

    def _claim(self, jobs: list[wire.Job], window: int) -> dict[str, str]:
        pipe = self.connection.pipeline(transaction=False)
        for job in jobs:
            pipe.set(job.unique_key, job.id, nx=True, ex=window)
        claimed = pipe.execute()

        lost = [job for job, ok in zip(jobs, claimed, strict=True) if not ok]
        if not lost:
            return {}
        holders = self.connection.mget([job.unique_key for job in lost])
        # A lock that expired between SET and GET has no holder: the job goes ahead unlocked
        # rather than being dropped.
        return {
            job.id: holder.decode()
            for job, holder in zip(lost, holders, strict=True)
            if holder is not None
        }

    def _release_claims(self, jobs: list[wire.Job]) -> None:
        release = lua.script(self.connection, "release_unique")
        for job in jobs:
            release(keys=[job.unique_key], args=[job.id])

    def _spec(self, worker: str) -> WorkerSpec:
        spec = self.catalog.workers.get(worker)
        if spec is None:
            close = difflib.get_close_matches(str(worker), self.catalog.workers, n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
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

    def _write(self, spec: WorkerSpec, jobs: list[wire.Job], run_at: float | None) -> None:
        status = "queued" if run_at is None else "scheduled"
        # One MULTI: if Redis dies mid-way, no job hash is left without its queue entry.
        pipe = self.connection.pipeline(transaction=True)
        for job in jobs:
            fields = wire.encode(
                job,
                status=status,
                result_ttl=self.settings.result_ttl_seconds,
                failure_ttl=self.settings.failure_ttl_seconds,
            )
            pipe.hset(keys.job(job.id), mapping=fields)
        pipe.sadd(keys.RQ_QUEUES, keys.queue(spec.queue))
        ids = [job.id for job in jobs]
        if run_at is None:
            pipe.rpush(keys.queue(spec.queue), *ids)
            # One wake-up token per job lets exactly one idle worker process take it.
            pipe.lpush(keys.WAKEUP, *ids[:WAKEUP_TOKENS_MAX])
            pipe.ltrim(keys.WAKEUP, 0, WAKEUP_TOKENS_MAX - 1)
        else:
            pipe.zadd(keys.scheduled(spec.queue), dict.fromkeys(ids, run_at))
        pipe.execute()


class Options:
    """A client with per-call options; see Client.set."""

    def __init__(self, client: Client, unique_seconds: int | None):
        self.client = client
        self.unique_seconds = unique_seconds

    def perform_async(self, worker: str, *args: Any) -> str:
        return self.client._enqueue(worker, [list(args)], None, self.unique_seconds)[0]

    def perform_in(self, delay: float | timedelta, worker: str, *args: Any) -> str:
        seconds = delay.total_seconds() if isinstance(delay, timedelta) else float(delay)
        if not 0 <= seconds <= MAX_DELAY_SECONDS:
            raise JobInputError(
                f"perform_in: the delay must be from 0 to {MAX_DELAY_SECONDS:,} s "
                f"(ten years), got {seconds} s"
            )
        run_at = datetime.now(UTC).timestamp() + seconds
        return self.client._enqueue(worker, [list(args)], run_at, self.unique_seconds)[0]

    def perform_at(self, when: datetime | float | int, worker: str, *args: Any) -> str:
        return self.client._enqueue(worker, [list(args)], _epoch(when), self.unique_seconds)[0]

    def perform_bulk(self, worker: str, args_list: Iterable[Sequence[Any]]) -> list[str]:
        batches = [list(args) for args in args_list]
        return self.client._enqueue(worker, batches, None, self.unique_seconds)


def check_arguments(spec: WorkerSpec, args: list[Any], max_payload_bytes: int | None) -> None:
    """Refuse a call that the worker could never run, before it reaches Redis."""
    if len(args) != spec.arity:
        names = ", ".join(spec.args) or "none"
        raise JobInputError(
            f"{spec.name} takes {spec.arity} argument(s) ({names}), got {len(args)}"
        )
    try:
        for index, arg in enumerate(args):
            wire.check_json_native(arg, f"args[{index}]")
    except RecursionError:
        raise JobInputError(f"{spec.name}: the arguments are nested too deeply") from None

    if max_payload_bytes is None:
        return
    size = len(json.dumps(args, ensure_ascii=False).encode("utf-8"))
    if size > max_payload_bytes:
        raise JobInputError(
            f"{spec.name}: the arguments are {size:,} bytes as JSON, over the limit of "
            f"{max_payload_bytes:,} (SIMBI_MAX_PAYLOAD_BYTES); store large data elsewhere "
            "and pass its key"
        )


def _epoch(when: datetime | float | int) -> float:
    if isinstance(when, datetime):
        if when.tzinfo is None:
            raise JobInputError("perform_at: give a timezone-aware datetime (or a Unix time)")
        return when.timestamp()
    if isinstance(when, (int, float)) and not isinstance(when, bool) and math.isfinite(when):
        return float(when)
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
