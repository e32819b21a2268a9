"""The local default of the notification services: one JSON object per line in
var/outbox/<name>.jsonl, so that a fresh checkout runs end to end without accounts.

Several worker processes append to the same file at once. Each line goes out in one
write(2) on a descriptor opened with O_APPEND, so the kernel positions every write at
the end of the file. NOTE: POSIX promises atomicity only for pipe writes up to PIPE_BUF
(4096 bytes on Linux); on local file systems Linux also keeps larger appends whole, but
a network file system (NFS) may interleave them. Keep outboxes on local disk.
"""

from __future__ import annotations

import json
import os
import re
from datetime import date, datetime
from pathlib import Path
from typing import Any

# A file name, never a path: the name comes from our code, but a slash would escape the
# outbox directory.
_NAME = re.compile(r"^[a-z][a-z0-9_-]*$")


def append(outbox_dir: Path, name: str, record: dict[str, Any]) -> Path:
    """Append `record` as one line to outbox_dir/<name>.jsonl and return the file's path."""
    if not _NAME.match(name):
        raise ValueError(f"outbox name {name!r} must match {_NAME.pattern}")

    line = json.dumps(record, ensure_ascii=False, separators=(",", ":"), default=_iso)
    data = (line + "\n").encode("utf-8")

    outbox_dir.mkdir(parents=True, exist_ok=True)
    path = outbox_dir / f"{name}.jsonl"
    _write_once(path, data)
    return path


def _write_once(path: Path, data: bytes) -> None:
    # Unbuffered: one os.write per line. A buffered file object may split a long line
    # into several writes, which another process's line could land between.
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        written = os.write(fd, data)
    finally:
        os.close(fd)

    # A regular file takes the whole buffer unless the disk is full; say so rather than
    # leave half a line behind silently.
    if written != len(data):
        raise OSError(f"short write to {path}: {written} of {len(data)} bytes")


def _iso(value: Any) -> str:
    # Python workers may hand over datetimes; the children send JSON already.
    if isinstance(value, datetime | date):
        return value.isoformat()
    raise TypeError(f"outbox records must be JSON; got {type(value).__name__}")
