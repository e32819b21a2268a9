"""The retry ladder: when a failed job runs again, or that it goes to the dead set."""

from __future__ import annotations

import random

from simbi_workers.runtimes.outcome import Failure


def delay_seconds(retry_count: int, rng: random.Random | None = None) -> float:
    """Sidekiq's ladder for retry number `retry_count` (0 for the first retry):
    c⁴ + 15 + rand(0..9)·(c+1) seconds, about 15 s, 32 s, 1 min, 2 min, … 4 days at c=24."""
    rng = rng or random
    return retry_count**4 + 15 + rng.randint(0, 9) * (retry_count + 1)


def next_delay(failure: Failure, attempts_made: int, retry_limit: int) -> float | None:
    """Seconds until the next attempt, or None when the job is dead.

    `attempts_made` counts the attempt that just failed."""
    if not failure.retryable or attempts_made > retry_limit:
        return None
    if failure.retry_after_seconds is not None and failure.retry_after_seconds >= 0:
        return float(failure.retry_after_seconds)
    return delay_seconds(attempts_made - 1)
