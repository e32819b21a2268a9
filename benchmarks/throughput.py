"""No-op job throughput: simbi-workers against plain RQ SimpleWorker on the same Redis.

Run from the repository root: `.venv/bin/python benchmarks/throughput.py`. It starts its own
redis-server (loopback, free port, no persistence), then for each process count:

- plain RQ: P `rq worker -w rq.worker.SimpleWorker` processes (JSON serializer);
- ours: the real `simbi-workers start --processes P`, one no-op worker per runtime.

Both are timed the same way: the workers are started and registered on an empty queue, then
N jobs go in as one bulk enqueue, and the clock runs from the enqueue call until Redis shows
all N finished. Start-up time is not measured. See benchmarks/README.md for what else it
reports (pickup latency, Redis commands per job).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import redis
import rq
from rich.console import Console
from rich.table import Table
from rq import Queue
from rq.serializers import JSONSerializer

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from simbi_workers import catalog as catalog_module  # noqa: E402
from simbi_workers import keys  # noqa: E402
from simbi_workers.client import Client  # noqa: E402
from tests import harness  # noqa: E402

RQ_BIN = str(Path(sys.executable).parent / "rq")
RQ_QUEUE = "bench"
RQ_FUNC = "rq_noop.noop"  # benchmarks/rq_noop.py, on the rq workers' PYTHONPATH
NOOP_WORKERS = {"python": "PyNoopWorker", "ruby": "RbNoopWorker", "node": "JsNoopWorker"}
LATENCY_JOBS = 200
WARMUP_JOBS = 200  # untimed, after each start: first-call costs (imports, script loads)
COUNT_JOBS_MAX = 1000
POLL_SECONDS = 0.005
LATENCY_GAP_SECONDS = 0.01
STOP_GRACE_SECONDS = 5
MONITOR_LINE = re.compile(rb'^\S+ \[\d+ ([^\]]+)\] "([^"]*)"')


@dataclass
class Throughput:
    system: str  # "rq" or "simbi"
    runtime: str
    processes: int
    jobs: int
    seconds: float
    enqueue_seconds: float
    cpu_seconds: float  # the workers, their children and redis-server, over the run

    @property
    def jobs_per_second(self) -> float:
        return self.jobs / self.seconds

    @property
    def cpu_ms_per_job(self) -> float:
        return self.cpu_seconds * 1000 / self.jobs


@dataclass
class CommandCount:
    """Redis work over one run, per job. `total` is INFO commandstats' delta (the commands
    inside Lua scripts included); MONITOR tells the in-script calls apart."""

    jobs: int
    total: float
    in_script: float
    from_clients: float
    evalsha: float
    reads: float  # the server's read events: about one per network round trip
    by_command: dict[str, float]


# -- processes ---------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def stop(process: subprocess.Popen) -> None:
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=STOP_GRACE_SECONDS)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@contextlib.contextmanager
def spawned(argv: list[str], stdout=subprocess.DEVNULL, **kwargs) -> Iterator[subprocess.Popen]:
    """A child in its own session (Ctrl-C reaches us, not it), stopped on the way out."""
    process = subprocess.Popen(
        argv, stdout=stdout, stderr=subprocess.DEVNULL, start_new_session=True, **kwargs
    )
    try:
        yield process
    finally:
        stop(process)


def wait_until(predicate: Callable[[], bool], timeout: float, what: str, poll=POLL_SECONDS):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout:.0f} s: {what}")
        time.sleep(poll)


@contextlib.contextmanager
def redis_server(workdir: Path) -> Iterator[str]:
    port = free_port()
    argv = ["redis-server", "--bind", "127.0.0.1", "--port", str(port), "--dir", str(workdir)]
    argv += ["--save", "", "--appendonly", "no"]
    with spawned(argv):
        probe = redis.Redis(port=port)
        wait_until(lambda: _answers(probe), 10, "redis-server did not answer")
        yield f"redis://127.0.0.1:{port}/0"


def _answers(connection: redis.Redis) -> bool:
    try:
        return bool(connection.ping())
    except redis.ConnectionError:
        return False


def cpu_meter(probe: redis.Redis, pids: list[int]) -> Callable[[], float]:
    """CPU seconds so far of these processes, their descendants and redis-server: on a
    shared machine this moves much less than wall time when others compete for the cores."""

    def read() -> float:
        server = probe.info("cpu")
        return tree_cpu_seconds(pids) + server["used_cpu_user"] + server["used_cpu_sys"]

    return read


def tree_cpu_seconds(pids: list[int]) -> float:
    stats = _proc_stats()
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in stats.items():
        children.setdefault(ppid, []).append(pid)

    total, todo = 0.0, list(pids)
    while todo:
        pid = todo.pop()
        if pid in stats:
            total += stats[pid][1]
            todo.extend(children.get(pid, []))
    return total


def _proc_stats() -> dict[int, tuple[int, float]]:
    """pid -> (parent pid, user + system CPU seconds), from /proc/<pid>/stat."""
    tick = os.sysconf("SC_CLK_TCK")
    stats = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            stats[int(entry.name)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / tick)
    return stats


# -- plain RQ ----------------------------------------------------------------------------


@contextlib.contextmanager
def rq_workers(url: str, probe: redis.Redis, count: int) -> Iterator[list[int]]:
    argv = [RQ_BIN, "worker", "-w", "rq.worker.SimpleWorker"]
    argv += ["--serializer", "rq.serializers.JSONSerializer", "-u", url, RQ_QUEUE]
    env = dict(os.environ, PYTHONPATH=str(ROOT / "benchmarks"))
    with contextlib.ExitStack() as stack:
        workers = [stack.enter_context(spawned(argv, env=env)) for _ in range(count)]
        wait_until(lambda: probe.scard("rq:workers") >= count, 30, "rq workers to register")
        time.sleep(0.3)  # from registration to their first blocking dequeue
        yield [worker.pid for worker in workers]


def rq_enqueue(queue: Queue, jobs: int) -> None:
    pipe = queue.connection.pipeline()
    queue.enqueue_many([Queue.prepare_data(RQ_FUNC) for _ in range(jobs)], pipeline=pipe)
    pipe.execute()


def rq_throughput(queue: Queue, probe: redis.Redis, pids: list[int], jobs: int) -> Throughput:
    registry = f"rq:finished:{RQ_QUEUE}"
    before = probe.zcard(registry)
    timings = timed_run(
        lambda: rq_enqueue(queue, jobs),
        lambda: probe.zcard(registry) - before,
        cpu_meter(probe, pids),
        jobs,
    )
    return Throughput("rq", "python", len(pids), jobs, *timings)


def rq_pickup(queue: Queue, probe: redis.Redis) -> list[float]:
    return pickup_latencies(probe, lambda: queue.enqueue(RQ_FUNC).id)


# -- simbi-workers -----------------------------------------------------------------------


@contextlib.contextmanager
def simbi_supervisor(env: dict[str, str], processes: int, log_path: Path) -> Iterator[int]:
    args = ("--processes", str(processes), "--shutdown-timeout", "2")
    try:
        with harness.supervisor(env, free_port(), *args, log_path=log_path) as supervisor:
            time.sleep(0.3)  # from healthy to every process's first blocking wait
            yield supervisor.pid
    except RuntimeError as exc:
        tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-15:])
        raise RuntimeError(f"{exc}; the end of its log:\n{tail}") from None


def simbi_throughput(client: Client, probe: redis.Redis, runtime: str, processes, jobs, pid):
    worker = NOOP_WORKERS[runtime]
    before = _processed(probe, worker)
    timings = timed_run(
        lambda: client.perform_bulk(worker, [[]] * jobs),
        lambda: _processed(probe, worker) - before,
        cpu_meter(probe, [pid]),
        jobs,
    )
    return Throughput("simbi", runtime, processes, jobs, *timings)


def _processed(probe: redis.Redis, worker: str) -> int:
    return int(probe.hget(keys.worker_stats(worker), "processed") or 0)


def simbi_pickup(client: Client, probe: redis.Redis) -> list[float]:
    return pickup_latencies(probe, lambda: client.perform_async(NOOP_WORKERS["python"]))


# -- measuring ---------------------------------------------------------------------------


def timed_run(enqueue, finished: Callable[[], int], cpu: Callable[[], float], jobs: int):
    """Seconds from the enqueue call until `finished` reaches jobs, the enqueue's share of
    them, and the CPU seconds `cpu` counted meanwhile."""
    cpu_before = cpu()
    start = time.perf_counter()
    enqueue()
    enqueued = time.perf_counter()
    wait_until(lambda: finished() >= jobs, 30 + jobs / 20, f"{jobs} jobs to finish")
    seconds = time.perf_counter() - start
    return seconds, enqueued - start, cpu() - cpu_before


def pickup_latencies(probe: redis.Redis, enqueue_one: Callable[[], str]) -> list[float]:
    """Seconds from the enqueue call to the job's started_at, one job at a time (idle)."""
    latencies = []
    for _ in range(LATENCY_JOBS):
        sent = time.time()
        job_key = keys.job(enqueue_one())
        time.sleep(LATENCY_GAP_SECONDS)  # no polling while the job is picked up
        wait_until(
            lambda key=job_key: probe.hget(key, "status") == b"finished",
            10,
            "a single job to finish",
        )
        latencies.append(_utc(probe.hget(job_key, "started_at")) - sent)
    return latencies


def _utc(text: bytes) -> float:
    when = datetime.strptime(text.decode(), "%Y-%m-%dT%H:%M:%S.%fZ")
    return when.replace(tzinfo=UTC).timestamp()


def count_commands(url: str, probe: redis.Redis, run: Callable[[], int], workdir: Path):
    """Run `run` (which returns its job count) under MONITOR and INFO deltas."""
    path = workdir / "monitor.txt"
    with path.open("wb") as out, spawned(["redis-cli", "-u", url, "monitor"], stdout=out):
        _mark(probe, path, b"bench-start")
        before = _redis_counters(probe)
        jobs = run()
        after = _redis_counters(probe)
        _mark(probe, path, b"bench-end")
    return _tally(path, probe.client_info()["addr"], jobs, before, after)


def _mark(probe: redis.Redis, path: Path, marker: bytes) -> None:
    def seen() -> bool:
        probe.echo(marker)
        return marker in path.read_bytes()[-4096:]

    wait_until(seen, 10, "redis-cli monitor to attach", poll=0.05)


def _redis_counters(probe: redis.Redis) -> tuple[int, int]:
    calls = sum(entry["calls"] for entry in probe.info("commandstats").values())
    return calls, probe.info("stats")["total_reads_processed"]


def _tally(path: Path, own_addr: str, jobs: int, before, after) -> CommandCount:
    lines = path.read_bytes().split(b"bench-start", 1)[1].split(b"bench-end", 1)[0]
    script, clients, own = Counter(), Counter(), 0
    for match in map(MONITOR_LINE.match, lines.splitlines()):
        if not match:
            continue
        source, command = match.group(1).decode(), match.group(2).decode().lower()
        if source == own_addr:
            own += 1  # the benchmark's own polling: not the system's work
        elif source == "lua":
            script[command] += 1
        else:
            clients[command] += 1
    total = after[0] - before[0] - own
    return CommandCount(
        jobs=jobs,
        total=total / jobs,
        in_script=sum(script.values()) / jobs,
        from_clients=(total - sum(script.values())) / jobs,
        evalsha=clients["evalsha"] / jobs,
        reads=(after[1] - before[1] - own) / jobs,
        by_command={k: round(v / jobs, 2) for k, v in (script + clients).most_common()},
    )


# -- the two systems' sessions -----------------------------------------------------------


def measure_rq(url: str, probe: redis.Redis, options, workdir: Path) -> dict:
    queue = Queue(RQ_QUEUE, connection=redis.Redis.from_url(url), serializer=JSONSerializer)
    results: dict = {"throughput": [], "pickup": None, "commands": None}
    for processes in options.processes:
        probe.flushall()
        with rq_workers(url, probe, processes) as pids:
            rq_throughput(queue, probe, pids, WARMUP_JOBS)
            results["throughput"].append(rq_throughput(queue, probe, pids, options.jobs))
            if processes == min(options.processes):
                results["pickup"] = rq_pickup(queue, probe)
                results["commands"] = count_commands(
                    url, probe, lambda: _count_run_rq(queue, probe, pids, options), workdir
                )
    return results


def _count_run_rq(queue: Queue, probe: redis.Redis, pids: list[int], options) -> int:
    jobs = min(options.jobs, COUNT_JOBS_MAX)
    rq_throughput(queue, probe, pids, jobs)
    return jobs


def measure_simbi(url: str, probe: redis.Redis, options, workdir: Path) -> dict:
    catalog_path = harness.write_test_catalog(workdir / "queues.yaml")
    env = harness.test_env(catalog_path, url, workdir / "var")
    client = Client(redis.Redis.from_url(url), catalog_module.load(catalog_path))
    results: dict = {"throughput": [], "pickup": None, "commands": None}
    for processes in options.processes:
        probe.flushall()
        with simbi_supervisor(env, processes, workdir / "simbi-workers.log") as pid:
            for runtime in options.runtimes:
                simbi_throughput(client, probe, runtime, processes, WARMUP_JOBS, pid)
                row = simbi_throughput(client, probe, runtime, processes, options.jobs, pid)
                results["throughput"].append(row)
            if processes == min(options.processes):
                results["pickup"] = simbi_pickup(client, probe)
                results["commands"] = count_commands(
                    url, probe, lambda: _count_run_simbi(client, probe, pid, options), workdir
                )
    return results


def _count_run_simbi(client: Client, probe: redis.Redis, pid: int, options) -> int:
    jobs = min(options.jobs, COUNT_JOBS_MAX)
    simbi_throughput(client, probe, "python", 0, jobs, pid)
    return jobs


# -- report ------------------------------------------------------------------------------


def machine(probe: redis.Redis) -> dict:
    model = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "load_average_at_start": round(os.getloadavg()[0], 2),
        "cpu": model,
        "python": platform.python_version(),
        "redis": probe.info("server")["redis_version"],
        "rq": rq.__version__,
    }


def summary(rq_results: dict, simbi_results: dict, host: dict, options) -> dict:
    baseline = {row.processes: row.jobs_per_second for row in rq_results["throughput"]}
    rows = []
    for row in rq_results["throughput"] + simbi_results["throughput"]:
        entry = asdict(row) | {
            "jobs_per_second": round(row.jobs_per_second, 1),
            "cpu_ms_per_job": round(row.cpu_ms_per_job, 2),
        }
        entry["ratio_to_rq"] = round(row.jobs_per_second / baseline[row.processes], 2)
        rows.append(entry)
    return {
        "machine": host,
        "jobs_per_measurement": options.jobs,
        "throughput": rows,
        "pickup_ms": {
            "simbi_python": _quantiles(simbi_results["pickup"]),
            "rq_simpleworker": _quantiles(rq_results["pickup"]),
        },
        "commands_per_job": {
            "simbi_python": asdict(simbi_results["commands"]),
            "rq_simpleworker": asdict(rq_results["commands"]),
        },
    }


def _quantiles(seconds: list[float]) -> dict:
    cuts = statistics.quantiles([s * 1000 for s in seconds], n=10)
    return {"samples": len(seconds), "median": round(cuts[4], 2), "p90": round(cuts[8], 2)}


def print_report(report: dict) -> None:
    console = Console()
    table = Table(title=f"No-op jobs, {report['jobs_per_measurement']:,} per measurement")
    for column in ("runtime", "processes", "jobs/s", "vs RQ SimpleWorker", "CPU ms/job"):
        table.add_column(column, justify="left" if column == "runtime" else "right")
    for row in report["throughput"]:
        name = "RQ SimpleWorker" if row["system"] == "rq" else f"simbi {row['runtime']}"
        table.add_row(
            name,
            str(row["processes"]),
            f"{row['jobs_per_second']:,.0f}",
            f"{row['ratio_to_rq']:.2f}x",
            f"{row['cpu_ms_per_job']:.2f}",
        )
    console.print(table)
    console.print(
        "CPU ms/job: the worker processes, their children and redis-server together",
        highlight=False,
        soft_wrap=True,
    )
    for line in _report_lines(report):
        console.print(line, highlight=False, soft_wrap=True)


def _report_lines(report: dict) -> list[str]:
    ours, theirs = report["pickup_ms"]["simbi_python"], report["pickup_ms"]["rq_simpleworker"]
    host = report["machine"]
    lines = [
        f"pickup latency (enqueue call → started_at, {ours['samples']} single jobs, idle, "
        f"lowest process count): simbi python median {ours['median']:.2f} ms "
        f"(p90 {ours['p90']:.2f}); RQ SimpleWorker median {theirs['median']:.2f} ms "
        f"(p90 {theirs['p90']:.2f})"
    ]
    for name, key in (("simbi python", "simbi_python"), ("RQ SimpleWorker", "rq_simpleworker")):
        count = report["commands_per_job"][key]
        lines.append(
            f"Redis per job, {name} ({count['jobs']:,} jobs, enqueue included): "
            f"{count['total']:.1f} commands (commandstats) = {count['from_clients']:.1f} sent "
            f"by clients + {count['in_script']:.1f} inside Lua; {count['evalsha']:.2f} EVALSHA; "
            f"≈{count['reads']:.1f} network round trips (server read events)"
        )
    load = host["load_average_at_start"]
    lines.append(
        f"machine: nproc {host['nproc']}, {host['cpu']}, load average {load} at start, "
        f"Python {host['python']}, Redis {host['redis']}, rq {host['rq']}"
    )
    return lines


# -- main --------------------------------------------------------------------------------


def parse_options(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=3000, help="jobs per measurement")
    parser.add_argument("--processes", default="1,2", help="process counts, comma-separated")
    parser.add_argument("--runtimes", default="python,ruby,node", help="ours, comma-separated")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    options = parser.parse_args(argv)
    options.processes = sorted({int(p) for p in options.processes.split(",")})
    options.runtimes = [r.strip() for r in options.runtimes.split(",") if r.strip()]
    unknown = set(options.runtimes) - set(NOOP_WORKERS)
    if unknown:
        parser.error(f"--runtimes: unknown {', '.join(sorted(unknown))} (known: python,ruby,node)")
    return options


def run(options: argparse.Namespace) -> dict:
    with tempfile.TemporaryDirectory(prefix="simbi-bench-") as tmp, redis_server(Path(tmp)) as url:
        probe = redis.Redis.from_url(url, single_connection_client=True)
        host = machine(probe)
        rq_results = measure_rq(url, probe, options, Path(tmp))
        simbi_results = measure_simbi(url, probe, options, Path(tmp))
        return summary(rq_results, simbi_results, host, options)


def main(argv: list[str] | None = None) -> int:
    options = parse_options(argv)
    # SIGTERM unwinds like Ctrl-C, so every context manager stops what it started.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        report = run(options)
    except KeyboardInterrupt:
        return 130
    if options.json:
        print(json.dumps(report, indent=2, ensure_ascii=False))
    else:
        print_report(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
