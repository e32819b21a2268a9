"""The dead set: jobs that failed for good, in RQ's failed registries (rq:failed:<queue>).

A dead job's id sits in its queue's registry, scored by when its time there is up
(SIMBI_FAILURE_TTL after it failed), and its hash keeps the failure with the same TTL.
An operator lists, shows, retries or deletes them here; `simbi-workers failed` is the
command line over this module. Retry and delete are one Lua step each (lua/retry_dead.lua,
lua/delete_dead.lua). Entries whose time is up, or whose hash is gone, are cleaned as
they are met, as RQ's own registry does when it counts.
"""

from __future__ import annotations

import difflib
import time
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import redis

from simbi_workers import keys, lua, wire
from simbi_workers.catalog import Catalog
from simbi_workers.errors import SimbiError

# Job hashes read per round trip when listing, and entries moved per Lua call, so a large
# dead set never blocks Redis for long in one step.
BATCH = 500
PAYLOAD_PREVIEW_CHARS = 2000
UNKNOWN_WORKER = "unknown"  # the name worker.py counts a job under when its hash names none
LIST_FIELDS = ("simbi_worker", "simbi_attempt", "simbi_error", "ended_at")
NO_ERROR = "(no error recorded)"
NOT_DEAD_REASONS = "never failed for good, already retried or deleted, or its time there was up"


class DeadJobNotFoundError(SimbiError):
    """A job id that is not in the dead set."""


@dataclass
class DeadEntry:
    """One dead job, as `failed list` shows it."""

    id: str
    worker: str
    queue: str
    attempts: int
    error: str  # the first line of the last failure
    failed_at: str | None  # RQ's ended_at: ISO 8601 with a Z
    expires_at: str  # when it leaves the dead set by itself


@dataclass
class DeadJob(DeadEntry):
    """One dead job in full, as `failed show` shows it."""

    status: str = ""
    description: str = ""
    created_at: str | None = None
    enqueued_at: str | None = None
    started_at: str | None = None
    args: list[Any] | None = None
    payload_error: str | None = None  # why args could not be decoded; payload then has text
    payload: str | None = None
    traceback: str = ""


@dataclass
class Report:
    """What retry or delete did: `done` were retried (or deleted); `missing` were not in the
    dead set (never there, already retried or deleted, or their time was up)."""

    done: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)


class DeadSet:
    def __init__(self, connection: redis.Redis, catalog: Catalog):
        self.connection = connection
        self.catalog = catalog
        self._retry = lua.script(connection, "retry_dead")
        self._delete = lua.script(connection, "delete_dead")

    def list(self, worker: str | None = None, limit: int | None = None) -> list[DeadEntry]:
        """Dead jobs, the most recent failure first; `worker` keeps only that worker's."""
        entries = self._scan(worker)
        self._check_worker(worker, entries)
        return entries if limit is None else entries[:limit]

    def show(self, job_id: str) -> DeadJob:
        located = self._locate([job_id])
        if job_id not in located:
            raise DeadJobNotFoundError(f"job {job_id} is not in the dead set ({NOT_DEAD_REASONS})")
        queue, score = located[job_id]
        fields = self.connection.hgetall(keys.job(job_id))
        if not fields:
            raise DeadJobNotFoundError(f"job {job_id}: its hash is gone (expired or deleted)")
        return _dead_job(job_id, queue, score, fields, self.catalog)

    def retry(self, job_ids: Iterable[str]) -> Report:
        """Each named job back to the end of its queue, attempt count 0, no failure TTL."""
        pairs, missing = self._pairs(job_ids)
        return self._apply(self._retry_pairs, pairs, missing)

    def retry_all(self, worker: str | None = None) -> Report:
        entries = self.list(worker)
        return self._apply(self._retry_pairs, [(entry.queue, entry.id) for entry in entries])

    def delete(self, job_ids: Iterable[str]) -> Report:
        """Each named job out of the dead set, its hash deleted."""
        pairs, missing = self._pairs(job_ids)
        return self._apply(self._delete_pairs, pairs, missing)

    def delete_all(self, worker: str | None = None) -> Report:
        entries = self.list(worker)
        return self._apply(self._delete_pairs, [(entry.queue, entry.id) for entry in entries])

    def queues(self) -> list[str]:
        """The catalogue's queues, then any other queue RQ knows (one since removed from
        queues.yaml may still hold dead jobs)."""
        names = self.catalog.queue_names()
        prefix = keys.queue("")
        for raw in sorted(self.connection.smembers(keys.RQ_QUEUES)):
            name = raw.decode("utf-8", "replace").removeprefix(prefix)
            if name not in names:
                names.append(name)
        return names

    def _scan(self, worker: str | None) -> list[DeadEntry]:
        now = time.time()
        queues = self.queues()
        pipe = self.connection.pipeline(transaction=False)
        for queue in queues:
            # Entries whose time is up are removed, as RQ's FailedJobRegistry.cleanup does.
            pipe.zremrangebyscore(keys.failed(queue), "-inf", f"({now}")
            pipe.zrangebyscore(keys.failed(queue), now, "+inf", withscores=True)
        replies = pipe.execute()[1::2]

        found = [
            (score, queue, raw_id.decode())
            for queue, pairs in zip(queues, replies, strict=True)
            for raw_id, score in pairs
        ]
        found.sort(reverse=True)
        entries = []
        for start in range(0, len(found), BATCH):
            entries.extend(self._read(found[start : start + BATCH]))
        return [entry for entry in entries if worker is None or entry.worker == worker]

    def _read(self, found: list[tuple[float, str, str]]) -> list[DeadEntry]:
        pipe = self.connection.pipeline(transaction=False)
        for _score, _queue, job_id in found:
            pipe.exists(keys.job(job_id))
            pipe.hmget(keys.job(job_id), LIST_FIELDS)
        replies = pipe.execute()

        entries, orphans = [], []
        for (score, queue, job_id), exists, values in zip(
            found, replies[::2], replies[1::2], strict=True
        ):
            if not exists:
                orphans.append((queue, job_id))
                continue
            entries.append(
                _entry(job_id, queue, score, dict(zip(LIST_FIELDS, values, strict=True)))
            )
        self._fill_missing_errors(entries)
        if orphans:
            # The hash expired or was deleted by hand: nothing is left to retry or show.
            pipe = self.connection.pipeline(transaction=False)
            for queue, job_id in orphans:
                pipe.zrem(keys.failed(queue), job_id)
            pipe.execute()
        return entries

    def _fill_missing_errors(self, entries: list[DeadEntry]) -> None:
        """A job failed by RQ's own worker has exc_info but no simbi_error."""
        bare = [entry for entry in entries if not entry.error]
        if not bare:
            return
        pipe = self.connection.pipeline(transaction=False)
        for entry in bare:
            pipe.hget(keys.job(entry.id), "exc_info")
        for entry, raw in zip(bare, pipe.execute(), strict=True):
            entry.error = _last_line(_exc_text(raw)) or NO_ERROR

    def _locate(self, job_ids: list[str]) -> dict[str, tuple[str, float]]:
        """Where each id is dead: its queue and registry score; ids not dead are left out."""
        now = time.time()
        queues = self.queues()
        pipe = self.connection.pipeline(transaction=False)
        for job_id in job_ids:
            for queue in queues:
                pipe.zscore(keys.failed(queue), job_id)
        scores = iter(pipe.execute())

        located = {}
        for job_id in job_ids:
            for queue in queues:
                score = next(scores)
                if score is not None and score >= now and job_id not in located:
                    located[job_id] = (queue, score)
        return located

    def _pairs(self, job_ids: Iterable[str]) -> tuple[list[tuple[str, str]], list[str]]:
        """(queue, id) for each named id in the dead set, and the ids that are not."""
        wanted = list(dict.fromkeys(job_ids))
        located = self._locate(wanted)
        pairs = [(located[job_id][0], job_id) for job_id in wanted if job_id in located]
        return pairs, [job_id for job_id in wanted if job_id not in located]

    def _apply(self, step, pairs: list[tuple[str, str]], missing: Iterable[str] = ()) -> Report:
        # Lua checks each entry again: another operator may have moved it a moment ago.
        report = Report(missing=list(missing))
        for start in range(0, len(pairs), BATCH):
            chunk = pairs[start : start + BATCH]
            for (_queue, job_id), word in zip(chunk, step(chunk), strict=True):
                done = word in (b"queued", b"deleted")
                (report.done if done else report.missing).append(job_id)
        return report

    def _retry_pairs(self, pairs: list[tuple[str, str]]) -> list[bytes]:
        args = [time.time(), wire.utc_now_text(), *_flatten(pairs)]
        return self._retry(keys=[keys.WAKEUP], args=args)

    def _delete_pairs(self, pairs: list[tuple[str, str]]) -> list[bytes]:
        return self._delete(keys=[], args=_flatten(pairs))

    def _check_worker(self, worker: str | None, entries: list[DeadEntry]) -> None:
        if worker is None or entries or worker in self.catalog.workers:
            return
        close = difflib.get_close_matches(worker, self.catalog.workers, n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        raise DeadJobNotFoundError(
            f"no dead jobs for worker {worker!r}, and {self.catalog.path} declares no such "
            f"worker{hint}"
        )


def _entry(job_id: str, queue: str, score: float, values: dict[str, bytes | None]) -> DeadEntry:
    return DeadEntry(
        id=job_id,
        worker=_text(values.get("simbi_worker")) or UNKNOWN_WORKER,
        queue=queue,
        attempts=_int(values.get("simbi_attempt")),
        error=_text(values.get("simbi_error")),
        failed_at=_text(values.get("ended_at")) or None,
        expires_at=wire.rq_time(score),
    )


def _dead_job(
    job_id: str, queue: str, score: float, fields: dict[bytes, bytes], catalog: Catalog
) -> DeadJob:
    values = {key.decode("utf-8", "replace"): value for key, value in fields.items()}
    entry = _entry(job_id, queue, score, values)
    traceback = _exc_text(values.get("exc_info"))
    entry.error = entry.error or _last_line(traceback) or NO_ERROR
    args, payload_error, payload = _decode_args(job_id, fields, queue)
    description = _text(values.get("description"))
    spec = catalog.workers.get(entry.worker)
    if spec is not None and spec.secret_args:
        # The payload keeps the secret (the worker needs it); what is shown does not. The
        # description is rendered again, in case the job was enqueued before secret_args.
        payload = None if payload is None else f"(not shown: {entry.worker} has secret_args)"
        if args is not None:
            args = spec.shown_args(args)
            description = wire.describe(entry.worker, args)
    return DeadJob(
        **vars(entry),
        status=_text(values.get("status")),
        description=description,
        created_at=_text(values.get("created_at")) or None,
        enqueued_at=_text(values.get("enqueued_at")) or None,
        started_at=_text(values.get("started_at")) or None,
        args=args,
        payload_error=payload_error,
        payload=payload,
        traceback=traceback,
    )


def _decode_args(
    job_id: str, fields: dict[bytes, bytes], queue: str
) -> tuple[list[Any] | None, str | None, str | None]:
    """(args, None, None), or for a payload wire.decode refuses: (None, why, its text)."""
    try:
        return wire.decode(job_id, fields, queue).args, None, None
    except wire.BrokenJobError as exc:
        return None, str(exc), _payload_preview(fields.get(b"data"))


def _payload_preview(data: bytes | None) -> str | None:
    # NOTE: a broken payload is shown, never run or parsed further: only its text.
    if data is None:
        return None
    try:
        # Bounded: a few characters of text, however large the payload inflates.
        head = zlib.decompressobj().decompress(data, PAYLOAD_PREVIEW_CHARS * 4 + 4)
        text = head.decode("utf-8", "replace")
    except zlib.error:
        text = repr(data[:PAYLOAD_PREVIEW_CHARS])
    if len(text) > PAYLOAD_PREVIEW_CHARS:
        text = text[:PAYLOAD_PREVIEW_CHARS] + "…"
    return text


def _flatten(pairs: list[tuple[str, str]]) -> list[str]:
    return [item for pair in pairs for item in pair]


def _text(raw: bytes | None) -> str:
    return "" if raw is None else raw.decode("utf-8", "replace")


def _exc_text(raw: bytes | None) -> str:
    """exc_info is zlib-compressed in RQ's layout; an older or hand-written one may not be."""
    if raw is None:
        return ""
    try:
        return zlib.decompress(raw).decode("utf-8", "replace")
    except zlib.error:
        return _text(raw)


def _last_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[-1].strip()[:500] if lines else ""


def _int(raw: bytes | None) -> int:
    try:
        return int(float(raw)) if raw else 0
    except (TypeError, ValueError, OverflowError):
        return 0
