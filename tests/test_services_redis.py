"""The app's Redis service against the real test Redis: prefixing, the allow-list,
MULTI/EXEC, SCAN and JSON-able replies."""

from __future__ import annotations

import json

import pytest

from simbi_workers.errors import PermanentJobError
from simbi_workers.services import Services
from simbi_workers.services.redis_kv import PREFIX, AppRedis


@pytest.fixture
def app_redis(redis_conn) -> AppRedis:
    return AppRedis(redis_conn)


def test_every_key_lives_under_the_app_prefix(app_redis, redis_conn):
    assert app_redis.call("SET", ["score:7"], ["42"]) is True

    assert redis_conn.get("simbi:app:score:7") == b"42"
    assert redis_conn.exists("score:7") == 0
    assert app_redis.call("GET", ["score:7"]) == "42"
    assert app_redis.call("INCRBY", ["score:7"], [8]) == 50


def test_del_removes_only_the_prefixed_key(app_redis, redis_conn):
    redis_conn.set("simbi:app:x", "app")
    redis_conn.set("x", "not ours")

    assert app_redis.call("DEL", ["x"]) == 1

    assert redis_conn.get("x") == b"not ours"
    assert redis_conn.exists("simbi:app:x") == 0


@pytest.mark.parametrize(
    "command", ["EVAL", "FLUSHALL", "flushdb", "KEYS", "CONFIG", "RENAME", "MIGRATE"]
)
def test_commands_off_the_allow_list_are_refused_by_name(app_redis, redis_conn, command):
    redis_conn.set("rq:queue:default", "untouched")

    with pytest.raises(PermanentJobError) as caught:
        app_redis.call(command, [], ["*"])

    assert f"command {command.upper()} is not allowed" in str(caught.value)
    assert redis_conn.get("rq:queue:default") == b"untouched"


def test_a_key_slipped_into_args_is_refused(app_redis, redis_conn):
    redis_conn.set("rq:queue:default", "secret")

    with pytest.raises(PermanentJobError, match="GET takes 1 key"):
        app_redis.call("GET", [], ["rq:queue:default"])

    with pytest.raises(PermanentJobError, match="DEL takes one or more keys"):
        app_redis.call("DEL", [], ["rq:queue:default"])

    assert redis_conn.get("rq:queue:default") == b"secret"


@pytest.mark.parametrize(
    ("keys", "args", "complaint"),
    [
        ("score:7", [], "keys must be a list, got str"),
        ([None], [], r"keys\[0\] must be a non-empty string or an integer, got None"),
        ([""], [], r"keys\[0\] must be a non-empty string"),
        (["a"], [{"x": 1}], r"args\[0\] must be a string or a finite number"),
        (["a"], [True], r"args\[0\] must be a string or a finite number, got True"),
        (["a"], [float("nan")], r"args\[0\] must be a string or a finite number"),
    ],
)
def test_keys_and_args_are_checked_with_the_offending_position(app_redis, keys, args, complaint):
    with pytest.raises(PermanentJobError, match=complaint):
        app_redis.call("SET", keys, args)


def test_integer_keys_are_accepted(app_redis, redis_conn):
    app_redis.call("SET", [7], ["seven"])

    assert redis_conn.get("simbi:app:7") == b"seven"


def test_replies_are_decoded_into_json_values(app_redis):
    app_redis.call("HSET", ["user:7"], ["name", "Zoë", "trades", 3])
    app_redis.call("RPUSH", ["events:7"], ["signup", "trade"])
    app_redis.call("ZADD", ["leaders"], [2.5, "ana", 1, "bo"])

    hash_reply = app_redis.call("HGETALL", ["user:7"])
    list_reply = app_redis.call("LRANGE", ["events:7"], [0, -1])
    scores = app_redis.call("ZRANGE", ["leaders"], [0, -1, "WITHSCORES"])

    assert hash_reply == {"name": "Zoë", "trades": "3"}
    assert list_reply == ["signup", "trade"]
    assert scores == [["bo", 1.0], ["ana", 2.5]]
    assert app_redis.call("ZSCORE", ["leaders"], ["ana"]) == 2.5
    assert app_redis.call("HMGET", ["user:7"], ["name", "missing"]) == ["Zoë", None]
    json.dumps([hash_reply, list_reply, scores])


def test_reply_shapes_follow_the_options_given(app_redis):
    app_redis.call("SET", ["k"], ["old"])

    assert app_redis.call("SET", ["k"], ["new", "GET"]) == "old"
    assert app_redis.call("ZADD", ["z"], ["INCR", 2, "ana"]) == 2.0
    assert app_redis.call("ZADD", ["z"], [1, "bo"]) == 1
    assert app_redis.call("SET", ["k"], ["get"]) is True


def test_bytes_that_are_not_utf8_are_reported(app_redis, redis_conn):
    redis_conn.set("simbi:app:blob", b"\xff\xfe")

    with pytest.raises(PermanentJobError, match="GET replied with bytes that are not UTF-8"):
        app_redis.call("GET", ["blob"])


def test_a_redis_error_is_permanent_and_quotes_redis(app_redis):
    app_redis.call("RPUSH", ["list"], ["a"])

    with pytest.raises(PermanentJobError, match="Redis refused INCR: WRONGTYPE"):
        app_redis.call("INCR", ["list"])


def commands_through_exec(monitor) -> list[str]:
    names: list[str] = []
    while "EXEC" not in names and len(names) < 20:
        names.append(monitor.next_command()["command"].split()[0].upper())
    return names


def test_multi_runs_the_commands_in_one_transaction(app_redis, redis_conn):
    with redis_conn.monitor() as monitor:
        replies = app_redis.multi(
            [
                {"command": "INCR", "keys": ["day:2026-12-03"]},
                {"command": "EXPIRE", "keys": ["day:2026-12-03"], "args": [86_400]},
                {"command": "GET", "keys": ["day:2026-12-03"]},
            ]
        )
        seen = commands_through_exec(monitor)

    assert replies == [1, True, "1"]
    # A new connection's handshake (HELLO, CLIENT SETINFO) may come first.
    assert seen[seen.index("MULTI") :] == ["MULTI", "INCR", "EXPIRE", "GET", "EXEC"]
    assert 0 < redis_conn.ttl("simbi:app:day:2026-12-03") <= 86_400


def test_multi_runs_nothing_when_one_command_is_refused(app_redis, redis_conn):
    with pytest.raises(PermanentJobError, match=r"commands\[1\]: command FLUSHALL"):
        app_redis.multi([{"command": "SET", "keys": ["a"], "args": [1]}, {"command": "FLUSHALL"}])

    assert redis_conn.exists("simbi:app:a") == 0


def test_multi_runs_nothing_when_redis_rejects_a_queued_command(app_redis, redis_conn):
    # INCR with an extra argument fails while queued, so Redis discards the whole EXEC.
    with pytest.raises(PermanentJobError, match="wrong number of arguments for 'incr'"):
        app_redis.multi(
            [
                {"command": "SET", "keys": ["a"], "args": [1]},
                {"command": "INCR", "keys": ["b"], "args": ["extra"]},
            ]
        )

    assert redis_conn.exists("simbi:app:a") == 0


def scan_all(app_redis: AppRedis, *options) -> list[str]:
    cursor, found = 0, []
    while True:
        cursor, keys = app_redis.call("SCAN", [], [cursor, *options, "COUNT", 2])
        found.extend(keys)
        if cursor == 0:
            return sorted(found)


def test_scan_matches_only_app_keys_and_returns_them_without_the_prefix(app_redis, redis_conn):
    for key in ("user:1:events", "user:2:events", "service:1:views"):
        redis_conn.set(PREFIX + key, 1)
    redis_conn.set("user:3:events", 1)
    redis_conn.set("rq:queue:default", 1)

    assert scan_all(app_redis, "MATCH", "user:*") == ["user:1:events", "user:2:events"]
    assert scan_all(app_redis, "MATCH", "*") == [
        "service:1:views",
        "user:1:events",
        "user:2:events",
    ]


@pytest.mark.parametrize(
    "args",
    [
        [0],
        [0, "COUNT", 10],
        [0, "MATCH", "*", "MATCH", "rq:*"],
        [0, "MATCH"],
        [0, "MATCH", 5],
    ],
)
def test_scan_without_exactly_one_match_pattern_is_refused(app_redis, args):
    with pytest.raises(PermanentJobError, match="SCAN"):
        app_redis.call("SCAN", [], args)


def test_a_child_reaches_the_app_keys_through_host_calls(settings, redis_conn):
    services = Services(settings, redis_conn)

    services.call("redis", "call", {"command": "hset", "keys": ["u:1"], "args": ["a", "1"]})
    reply = services.call("redis", "multi", {"commands": [{"command": "HGETALL", "keys": ["u:1"]}]})

    assert json.dumps(reply) == '[{"a": "1"}]'
    assert redis_conn.hget("simbi:app:u:1", "a") == b"1"
