"""The jobs host service: workers enqueue follow-up jobs (fan-out, onboarding series)."""

from __future__ import annotations

from typing import Any

import redis

from simbi_workers.errors import JobInputError, PermanentJobError


class Jobs:
    HOST_METHODS = ("enqueue",)

    def __init__(self, connection: redis.Redis):
        from simbi_workers.client import Client

        self.client = Client(connection=connection)

    def enqueue(
        self, worker: str, args: list[Any], in_seconds: float | None = None, at: float | None = None
    ) -> dict[str, str]:
        if not isinstance(args, list):
            raise PermanentJobError(f"jobs.enqueue: args must be a list, got {args!r}")
        try:
            if in_seconds is not None:
                job_id = self.client.perform_in(in_seconds, worker, *args)
            elif at is not None:
                job_id = self.client.perform_at(at, worker, *args)
            else:
                job_id = self.client.perform_async(worker, *args)
        except JobInputError as exc:
            raise PermanentJobError(f"jobs.enqueue refused: {exc}") from None
        return {"job_id": job_id}
