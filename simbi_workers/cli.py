"""The `simbi-workers` command line."""

from __future__ import annotations

import json
import re
import signal
import sys
from datetime import UTC, datetime

import click
import redis
from rich.console import Console
from rich.table import Table
from rich.text import Text

from simbi_workers import catalog as catalog_module
from simbi_workers.config import settings as load_settings
from simbi_workers.errors import SimbiError
from simbi_workers.logs import setup_logging
from simbi_workers.redis_connection import describe

# Piped output (grep, a log file) gets wide lines instead of cells cut to 80 columns.
console = Console(width=None if sys.stdout.isatty() else 200)
DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, None: 1}


class SimbiGroup(click.Group):
    """Turns our own errors into one clear line and exit status 1, without a traceback."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except SimbiError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(1)
        except redis.RedisError as exc:
            where = describe(load_settings())
            click.echo(f"error: Redis at {where} did not answer: {exc}", err=True)
            sys.exit(1)


@click.group(cls=SimbiGroup)
def main() -> None:
    """Background jobs for the Simbi marketplace: Python, Ruby and TypeScript workers on Redis.

    With no REDIS_URL, `start` runs its own Redis under var/ and the other commands use it.
    """


@main.command()
@click.option(
    "--processes",
    "-p",
    default=2,
    show_default=True,
    type=click.IntRange(min=1),
    help="Worker processes.",
)
@click.option("--queues", "-q", default=None, help="Comma-separated queues (default: all).")
@click.option("--burst", is_flag=True, help="Exit when the queues are empty.")
@click.option("--host", default="127.0.0.1", show_default=True, help="HTTP bind address.")
@click.option("--port", default=9191, show_default=True, help="HTTP port (0: any free port).")
@click.option(
    "--shutdown-timeout",
    default=25.0,
    show_default=True,
    help="Seconds running jobs get to finish on SIGTERM before they are put back.",
)
@click.option(
    "--accept-sidekiq",
    is_flag=True,
    help="Also take in the jobs a stock Sidekiq client pushes to this Redis (queue:<name>, "
    "schedule, retry; no namespace). The same as SIMBI_ACCEPT_SIDEKIQ=1.",
)
def start(processes, queues, burst, host, port, shutdown_timeout, accept_sidekiq) -> None:
    """Run worker processes, the scheduler and /health /stats /metrics."""
    from simbi_workers.supervisor import Options, Supervisor

    settings = load_settings()
    setup_logging(settings)
    options = Options(
        processes=processes,
        queues=queues.split(",") if queues else None,
        burst=burst,
        host=host,
        port=port,
        shutdown_timeout=shutdown_timeout,
        accept_sidekiq=accept_sidekiq,
    )
    supervisor = Supervisor(settings, catalog_module.load(settings.queues_file), options)
    signal.signal(signal.SIGTERM, supervisor.request_stop)
    signal.signal(signal.SIGINT, supervisor.request_stop)
    signal.signal(signal.SIGTSTP, supervisor.request_quiet)
    sys.exit(supervisor.run())


@main.command()
@click.argument("worker")
@click.argument("args", nargs=-1)
@click.option(
    "--in",
    "delay",
    default=None,
    help="Run after a delay: 30s, 5m, 2h, 1d (a bare number is seconds).",
)
@click.option("--at", "at", default=None, help="Run at an ISO 8601 time with a zone.")
def enqueue(worker, args, delay, at) -> None:
    """Enqueue WORKER with JSON arguments.

    For example: simbi-workers enqueue SlackNotifierWorker '"signups"' null '"hi"'"""
    from simbi_workers.client import Client

    values = [_json_argument(index, text) for index, text in enumerate(args)]
    client = Client()
    if delay and at:
        raise click.UsageError("give --in or --at, not both")
    if delay:
        job_id = client.perform_in(_duration(delay), worker, *values)
    elif at:
        job_id = client.perform_at(_datetime(at), worker, *values)
    else:
        job_id = client.perform_async(worker, *values)
    click.echo(job_id)


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print the /stats JSON instead.")
def stats(as_json) -> None:
    """The /stats numbers: queues, workers and live processes, cluster-wide."""
    from simbi_workers import stats as stats_module
    from simbi_workers.redis_connection import connect

    settings = load_settings()
    catalog = catalog_module.load(settings.queues_file)
    numbers = stats_module.collect(connect(settings), catalog)
    if as_json:
        click.echo(json.dumps(numbers, indent=1))
        return
    console.print(_queues_table(numbers["queues"]))
    console.print(_workers_table(numbers["workers"]))
    hosts = ", ".join(f"{host}: {len(procs)}" for host, procs in numbers["processes"].items())
    console.print(f"live processes: {hosts or 'none'}")


@main.command()
def workers() -> None:
    """The catalogue from queues.yaml: each worker's runtime, queue and policies."""
    settings = load_settings()
    catalog = catalog_module.load(settings.queues_file)
    table = Table(title=f"{len(catalog.workers)} workers ({catalog.path})")
    for column in ("worker", "runtime", "queue", "arguments", "policies"):
        table.add_column(column, no_wrap=column in ("worker", "runtime", "queue"))
    now = datetime.now(UTC)
    ordered = sorted(catalog.workers.values(), key=lambda spec: (spec.runtime, spec.name))
    for spec in ordered:
        table.add_row(
            spec.name, spec.runtime, spec.queue, ", ".join(spec.args), _policies(spec, now)
        )
    console.print(table)


@main.command()
def check() -> None:
    """Check configuration and toolchains: queues.yaml, Ruby, Node, the TypeScript build,
    Redis, the database."""
    from simbi_workers.checks import run_checks

    results = run_checks(load_settings())
    table = Table(title="simbi-workers check")
    for column in ("check", "status", "detail"):
        table.add_column(column)
    for name, ok, detail in results:
        table.add_row(name, "[green]ok[/]" if ok else "[red]FAIL[/]", detail)
    console.print(table)
    if not all(ok for _, ok, _ in results):
        sys.exit(1)


@main.group()
def db() -> None:
    """The app records database (SQLite under var/ by default, or DATABASE_URL)."""


@db.command("init")
def db_init() -> None:
    """Create the tables the workers use (safe to run again)."""
    from simbi_workers.services.db import Database

    settings = load_settings()
    settings.var_dir.mkdir(parents=True, exist_ok=True)
    tables = Database(settings.database_url_or_default).create_tables()
    click.echo(f"created or kept {len(tables)} tables: {', '.join(tables)}")


@main.command()
@click.argument("query")
@click.option(
    "--type", "record_type", type=click.Choice(["service", "user"]), help="Only this kind."
)
@click.option(
    "--limit", "-n", default=20, show_default=True, type=click.IntRange(1, 100), help="Most hits."
)
def search(query, record_type, limit) -> None:
    """Search the index the search workers keep.

    For example: simbi-workers search "guitar lessons"

    Finds the documents holding every word of QUERY, best match first."""
    from sqlalchemy import inspect

    from simbi_workers.search_table import hits_table
    from simbi_workers.services.db import Database
    from simbi_workers.services.search import Search

    database = Database(load_settings().database_url_or_default)
    if not inspect(database.engine).has_table("search_documents"):
        raise SimbiError("no search index yet: run `simbi-workers db init` first")
    hits = Search(database).query(query, record_type=record_type, limit=limit)["hits"]
    if not hits:
        console.print(Text(f"no documents match {query!r}"))
        return
    console.print(hits_table(query, hits))


@main.group()
def failed() -> None:
    """The dead set: jobs that failed for good (RQ's failed registries). Jobs leave it when
    retried or deleted here, or by themselves after SIMBI_FAILURE_TTL."""


@failed.command("list")
@click.option("--worker", "-w", default=None, help="Only this worker's dead jobs.")
@click.option(
    "--limit",
    "-n",
    default=50,
    show_default=True,
    type=click.IntRange(min=1),
    help="Most jobs to print, the most recent failure first.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON: the total and the jobs.")
def failed_list(worker, limit, as_json) -> None:
    """Dead jobs, the most recent failure first.

    Each with its id, worker, queue, attempts, when it failed and the first line of its
    error."""
    from dataclasses import asdict

    entries = _dead_set().list(worker)
    shown = entries[:limit]
    if as_json:
        body = {"total": len(entries), "jobs": [asdict(entry) for entry in shown]}
        click.echo(json.dumps(body, indent=1, ensure_ascii=False))
        return
    whose = f" of {worker}" if worker else ""
    if not entries:
        console.print(f"no dead jobs{whose}")
        return
    more = f", the newest {len(shown)} shown" if len(shown) < len(entries) else ""
    console.print(_dead_table(f"dead set: {len(entries)} job(s){whose}{more}", shown))


@failed.command("show")
@click.argument("job_id")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
def failed_show(job_id, as_json) -> None:
    """One dead job in full, with its traceback.

    Arguments that cannot be decoded are shown with the reason and the payload's text."""
    from dataclasses import asdict

    job = _dead_set().show(job_id)
    if as_json:
        click.echo(json.dumps(asdict(job), indent=1, ensure_ascii=False))
        return
    click.echo(_dead_job_text(job))


@failed.command("retry")
@click.argument("job_ids", nargs=-1)
@click.option("--all", "every", is_flag=True, help="Every dead job (with --worker, its jobs).")
@click.option("--worker", "-w", default=None, help="With --all: only this worker's jobs.")
def failed_retry(job_ids, every, worker) -> None:
    """Put dead jobs back in their queues.

    Name JOB_IDS, or give --all (and --worker W for one worker's). Each goes to the end of
    its queue with its attempt count back at 0 and no expiry. An id not in the dead set is
    named on stderr and the exit status is 1; the others are still retried."""
    _check_selection("retry", job_ids, every, worker)
    dead = _dead_set()
    report = dead.retry_all(worker) if every else dead.retry(job_ids)
    _finish("retried", report, every, worker)


@failed.command("delete")
@click.argument("job_ids", nargs=-1)
@click.option("--all", "every", is_flag=True, help="Every dead job (with --worker, its jobs).")
@click.option("--worker", "-w", default=None, help="With --all: only this worker's jobs.")
def failed_delete(job_ids, every, worker) -> None:
    """Delete dead jobs and their job hashes.

    Name JOB_IDS, or give --all (and --worker W for one worker's). An id not in the dead
    set is named on stderr and the exit status is 1; the others are still deleted."""
    _check_selection("delete", job_ids, every, worker)
    dead = _dead_set()
    report = dead.delete_all(worker) if every else dead.delete(job_ids)
    _finish("deleted", report, every, worker)


@main.command()
@click.option(
    "--jobs",
    "job_count",
    default=300,
    show_default=True,
    help="About how many in the mixed workload; the TypeScript workers' ~100 come on top.",
)
@click.option("--processes", "-p", default=2, show_default=True, help="Worker processes.")
def demo(job_count, processes) -> None:
    """Build a small marketplace from real photos, run a mixed workload in three languages,
    print a table per worker, then the weekly leaderboard and a search."""
    from simbi_workers.demo import run_demo

    settings = load_settings()
    setup_logging(settings.model_copy(update={"log_level": "WARNING"}))
    run_demo(settings, job_count=job_count, processes=processes, console=console)


def _json_argument(index: int, text: str):
    try:
        return json.loads(text)
    except RecursionError:
        raise click.BadParameter(
            f"argument {index + 1} is nested too deeply", param_hint="ARGS"
        ) from None
    except ValueError as exc:
        raise click.BadParameter(
            f"argument {index + 1} ({text!r}) is not JSON: {exc}. Strings need JSON quotes, "
            "e.g. '\"signups\"'",
            param_hint="ARGS",
        ) from None


def _duration(text: str) -> float:
    match = DURATION.match(text)
    if not match:
        raise click.BadParameter(
            f"{text!r}: expected a number with s, m, h or d, e.g. 30s", param_hint="--in"
        )
    return float(match.group(1)) * UNIT_SECONDS[match.group(2)]


def _datetime(text: str) -> datetime:
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter(f"{text!r} is not ISO 8601", param_hint="--at") from None
    if when.tzinfo is None:
        raise click.BadParameter(f"{text!r} has no time zone; add Z or +01:00", param_hint="--at")
    return when


def _policies(spec, now: datetime) -> str:
    parts = [f"retry {spec.retry}", f"timeout {spec.timeout_seconds}s"]
    if spec.concurrency:
        parts.append(f"concurrency {spec.concurrency}")
    if spec.unique_seconds:
        parts.append(f"unique {spec.unique_seconds}s")
    if spec.cron:
        given = f" with {json.dumps(list(spec.cron_args))}" if spec.cron_args else ""
        parts.append(f"cron {spec.cron} UTC{given} ({_next_run(spec, now)})")
    return ", ".join(parts)


def _next_run(spec, now: datetime) -> str:
    from simbi_workers.cron import next_run

    upcoming = next_run(spec, now)
    return "matches no date" if upcoming is None else f"next {upcoming:%Y-%m-%d %H:%M} UTC"


def _dead_set():
    from simbi_workers.dead_set import DeadSet
    from simbi_workers.redis_connection import connect

    settings = load_settings()
    return DeadSet(connect(settings), catalog_module.load(settings.queues_file))


def _check_selection(verb: str, job_ids: tuple[str, ...], every: bool, worker: str | None):
    if job_ids and every:
        raise click.UsageError(f"give job ids or --all, not both ({verb} takes one or the other)")
    if not job_ids and not every:
        raise click.UsageError(f"name the jobs to {verb} by id, or give --all")
    if worker and not every:
        raise click.UsageError(f"--worker goes with --all; to {verb} single jobs, name their ids")


def _finish(verb: str, report, every: bool, worker: str | None) -> None:
    """One line per named job, or a count for --all; exit 1 when a named id was not dead."""
    from simbi_workers.dead_set import NOT_DEAD_REASONS

    if every:
        whose = f" of {worker}" if worker else ""
        click.echo(f"{verb} {len(report.done)} dead job(s){whose}")
        if report.missing:
            # Retried or deleted by someone else between the listing and the Lua step.
            click.echo(f"{len(report.missing)} had already left the dead set", err=True)
        return
    for job_id in report.done:
        click.echo(f"{verb} {job_id}")
    for job_id in report.missing:
        click.echo(f"error: job {job_id} is not in the dead set ({NOT_DEAD_REASONS})", err=True)
    if report.missing:
        sys.exit(1)


def _dead_table(title: str, entries) -> Table:
    table = Table(title=title)
    for column in ("id", "worker", "queue", "attempts", "failed at", "error"):
        table.add_column(
            column, no_wrap=column != "error", justify="right" if column == "attempts" else "left"
        )
    for entry in entries:
        cells = (entry.id, entry.worker, entry.queue, str(entry.attempts), _when(entry.failed_at))
        # Text cells: an error such as "args[1]['when'] ..." is not rich markup.
        table.add_row(*(Text(cell) for cell in (*cells, entry.error)))
    return table


def _dead_job_text(job) -> str:
    lines = [
        f"job          {job.id}",
        f"worker       {job.worker}",
        f"queue        {job.queue}",
        f"status       {job.status}",
        f"attempts     {job.attempts}",
        f"description  {job.description}",
        f"created      {_when(job.created_at)}",
        f"enqueued     {_when(job.enqueued_at)}",
        f"started      {_when(job.started_at)}",
        f"failed       {_when(job.failed_at)}",
        f"expires      {_when(job.expires_at)} (leaves the dead set by itself)",
    ]
    if job.payload_error is None:
        lines.append(f"args         {json.dumps(job.args, ensure_ascii=False)}")
    else:
        lines.append(f"args         cannot be decoded: {job.payload_error}")
        lines.append(f"payload      {job.payload if job.payload is not None else '(none)'}")
    lines.append(f"error        {job.error}")
    lines += ["", "traceback:", job.traceback.rstrip() or "(none recorded)"]
    return "\n".join(lines)


def _when(text: str | None) -> str:
    """RQ's time text (2026-08-01T12:00:03.123456Z) as 2026-08-01 12:00:03 UTC."""
    if not text:
        return "-"
    return text[:19].replace("T", " ") + " UTC"


def _queues_table(queues: dict) -> Table:
    table = Table(title="queues")
    for column in ("queue", "waiting", "latency", "scheduled", "running", "dead"):
        table.add_column(column, justify="right" if column != "queue" else "left")
    for name, queue in queues.items():
        table.add_row(
            name,
            str(queue["size"]),
            f"{queue['latency_seconds']:.1f}s",
            str(queue["scheduled"]),
            str(queue["running"]),
            str(queue["failed"]),
        )
    return table


def _workers_table(workers: dict) -> Table:
    table = Table(title="workers")
    for column in ("worker", "runtime", "processed", "skipped", "failed", "dead", "mean"):
        table.add_column(column, justify="left" if column in ("worker", "runtime") else "right")
    for name, worker in workers.items():
        mean = "-" if worker["mean_ms"] is None else f"{worker['mean_ms']:.1f} ms"
        table.add_row(
            name,
            worker["runtime"],
            str(worker["processed"]),
            str(worker["skipped"]),
            str(worker["failed"]),
            str(worker["dead"]),
            mean,
        )
    return table


if __name__ == "__main__":
    main()
