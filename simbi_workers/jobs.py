"""The job functions RQ's job data names: `simbi_workers.jobs.<WorkerName>`.

Our worker processes never import these: they read the worker name from the payload and
run it in its runtime. These exist so that the function path in every job resolves to
something real (RQ's tools import it), and so that code outside a worker process, such as
a plain RQ worker or a shell, can run a job in a one-off set of runtimes.
"""

from __future__ import annotations

from typing import Any

from simbi_workers import catalog


def __getattr__(name: str):
    spec = catalog.default().workers.get(name)
    if spec is None:
        raise AttributeError(f"no worker named {name!r} in {catalog.default().path}")

    def run(*args: Any) -> Any:
        return _run_here(name, list(args))

    run.__name__ = run.__qualname__ = name
    return run


def _run_here(worker: str, args: list[Any]) -> Any:
    from simbi_workers import wire
    from simbi_workers.config import settings
    from simbi_workers.errors import JobError
    from simbi_workers.redis_connection import connect
    from simbi_workers.runtimes.manager import Runtimes
    from simbi_workers.services import Services

    spec = catalog.default().worker(worker)
    services = Services(settings(), connect(settings()))
    runtimes = Runtimes(settings(), catalog.default(), services)
    runtimes.start()
    try:
        job = wire.Job(wire.new_id(), worker, args, spec.queue, 0, spec.timeout_seconds)
        outcome = runtimes.run(job, spec)
    finally:
        runtimes.stop()
    if outcome.failure:
        raise JobError(outcome.failure.text())
    return outcome.value
