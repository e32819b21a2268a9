"""Enqueueing: what reaches Redis, and what is refused before it does."""

import json
import re
import time
from datetime import UTC, datetime, timedelta

import pytest
from rq.job import Job as RQJob
from rq.serializers import JSONSerializer

from simbi_workers import keys
from simbi_workers.client import Client
from simbi_workers.errors import JobInputError


def test_perform_async_writes_a_job_rq_itself_can_read(client, redis_conn):
    job_id = client.perform_async("SlackNotifierWorker", "signups", None, "héllo 👋")

    assert redis_conn.lrange(keys.queue("slack"), 0, -1) == [job_id.encode()]
    job = RQJob.fetch(job_id, connection=redis_conn, serializer=JSONSerializer)
    assert job.func_name == "simbi_workers.jobs.SlackNotifierWorker"
    assert job.args == ["signups", None, "héllo 👋"]
    assert job.description == 'SlackNotifierWorker("signups", null, "héllo 👋")'
    assert job.get_status() == "queued"
    assert job.origin == "slack"
    assert b"rq:queue:slack" in redis_conn.smembers(keys.RQ_QUEUES)


def test_no_job_payload_is_pickled(client, redis_conn):
    job_id = client.perform_async("PyEchoWorker", {"a": [1, 2.5, True]})

    import zlib

    raw = zlib.decompress(redis_conn.hget(keys.job(job_id), "data"))
    assert json.loads(raw) == ["simbi_workers.jobs.PyEchoWorker", None, [{"a": [1, 2.5, True]}], {}]


def test_an_unknown_worker_is_refused_with_a_suggestion(client, redis_conn):
    with pytest.raises(
        JobInputError,
        match=r"unknown worker 'SlackNotifierWorkr' \(did you mean "
        r"SlackNotifierWorker\?\)",
    ):
        client.perform_async("SlackNotifierWorkr", "signups", None, "hi")

    assert redis_conn.dbsize() == 0


def test_a_wrong_argument_count_names_the_arguments(client, redis_conn):
    with pytest.raises(
        JobInputError,
        match=r"SlackNotifierWorker takes 3 argument\(s\) "
        r"\(channel, user_id, text\), got 2",
    ):
        client.perform_async("SlackNotifierWorker", "signups", "hi")

    assert redis_conn.dbsize() == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((1, {"when": datetime(2026, 1, 1)}), r"args\[1\]\['when'\] is a datetime"),
        ((1, {"tags": [1, {3}]}), r"args\[1\]\['tags'\]\[1\] is a set"),
        ((1, {1: "x"}), r"args\[1\] has the key 1: JSON object keys are strings"),
        ((float("nan"), None), r"args\[0\] is nan: JSON has no NaN"),
        ((b"bytes", None), r"args\[0\] is a bytes"),
        ((1, {"\udc00": 1}), r"the key '\\udc00' of args\[1\] contains a lone surrogate"),
        ((1, {"n": [10**4300]}), r"args\[1\]\['n'\]\[0\] is an integer of more than 4300 digits"),
        ((-(10**5000), None), r"args\[0\] is an integer of more than 4300 digits"),
    ],
)
def test_non_json_arguments_are_refused_with_their_path(client, redis_conn, args, message):
    with pytest.raises(JobInputError, match=message):
        client.perform_async("MixpanelTrackWorker", *args, {})

    assert redis_conn.dbsize() == 0


def nested(levels: int) -> list:
    value: list = []
    for _ in range(levels - 1):
        value = [value]
    return value


@pytest.mark.parametrize("levels", [33, 990, 5000])
def test_an_argument_nested_past_the_limit_is_refused_naming_it(client, redis_conn, levels):
    # Past 99 levels a Ruby child dies on the line, past ~990 Python's own json does;
    # every depth past 32 gets the same refusal, never a RecursionError.
    with pytest.raises(JobInputError, match=r"^args\[1\] is nested more than 32 levels deep$"):
        client.perform_async("MixpanelTrackWorker", 1, nested(levels), {})

    assert redis_conn.dbsize() == 0


def test_a_list_that_holds_itself_is_refused_as_too_deep(client):
    loop: list = []
    loop.append(loop)
    with pytest.raises(JobInputError, match=r"args\[0\] is nested more than 32 levels deep"):
        client.perform_async("PyEchoWorker", loop)


def test_an_oversized_payload_is_refused_with_size_and_limit(worker_env, redis_conn, monkeypatch):
    monkeypatch.setenv("SIMBI_MAX_PAYLOAD_BYTES", "1000")
    from simbi_workers.config import Settings

    client = Client(connection=redis_conn, settings=Settings())

    with pytest.raises(JobInputError, match=r"are 2,004 bytes as JSON, over the limit of 1,000"):
        client.perform_async("PyEchoWorker", "x" * 2000)


def test_perform_in_and_perform_at_schedule_without_queueing(client, redis_conn):
    before = time.time()
    in_id = client.perform_in(timedelta(minutes=5), "PyEchoWorker", 1)
    at_id = client.perform_at(datetime(2030, 1, 1, tzinfo=UTC), "PyEchoWorker", 2)

    assert redis_conn.llen(keys.queue("default")) == 0
    in_score = redis_conn.zscore(keys.scheduled("default"), in_id)
    assert before + 300 <= in_score <= time.time() + 300
    assert redis_conn.zscore(keys.scheduled("default"), at_id) == 1893456000.0
    assert redis_conn.hget(keys.job(in_id), "status") == b"scheduled"


def test_perform_at_refuses_naive_datetimes_and_negative_delays(client):
    with pytest.raises(JobInputError, match="timezone-aware"):
        client.perform_at(datetime(2030, 1, 1), "PyEchoWorker", 1)
    with pytest.raises(JobInputError, match=r"the delay must be from 0 to 315,360,000 s"):
        client.perform_in(-1, "PyEchoWorker", 1)
    with pytest.raises(JobInputError, match=r"a number of seconds or a timedelta, got '30'"):
        client.perform_in("30", "PyEchoWorker", 1)
    with pytest.raises(JobInputError, match=r"more than ten years ahead"):
        client.perform_at(datetime(9999, 1, 1, tzinfo=UTC), "PyEchoWorker", 1)


@pytest.mark.parametrize(
    "number", [10**400, -(10**400), 10**5000], ids=["1e400", "-1e400", "1e5000"]
)
def test_a_time_too_large_for_a_float_is_refused_not_overflowed(client, redis_conn, number):
    with pytest.raises(JobInputError, match=r"^perform_in: the delay is an integer too large"):
        client.perform_in(number, "PyEchoWorker", 1)
    with pytest.raises(JobInputError, match=r"^perform_at: the time is an integer too large"):
        client.perform_at(number, "PyEchoWorker", 1)

    assert redis_conn.dbsize() == 0


def test_perform_bulk_makes_one_script_call_per_thousand_jobs(client, redis_conn):
    client.perform_async("PyEchoWorker", 0)  # Redis now knows the script: no NOSCRIPT retry
    redis_conn.config_resetstat()

    ids = client.perform_bulk("PyEchoWorker", [[n] for n in range(2500)])

    assert len(ids) == len(set(ids)) == 2500
    calls = redis_conn.info("commandstats")
    assert (
        sum(calls.get(f"cmdstat_{name}", {}).get("calls", 0) for name in ("evalsha", "eval")) == 3
    )
    assert redis_conn.llen(keys.queue("default")) == 2501


@pytest.mark.parametrize(
    ("args_list", "message"),
    [
        ([1, 2], "perform_bulk(PyEchoWorker): item 0 must be a list of arguments, got int 1"),
        ([["ok"], "abc"], "item 1 must be a list of arguments, got str 'abc'"),
    ],
)
def test_perform_bulk_refuses_items_that_are_not_argument_lists(
    client, redis_conn, args_list, message
):
    with pytest.raises(JobInputError, match=re.escape(message)):
        client.perform_bulk("PyEchoWorker", args_list)

    assert redis_conn.llen(keys.queue("default")) == 0
