"""The jobs workers enqueue themselves, which the demo never enqueued and so has no ids
for: NotifyComplimentWorker and NotifyFavorWorker hand their push to a SendPushWorker
job, and SendIntroWorker schedules the next onboarding step days ahead.

The demo follows them through the cluster-wide numbers: a job counts as pending while it
is queued, running or due within FAR_SECONDS (a retry); a job scheduled further out (the
next intro step) is not waited for.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import redis

from simbi_workers import keys, lua, wire
from simbi_workers.catalog import Catalog

WORKERS = ("SendPushWorker", "SendIntroWorker")  # the ones that follow up, by name
FAR_SECONDS = 3600  # past any retry of a demo job (the ladder's fifth rung is ~11 min)


@dataclass(frozen=True)
class FollowUp:
    job_id: str
    worker: str
    args: list
    queue: str
    due: float | None  # Unix seconds when scheduled; None when queued

    @property
    def far(self) -> bool:
        return self.due is not None and self.due > time.time() + FAR_SECONDS


def pending(connection: redis.Redis, catalog: Catalog) -> int:
    """Jobs queued, running or due within FAR_SECONDS, cluster-wide, whoever enqueued them."""
    horizon = time.time() + FAR_SECONDS
    pipe = connection.pipeline(transaction=False)
    for queue in catalog.queue_names():
        pipe.llen(keys.queue(queue))
        pipe.zcard(keys.started(queue))
        pipe.zcount(keys.scheduled(queue), "-inf", horizon)
    return sum(pipe.execute())


def for_people(connection: redis.Redis, catalog: Catalog, user_ids: list[int]) -> list[FollowUp]:
    """The follow-up jobs, queued or scheduled, whose first argument (a user id) is one of
    user_ids."""
    if not user_ids:
        return []
    queues = sorted({catalog.workers[name].queue for name in WORKERS if name in catalog.workers})
    found: list[tuple[str, str, float | None]] = []
    for queue in queues:
        found += [
            (queue, job_id.decode(), None) for job_id in connection.lrange(keys.queue(queue), 0, -1)
        ]
        scheduled = connection.zrange(keys.scheduled(queue), 0, -1, withscores=True)
        found += [(queue, job_id.decode(), due) for job_id, due in scheduled]

    pipe = connection.pipeline(transaction=False)
    for _queue, job_id, _due in found:
        pipe.hgetall(keys.job(job_id))
    wanted = set(user_ids)
    result = []
    for (queue, job_id, due), fields in zip(found, pipe.execute(), strict=True):
        try:
            job = wire.decode(job_id, fields, queue)
        except wire.BrokenJobError:
            continue
        if job.worker in WORKERS and job.args and job.args[0] in wanted:
            result.append(FollowUp(job_id, job.worker, job.args, queue, due))
    return result


def take_out(connection: redis.Redis, jobs: list[FollowUp]) -> None:
    """Remove the jobs, and the unique locks they hold, so the next run can enqueue their
    twins (SendIntroWorker is unique for a day)."""
    locks = connection.pipeline(transaction=False)
    for job in jobs:
        locks.hget(keys.job(job.job_id), "simbi_unique")
    unique_keys = locks.execute()

    release = lua.script(connection, "release_unique")
    pipe = connection.pipeline(transaction=False)
    for job, unique_key in zip(jobs, unique_keys, strict=True):
        pipe.lrem(keys.queue(job.queue), 0, job.job_id)
        pipe.zrem(keys.scheduled(job.queue), job.job_id)
        pipe.delete(keys.job(job.job_id))
        if unique_key:
            release(keys=[unique_key.decode()], args=[job.job_id], client=pipe)
    pipe.execute()
