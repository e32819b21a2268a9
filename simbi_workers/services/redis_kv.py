"""The redis host service: the app's analytics keys (event streams, daily counters, cached
scores, leaderboards) in the queue Redis, fenced off from the queues.

Every key is prefixed with `simbi:app:` and only the commands below run, so neither a
child nor a Python worker can read or break a queue, run a script or flush the database.
Keys travel apart from the other arguments (`keys`, `args`) because the prefix can only be
added to values known to be keys; each command's key count is checked so that a key cannot
be slipped in among the arguments. See docs/protocol.md, "Host services".
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import redis

from simbi_workers.errors import JobError, PermanentJobError

PREFIX = "simbi:app:"

# How many keys each allowed command takes; everything after them is `args`.
# ONE_OR_MORE for the variadic ones. None of these takes a key anywhere else.
ONE_OR_MORE = -1
KEY_COUNTS: dict[str, int] = {
    **dict.fromkeys(("GET", "SET", "SETNX", "EXPIRE", "PEXPIRE", "TTL"), 1),
    **dict.fromkeys(("INCR", "INCRBY", "DECRBY"), 1),
    **dict.fromkeys(("HGET", "HSET", "HDEL", "HGETALL", "HINCRBY", "HMGET"), 1),
    **dict.fromkeys(("LPUSH", "RPUSH", "LRANGE", "LTRIM", "LLEN"), 1),
    **dict.fromkeys(("ZADD", "ZREM", "ZRANGE", "ZRANGEBYSCORE", "ZREVRANGE"), 1),
    **dict.fromkeys(("ZREMRANGEBYSCORE", "ZREMRANGEBYRANK", "ZCARD", "ZSCORE"), 1),
    **dict.fromkeys(("ZINCRBY", "ZREVRANK", "ZCOUNT"), 1),
    **dict.fromkeys(("DEL", "EXISTS"), ONE_OR_MORE),
    "SCAN": 0,
}

_SCAN_OPTIONS = ("MATCH", "COUNT", "TYPE")
_ZADD_FLAGS = ("NX", "XX", "GT", "LT", "CH", "INCR")


@dataclass
class _Step:
    """One validated command, ready for redis-py, and how to turn its reply into JSON."""

    name: str
    parts: list[Any]
    options: dict[str, bool] = field(default_factory=dict)
    finish: Callable[[Any], Any] = lambda reply: reply


class AppRedis:
    HOST_METHODS = ("call", "multi")

    def __init__(self, connection: redis.Redis):
        self._conn = connection

    def call(self, command: str, keys: list | None = None, args: list | None = None) -> Any:
        """Run one allowed command; the reply comes back with bytes decoded as UTF-8."""
        step = _prepare(command, keys, args, where="redis.call")

        reply = _run(
            "redis.call", step.name, lambda: self._conn.execute_command(*step.parts, **step.options)
        )

        return _finish(step, reply, "redis.call")

    def multi(self, commands: list[dict[str, Any]]) -> list[Any]:
        """Run the commands in one MULTI/EXEC: no other client's command runs between them.

        NOTE: Redis does not roll back. Every command is checked here before any is sent,
        but one that fails inside EXEC (WRONGTYPE) leaves the others applied.
        """
        steps = _prepare_all(commands)

        pipe = self._conn.pipeline(transaction=True)
        for step in steps:
            pipe.execute_command(*step.parts, **step.options)
        replies = _run("redis.multi", "MULTI/EXEC", pipe.execute)

        return [
            _finish(step, reply, "redis.multi") for step, reply in zip(steps, replies, strict=True)
        ]


def _prepare_all(commands: Any) -> list[_Step]:
    if not isinstance(commands, list) or not commands:
        raise PermanentJobError("redis.multi: commands must be a non-empty list")

    steps = []
    for index, entry in enumerate(commands):
        where = f"redis.multi commands[{index}]"
        if not isinstance(entry, dict) or set(entry) - {"command", "keys", "args"}:
            raise PermanentJobError(f"{where}: must be an object with command, keys and args")
        steps.append(_prepare(entry.get("command"), entry.get("keys"), entry.get("args"), where))
    return steps


def _prepare(command: Any, keys: Any, args: Any, where: str) -> _Step:
    name = _command_name(command, where)
    keys = _keys(keys, f"{where} {name}")
    args = _args(args, f"{where} {name}")
    _check_key_count(name, keys, where)

    if name == "SCAN":
        return _scan_step(args, where)

    parts = [name, *(PREFIX + key for key in keys), *args]
    return _Step(name, parts, _callback_options(name, args))


def _command_name(command: Any, where: str) -> str:
    if not isinstance(command, str) or not command:
        raise PermanentJobError(f"{where}: command must be a string such as 'GET', got {command!r}")

    name = command.upper()
    if name not in KEY_COUNTS:
        raise PermanentJobError(
            f"{where}: command {name} is not allowed for app keys "
            f"(allowed: {', '.join(sorted(KEY_COUNTS))})"
        )
    return name


def _keys(keys: Any, where: str) -> list[str]:
    if keys is None:
        return []
    if not isinstance(keys, list | tuple):
        raise PermanentJobError(f"{where}: keys must be a list, got {type(keys).__name__}")

    checked = []
    for index, key in enumerate(keys):
        # Integers are accepted as keys (user ids); bool is an int to Python, not to us.
        if isinstance(key, bool) or not isinstance(key, str | int) or key == "":
            raise PermanentJobError(
                f"{where}: keys[{index}] must be a non-empty string or an integer, got {key!r}"
            )
        checked.append(str(key))
    return checked


def _args(args: Any, where: str) -> list[str | int | float]:
    if args is None:
        return []
    if not isinstance(args, list | tuple):
        raise PermanentJobError(f"{where}: args must be a list, got {type(args).__name__}")

    for index, arg in enumerate(args):
        valid = isinstance(arg, str | int | float) and not isinstance(arg, bool)
        if not valid or (isinstance(arg, float) and not math.isfinite(arg)):
            raise PermanentJobError(
                f"{where}: args[{index}] must be a string or a finite number, got {arg!r}"
            )
    return list(args)


def _check_key_count(name: str, keys: list[str], where: str) -> None:
    expected = KEY_COUNTS[name]
    if expected == ONE_OR_MORE and keys:
        return
    if len(keys) == expected:
        return

    wanted = "one or more keys" if expected == ONE_OR_MORE else f"{expected} key(s)"
    raise PermanentJobError(
        f"{where}: {name} takes {wanted} in `keys`, got {len(keys)}; "
        "put keys in `keys` and everything else in `args`"
    )


def _scan_step(args: list, where: str) -> _Step:
    """SCAN cursor MATCH pattern [COUNT n] [TYPE t]; MATCH is required and is prefixed."""
    if not args or len(args) % 2 != 1:
        raise PermanentJobError(f"{where}: SCAN args must be [cursor, 'MATCH', pattern, ...]")

    options = {}
    for i in range(1, len(args), 2):
        option = str(args[i]).upper()
        # Each option once: a second MATCH would replace our prefixed pattern.
        if option not in _SCAN_OPTIONS or option in options:
            raise PermanentJobError(
                f"{where}: SCAN takes MATCH, COUNT and TYPE once each, got {args[i]!r}"
            )
        options[option] = args[i + 1]

    pattern = options.get("MATCH")
    if not isinstance(pattern, str):
        raise PermanentJobError(f"{where}: SCAN needs MATCH with a string pattern")
    options["MATCH"] = PREFIX + pattern

    parts = ["SCAN", args[0], *(item for pair in options.items() for item in pair)]
    return _Step("SCAN", parts, finish=_strip_scan_prefix)


def _strip_scan_prefix(reply: Any) -> list[Any]:
    # redis-py parses SCAN into (cursor as int, [keys]); MATCH kept every key prefixed.
    cursor, keys = reply
    return [cursor, [key[len(PREFIX) :] for key in keys]]


def _callback_options(name: str, args: list) -> dict[str, bool]:
    """Tell redis-py's reply parser about options that change a reply's shape."""
    words = [arg.upper() if isinstance(arg, str) else arg for arg in args]

    # SET key value ... GET replies with the old value, not OK.
    if name == "SET" and "GET" in words[1:]:
        return {"get": True}

    # ... WITHSCORES replies [[member, score], ...] with scores as numbers.
    if name in ("ZRANGE", "ZRANGEBYSCORE", "ZREVRANGE") and "WITHSCORES" in words[2:]:
        return {"withscores": True}

    if name == "ZREVRANK" and "WITHSCORE" in words[1:]:
        return {"withscore": True}

    # ZADD ... INCR replies with the new score; the flags come before the first score.
    if name == "ZADD":
        flags = []
        for word in words:
            if word not in _ZADD_FLAGS:
                break
            flags.append(word)
        if "INCR" in flags:
            return {"as_score": True}

    return {}


def _run(where: str, name: str, execute: Callable[[], Any]) -> Any:
    """Run against Redis, translating redis-py's errors where they enter."""
    try:
        return execute()
    except redis.ResponseError as exc:
        # Redis refused the command (WRONGTYPE, syntax, not an integer): the same input
        # fails the same way on every retry.
        raise PermanentJobError(f"{where}: Redis refused {name}: {exc}") from None
    except redis.RedisError as exc:
        # Connection lost or timed out: the job stays retryable.
        raise JobError(f"{where}: Redis did not answer {name}: {exc}") from exc


def _finish(step: _Step, reply: Any, where: str) -> Any:
    try:
        return step.finish(_jsonable(reply))
    except UnicodeDecodeError:
        raise PermanentJobError(
            f"{where}: {step.name} replied with bytes that are not UTF-8; "
            "store text (base64 for binary data)"
        ) from None


def _jsonable(value: Any) -> Any:
    """Bytes to str, tuples to lists, recursively, so that the reply is JSON."""
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if isinstance(value, list | tuple):
        return [_jsonable(item) for item in value]
    if isinstance(value, dict):
        return {_jsonable(key): _jsonable(item) for key, item in value.items()}
    if isinstance(value, float) and not math.isfinite(value):
        # A score of +inf or -inf: JSON has no such number; Redis spells them like this.
        return "inf" if value > 0 else "-inf"
    return value
