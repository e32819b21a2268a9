"""Cron entries from queues.yaml: each tick enqueued once across every supervisor and host.

Times are UTC. A queues.yaml cron string is read in UTC whatever the host's time zone, so
`0 3 * * *` runs at 03:00 UTC on every host.

How one tick fires once (every step is safe to run on any number of hosts at once):

1. The due tick is the latest tick at or before `now`. Missed ticks are not queued up:
   after downtime only the latest one fires, once.
2. `simbi:cron:last` (a sorted set: worker → epoch of the last tick handled) says whether
   the due tick is already done. ZADD GT only ever moves an entry forward.
3. A host claims the tick, `simbi:cron:<worker>:<tick epoch>`, as a token-checked lease
   (redis-py's Lock) of CLAIM_LEASE_SECONDS, and enqueues only if it got the claim.
4. After the enqueue it records the tick in `simbi:cron:last` and keeps the claim for
   CLAIM_KEEP_SECONDS. If the enqueue raises, it releases the claim, so the next pass
   (on this host or another) fires the tick. If the host dies between claim and enqueue,
   the lease expires and another host fires it.

NOTE: the enqueue and the record are two round trips. A host that dies between them
leaves a queued job and an unrecorded tick, and the tick fires a second time when its
lease expires: a crash gives at least once, never a lost tick.

A brand-new entry (nothing in `simbi:cron:last`) fires its latest tick only if that tick
is at most FIRST_SIGHT_GRACE_SECONDS old; otherwise it waits for its next tick, so adding
a daily 03:00 entry at 15:00 does not run it at 15:00.

An entry whose worker takes arguments runs with its `cron_args` from queues.yaml.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import redis
from croniter import croniter
from croniter.croniter import CroniterBadDateError
from redis.exceptions import LockError

from simbi_workers.catalog import Catalog, WorkerSpec
from simbi_workers.client import Client
from simbi_workers.errors import SimbiError

CLAIM_LEASE_SECONDS = 30
CLAIM_KEEP_SECONDS = 86_400
FIRST_SIGHT_GRACE_SECONDS = 60

# NOTE: keys.py is the home of key names; these move there with the integration.
CRON_LAST = "simbi:cron:last"

log = logging.getLogger("simbi_workers.cron")


def cron_claim(worker: str, tick_epoch: int) -> str:
    return f"simbi:cron:{worker}:{tick_epoch}"


@dataclass(frozen=True)
class _Due:
    spec: WorkerSpec
    tick: datetime

    @property
    def epoch(self) -> int:
        return int(self.tick.timestamp())


class CronTicker:
    """Enqueues the due cron entries of a catalogue. Call tick(now) as often as you like."""

    def __init__(self, connection: redis.Redis, catalog: Catalog, client: Client):
        self.connection = connection
        self.client = client
        self.entries = _runnable_entries(catalog)
        self._handled: dict[str, datetime] = {}  # worker → latest tick known to be recorded
        self._warned: set[tuple] = set()

    def tick(self, now: datetime) -> list[str]:
        """Enqueue each entry whose latest tick is not yet handled. Returns the job ids."""
        now = _utc(now)
        due = self._unhandled(now)
        if not due:
            return []  # the steady state: no Redis round trip until the next tick

        lasts = self.connection.zmscore(CRON_LAST, [d.spec.name for d in due])
        fired = []
        for entry, last in zip(due, lasts, strict=True):
            job_id = self._handle(entry, last, now)
            if job_id is not None:
                fired.append(job_id)
        return fired

    def _unhandled(self, now: datetime) -> list[_Due]:
        """Each entry's latest tick, unless this ticker already saw it recorded."""
        due = []
        for spec in self.entries:
            tick = latest_tick(spec.cron, now)
            if tick is None:
                self._warn_once((spec.name,), "cron %s: %r matches no date", spec.name, spec.cron)
            elif self._handled.get(spec.name) != tick:
                due.append(_Due(spec, tick))
        return due

    def _handle(self, entry: _Due, last: float | None, now: datetime) -> str | None:
        name = entry.spec.name
        if last is not None and last >= entry.epoch:
            self._handled[name] = entry.tick  # fired by this or another host
            return None

        if last is None and (now - entry.tick).total_seconds() > FIRST_SIGHT_GRACE_SECONDS:
            # A new entry: its latest tick passed before it existed, so wait for the next.
            self._record(entry)
            log.info(
                "cron %s: new entry; first run %s", name, _text(next_tick(entry.spec.cron, now))
            )
            return None

        job_id = self._fire(entry)
        if job_id is not None and last is not None:
            self._log_skipped(entry, last)
        return job_id

    def _fire(self, entry: _Due) -> str | None:
        name = entry.spec.name
        claim = self.connection.lock(
            cron_claim(name, entry.epoch), timeout=CLAIM_LEASE_SECONDS, thread_local=False
        )
        if not claim.acquire(blocking=False):
            # Another host is firing this tick. Not cached as handled: if that host dies,
            # its lease expires and this host fires the tick on a later pass.
            return None

        try:
            job_id = self.client.perform_async(name, *entry.spec.cron_args)
        except (SimbiError, redis.RedisError) as exc:
            # Nothing was enqueued: free the claim so the next pass, here or on another
            # host, fires this tick. If Redis is away, the lease expires on its own.
            with contextlib.suppress(LockError, redis.RedisError):
                claim.release()
            self._warn_once(
                (name, entry.epoch, "enqueue"),
                "cron %s: tick %s not enqueued (%s); retrying",
                name,
                _text(entry.tick),
                exc,
            )
            return None

        self._record(entry)
        with contextlib.suppress(LockError):
            # Lost only if the enqueue took longer than the lease; the record above still
            # stops any host that reads it.
            claim.extend(CLAIM_KEEP_SECONDS, replace_ttl=True)
        log.info("cron %s: enqueued job %s for tick %s", name, job_id, _text(entry.tick))
        return job_id

    def _record(self, entry: _Due) -> None:
        self.connection.zadd(CRON_LAST, {entry.spec.name: entry.epoch}, gt=True)
        self._handled[entry.spec.name] = entry.tick

    def _log_skipped(self, entry: _Due, last: float) -> None:
        previous = croniter(entry.spec.cron, entry.tick).get_prev(datetime)
        if previous.timestamp() > last:
            log.info(
                "cron %s: missed the ticks after %s up to %s; fired only %s",
                entry.spec.name,
                _text(datetime.fromtimestamp(last, UTC)),
                _text(previous),
                _text(entry.tick),
            )

    def _warn_once(self, key: tuple, message: str, *args) -> None:
        if key not in self._warned:
            self._warned.add(key)
            log.warning(message, *args)


def latest_tick(expression: str, now: datetime) -> datetime | None:
    """The latest tick at or before `now` (UTC); None if the expression matches no date."""
    # croniter's get_prev is strictly before its start, and ticks fall on whole minutes.
    start = _utc(now).replace(second=0, microsecond=0) + timedelta(minutes=1)
    try:
        return croniter(expression, start).get_prev(datetime)
    except CroniterBadDateError:
        return None


def next_tick(expression: str, now: datetime) -> datetime | None:
    """The first tick strictly after `now` (UTC); None if the expression matches no date."""
    try:
        return croniter(expression, _utc(now)).get_next(datetime)
    except CroniterBadDateError:
        return None


def next_run(spec: WorkerSpec, now: datetime) -> datetime | None:
    """When the entry next fires (UTC), for `simbi-workers workers`; None without cron or
    for an expression that matches no date (e.g. 30 February)."""
    if spec.cron is None:
        return None
    return next_tick(spec.cron, now)


def _runnable_entries(catalog: Catalog) -> list[WorkerSpec]:
    return [spec for spec in catalog.workers.values() if spec.cron is not None]


def _utc(now: datetime) -> datetime:
    if now.tzinfo is None:
        raise ValueError(f"cron: give a timezone-aware datetime, got {now.isoformat()}")
    return now.astimezone(UTC)


def _text(when: datetime | None) -> str:
    return "never" if when is None else when.strftime("%Y-%m-%d %H:%M UTC")
