"""Redis key names. RQ's own layout for queues, jobs and registries (so that `rq info`
and rq-dashboard read our data), and the `simbi:` prefix for what RQ has no place for."""

RQ_QUEUES = "rq:queues"
RQ_WORKERS = "rq:workers"
WAKEUP = "simbi:wakeup"
SCHEDULER_LOCK = "simbi:scheduler:lock"
PROCESSES = "simbi:processes"
APP_PREFIX = "simbi:app:"

# A stock Sidekiq client's keys (no namespace), read by `start --accept-sidekiq`.
SIDEKIQ_QUEUES = "queues"
SIDEKIQ_SCHEDULE = "schedule"
SIDEKIQ_RETRY = "retry"


def queue(name: str) -> str:
    return f"rq:queue:{name}"


def job(job_id: str) -> str:
    return f"rq:job:{job_id}"


def started(queue_name: str) -> str:
    return f"rq:wip:{queue_name}"


def finished(queue_name: str) -> str:
    return f"rq:finished:{queue_name}"


def failed(queue_name: str) -> str:
    return f"rq:failed:{queue_name}"


def scheduled(queue_name: str) -> str:
    return f"rq:scheduled:{queue_name}"


def rq_worker(name: str) -> str:
    return f"rq:worker:{name}"


def rq_queue_workers(queue_name: str) -> str:
    return f"rq:workers:{queue_name}"


def processing(process_id: str) -> str:
    """The jobs a worker process has fetched and not yet acknowledged."""
    return f"simbi:processing:{process_id}"


def process(process_id: str) -> str:
    return f"simbi:process:{process_id}"


def worker_stats(worker: str) -> str:
    return f"simbi:stats:worker:{worker}"


def unique_lock(worker: str, digest: str) -> str:
    """Held while an identical job (same worker, same arguments) waits, is scheduled or runs."""
    return f"simbi:unique:{worker}:{digest}"


def slots(worker: str) -> str:
    """The running jobs a worker's concurrency limit counts, scored by when each expires."""
    return f"simbi:slots:{worker}"


def results(job_id: str) -> str:
    """RQ 2's stream of a job's outcomes."""
    return f"rq:results:{job_id}"


def sidekiq_queue(name: str) -> str:
    """A Sidekiq queue list: its client LPUSHes JSON payloads here."""
    return f"queue:{name}"
