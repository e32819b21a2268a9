"""`simbi-workers demo`: a small marketplace made from real photos, the real supervisor in
a subprocess, a mixed workload in Python, Ruby and TypeScript, and a table of the outcome.

The helpers live in demo_data/: the records (marketplace), the jobs (workload), the
supervisor subprocess (start_process) and the numbers read back from Redis (report).
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

import redis
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from sqlalchemy import make_url, select

from simbi_workers import catalog as catalog_module
from simbi_workers.catalog import Catalog
from simbi_workers.client import Client
from simbi_workers.config import Settings
from simbi_workers.demo_data import marketplace, report, start_process, workload
from simbi_workers.demo_data.marketplace import Marketplace
from simbi_workers.demo_data.report import WorkerRow
from simbi_workers.demo_data.workload import Job
from simbi_workers.redis_connection import connect
from simbi_workers.services.db import Database
from simbi_workers.store.schema import images

TIMEOUT_SECONDS = 120.0
POLL_SECONDS = 0.2
OUTBOXES = ("slack", "mixpanel")


@dataclass
class DemoResult:
    market: Marketplace
    rows: list[WorkerRow]
    dead: list[tuple[str, str]]  # (job description, reason)
    finished: bool  # False when the timeout passed with jobs still pending


def run_demo(
    settings: Settings,
    job_count: int = 300,
    processes: int = 2,
    console: Console | None = None,
    timeout_seconds: float = TIMEOUT_SECONDS,
) -> DemoResult:
    console = console or Console()
    catalog = catalog_module.load(settings.queues_file)
    console.print(f"[bold]simbi-workers demo[/]: about {job_count} jobs on real photos\n")

    market = marketplace.build(settings, workload.photo_uploads(job_count))
    _describe_market(console, settings, market)
    outbox_before = {name: report.count_lines(_outbox(settings, name)) for name in OUTBOXES}

    log_path = settings.var_dir / start_process.LOG_NAME
    console.print(f"starting the workers: simbi-workers start -p {processes} ...")
    with start_process.running(settings, processes, log_path) as supervisor:
        console.print(
            f"workers up: {processes} processes, each with a Ruby and a Node child; "
            f"/stats on http://127.0.0.1:{supervisor.port}"
        )
        run = Run(settings, catalog, connect(settings), supervisor)
        try:
            finished = run.execute(market, job_count, console, timeout_seconds)
        except KeyboardInterrupt:
            run.abandon(console, "interrupted")
            raise
        result = run.report(console, market, finished, outbox_before)
        console.print("stopping the workers (SIGTERM) ...")
    console.print("stopped.")
    return result


class Run:
    """One demo run's jobs: enqueued through the real client, followed through the
    cluster-wide counters, reported as deltas over the run."""

    def __init__(
        self,
        settings: Settings,
        catalog: Catalog,
        connection: redis.Redis,
        supervisor: start_process.Supervisor,
    ):
        self.settings = settings
        self.catalog = catalog
        self.connection = connection
        self.supervisor = supervisor
        self.client = Client(connection, catalog, settings)
        self.job_ids: dict[str, str] = {}  # job id -> worker
        self.enqueued: Counter[str] = Counter()
        self.before = report.snapshot(connection, catalog)
        # Jobs left from earlier (a demo killed outright, or your own) run now too, and the
        # counters cannot tell them from ours.
        self.backlog = report.backlog(connection, catalog)

    def execute(self, market: Marketplace, job_count: int, console: Console, timeout: float):
        """Phase one, then phase two once every upload is done or dead; True when every
        job finished before the timeout."""
        started = time.monotonic()
        if self.backlog:
            console.print(
                f"[yellow]note: {self.backlog} jobs were already queued, scheduled or running; "
                "the counts below may include them[/]"
            )
        self.enqueue(workload.first_phase(market, job_count))
        console.print(
            f"enqueued {len(self.job_ids)} jobs; once the uploads are through, one "
            "ImageOptimizationWorker per ready image follows"
        )
        finished = self._follow(market, console, started + timeout)
        elapsed = time.monotonic() - started
        if finished:
            console.print(f"{len(self.job_ids)} jobs done or dead in {elapsed:.1f} s\n")
        else:
            console.print(f"[yellow]stopped waiting after {elapsed:.0f} s[/]")
        return finished

    def enqueue(self, jobs: list[Job]) -> None:
        by_worker: dict[str, list[list]] = defaultdict(list)
        for worker, args in jobs:
            by_worker[worker].append(args)
        for worker, args_list in by_worker.items():
            # perform_bulk: one round trip per worker instead of one per job.
            self.job_ids.update(dict.fromkeys(self.client.perform_bulk(worker, args_list), worker))
            self.enqueued[worker] += len(args_list)

    def finished_jobs(self, now: dict[str, report.Counters], *workers: str) -> int:
        """Done or dead since the run began, for the given workers (default: all used)."""
        names = workers or list(self.enqueued)
        return sum((now[name] - self.before[name]).finished for name in names)

    def _follow(self, market: Marketplace, console: Console, deadline: float) -> bool:
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
        second_phase_due = True
        with Progress(*columns, TimeElapsedColumn(), console=console) as progress:
            task = progress.add_task("images, avatars, Slack, analytics", total=len(self.job_ids))
            while True:
                self.supervisor.check_alive()
                now = report.snapshot(self.connection, self.catalog)
                if second_phase_due and self._uploads_through(now):
                    second_phase_due = False
                    self.enqueue(workload.second_phase(self._ready_images(market)))
                    progress.update(task, total=len(self.job_ids), description="optimizing images")

                done = self.finished_jobs(now)
                progress.update(task, completed=min(done, len(self.job_ids)))
                if not second_phase_due and done >= len(self.job_ids):
                    progress.update(task, description="all jobs done or dead")
                    return True
                if time.monotonic() > deadline:
                    return False
                time.sleep(POLL_SECONDS)

    def _uploads_through(self, now: dict[str, report.Counters]) -> bool:
        uploads = "UploadImageWorker"
        return self.finished_jobs(now, uploads) >= self.enqueued[uploads]

    def _ready_images(self, market: Marketplace) -> list[int]:
        ids = [upload.image_id for upload in market.uploads]
        query = select(images.c.id).where(images.c.id.in_(ids), images.c.status == "ready")
        database = Database(self.settings.database_url_or_default)
        with database.engine.connect() as conn:
            ready = sorted(conn.execute(query).scalars())
        database.engine.dispose()
        return ready

    def report(self, console: Console, market: Marketplace, finished: bool, outbox_before):
        if not finished:
            self.abandon(console, "timed out")
        after = report.snapshot(self.connection, self.catalog)
        rows = report.rows(self.catalog, self.enqueued, self.before, after)
        console.print(report.workers_table(rows))

        dead = report.dead_jobs(self.connection, self.catalog, self.job_ids)
        _print_where_things_are(console, self.settings, market, outbox_before)
        _print_dead(console, dead)
        _print_stats_hint(console)
        return DemoResult(market, rows, dead, finished)

    def abandon(self, console: Console, why: str) -> None:
        """Say what did not finish, and take the waiting jobs out of the queues: they must
        not run against the next demo's records, nor count as its jobs."""
        pending = report.unfinished(self.connection, self.job_ids)
        console.print(f"[yellow]{why}: {len(pending)} jobs are not finished[/]")
        for (worker, status), count in sorted(Counter(pending.values()).items()):
            console.print(f"  {worker}: {count} {status}")
        report.forget(self.connection, self.catalog, pending)
        console.print("  (the queued and scheduled ones were taken out of the queues)\n")


def _describe_market(console: Console, settings: Settings, market: Marketplace) -> None:
    admins = sum(person.is_admin for person in market.people)
    photos = len({upload.photo for upload in market.good})
    bad = ", ".join(upload.bad_reason for upload in market.bad)
    console.print(
        f"marketplace in {_database(settings)}: {len(market.people)} people ({admins} admins), "
        f"{len(market.uploads)} uploads: {len(market.good)} made from {photos} photos and "
        f"{len(market.bad)} bad files ({bad})"
    )


def _print_where_things_are(console: Console, settings: Settings, market, outbox_before) -> None:
    storage = f"s3://{settings.s3_bucket}" if settings.s3_bucket else shown(settings.var_dir)
    if not settings.s3_bucket:
        storage += "/storage"
    first, last = market.good[0].image_id, market.good[-1].image_id
    grid = Table.grid(padding=(0, 2))
    grid.add_column(no_wrap=True)
    grid.add_column()
    grid.add_row("image variants", f"{storage}/images/<id>/original|large|medium|thumb.jpg")
    grid.add_row("", f"ids {first}-{last}; .png for the photo with transparency")
    grid.add_row("avatars", f"{storage}/avatars/<user id>/<version>/400|200|64.jpg")
    for name in OUTBOXES:
        added = report.count_lines(_outbox(settings, name)) - outbox_before[name]
        grid.add_row(f"{name} outbox", f"{shown(_outbox(settings, name))}: +{added} lines")
    grid.add_row("workers' log", shown(settings.var_dir / start_process.LOG_NAME))
    console.print(grid)


def _print_dead(console: Console, dead: list[tuple[str, str]]) -> None:
    console.print(f"\ndead jobs ({len(dead)}), each with its reason:")
    for description, reason in dead:
        console.print(f"  {description}: {reason}", highlight=False, soft_wrap=True)


def _print_stats_hint(console: Console) -> None:
    console.print(
        "\nthe counters stay in Redis: run `.venv/bin/simbi-workers start` and then\n"
        "`curl -s localhost:9191/stats` or `.venv/bin/simbi-workers stats` in another terminal"
    )


def _database(settings: Settings) -> str:
    url = make_url(settings.database_url_or_default)
    if url.get_backend_name() == "sqlite":
        return shown(url.database)
    return url.render_as_string(hide_password=True)  # DATABASE_URL may hold a password


def _outbox(settings: Settings, name: str) -> Path:
    return settings.outbox_dir / f"{name}.jsonl"


def shown(path: str | Path) -> str:
    """A path as short as it can be: relative when it is under the working directory."""
    resolved = Path(path).resolve()
    return str(resolved.relative_to(Path.cwd()) if resolved.is_relative_to(Path.cwd()) else path)
