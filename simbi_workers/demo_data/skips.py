"""The skips of a run, read from the workers' log: a skipped job counts as done in Redis
(it succeeded, doing nothing on purpose), and only the log line says why.

One line per finished job attempt, from simbi_workers/worker.py:
    done worker=W job=J 1.2 ms
    skip worker=W job=J 1.2 ms: the reason
    dead worker=W job=J attempt=1 1.2 ms, permanent: ...
A text log line carries it after the logger's prefix; a JSON line (SIMBI_LOG_FORMAT=json)
in its "message".
"""

from __future__ import annotations

import json
import re
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

FINISHED = re.compile(r"\b(?:done|skip|dead) worker=\S+ job=\S+ ")
SKIP = re.compile(r"\bskip worker=(?P<worker>\S+) job=(?P<job>\S+) [\d.]+ ms: (?P<reason>.*)$")
NUMBER = re.compile(r"\d+")
WAIT_SECONDS = 5.0
POLL_SECONDS = 0.1


@dataclass(frozen=True)
class Skip:
    worker: str
    job_id: str
    reason: str


def read(log_path: Path) -> tuple[int, list[Skip]]:
    """(finished attempts logged, the skips among them)."""
    try:
        lines = log_path.read_text(errors="replace").splitlines()
    except FileNotFoundError:
        return 0, []
    finished, found = 0, []
    for line in lines:
        message = _message(line)
        if FINISHED.search(message):
            finished += 1
        match = SKIP.search(message)
        if match:
            found.append(Skip(match["worker"], match["job"], match["reason"]))
    return finished, found


def wait_read(log_path: Path, finished: int) -> list[Skip]:
    """The skips, once the log holds a line for each of `finished` jobs. A worker counts a
    job in Redis just before it logs it, so the last lines may still be on their way."""
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        logged, found = read(log_path)
        if logged >= finished or time.monotonic() > deadline:
            return found
        time.sleep(POLL_SECONDS)


def by_kind(found: list[Skip]) -> list[tuple[str, int, str]]:
    """(worker, how many, one reason) per worker and kind of reason, where reasons that
    differ only in their numbers (ids, minutes) are the same kind."""
    counts: Counter[tuple[str, str]] = Counter()
    example: dict[tuple[str, str], str] = {}
    for skip in found:
        key = (skip.worker, NUMBER.sub("N", skip.reason))
        counts[key] += 1
        example.setdefault(key, skip.reason)
    return [(key[0], counts[key], example[key]) for key in sorted(counts)]


def _message(line: str) -> str:
    if line.startswith("{"):
        try:
            return str(json.loads(line).get("message", ""))
        except ValueError:
            return line
    return line
