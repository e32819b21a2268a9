"""Chaos: a few thousand jobs in all three runtimes and real payments, while worker
processes and their Ruby and Node children are SIGKILLed at random and Redis is killed
and restarted once. Then it counts what was lost, what ran twice at once and which payment
moved money twice. Run from the repository root:

    .venv/bin/python benchmarks/chaos.py            # about 2 minutes on 2 cores
    .venv/bin/python benchmarks/chaos.py --jobs 600 --chaos-seconds 30 --json

Everything is its own and on loopback: a redis-server (free port, temp dir, AOF with
appendfsync always, see --appendfsync), a SQLite database in a temp var dir, and two
`simbi-workers start --processes 2` supervisors, as two hosts would run. The exit status
is 1 when a job was lost, ran twice at once, or a payment moved money twice.
See benchmarks/README.md for how to read the output.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path

import psutil
import redis
import yaml
from sqlalchemy import create_engine, func, select

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from simbi_workers import catalog as catalog_module  # noqa: E402
from simbi_workers import keys  # noqa: E402
from simbi_workers.client import Client  # noqa: E402
from simbi_workers.store import schema  # noqa: E402
from tests import harness  # noqa: E402
from tests.app_records import AppRecords  # noqa: E402

COUNTERS = ("PyCountWorker", "RbCountWorker", "JsCountWorker")
CHILD_OF = {"RbCountWorker": "ruby", "JsCountWorker": "node", "PayingSimbiWorker": "node"}
COUNT_SECONDS = (0, 0, 0.05, 0.1, 0.3)  # most jobs short, some long enough to be hit
USERS, OPENING_BALANCE = 20, 10_000
PAYMENT_SHARE, TWICE_SHARE = 0.1, 0.1  # of all jobs; of payments, enqueued twice
WAVES = 20  # the jobs go in over this many waves, so kills meet enqueues
STOP_SECONDS = 40


@dataclass
class Kill:
    what: str  # "worker process", "ruby child", "node child"
    pid: int
    at: float  # wall clock
    jobs: list[str]
    recovered_after: float | None = None


@dataclass
class Report:
    jobs_enqueued: int = 0
    done: int = 0
    dead: int = 0
    pending: int = 0  # still in Redis (waiting for a retry) when the drain time ran out
    lost: int = 0
    in_two_places: int = 0
    run_twice_concurrently: int = 0
    rerun_after_a_kill: int = 0
    payments_applied_twice: int = 0
    payments_done_without_ledger_row: int = 0
    balance_drift: int = 0
    kills: dict[str, int] = field(default_factory=dict)
    redis_restarts: int = 0
    redis_down_seconds: float = 0.0
    jobs_resumed_after_redis_seconds: float | None = None
    longest_recovery_seconds: dict[str, float] = field(default_factory=dict)
    not_recovered: int = 0
    seconds: float = 0.0

    @property
    def failed(self) -> bool:
        bad = (self.lost, self.in_two_places, self.run_twice_concurrently)
        return any(bad) or self.payments_applied_twice or self.balance_drift


# -- the system under test -----------------------------------------------------------------


class Cluster:
    """Redis, the app database and the supervisors, all started and stopped here."""

    def __init__(self, workdir: Path, options: argparse.Namespace):
        self.workdir = workdir
        self.options = options
        self.redis = harness.RedisServer(workdir / "redis", options.appendfsync)
        self.database_url = f"sqlite:///{workdir / 'var' / 'app.db'}"
        self.supervisors: list[subprocess.Popen] = []

    def start(self) -> None:
        self.redis.start()
        (self.workdir / "var").mkdir()
        catalog = harness.write_test_catalog(self.workdir / "queues.yaml")
        self.env = harness.test_env(
            catalog,
            self.redis.url,
            self.workdir / "var",
            DATABASE_URL=self.database_url,
            SIMBI_RESULT_TTL="3600",
        )
        result = harness.run_cli(self.env, "db", "init")
        if result.returncode != 0:
            raise RuntimeError(f"db init failed: {result.stderr}")
        for host in range(self.options.hosts):
            self._supervisor(host)

    def _supervisor(self, host: int) -> None:
        port = harness.free_port()
        log = open(self.workdir / f"host{host}.log", "wb")  # noqa: SIM115 (kept open by the child)
        argv = [sys.executable, "-m", "simbi_workers.cli", "start", "--port", str(port)]
        argv += ["--processes", str(self.options.processes)]
        process = subprocess.Popen(
            argv, env=self.env, stdout=log, stderr=log, cwd=ROOT, start_new_session=True
        )
        self.supervisors.append(process)  # before the wait, so that stop() ends it anyway
        harness.wait_healthy(port, process)

    def stop(self) -> None:
        for process in self.supervisors:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.supervisors:
            try:
                process.wait(timeout=STOP_SECONDS)
            except subprocess.TimeoutExpired:
                process.kill()
            _kill_group(process.pid)  # orphaned children of killed workers, if any
        self.redis.kill()

    def worker_processes(self) -> list[psutil.Process]:
        found = []
        for supervisor in self.supervisors:
            try:
                found += psutil.Process(supervisor.pid).children()
            except psutil.NoSuchProcess:
                continue
        return [p for p in found if "simbi_workers.worker" in " ".join(_cmdline(p))]


def _cmdline(process: psutil.Process) -> list[str]:
    try:
        return process.cmdline()
    except psutil.Error:
        return []


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)


# -- the workload ----------------------------------------------------------------------------


class Workload:
    def __init__(self, connection: redis.Redis, cluster: Cluster, jobs: int, seed: int):
        loaded = catalog_module.load(cluster.workdir / "queues.yaml")
        self.client = Client(connection=connection, catalog=loaded)
        self.rng = random.Random(seed)
        self.plan = self._plan(jobs)
        self.ids: dict[str, str] = {}  # job id -> its counting name, or "payment:<key>"
        self.engine = create_engine(cluster.database_url)
        records = AppRecords(self.engine)
        self.users = [records.user(f"U{n}", simbi_balance=OPENING_BALANCE) for n in range(USERS)]

    def _plan(self, jobs: int) -> list[tuple]:
        payments = int(jobs * PAYMENT_SHARE)
        plan: list[tuple] = [("count", n) for n in range(jobs - payments)]
        for n in range(payments):
            plan.append(("pay", n))
            if self.rng.random() < TWICE_SHARE:
                plan.append(("pay", n))  # the same idempotency key again
        self.rng.shuffle(plan)
        return plan

    def enqueue_wave(self, size: int) -> int:
        wave, self.plan = self.plan[:size], self.plan[size:]
        for kind, n in wave:
            if kind == "count":
                self._count(n)
            else:
                self._pay(n)
        return len(wave)

    def _count(self, n: int) -> None:
        worker = COUNTERS[n % len(COUNTERS)]
        name = f"c{n}"
        seconds = self.rng.choice(COUNT_SECONDS)
        self.ids[self.client.perform_async(worker, name, seconds)] = name

    def _pay(self, n: int) -> None:
        # The same key always carries the same transfer, as an app retrying a request would.
        pick = random.Random(n)
        source, target = pick.sample(self.users, 2)
        amount, key = pick.randint(1, 50), f"chaos-{n}"
        job_id = self.client.perform_async("PayingSimbiWorker", source, target, amount, "", key)
        self.ids[job_id] = f"payment:{key}"


# -- chaos -----------------------------------------------------------------------------------


class Chaos:
    def __init__(self, cluster: Cluster, connection: redis.Redis, rng: random.Random):
        self.cluster = cluster
        self.connection = connection
        self.rng = rng
        self.kills: list[Kill] = []
        self.redis_restarts = 0
        self.redis_back_at: float | None = None  # monotonic, when it answered again
        self.finished_before: int | None = None
        self.redis_resumed_after: float | None = None
        self.redis_down_seconds = 0.0

    def kill_one(self) -> None:
        """SIGKILL a busy worker process, or the child running its job: a Ruby or Node job
        loses its child or its whole process, a Python job its process."""
        workers = self.cluster.worker_processes()
        busy = [(w, job) for w in workers if (job := self._job_of(w.pid))]
        if not busy:
            return
        worker, job_id = self.rng.choice(busy)
        runtime = CHILD_OF.get(self._worker_of(job_id))
        what = self.rng.choice(
            ("worker process", f"{runtime} child") if runtime else ("worker process",)
        )
        jobs = self._held_by(worker.pid)
        victim = worker
        if what != "worker process":
            children = [c for c in worker.children() if runtime in " ".join(_cmdline(c))]
            if not children:
                return
            victim = children[0]
        try:
            victim.kill()
        except psutil.NoSuchProcess:
            return
        self.kills.append(Kill(what, victim.pid, time.time(), jobs))

    def _worker_of(self, job_id: str) -> str:
        return (self.connection.hget(keys.job(job_id), "simbi_worker") or b"").decode()

    def restart_redis(self, down_seconds: float) -> None:
        """SIGKILL: no shutdown, no flush; only what the AOF holds comes back."""
        self.cluster.redis.kill()
        went = time.monotonic()
        time.sleep(down_seconds)
        self.cluster.redis.start()
        self.redis_back_at = time.monotonic()
        self.redis_down_seconds = round(self.redis_back_at - went, 2)
        self.finished_before = self._finished()
        self.redis_restarts += 1

    def _finished(self) -> int:
        return sum(self.connection.zcard(keys.finished(q)) for q in ("default", "critical"))

    def _job_of(self, pid: int) -> str:
        for process_id in self._process_ids():
            fields = self.connection.hmget(keys.process(process_id), "pid", "job")
            if fields[0] and int(fields[0]) == pid:
                return (fields[1] or b"").decode()
        return ""

    def _held_by(self, pid: int) -> list[str]:
        """The jobs in the processing list of the worker process with this pid."""
        for process_id in self._process_ids():
            if self.connection.hget(keys.process(process_id), "pid") == str(pid).encode():
                held = self.connection.lrange(keys.processing(process_id), 0, -1)
                return [job_id.decode() for job_id in held]
        return []

    def _process_ids(self) -> list[str]:
        return [p.decode() for p in self.connection.smembers(keys.PROCESSES)]

    def note_recoveries(self) -> None:
        """A kill is recovered when each job it interrupted runs again or has ended; Redis,
        when a job finishes after it came back."""
        waiting = self.redis_resumed_after is None and self.finished_before is not None
        if waiting and self._finished() > self.finished_before:
            self.redis_resumed_after = time.monotonic() - self.redis_back_at
        for kill in self.kills:
            if kill.recovered_after is None and all(self._moved_on(j, kill.at) for j in kill.jobs):
                kill.recovered_after = time.time() - kill.at

    def _moved_on(self, job_id: str, since: float) -> bool:
        status, started_at = self.connection.hmget(keys.job(job_id), "status", "started_at")
        if status in (b"finished", b"failed"):
            return True
        if status != b"started" or not started_at:
            return False
        return datetime.fromisoformat(started_at.decode()).timestamp() > since


# -- the verdict -----------------------------------------------------------------------------


def places(connection: redis.Redis, queues: list[str]) -> dict[str, list[str]]:
    """Every job id by where Redis holds it, read in one MULTI so that nothing moves."""
    processing = [k.decode() for k in connection.scan_iter("simbi:processing:*")]
    pipe = connection.pipeline(transaction=True)
    for queue in queues:
        pipe.lrange(keys.queue(queue), 0, -1)
        pipe.zrange(keys.scheduled(queue), 0, -1)
        pipe.zrange(keys.failed(queue), 0, -1)
        pipe.zrange(keys.finished(queue), 0, -1)
    for key in processing:
        pipe.lrange(key, 0, -1)
    found: dict[str, list[str]] = defaultdict(list)
    labels = [f"{kind}:{q}" for q in queues for kind in ("queue", "scheduled", "dead", "done")]
    for label, members in zip(labels + processing, pipe.execute(), strict=True):
        for member in members:
            found[member.decode()].append(label)
    return found


def verdict(workload: Workload, chaos: Chaos, queues: list[str]) -> Report:
    connection = chaos.connection
    report = Report(jobs_enqueued=len(workload.ids), redis_restarts=chaos.redis_restarts)
    report.redis_down_seconds = chaos.redis_down_seconds
    if chaos.redis_resumed_after is not None:
        report.jobs_resumed_after_redis_seconds = round(chaos.redis_resumed_after, 2)
    where = places(connection, queues)
    for job_id in workload.ids:
        kinds = {label.split(":")[0] for label in where.get(job_id, [])}
        report.in_two_places += len(where.get(job_id, [])) > 1
        if "done" in kinds:
            report.done += 1
        elif "dead" in kinds:
            report.dead += 1
        elif kinds:
            report.pending += 1
        else:
            report.lost += 1
    _count_runs(report, connection)
    _check_ledger(report, workload, where)
    _summarise_kills(report, chaos.kills)
    return report


def _count_runs(report: Report, connection: redis.Redis) -> None:
    """Two runs of one job overlap when one ends after the other started. A killed run
    never marks its end, so it is not counted."""
    open_runs: dict[str, list[str]] = defaultdict(list)  # name -> runs started so far
    ended_late: set[str] = set()
    for mark in connection.lrange("simbi:app:marks", 0, -1):
        event, name, run = mark.decode().split()
        if event == "start":
            open_runs[name].append(run)
        elif open_runs[name] and open_runs[name][-1] != run:
            ended_late.add(name)  # another run of this job started before this one ended
    report.run_twice_concurrently = len(ended_late)
    runs = connection.hvals("simbi:app:runs")
    report.rerun_after_a_kill = sum(int(count) > 1 for count in runs)


def _check_ledger(report: Report, workload: Workload, where: dict[str, list[str]]) -> None:
    ledger = schema.simbi_transactions
    with workload.engine.connect() as conn:
        by_key = select(ledger.c.idempotency_key, func.count()).group_by(ledger.c.idempotency_key)
        per_key = Counter(dict(conn.execute(by_key).all()))
        total = conn.execute(select(func.sum(schema.users.c.simbi_balance))).scalar_one()
    report.payments_applied_twice = sum(count > 1 for count in per_key.values())
    report.balance_drift = int(total) - USERS * OPENING_BALANCE
    for job_id, name in workload.ids.items():
        done = any(label.startswith("done:") for label in where.get(job_id, []))
        if name.startswith("payment:") and done and not per_key[name.split(":", 1)[1]]:
            report.payments_done_without_ledger_row += 1


def _summarise_kills(report: Report, kills: list[Kill]) -> None:
    report.kills = dict(Counter(kill.what for kill in kills))
    for kill in kills:
        if kill.recovered_after is None:
            report.not_recovered += bool(kill.jobs)
            continue
        longest = report.longest_recovery_seconds.get(kill.what, 0.0)
        report.longest_recovery_seconds[kill.what] = round(max(longest, kill.recovered_after), 2)


# -- the run ---------------------------------------------------------------------------------


def run(options: argparse.Namespace, workdir: Path) -> Report:
    cluster = Cluster(workdir, options)
    started = time.monotonic()
    try:
        cluster.start()
        connection = redis.Redis.from_url(cluster.redis.url)
        workload = Workload(connection, cluster, options.jobs, options.seed)
        chaos = Chaos(cluster, connection, random.Random(options.seed))
        _storm(options, workload, chaos)
        _drain(options, workload, chaos)
        queues = yaml.safe_load((workdir / "queues.yaml").read_text())["queues"]
        report = verdict(workload, chaos, list(queues))
    finally:
        cluster.stop()
    report.seconds = round(time.monotonic() - started, 1)
    return report


def _storm(options: argparse.Namespace, workload: Workload, chaos: Chaos) -> None:
    """Enqueue in waves while killing every few seconds; restart Redis once, midway."""
    wave = max(1, len(workload.plan) // WAVES)
    end = time.monotonic() + options.chaos_seconds
    restart_at = time.monotonic() + options.chaos_seconds / 2
    next_kill = time.monotonic() + chaos.rng.uniform(1, options.kill_every)
    while time.monotonic() < end or workload.plan:
        workload.enqueue_wave(wave)
        if time.monotonic() >= next_kill:
            chaos.kill_one()
            next_kill = time.monotonic() + chaos.rng.uniform(1, options.kill_every)
        if not chaos.redis_restarts and time.monotonic() >= restart_at:
            chaos.restart_redis(options.redis_down_seconds)
        chaos.note_recoveries()
        time.sleep(0.5)


def _drain(options: argparse.Namespace, workload: Workload, chaos: Chaos) -> None:
    """No more kills: wait until every job has ended, or the drain time is up."""
    deadline = time.monotonic() + options.drain_seconds
    ids = list(workload.ids)
    while time.monotonic() < deadline:
        chaos.note_recoveries()
        pipe = chaos.connection.pipeline(transaction=False)
        for job_id in ids:
            pipe.hget(keys.job(job_id), "status")
        if all(s in (b"finished", b"failed") for s in pipe.execute()):
            return
        time.sleep(1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=3000)
    parser.add_argument("--hosts", type=int, default=2, help="supervisors (default 2)")
    parser.add_argument("--processes", type=int, default=2, help="worker processes per host")
    parser.add_argument("--chaos-seconds", type=float, default=60)
    parser.add_argument("--kill-every", type=float, default=4, help="at most, in seconds")
    parser.add_argument("--redis-down-seconds", type=float, default=3)
    parser.add_argument("--drain-seconds", type=float, default=120)
    parser.add_argument("--appendfsync", choices=("always", "everysec"), default="always")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", action="store_true")
    options = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="simbi-chaos-") as tmp:
        report = run(options, Path(tmp))
    if options.json:
        print(json.dumps(asdict(report), indent=1))
    else:
        for name, value in asdict(report).items():
            print(f"{name.replace('_', ' '):34} {value}")
    return 1 if report.failed else 0


if __name__ == "__main__":
    sys.exit(main())
