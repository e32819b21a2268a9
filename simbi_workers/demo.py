"""`simbi-workers demo`: a small marketplace made from real photos, social records and
Simbi trades, the real supervisor in a subprocess, a mixed workload in Python, Ruby and
TypeScript, a table of the outcome, then the weekly leaderboard and a search.

The helpers live in demo_data/: the records (marketplace, social, economy), the jobs
(workload, notifications, typescript), the supervisor subprocess (start_process), the jobs
workers enqueue themselves (followups), the numbers read back from Redis (report), the
skips from the log (skips), the outboxes (outboxes), the leaderboard and search (results)
and the printed text (printout).
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass

import redis
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from sqlalchemy import select

from simbi_workers import catalog as catalog_module
from simbi_workers import wire
from simbi_workers.catalog import Catalog
from simbi_workers.client import Client
from simbi_workers.config import Settings
from simbi_workers.demo_data import (
    economy,
    followups,
    marketplace,
    outboxes,
    printout,
    report,
    rerun,
    results,
    skips,
    start_process,
    typescript,
    workload,
)
from simbi_workers.demo_data.followups import FollowUp
from simbi_workers.demo_data.marketplace import Marketplace
from simbi_workers.demo_data.outboxes import Added
from simbi_workers.demo_data.report import WorkerRow
from simbi_workers.demo_data.results import Results
from simbi_workers.demo_data.workload import Job
from simbi_workers.errors import InfrastructureError
from simbi_workers.redis_connection import connect, describe, live_processes, local_socket
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
    results: Results | None  # the leaderboard and the search; None when the run timed out


def _refuse_while_workers_run(settings: Settings) -> None:
    """The demo rebuilds the sample marketplace in var/ and resets its Redis state: never
    under a supervisor that is running on them."""
    if not settings.redis_url and not local_socket(settings).exists():
        return
    try:
        count = live_processes(connect(settings))
    except redis.RedisError:
        return  # nothing answers, so nothing runs there
    if count:
        raise InfrastructureError(
            f"{count} worker process(es) of a running `simbi-workers start` use "
            f"{describe(settings)}; stop it first (Ctrl-C or SIGTERM): the demo rebuilds the "
            "sample marketplace in var/ and would pull its data from under it"
        )


def run_demo(
    settings: Settings,
    job_count: int = 300,
    processes: int = 2,
    console: Console | None = None,
    timeout_seconds: float = TIMEOUT_SECONDS,
) -> DemoResult:
    console = console or Console()
    catalog = catalog_module.load(settings.queues_file)
    console.print(
        f"[bold]simbi-workers demo[/]: about {job_count} jobs on real photos, then the "
        "TypeScript workers on the marketplace's payments, scores and search\n"
    )

    _refuse_while_workers_run(settings)
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
    if result.results is not None:
        results.show(console, result.results, market)
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
        """Phase one, then each next phase once everything before it is done or dead; True
        when every job finished before the timeout."""
        started = time.monotonic()
        if self.backlog:
            console.print(
                f"[yellow]note: {self.backlog} jobs were already queued, scheduled or running; "
                "the counts below may include them[/]"
            )
        self.enqueue(workload.first_phase(self.market, job_count))
        self.enqueue(typescript.first_phase(self.market))
        console.print(
            f"enqueued {len(self.job_ids)} jobs; three more phases follow, each once everything "
            "before it is through: image optimization, strength, the leaderboard and a "
            "deletion; ratings and profiles; scores. Some workers enqueue follow-up jobs of "
            "their own"
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
            ids = self.client.perform_bulk(worker, args_list)
            # A unique job whose twin still waits gets the twin's id and no job of its own:
            # count each id once, or the run would wait for jobs that never come.
            fresh = [job_id for job_id in dict.fromkeys(ids) if job_id not in self.job_ids]
            self.job_ids.update(dict.fromkeys(fresh, worker))
            self.enqueued[worker] += len(fresh)

    def snapshot(self) -> dict[str, report.Counters]:
        return report.snapshot(self.connection, self.catalog)

    def _follow(self, console: Console, deadline: float) -> bool:
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
        phases = self._later_phases()
        with Progress(*columns, TimeElapsedColumn(), console=console) as progress:
            what = "images, avatars, email, push, SMS, Slack, analytics, payments, search"
            task = progress.add_task(what, total=len(self.job_ids))
            while True:
                self.supervisor.check_alive()
                # Ours first, then everything pending: a follow-up is enqueued while its
                # parent runs, so once ours are done, none can appear after `pending`.
                ours, extra = report.finished(self.enqueued, self.before, self.snapshot())
                pending = followups.pending(self.connection, self.catalog)
                ours_left = len(self.job_ids) - ours
                waiting = max(0, pending - ours_left)  # follow-ups not finished yet
                total = len(self.job_ids) + extra + waiting
                progress.update(task, total=total, completed=ours + extra)
                if ours_left <= 0 and pending == 0:
                    if not phases:
                        progress.update(task, description="all jobs done or dead")
                        return True
                    what, jobs = phases.pop(0)
                    self.enqueue(jobs())
                    progress.update(task, description=what)
                    continue
                if ours_left <= 0:
                    progress.update(task, description="follow-up jobs")
                if time.monotonic() > deadline:
                    return False
                time.sleep(POLL_SECONDS)

    def _later_phases(self) -> list[tuple[str, Callable[[], list[Job]]]]:
        """(what the progress bar says, the phase's jobs, made when it starts)."""
        market = self.market
        return [
            ("optimizing images; strength, leaderboard, a deletion", self._second_phase),
            ("ratings, display scores, Mixpanel profiles", lambda: typescript.third_phase(market)),
            ("scores", lambda: typescript.fourth_phase(market)),
        ]

    def _second_phase(self) -> list[Job]:
        assert self.market.economy is not None
        economy.withdraw(self.settings, self.market.economy.withdrawn)
        jobs = workload.second_phase(self._ready_images())
        return jobs + typescript.second_phase(self.market)

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
        expected = {wire.describe(*job): why for job, why in workload.meant_to_fail(self.market)}
        printout.dead(console, dead, expected)
        printout.stats_hint(console)
        shown = results.read(self.settings, self.connection) if finished else None
        return DemoResult(self.market, rows, dead, finished, added, found, later, shown)

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
