"""What the demo reads back from Redis and prints: per-worker counters as deltas over the
run (Redis keeps earlier runs' counters), the dead jobs' reasons and what is still pending.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import redis
from rich.table import Table

from simbi_workers import keys, stats
from simbi_workers.catalog import Catalog


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
    enqueued: int
    done: int
    dead: int
    retried: int  # failed attempts that were tried again
    mean_ms: float | None


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
    """Jobs queued, scheduled or running right now, cluster-wide."""
    totals = stats.collect(connection, catalog)["totals"]
    return totals["enqueued"] + totals["scheduled"] + totals["running"]


def rows(
    catalog: Catalog,
    enqueued: Counter[str],
    before: dict[str, Counters],
    after: dict[str, Counters],
) -> list[WorkerRow]:
    """One row per worker the run used, in queues.yaml's order (images, Slack, analytics)."""
    table = []
    for name, spec in catalog.workers.items():
        if name not in enqueued:
            continue
        delta = after[name] - before.get(name, Counters())
        retried = delta.failed - delta.dead
        table.append(
            WorkerRow(
                name,
                spec.runtime,
                enqueued[name],
                delta.processed,
                delta.dead,
                retried,
                delta.mean_ms,
            )
        )
    return table


def workers_table(worker_rows: list[WorkerRow]) -> Table:
    table = Table(
        title="what the workers did in this run",
        caption="dead: failed for good (a permanent error, or no retries left)",
    )
    for column in ("worker", "runtime", "jobs", "done", "dead", "retried", "mean ms"):
        table.add_column(column, justify="left" if column in ("worker", "runtime") else "right")
    for row in worker_rows:
        mean = "-" if row.mean_ms is None else f"{row.mean_ms:.1f}"
        dead = f"[red]{row.dead}[/]" if row.dead else "0"
        numbers = (row.enqueued, row.done, dead, row.retried, mean)
        table.add_row(row.worker, row.runtime, *(str(value) for value in numbers))
    return table


def dead_jobs(
    connection: redis.Redis, catalog: Catalog, job_ids: dict[str, str]
) -> list[tuple[str, str]]:
    """(description, reason) of this run's jobs in the dead sets (RQ's failed registries)."""
    dead = []
    for queue in catalog.queue_names():
        members = connection.zrange(keys.failed(queue), 0, -1)
        dead += [member.decode() for member in members if member.decode() in job_ids]

    pipe = connection.pipeline(transaction=False)
    for job_id in dead:
        pipe.hmget(keys.job(job_id), "description", "simbi_error")
    found = [(_text(description), _text(error)) for description, error in pipe.execute()]
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


def count_lines(path: Path) -> int:
    try:
        with path.open("rb") as file:
            return sum(1 for _ in file)
    except FileNotFoundError:
        return 0


def _text(value: bytes | None) -> str:
    return value.decode(errors="replace") if value else ""
