"""Fetching a job and acknowledging it: one atomic Lua step in, one pipeline out.

A fetched job is a unit of work that owns its acknowledgement: done, retried, dead, or
put back. Until one of those runs, its id sits in the process's processing list.
"""

from __future__ import annotations

import base64
import json
import time
import zlib
from dataclasses import dataclass
from typing import Any

import redis

from simbi_workers import keys, lua, wire

STARTED_GRACE_SECONDS = 60
RESULT_FAILED = 2  # rq.results.Result.Type.FAILED
# A job over its worker's concurrency limit waits this long in the scheduled registry.
LIMITED_RETRY_SECONDS = 1
WAKEUP_WAIT_SECONDS = 1


@dataclass
class Fetched:
    """A job taken from a queue, with its raw hash, before it is decoded."""

    queue: str
    job_id: str
    fields: dict[bytes, bytes]


class Fetcher:
    def __init__(
        self,
        connection: redis.Redis,
        process_id: str,
        worker_name: str,
        queues: list[str],
        limits: dict[str, int] | None = None,
    ):
        self.connection = connection
        self.process_id = process_id
        self.worker_name = worker_name
        self.queues = queues
        self.processing_key = keys.processing(process_id)
        self.entry_suffix = f":{process_id}"
        # Concurrency limits by worker name, for fetch.lua (it meets the worker only there).
        self.limits_json = json.dumps(limits or {}, separators=(",", ":"))
        self._fetch = lua.script(connection, "fetch")
        self._release_unique = lua.script(connection, "release_unique")

    def fetch(self) -> Fetched | None:
        reply = self._fetch(
            keys=[self.processing_key, keys.WAKEUP],
            args=[
                time.time(),
                wire.utc_now_text(),
                self.worker_name,
                self.entry_suffix,
                STARTED_GRACE_SECONDS,
                self.limits_json,
                LIMITED_RETRY_SECONDS,
                *self.queues,
            ],
        )
        if not reply:
            return None
        queue, job_id, *flat = reply
        fields = dict(zip(flat[::2], flat[1::2], strict=True))
        return Fetched(queue.decode(), job_id.decode(), fields)

    def wait_for_work(self, timeout: float = WAKEUP_WAIT_SECONDS) -> None:
        """Block until an enqueue leaves a wake-up token, or the timeout passes."""
        self.connection.blpop([keys.WAKEUP], timeout=timeout)

    def unit(self, fetched: Fetched) -> Unit:
        return Unit(self, fetched.queue, fetched.job_id, fetched.fields)


class Unit:
    """The acknowledgement of one fetched job."""

    def __init__(
        self, fetcher: Fetcher, queue: str, job_id: str, fields: dict[bytes, bytes] | None = None
    ):
        self.fetcher = fetcher
        self.queue = queue
        self.job_id = job_id
        fields = fields or {}
        self.worker = fields.get(b"simbi_worker", b"").decode("utf-8", "replace")
        self.unique_key = fields.get(b"simbi_unique", b"").decode("utf-8", "replace")
        self.died = b"simbi_died" in fields  # put back after its process died mid-run

    def done(
        self,
        worker: str,
        value: Any,
        runtime_ms: float,
        result_ttl: int,
        skipped: str | None = None,
    ) -> None:
        """Finished; `skipped` says why a job that did nothing did nothing."""
        pipe = self._release()
        fields = {"status": "finished", "ended_at": wire.utc_now_text(), "result": _json(value)}
        if skipped:
            fields["simbi_skipped"] = skipped[:500]
        pipe.hset(keys.job(self.job_id), mapping=fields)
        pipe.expire(keys.job(self.job_id), result_ttl)
        pipe.zadd(keys.finished(self.queue), {self.job_id: time.time() + result_ttl})
        _count(pipe, worker, "processed", runtime_ms)
        if skipped:
            _count(pipe, worker, "skipped", 0)
        self._unlock(pipe)
        pipe.execute()

    def retry(
        self, worker: str, error_text: str, attempts_made: int, delay: float, runtime_ms: float
    ) -> None:
        pipe = self._release()
        _record_failure(pipe, self.job_id, "scheduled", error_text, attempts_made)
        pipe.zadd(keys.scheduled(self.queue), {self.job_id: time.time() + delay})
        _count(pipe, worker, "failed", runtime_ms)
        pipe.execute()

    def bury(
        self, worker: str, error_text: str, attempts_made: int, runtime_ms: float, failure_ttl: int
    ) -> None:
        """The dead set: RQ's failed registry, kept for failure_ttl seconds."""
        pipe = self._release()
        _record_failure(pipe, self.job_id, "failed", error_text, attempts_made)
        pipe.expire(keys.job(self.job_id), failure_ttl)
        pipe.zadd(keys.failed(self.queue), {self.job_id: time.time() + failure_ttl})
        _count(pipe, worker, "failed", runtime_ms)
        _count(pipe, worker, "dead", 0)
        _record_result(
            pipe, self.job_id, RESULT_FAILED, error_text, failure_ttl, self.fetcher.worker_name
        )
        self._unlock(pipe)
        pipe.execute()

    def put_back(self) -> None:
        """Back to the front of its queue, not counted as an attempt (a shutdown)."""
        pipe = self._release()
        pipe.hset(keys.job(self.job_id), mapping={"status": "queued"})
        pipe.lpush(keys.queue(self.queue), self.job_id)
        pipe.lpush(keys.WAKEUP, self.job_id)
        pipe.execute()

    def _release(self) -> redis.client.Pipeline:
        entry = self.job_id + self.fetcher.entry_suffix
        pipe = self.fetcher.connection.pipeline(transaction=True)
        pipe.lrem(self.fetcher.processing_key, -1, self.job_id)
        if self.died:
            pipe.hdel(keys.job(self.job_id), "simbi_died")  # this run ended: it did not die
        pipe.zrem(keys.started(self.queue), entry)
        if self.worker:
            pipe.zrem(keys.slots(self.worker), entry)
        return pipe

    def _unlock(self, pipe: redis.client.Pipeline) -> None:
        """Finished or dead for good: an identical job may be enqueued again."""
        if self.unique_key:
            self.fetcher._release_unique(keys=[self.unique_key], args=[self.job_id], client=pipe)


def _record_failure(pipe, job_id: str, status: str, error_text: str, attempts: int) -> None:
    pipe.hset(keys.job(job_id), mapping=failure_fields(status, error_text, attempts))


def failure_fields(status: str, error_text: str, attempts: int) -> dict[str, Any]:
    """The job hash fields of a failure, as `failed list` and `failed show` read them."""
    return {
        "status": status,
        "ended_at": wire.utc_now_text(),
        "exc_info": zlib.compress(error_text.encode()),
        "simbi_attempt": attempts,
        "simbi_error": error_text.splitlines()[0][:500],
    }


def _record_result(
    pipe, job_id: str, kind: int, error_text: str, ttl: int, worker_name: str
) -> None:
    """RQ 2 reads a job's outcome from its results stream: tools such as rq-dashboard show
    a dead job's traceback from here, not from the job hash."""
    encoded = base64.b64encode(zlib.compress(error_text.encode())).decode()
    key = keys.results(job_id)
    pipe.xadd(
        key,
        {"type": kind, "worker_name": worker_name, "exc_string": encoded},
        maxlen=10,
        approximate=True,
    )
    pipe.expire(key, ttl)


def _count(pipe: redis.client.Pipeline, worker: str, outcome: str, runtime_ms: float) -> None:
    key = keys.worker_stats(worker)
    pipe.hincrby(key, outcome, 1)
    if runtime_ms:
        pipe.hincrbyfloat(key, "runtime_ms", runtime_ms)


def _json(value: Any) -> str:
    try:
        return json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        return json.dumps(repr(value))
