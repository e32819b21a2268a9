"""Shared pauses: a provider that answered Retry-After is left alone until then, by every
job on every host (issue 5, "a webhook answering 429 with Retry-After: 30").

Without this, each job that got a 429 waits out the Retry-After on its own, while the
other jobs aimed at the same destination keep calling it and keep getting 429s. With it,
the first 429 writes `simbi:pause:<destination>` to the queue Redis with the Retry-After
as its lifetime, and until it expires every call to that destination fails at once with
the same retryable error, retry_after_seconds = the time left, without a request.

A destination names a provider and, where limits differ, what it limits
(`slack:payments`), never a credential: keys show up in `redis-cli KEYS`.

NOTE: a pause is an optimisation, not a guarantee. Redis errors while reading or writing
one are logged at DEBUG and the call goes ahead, as it did before pauses existed; and
calls already in flight when the first 429 arrives still reach the provider.
"""

from __future__ import annotations

import logging

import redis

from simbi_workers.errors import JobError

log = logging.getLogger(__name__)

PREFIX = "simbi:pause:"

# A Retry-After longer than this (a proxy's mistake, say) pauses the destination for this
# long only; the job that received it still waits the whole Retry-After.
MAX_PAUSE_SECONDS = 3600


def key(destination: str) -> str:
    return f"{PREFIX}{destination}"


class Pauses:
    """Pauses in `connection`; with no connection, nothing is ever paused."""

    def __init__(self, connection: redis.Redis | None):
        self._connection = connection

    def seconds_left(self, destination: str) -> float | None:
        """Seconds until `destination` may be called again, or None when it is not paused."""
        if self._connection is None:
            return None
        try:
            left_ms = self._connection.pttl(key(destination))
        except redis.RedisError as exc:
            log.debug("pause unreadable destination=%s: %s", destination, exc)
            return None
        # -2: no pause; -1: a key without a lifetime, which we never write.
        return left_ms / 1000 if left_ms > 0 else None

    def check(self, destination: str, error: type[JobError], message: str) -> None:
        """Raises `error` (retryable, retry_after_seconds = the time left) while
        `destination` is paused; `message` says what was not sent."""
        left = self.seconds_left(destination)
        if left is None:
            return
        raise error(
            f"{message}: {destination} is paused for {left:.1f} s more, "
            "since it answered with Retry-After",
            retry_after_seconds=left,
        )

    def record(self, destination: str, failure: JobError) -> None:
        """Pauses `destination` when `failure` carries a provider's Retry-After."""
        seconds = failure.retry_after_seconds
        if self._connection is None or not failure.retryable or not seconds or seconds <= 0:
            return
        self.start(destination, seconds)

    def start(self, destination: str, seconds: float) -> None:
        """Pauses `destination` for `seconds` (at most MAX_PAUSE_SECONDS). A pause already
        running is only ever lengthened; one warning line when a pause begins."""
        if self._connection is None:
            return
        pause_ms = max(int(min(seconds, MAX_PAUSE_SECONDS) * 1000), 1)
        try:
            started = self._connection.set(key(destination), pause_ms, px=pause_ms, nx=True)
            if not started:
                # Another job got a 429 too; keep whichever pause ends later.
                self._connection.pexpire(key(destination), pause_ms, gt=True)
        except redis.ResponseError as exc:
            # PEXPIRE … GT needs Redis 7; before that the first pause stands as it is.
            log.debug("pause not lengthened destination=%s: %s", destination, exc)
            return
        except redis.RedisError as exc:
            log.debug("pause not recorded destination=%s: %s", destination, exc)
            return
        if started:
            log.warning(
                "pause destination=%s for %.1f s: the provider answered with Retry-After; "
                "its jobs wait until then",
                destination,
                pause_ms / 1000,
            )
