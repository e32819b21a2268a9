"""`simbi-workers demo`: a small marketplace made from real photos and social records, the
real supervisor in a subprocess, a mixed workload in Python, Ruby and TypeScript, and a
table of the outcome.

The helpers live in demo_data/: the records (marketplace, social), the jobs (workload,
notifications), the supervisor subprocess (start_process), the jobs workers enqueue
themselves (followups), the numbers read back from Redis (report), the skips from the log
(skips), the outboxes (outboxes) and the printed text (printout).
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from dataclasses import dataclass

import redis
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from sqlalchemy import select

from simbi_workers import catalog as catalog_module
from simbi_workers.catalog import Catalog
from simbi_workers.client import Client
from simbi_workers.config import Settings
from simbi_workers.demo_data import (
    followups,
    marketplace,
    outboxes,
    printout,
    report,
    rerun,
    skips,
    start_process,
    workload,
)
from simbi_workers.demo_data.followups import FollowUp
from simbi_workers.demo_data.marketplace import Marketplace
from simbi_workers.demo_data.outboxes import Added
from simbi_workers.demo_data.report import WorkerRow
from simbi_workers.demo_data.workload import Job
from simbi_workers.redis_connection import connect
from simbi_workers.services.db import Database
from simbi_workers.store.schema import images

TIMEOUT_SECONDS = 120.0
POLL_SECONDS = 0.2


@dataclass
class DemoResult:
    market: Marketplace
    rows: list[WorkerRow]
    dead: list[tuple[str, str]]  # (job description, reason)
    finished: bool  # False when the timeout passed with jobs still pending
    added: Added  # outbox lines and .eml files this run added
    skipped: list[skips.Skip]
    scheduled: list[FollowUp]  # follow-ups scheduled days ahead, not waited for


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

    uploads, talks = workload.photo_uploads(job_count), workload.talk_count(job_count)
    market = marketplace.build(settings, uploads, talks)
    printout.describe_market(console, settings, market)
    outbox_before = outboxes.snapshot(settings)

    log_path = settings.var_dir / start_process.LOG_NAME
    console.print(f"starting the workers: simbi-workers start -p {processes} ...")
    with start_process.running(settings, processes, log_path) as supervisor:
        console.print(
            f"workers up: {processes} processes, each with a Ruby and a Node child; "
            f"/stats on http://127.0.0.1:{supervisor.port}"
        )
        connection = connect(settings)
        rerun.forget_state(connection, catalog, market.previous)
        run = Run(settings, catalog, connection, supervisor, market)
        try:
            finished = run.execute(job_count, console, timeout_seconds)
        except KeyboardInterrupt:
            run.abandon(console, "interrupted")
            raise
        result = run.report(console, finished, outbox_before)
        console.print("stopping the workers (SIGTERM) ...")
    console.print("stopped.")
    return result


class Run:
    """One demo run's jobs: enqueued through the real client, followed through the
    cluster-wide counters, reported as deltas over the run. Jobs the workers enqueue
    themselves (followups.py) count as they finish; the run ends when the demo's own jobs
    are done or dead and nothing is queued, running or due within the hour."""

    def __init__(
        self,
        settings: Settings,
        catalog: Catalog,
        connection: redis.Redis,
        supervisor: start_process.Supervisor,
        market: Marketplace,
    ):
        self.settings = settings
        self.catalog = catalog
        self.connection = connection
        self.supervisor = supervisor
        self.market = market
        self.client = Client(connection, catalog, settings)
        self.job_ids: dict[str, str] = {}  # job id -> worker
        self.enqueued: Counter[str] = Counter()
        self.started_at = time.time()
        self.before = report.snapshot(connection, catalog)
        # Jobs left from earlier (a demo killed outright, or your own) run now too, and the
        # counters cannot tell them from ours.
        self.backlog = report.backlog(connection, catalog)

    def execute(self, job_count: int, console: Console, timeout: float) -> bool:
        """Phase one, then phase two once every upload is done or dead; True when every
        job finished before the timeout."""
        started = time.monotonic()
        if self.backlog:
            console.print(
                f"[yellow]note: {self.backlog} jobs were already queued, scheduled or running; "
                "the counts below may include them[/]"
            )
        self.enqueue(workload.first_phase(self.market, job_count))
        console.print(
            f"enqueued {len(self.job_ids)} jobs; once the uploads are through, one "
            "ImageOptimizationWorker per ready image follows, and some workers enqueue "
            "follow-up jobs of their own"
        )
        finished = self._follow(console, started + timeout)
        elapsed = time.monotonic() - started
        if finished:
            _ours, extra = report.finished(self.enqueued, self.before, self.snapshot())
            console.print(
                f"{len(self.job_ids)} jobs and {extra} follow-ups done or dead in {elapsed:.1f} s"
            )
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

    def snapshot(self) -> dict[str, report.Counters]:
        return report.snapshot(self.connection, self.catalog)

    def _follow(self, console: Console, deadline: float) -> bool:
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
        second_phase_due = True
        with Progress(*columns, TimeElapsedColumn(), console=console) as progress:
            what = "images, avatars, email, push, SMS, Slack, analytics"
            task = progress.add_task(what, total=len(self.job_ids))
            while True:
                self.supervisor.check_alive()
                now = self.snapshot()
                if second_phase_due and self._uploads_through(now):
                    second_phase_due = False
                    self.enqueue(workload.second_phase(self._ready_images()))
                    progress.update(task, description="optimizing images, notifying")

                # Ours first, then everything pending: a follow-up is enqueued while its
                # parent runs, so once ours are done, none can appear after `pending`.
                ours, extra = report.finished(self.enqueued, self.before, now)
                pending = followups.pending(self.connection, self.catalog)
                ours_left = len(self.job_ids) - ours
                waiting = max(0, pending - ours_left)  # follow-ups not finished yet
                total = len(self.job_ids) + extra + waiting
                progress.update(task, total=total, completed=ours + extra)
                if not second_phase_due and ours_left <= 0:
                    if pending == 0:
                        progress.update(task, description="all jobs done or dead")
                        return True
                    progress.update(task, description="follow-up jobs")
                if time.monotonic() > deadline:
                    return False
                time.sleep(POLL_SECONDS)

    def _uploads_through(self, now: dict[str, report.Counters]) -> bool:
        uploads = "UploadImageWorker"
        done = (now[uploads] - self.before[uploads]).finished
        return done >= self.enqueued[uploads]

    def _ready_images(self) -> list[int]:
        ids = [upload.image_id for upload in self.market.uploads]
        query = select(images.c.id).where(images.c.id.in_(ids), images.c.status == "ready")
        database = Database(self.settings.database_url_or_default)
        with database.engine.connect() as conn:
            ready = sorted(conn.execute(query).scalars())
        database.engine.dispose()
        return ready

    def report(self, console: Console, finished: bool, outbox_before) -> DemoResult:
        if not finished:
            self.abandon(console, "timed out")
        after = self.snapshot()
        all_finished = sum((after[name] - self.before[name]).finished for name in after)
        found = []
        if self.settings.log_level.upper() in ("DEBUG", "INFO"):
            found = skips.wait_read(self.supervisor.log_path, all_finished)
        skipped = Counter(skip.worker for skip in found)
        rows = report.rows(self.catalog, self.enqueued, self.before, after, skipped)
        console.print()
        console.print(report.workers_table(rows))

        expiring_after = self.started_at + self.settings.failure_ttl_seconds
        dead = report.dead_jobs(self.connection, self.catalog, self.job_ids, expiring_after)
        people = [person.id for person in self.market.people]
        later = [
            job for job in followups.for_people(self.connection, self.catalog, people) if job.far
        ]
        added = outboxes.added(self.settings, outbox_before)
        printout.where_things_are(console, self.settings, self.market, added)
        printout.scheduled(console, later)
        printout.skipped(console, found, self.settings.log_level)
        printout.dead(console, dead)
        printout.stats_hint(console)
        return DemoResult(self.market, rows, dead, finished, added, found, later)

    def abandon(self, console: Console, why: str) -> None:
        """Say what did not finish, and take the waiting jobs out of the queues: they must
        not run against the next demo's records, nor count as its jobs. That includes
        the follow-ups the workers enqueued for the demo's people."""
        pending = report.unfinished(self.connection, self.job_ids)
        people = [person.id for person in self.market.people]
        later = followups.for_people(self.connection, self.catalog, people)
        later = [job for job in later if job.job_id not in self.job_ids]
        console.print(f"[yellow]{why}: {len(pending)} jobs are not finished[/]")
        for (worker, status), count in sorted(Counter(pending.values()).items()):
            console.print(f"  {worker}: {count} {status}")
        for worker, count in sorted(Counter(job.worker for job in later).items()):
            console.print(f"  {worker}: {count} follow-ups queued or scheduled")
        report.forget(self.connection, self.catalog, pending)
        followups.take_out(self.connection, later)
        console.print("  (the queued and scheduled ones were taken out of the queues)\n")
