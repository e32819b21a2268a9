"""A job on the wire: RQ's job hash with RQ's JSON serializer, never pickle.

The `data` field is zlib-compressed JSON `[func_path, null, args, {}]`, exactly what RQ's
JSONSerializer writes, so `rq info`, rq-dashboard and RQ's own classes can read our jobs.
Our own bookkeeping lives in extra `simbi_*` fields that RQ ignores.
"""

from __future__ import annotations

import hashlib
import json
import math
import uuid
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from simbi_workers.errors import JobInputError

FUNC_PREFIX = "simbi_workers.jobs."
DESCRIPTION_ARG_CHARS = 60
REDACTED = "[redacted]"  # what listings show for a worker's secret_args (queues.yaml)
# Lists/dicts inside one argument. Ruby's JSON parser stops at 100 levels and Python's
# recursion near 1,000; the Ruby child's line wraps an argument in two more
# ({"type": "job", ..., "args": [ARG]}), so 32 leaves room and is the same for every client.
MAX_DEPTH = 32
# Python's default int_max_str_digits: the host's json.loads refuses a longer integer.
MAX_INT_DIGITS = 4300
INT_LIMIT = 10**MAX_INT_DIGITS


class BrokenJobError(JobInputError):
    """A job hash in Redis that cannot be decoded or names nothing we can run."""


@dataclass
class Job:
    id: str
    worker: str
    args: list[Any]
    queue: str
    attempt: int  # attempts already made before this one
    timeout_seconds: int
    enqueued_at: str | None = None
    unique_key: str | None = None
    secret_positions: tuple[int, ...] = ()  # args the description never shows
    died: bool = False  # put back because its process died while running it

    @property
    def description(self) -> str:
        # `rq info` and rq-dashboard show it to whoever can read Redis: no secrets.
        return describe(self.worker, redacted(self.args, self.secret_positions))


def new_id() -> str:
    return str(uuid.uuid4())


def utc_now_text() -> str:
    # RQ's utcformat: ISO 8601 with microseconds and a trailing Z.
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def rq_time(epoch: float) -> str:
    """A Unix time as RQ writes times (see utc_now_text)."""
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def check_json_native(value: Any, path: str) -> None:
    """Refuse anything JSON would change or reject, naming the path of the offending value;
    `path` names one argument, and lists/dicts nested in it past MAX_DEPTH are refused."""
    _check_native(value, path, path, MAX_DEPTH)


def _check_native(value: Any, path: str, argument: str, levels: int) -> None:
    if value is None or isinstance(value, bool):
        return
    if isinstance(value, int):
        _check_int(value, path)
        return
    if isinstance(value, str):
        _check_text(value, path)
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise JobInputError(f"{path} is {value!r}: JSON has no NaN or infinity")
        return
    if isinstance(value, list | dict) and levels == 0:
        raise JobInputError(f"{argument} is nested more than {MAX_DEPTH} levels deep")
    if isinstance(value, list):
        for index, item in enumerate(value):
            _check_native(item, f"{path}[{index}]", argument, levels - 1)
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise JobInputError(f"{path} has the key {key!r}: JSON object keys are strings")
            _check_text(key, f"the key {key!r} of {path}")
            _check_native(item, f"{path}[{key!r}]", argument, levels - 1)
        return
    raise JobInputError(
        f"{path} is a {type(value).__name__} ({_short(repr(value))}): arguments must be "
        "JSON-native (str, int, float, bool, None, list, dict with str keys)"
    )


def _check_int(value: int, path: str) -> None:
    if -INT_LIMIT < value < INT_LIMIT:
        return
    raise JobInputError(
        f"{path} is an integer of more than {MAX_INT_DIGITS} digits: "
        "Python's JSON reader refuses it"
    )


def _check_text(text: str, path: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        bad = text[exc.start]
        raise JobInputError(
            f"{path} contains a lone surrogate (U+{ord(bad):04X}) at character {exc.start}: "
            "not valid Unicode text"
        ) from None


def redacted(args: list[Any], positions: tuple[int, ...]) -> list[Any]:
    """`args` with the value at each of `positions` replaced by REDACTED."""
    return [REDACTED if index in positions else arg for index, arg in enumerate(args)]


def describe(worker: str, args: list[Any]) -> str:
    rendered = ", ".join(_short(json.dumps(arg, ensure_ascii=False)) for arg in args)
    return f"{worker}({rendered})"


def job_fields(job: Job, *, now: str, result_ttl: int, failure_ttl: int) -> dict[str, Any]:
    """The job hash a client writes; enqueue.lua adds status, enqueued_at and simbi_unique.
    The TypeScript and Ruby clients build the same fields (clients/vectors.json proves it)."""
    data = json.dumps([FUNC_PREFIX + job.worker, None, job.args, {}], ensure_ascii=False)
    return {
        "created_at": now,
        "data": zlib.compress(data.encode("utf-8")),
        "description": job.description,
        "origin": job.queue,
        "timeout": job.timeout_seconds,
        "result_ttl": result_ttl,
        "failure_ttl": failure_ttl,
        "simbi_worker": job.worker,
        "simbi_attempt": job.attempt,
    }


def encode(job: Job, *, status: str, result_ttl: int, failure_ttl: int) -> dict[str, Any]:
    """The whole job hash, for a job the host writes itself (the Sidekiq take-in): the
    client's fields plus what enqueue.lua adds to them."""
    now = utc_now_text()
    fields = job_fields(job, now=now, result_ttl=result_ttl, failure_ttl=failure_ttl)
    fields["status"] = status
    if status == "queued":
        fields["enqueued_at"] = now
    if job.unique_key:
        fields["simbi_unique"] = job.unique_key
    return fields


def unique_digest(args: list[Any]) -> str:
    """The same arguments, however their objects' keys are ordered, give the same digest."""
    text = json.dumps(args, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


def decode(
    job_id: str, fields: dict[bytes, bytes], queue: str, max_data_bytes: int | None = None
) -> Job:
    """Decode a job hash taken from `queue`; BrokenJobError says what is wrong with it.
    `max_data_bytes` caps the unpacked payload, so a job written past the client (a
    hand-made or hostile hash) cannot make a worker unpack gigabytes."""
    if not fields:
        raise BrokenJobError(f"job {job_id}: its hash is missing from Redis (expired or deleted)")
    if b"data" not in fields:
        raise BrokenJobError(f"job {job_id}: its hash has no 'data' field")
    try:
        data = _unpack(fields[b"data"], max_data_bytes)
        if data is None:
            raise BrokenJobError(
                f"job {job_id}: its payload unpacks to more than {max_data_bytes:,} bytes "
                "(four times SIMBI_MAX_PAYLOAD_BYTES); it was not written by a client"
            )
        payload = json.loads(data.decode("utf-8"))
        func, _instance, args, kwargs = payload
    except (zlib.error, UnicodeDecodeError, ValueError, TypeError, RecursionError) as exc:
        raise BrokenJobError(f"job {job_id}: its payload is not RQ JSON data ({exc})") from None

    if not isinstance(func, str) or not func.startswith(FUNC_PREFIX):
        raise BrokenJobError(f"job {job_id}: function {func!r} is not a simbi_workers job")
    if not isinstance(args, list) or kwargs:
        raise BrokenJobError(f"job {job_id}: arguments must be a positional JSON list")

    return Job(
        id=job_id,
        worker=func.removeprefix(FUNC_PREFIX),
        args=args,
        queue=queue,
        attempt=_int_field(job_id, fields, b"simbi_attempt", 0),
        timeout_seconds=_int_field(job_id, fields, b"timeout", 60),
        enqueued_at=fields.get(b"enqueued_at", b"").decode("utf-8", "replace") or None,
        died=fields.get(b"simbi_died") == b"1",
    )


def _unpack(data: bytes, limit: int | None) -> bytes | None:
    """The decompressed payload, or None when it is longer than `limit`."""
    if limit is None:
        return zlib.decompress(data)
    unpacker = zlib.decompressobj()
    unpacked = unpacker.decompress(data, limit + 1)
    if len(unpacked) > limit or unpacker.unconsumed_tail:
        return None
    return unpacked + unpacker.flush()


def _int_field(job_id: str, fields: dict[bytes, bytes], name: bytes, default: int) -> int:
    raw = fields.get(name)
    if raw is None or raw == b"":
        return default
    try:
        value = int(float(raw))
    except (ValueError, OverflowError):
        raise BrokenJobError(
            f"job {job_id}: field {name.decode()} is {raw!r}, not a number"
        ) from None
    if value < 0:
        raise BrokenJobError(f"job {job_id}: field {name.decode()} is negative ({value})")
    return value


def _short(text: str) -> str:
    if len(text) <= DESCRIPTION_ARG_CHARS:
        return text
    return f"{text[: DESCRIPTION_ARG_CHARS - 1]}…"
