"""The Lua scripts for atomic Redis steps, one per state change (see each file's header)."""

from functools import cache
from pathlib import Path

import redis


@cache
def source(name: str) -> str:
    return (Path(__file__).parent / f"{name}.lua").read_text(encoding="utf-8")


def script(connection: redis.Redis, name: str):
    return connection.register_script(source(name))
