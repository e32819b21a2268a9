"""What the demo reads back from Redis and prints: per-worker counters as deltas over the
run (Redis keeps earlier runs' counters), the dead jobs' reasons and what is still pending.

A worker's row counts the jobs the demo enqueued and, as "+N", the follow-up jobs that
other workers enqueued for it (followups.py); skips come from the log (skips.py).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import redis
from rich.table import Table

from simbi_workers import keys, stats
from simbi_workers.catalog import Catalog
from simbi_workers.demo_data import followups


@dataclass(frozen=True)
class Counters:
    processed: int = 0
    failed: int = 0  # failed attempts, retried or not
    dead: int = 0
    runtime_ms: float = 0.0

    def __sub__(self, other: Counters) -> Counters:
        return Counters(
            self.processed - other.processed,
            self.failed - other.failed,
            self.dead - other.dead,
            self.runtime_ms - other.runtime_ms,
        )

    @property
    def finished(self) -> int:
        """Jobs that will not run again: done, or in the dead set."""
        return self.processed + self.dead

    @property
    def mean_ms(self) -> float | None:
        runs = self.processed + self.failed
        return self.runtime_ms / runs if runs else None


@dataclass(frozen=True)
class WorkerRow:
    worker: str
    runtime: str
    enqueued: int  # by the demo
    followups: int  # enqueued by other workers, and finished
    done: int  # skipped ones included
    skipped: int  # done without sending anything, on purpose
    dead: int
    retried: int  # failed attempts that were tried again
    mean_ms: float | None

    @property
    def jobs(self) -> str:
        if not self.followups:
            return str(self.enqueued)
        return f"{self.enqueued}+{self.followups}" if self.enqueued else f"+{self.followups}"


def snapshot(connection: redis.Redis, catalog: Catalog) -> dict[str, Counters]:
    """The cluster-wide counters of every worker. /stats reports only a rounded mean, so
    the run time total comes from the same hash that stats.collect reads."""
    workers = stats.collect(connection, catalog)["workers"]
    pipe = connection.pipeline(transaction=False)
    for name in workers:
        pipe.hget(keys.worker_stats(name), "runtime_ms")
    totals = pipe.execute()
    return {
        name: Counters(numbers["processed"], numbers["failed"], numbers["dead"], float(ms or 0))
        for (name, numbers), ms in zip(workers.items(), totals, strict=True)
    }


def backlog(connection: redis.Redis, catalog: Catalog) -> int:
    """Jobs queued, running or due soon, cluster-wide: those that would run during the
    demo. A job scheduled days ahead (an intro step) will not."""
    return followups.pending(connection, catalog)


def finished(
    enqueued: Counter[str], before: dict[str, Counters], now: dict[str, Counters]
) -> tuple[int, int]:
    """(the demo's jobs done or dead, follow-up jobs done or dead) since the run began: a
    worker's finished jobs beyond what the demo enqueued for it are follow-ups."""
    ours = extra = 0
    for name, counters in now.items():
        done = (counters - before.get(name, Counters())).finished
        ours += min(done, enqueued[name])
        extra += max(0, done - enqueued[name])
    return ours, extra


def rows(
    catalog: Catalog,
    enqueued: Counter[str],
    before: dict[str, Counters],
    after: dict[str, Counters],
    skipped: Counter[str],
) -> list[WorkerRow]:
    """One row per worker that ran or was enqueued, in queues.yaml's order."""
    table = []
    for name, spec in catalog.workers.items():
        delta = after[name] - before.get(name, Counters())
        if name not in enqueued and not (delta.finished or delta.failed):
            continue
        followups_done = max(0, delta.finished - enqueued[name])
        retried = delta.failed - delta.dead
        numbers = (delta.processed, skipped[name], delta.dead, retried, delta.mean_ms)
        table.append(WorkerRow(name, spec.runtime, enqueued[name], followups_done, *numbers))
    return table


def workers_table(worker_rows: list[WorkerRow]) -> Table:
    table = Table(
        title="what the workers did in this run",
        caption=(
            "+N: follow-up jobs other workers enqueued; skipped: done, nothing to send "
            "(see below);\ndead: failed for good (a permanent error, or no retries left)"
        ),
    )
    columns = ("worker", "runtime", "jobs", "done", "skipped", "dead", "retried", "mean ms")
    for column in columns:
        table.add_column(column, justify="left" if column in ("worker", "runtime") else "right")
    for row in worker_rows:
        mean = "-" if row.mean_ms is None else f"{row.mean_ms:.1f}"
        dead = f"[red]{row.dead}[/]" if row.dead else "0"
        numbers = (row.done, row.skipped, dead, row.retried, mean)
        table.add_row(row.worker, row.runtime, row.jobs, *(str(value) for value in numbers))
    return table


def dead_jobs(
    connection: redis.Redis, catalog: Catalog, job_ids: dict[str, str], expiring_after: float
) -> list[tuple[str, str]]:
    """(description, reason) of this run's jobs in the dead sets (RQ's failed registries),
    and of the follow-up jobs buried during the run: a dead set scores each job by when it
    expires, so those are the follow-up workers' jobs scored past expiring_after."""
    dead = []
    for queue in catalog.queue_names():
        members = connection.zrange(keys.failed(queue), 0, -1, withscores=True)
        dead += [(m.decode(), score) for m, score in members]

    pipe = connection.pipeline(transaction=False)
    for job_id, _score in dead:
        pipe.hmget(keys.job(job_id), "description", "simbi_error", "simbi_worker")
    found = []
    for (job_id, score), (description, error, worker) in zip(dead, pipe.execute(), strict=True):
        follow_up = _text(worker) in followups.WORKERS and score > expiring_after
        if job_id in job_ids or follow_up:
            found.append((_text(description), _text(error)))
    return sorted(found)


def unfinished(connection: redis.Redis, job_ids: dict[str, str]) -> dict[str, tuple[str, str]]:
    """job id -> (worker, status) for this run's jobs that are neither done nor dead."""
    pipe = connection.pipeline(transaction=False)
    for job_id in job_ids:
        pipe.hget(keys.job(job_id), "status")
    pending = {}
    for (job_id, worker), status in zip(job_ids.items(), pipe.execute(), strict=True):
        status_text = _text(status) or "expired"
        if status_text not in ("finished", "failed"):
            pending[job_id] = (worker, status_text)
    return pending


def forget(connection: redis.Redis, catalog: Catalog, pending: dict[str, tuple[str, str]]) -> None:
    """Take waiting jobs out of their queues, so that they do not run later against the
    next demo's records (a rerun on SQLite reuses the same row ids). A running job is left
    to finish: its worker process still owns it."""
    pipe = connection.pipeline(transaction=False)
    for job_id, (worker, status) in pending.items():
        if status not in ("queued", "scheduled"):
            continue
        queue = catalog.workers[worker].queue
        pipe.lrem(keys.queue(queue), 0, job_id)
        pipe.zrem(keys.scheduled(queue), job_id)
        pipe.delete(keys.job(job_id))
    pipe.execute()


def _text(value: bytes | None) -> str:
    return value.decode(errors="replace") if value else ""
