"""Jobs a stock Sidekiq client pushed, taken in as our jobs (`start --accept-sidekiq`).

A Sidekiq client LPUSHes a JSON payload to `queue:<name>` and SADDs the name to `queues`;
perform_in and perform_at ZADD it to `schedule`, scored by when it is to run, and
Sidekiq's own retries wait in `retry`. The take-in reads a batch from each of them (from
the sorted sets only what is due), converts each payload here, with exact JSON and our
client's encoding and redaction, and lua/sidekiq_take_in.lua applies the batch: each
payload leaves its Sidekiq key and becomes our job in one atomic step, and only if it is
still there. So a crash never loses a payload, and a second supervisor reading the same
one never makes a second job of it.

NOTE: Sidekiq without a namespace only (redis-namespace prefixes every key).
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
import zlib
from dataclasses import dataclass
from typing import Any

import redis

from simbi_workers import keys, lua, wire
from simbi_workers.catalog import Catalog, WorkerSpec
from simbi_workers.config import Settings
from simbi_workers.errors import JobInputError
from simbi_workers.fetch import failure_fields

BATCH = 100  # payloads per source per script call: one call never blocks Redis for long
POLL_SECONDS = 0.5
MAX_BACKOFF_SECONDS = 5
JID = re.compile(r"[A-Za-z0-9_-]{1,64}")  # a jid used as our job id must be a safe key part
LIST, ZSET = "list", "zset"
MAX_EPOCH_SECONDS = 32_503_680_000  # the year 3000: anything later is not a time

log = logging.getLogger("simbi_workers.sidekiq")


class MalformedSidekiqJobError(JobInputError):
    """A Sidekiq payload that is not a JSON object with a class name and an argument list."""


class UnknownWorkerError(JobInputError):
    """A Sidekiq payload whose class queues.yaml does not declare."""


@dataclass
class TakeIn:
    """One payload, converted: the job hash to write and where its id goes."""

    payload: bytes
    jid: str  # '' when the payload's jid cannot serve as our job id
    action: str  # queue | schedule | dead (the words of sidekiq_take_in.lua)
    queue: str
    score: float  # when to run (schedule), when it leaves the dead set (dead)
    fields: dict[str, Any]

    def argv(self) -> list[Any]:
        flat = [item for pair in self.fields.items() for item in pair]
        head = [self.payload, self.jid, wire.new_id(), self.action, self.queue, self.score]
        return [*head, len(self.fields), *flat]


class Converter:
    """Sidekiq payload → our job hash; a payload we cannot run becomes a dead job."""

    def __init__(self, catalog: Catalog, settings: Settings):
        self.catalog = catalog
        self.settings = settings
        self.queue_names = catalog.queue_names()

    def convert(self, payload: bytes, now: float, kind: str) -> TakeIn:
        item: dict[str, Any] = {}
        try:
            item = _parse(payload)
            return self._job(payload, item, self._spec(item), now, kind)
        except JobInputError as exc:
            return self._dead(payload, item, exc, now)

    def _spec(self, item: dict[str, Any]) -> WorkerSpec:
        spec = self.catalog.workers.get(item["class"])
        if spec is None:
            raise UnknownWorkerError(
                f"Sidekiq job class {item['class']} is not in {self.catalog.path.name} "
                f"(jid {item.get('jid')}, Sidekiq queue {item.get('queue')}); declare the "
                "worker and implement it, then `simbi-workers failed retry` this job"
            )
        return spec

    def _job(
        self, payload: bytes, item: dict[str, Any], spec: WorkerSpec, now: float, kind: str
    ) -> TakeIn:
        # Our queue is the one queues.yaml gives the worker, not the Sidekiq queue name:
        # hosts started with --queues must see each worker's jobs where they expect them.
        job = _as_job(item, spec.name, spec.queue, spec)
        at = _number(item.get("at"))
        later = at is not None and at > now
        fields = wire.encode(
            job,
            status="scheduled" if later else "queued",
            result_ttl=self.settings.result_ttl_seconds,
            failure_ttl=self.settings.failure_ttl_seconds,
        )
        fields.update(_provenance(item))
        enqueued = _number(item.get("enqueued_at"))
        if not later and kind == LIST and enqueued is not None:
            # Waiting began when the Sidekiq client pushed it: latency counts from there.
            fields["enqueued_at"] = wire.rq_time(enqueued)
        action = "schedule" if later else "queue"
        return TakeIn(payload, _jid(item), action, spec.queue, at if later else now, fields)

    def _dead(self, payload: bytes, item: dict[str, Any], exc: JobInputError, now: float) -> TakeIn:
        # Dead at once, alone, with the reason; the rest of the batch flows.
        queue = self._dead_queue(item.get("queue"))
        if isinstance(exc, UnknownWorkerError):
            fields = wire.encode(
                _as_job(item, item["class"], queue),
                status="failed",
                result_ttl=self.settings.result_ttl_seconds,
                failure_ttl=self.settings.failure_ttl_seconds,
            )
        else:
            # Kept as it came, so `failed show` shows the text; never run.
            fields = {"data": zlib.compress(payload), "origin": queue}
            fields["description"] = "Sidekiq payload (malformed)"
            fields["created_at"] = wire.utc_now_text()
            if isinstance(item.get("class"), str):
                fields["simbi_worker"] = item["class"]  # so `failed list --worker` finds it
        fields.update(_provenance(item))
        fields.update(failure_fields("failed", f"{type(exc).__name__}: {exc}", 0))
        score = now + self.settings.failure_ttl_seconds
        return TakeIn(payload, _jid(item), "dead", queue, score, fields)

    def _dead_queue(self, sidekiq_queue: Any) -> str:
        """The dead set entry goes under the Sidekiq queue when it is one of ours."""
        if sidekiq_queue in self.queue_names:
            return sidekiq_queue
        return "default" if "default" in self.queue_names else self.queue_names[0]


class Intake:
    """One take-in pass over every Sidekiq source, and the loop that repeats it."""

    def __init__(self, connection: redis.Redis, catalog: Catalog, settings: Settings):
        self.connection = connection
        self.catalog = catalog
        self.settings = settings
        self.converter = Converter(catalog, settings)
        self._apply = lua.script(connection, "sidekiq_take_in")

    def take_in(self) -> int:
        """Read up to BATCH payloads from each source and take them in; returns how many
        were read (a full batch means more may wait)."""
        now = time.time()
        sources = self.sources()
        read = 0
        for (key, kind), payloads in zip(sources, self._read(sources, now), strict=True):
            items = [self.converter.convert(payload, now, kind) for payload in payloads]
            if items:
                self.apply(key, kind, items)
            read += len(items)
        return read

    def sources(self) -> list[tuple[str, str]]:
        """Every Sidekiq queue the client announced in `queues`, and ours by name in case
        that set was cleared, then the schedule and retry sets."""
        announced = {raw.decode("utf-8", "replace") for raw in self._smembers()}
        names = sorted(announced | set(self.catalog.queue_names()))
        lists = [(keys.sidekiq_queue(name), LIST) for name in names]
        return [*lists, (keys.SIDEKIQ_SCHEDULE, ZSET), (keys.SIDEKIQ_RETRY, ZSET)]

    def apply(self, key: str, kind: str, items: list[TakeIn]) -> list[str | None]:
        """Run the take-in script on one batch; per item, its job id or None when another
        take-in had it first."""
        argv = [item for take_in in items for item in take_in.argv()]
        args = [kind, self.settings.failure_ttl_seconds, *argv]
        replies = self._apply(keys=[key, keys.WAKEUP], args=args)
        job_ids = [reply.decode() if reply else None for reply in replies]

        for take_in, job_id in zip(items, job_ids, strict=True):
            if job_id and take_in.action == "dead":
                error = take_in.fields["simbi_error"]
                log.warning("dead job=%s source=%s: %s", job_id, key, error)
        taken = sum(1 for job_id in job_ids if job_id)
        log.debug("took in %d of %d payloads from %s", taken, len(items), key)
        return job_ids

    def run(self, stopping: threading.Event) -> None:
        log.info("accepting Sidekiq jobs: queue:<name> lists, schedule and retry (no namespace)")
        backoff = 0.0
        while not stopping.is_set():
            try:
                read = self.take_in()
            except redis.RedisError as exc:
                # One line per state change, not one per try.
                if not backoff:
                    log.warning("sidekiq take-in cannot reach Redis: %s; retrying", exc)
                backoff = min(max(backoff * 2, 0.5), MAX_BACKOFF_SECONDS)
                stopping.wait(backoff)
                continue
            except Exception:
                # A bug must not end the thread: the payloads stay in Sidekiq's keys.
                log.exception("sidekiq take-in pass failed")
                stopping.wait(MAX_BACKOFF_SECONDS)
                continue
            if backoff:
                log.warning("sidekiq take-in reaches Redis again")
                backoff = 0.0
            if read < BATCH:
                stopping.wait(POLL_SECONDS)

    def _smembers(self) -> set[bytes]:
        return self.connection.smembers(keys.SIDEKIQ_QUEUES)

    def _read(self, sources: list[tuple[str, str]], now: float) -> list[list[bytes]]:
        pipe = self.connection.pipeline(transaction=False)
        for key, kind in sources:
            if kind == LIST:
                pipe.lrange(key, -BATCH, -1)
            else:
                pipe.zrangebyscore(key, "-inf", now, start=0, num=BATCH)
        replies = pipe.execute()
        # A list's oldest payload is at its tail: take the oldest in first.
        return [
            list(reversed(reply)) if kind == LIST else reply
            for (_key, kind), reply in zip(sources, replies, strict=True)
        ]


def _parse(payload: bytes) -> dict[str, Any]:
    try:
        item = json.loads(payload)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise MalformedSidekiqJobError(f"the payload is not JSON ({exc})") from None
    if not isinstance(item, dict):
        raise MalformedSidekiqJobError(
            f"the payload is a JSON {type(item).__name__}, not an object"
        )
    if not isinstance(item.get("class"), str) or not item["class"]:
        raise MalformedSidekiqJobError(
            f"the payload has no class name (class: {item.get('class')!r})"
        )
    if not isinstance(item.get("args"), list):
        # The type only: a value where the arguments belong may be a secret.
        kind = type(item.get("args")).__name__
        raise MalformedSidekiqJobError(f"{item['class']}: args is a {kind}, not a list")
    try:
        # Python's json reads what Ruby's never writes (NaN, lone surrogates): refuse it here.
        for index, arg in enumerate(item["args"]):
            wire.check_json_native(arg, f"args[{index}]")
    except JobInputError as exc:
        raise MalformedSidekiqJobError(f"{item['class']}: {exc}") from None
    return item


def _as_job(item: dict[str, Any], worker: str, queue: str, spec: WorkerSpec | None = None):
    return wire.Job(
        id="",  # the script picks the id: the jid, or a fresh one
        worker=worker,
        args=item["args"],
        queue=queue,
        attempt=_attempts(item),
        timeout_seconds=spec.timeout_seconds if spec else 60,
        secret_positions=spec.secret_positions if spec else (),
    )


def _attempts(item: dict[str, Any]) -> int:
    """Attempts Sidekiq already made: a payload from its retry set carries retry_count,
    0 after the first failure."""
    count = item.get("retry_count")
    if isinstance(count, int) and not isinstance(count, bool) and count >= 0:
        return count + 1
    return 0


def _provenance(item: dict[str, Any]) -> dict[str, Any]:
    fields: dict[str, Any] = {"simbi_source": "sidekiq"}
    if isinstance(item.get("jid"), str):
        fields["simbi_sidekiq_jid"] = item["jid"][:64]
    if isinstance(item.get("queue"), str):
        fields["simbi_sidekiq_queue"] = item["queue"][:64]
    created = _number(item.get("created_at"))
    if created is not None:
        fields["created_at"] = wire.rq_time(created)
    return fields


def _jid(item: dict[str, Any]) -> str:
    jid = item.get("jid")
    return jid if isinstance(jid, str) and JID.fullmatch(jid) else ""


def _number(value: Any) -> float | None:
    """A Unix time from the payload, or None for anything else (NaN, year 5000, text)."""
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    return float(value) if number and 0 <= value < MAX_EPOCH_SECONDS else None
