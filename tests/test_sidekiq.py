"""Jobs a stock Sidekiq client pushed, taken in by `start --accept-sidekiq`: the take-in
script on a real Redis with payloads shaped as Sidekiq 6 writes them, then Sidekiq's own
client gem (Debian's ruby-sidekiq) against a real supervisor."""

import json
import os
import secrets
import subprocess
import threading
import time
from datetime import datetime

import pytest
import redis

from simbi_workers import catalog, keys, wire
from simbi_workers.config import Settings
from simbi_workers.dead_set import DeadSet
from simbi_workers.sidekiq import LIST, Intake
from tests.conftest import free_port
from tests.harness import run_cli, status, supervisor, wait_for


@pytest.fixture
def loaded(worker_env):
    return catalog.load(Settings().queues_file)


@pytest.fixture
def intake(redis_conn, loaded):
    return Intake(redis_conn, loaded, Settings())


def payload(worker, *args, jid=None, queue="default", **extra) -> bytes:
    """A payload as Sidekiq 6's client writes it."""
    item = {
        "retry": True,
        "queue": queue,
        "class": worker,
        "args": list(args),
        "jid": jid or secrets.token_hex(12),
        "created_at": time.time(),
        **extra,
    }
    return json.dumps(item).encode()


def push(redis_conn, *payloads, queue="default"):
    """What Sidekiq's client does for perform_async: SADD queues, LPUSH queue:<name>."""
    redis_conn.sadd("queues", queue)
    redis_conn.lpush(f"queue:{queue}", *payloads)


def places(redis_conn, needle: str) -> list[str]:
    """Every list and sorted set holding `needle` (a job id, or a payload naming it), except
    the wake-up tokens."""
    found = []
    for key in sorted(redis_conn.scan_iter()):
        kind = redis_conn.type(key)
        if key == keys.WAKEUP.encode() or kind not in (b"list", b"zset"):
            continue
        read = redis_conn.lrange if kind == b"list" else redis_conn.zrange
        found += [key.decode() for member in read(key, 0, -1) if needle.encode() in member]
    return found


def our_job(redis_conn, job_id: str) -> wire.Job:
    return wire.decode(job_id, redis_conn.hgetall(keys.job(job_id)), "default")


def test_a_taken_in_job_is_in_exactly_one_place_and_runs_as_ours(intake, redis_conn, worker):
    push(redis_conn, payload("PyEchoWorker", "hi", jid="a1b2c3"))

    assert intake.take_in() == 1
    assert intake.take_in() == 0

    assert places(redis_conn, "a1b2c3") == ["rq:queue:default"]
    job = our_job(redis_conn, "a1b2c3")
    assert (job.worker, job.args, job.attempt) == ("PyEchoWorker", ["hi"], 0)
    fields = redis_conn.hgetall(keys.job("a1b2c3"))
    assert fields[b"description"] == b'PyEchoWorker("hi")'
    assert fields[b"simbi_source"] == b"sidekiq"

    worker.process(worker.fetcher.fetch())
    assert status(redis_conn, "a1b2c3") == "finished"
    assert redis_conn.hget(keys.job("a1b2c3"), "result") == b'"hi"'


def test_two_take_ins_of_the_same_payloads_make_one_job_each(intake, redis_conn):
    push(redis_conn, *[payload("PyEchoWorker", n) for n in range(3)])
    read = redis_conn.lrange("queue:default", 0, -1)
    now = time.time()
    first = [intake.converter.convert(raw, now, LIST) for raw in read]
    second = [intake.converter.convert(raw, now, LIST) for raw in read]

    taken = intake.apply("queue:default", LIST, first)
    again = intake.apply("queue:default", LIST, second)

    assert all(taken) and again == [None, None, None]
    assert sorted(redis_conn.lrange(keys.queue("default"), 0, -1)) == sorted(
        job_id.encode() for job_id in taken
    )
    assert redis_conn.llen("queue:default") == 0


def test_malformed_payloads_go_dead_alone_and_the_rest_flow_in_order(intake, redis_conn, loaded):
    good = [
        payload("PyEchoWorker", "first", jid="good1"),
        payload("PyEchoWorker", "2", jid="good2"),
    ]
    broken = [b"not json {", json.dumps({"args": [1], "jid": "noclass"}).encode()]
    broken.append(payload("PyEchoWorker", jid="notalist", args="x"))
    deep = json.loads("[" * (wire.MAX_DEPTH + 1) + "]" * (wire.MAX_DEPTH + 1))
    broken.append(payload("PyEchoWorker", deep, jid="toodeep"))  # would kill a Ruby child
    push(redis_conn, good[0], *broken, good[1])  # LPUSH: good[0] is the oldest

    intake.take_in()

    assert redis_conn.lrange(keys.queue("default"), 0, -1) == [b"good1", b"good2"]
    assert redis_conn.llen("queue:default") == 0
    errors = sorted(entry.error for entry in DeadSet(redis_conn, loaded).list())
    assert len(errors) == 4
    assert errors[0].startswith("MalformedSidekiqJobError: PyEchoWorker: args is a str, not a")
    assert errors[1] == (
        "MalformedSidekiqJobError: PyEchoWorker: args[0] is nested more than 32 levels deep"
    )
    assert errors[2].startswith("MalformedSidekiqJobError: the payload has no class name")
    assert errors[3].startswith("MalformedSidekiqJobError: the payload is not JSON")


def test_a_payload_that_is_not_json_is_shown_as_it_came_in_failed_show(
    intake, redis_conn, worker_env
):
    push(redis_conn, b"not json {")
    intake.take_in()
    dead_id = redis_conn.zrange(keys.failed("default"), 0, -1)[0].decode()

    shown = run_cli(worker_env, "failed", "show", dead_id, "--json")

    assert shown.returncode == 0, shown.stderr
    body = json.loads(shown.stdout)
    assert body["payload"] == "not json {"
    assert body["error"].startswith("MalformedSidekiqJobError: the payload is not JSON")


def test_an_unknown_class_goes_straight_to_the_dead_set_named(intake, redis_conn, loaded):
    push(redis_conn, payload("FooWorker", 1, jid="foo1", queue="mailers"), queue="mailers")

    intake.take_in()

    assert places(redis_conn, "foo1") == ["rq:failed:default"]
    [entry] = DeadSet(redis_conn, loaded).list()
    assert (entry.id, entry.worker, entry.attempts) == ("foo1", "FooWorker", 0)
    assert entry.error.startswith(
        "UnknownWorkerError: Sidekiq job class FooWorker is not in queues.yaml "
        "(jid foo1, Sidekiq queue mailers)"
    )


def test_a_jid_that_already_names_a_job_gets_a_fresh_id(intake, redis_conn, client):
    ours = client.perform_async("PyEchoWorker", "ours")
    push(redis_conn, payload("PyEchoWorker", "theirs", jid=ours))

    intake.take_in()

    queued = [raw.decode() for raw in redis_conn.lrange(keys.queue("default"), 0, -1)]
    assert queued[0] == ours and len(queued) == 2
    assert our_job(redis_conn, ours).args == ["ours"]
    assert our_job(redis_conn, queued[1]).args == ["theirs"]


def test_the_queue_is_the_workers_own_and_secret_args_are_redacted(intake, redis_conn):
    push(redis_conn, payload("MixpanelTrackWorker", "7", "Signed Up", {}, jid="mix1"))
    push(redis_conn, payload("SocialFriendsWorker", 7, "facebook", "tok-SECRET", jid="soc1"))

    intake.take_in()

    assert places(redis_conn, "mix1") == ["rq:queue:mixpanel"]
    assert redis_conn.hget(keys.job("mix1"), "simbi_sidekiq_queue") == b"default"
    description = redis_conn.hget(keys.job("soc1"), "description").decode()
    assert description == 'SocialFriendsWorker(7, "facebook", "[redacted]")'
    assert our_job(redis_conn, "soc1").args[2] == "tok-SECRET"  # the worker still needs it


def test_schedule_and_retry_entries_are_taken_in_only_when_due(intake, redis_conn):
    now = time.time()
    redis_conn.zadd("schedule", {payload("PyEchoWorker", "later", jid="later1"): now + 60})
    redis_conn.zadd("schedule", {payload("PyEchoWorker", "due", jid="due1"): now - 1})
    retried = payload("PyEchoWorker", "again", jid="retry1", retry_count=2, error_class="X")
    redis_conn.zadd("retry", {retried: now - 1})

    intake.take_in()

    assert places(redis_conn, "later1") == ["schedule"]
    assert places(redis_conn, "due1") == ["rq:queue:default"]
    assert places(redis_conn, "retry1") == ["rq:queue:default"]
    assert our_job(redis_conn, "retry1").attempt == 3  # Sidekiq ran it three times


def test_a_queued_payload_with_a_future_at_waits_in_our_scheduled_registry(intake, redis_conn):
    at = time.time() + 60
    push(redis_conn, payload("PyEchoWorker", "x", jid="at1", at=at))

    intake.take_in()

    assert places(redis_conn, "at1") == ["rq:scheduled:default"]
    assert redis_conn.zscore(keys.scheduled("default"), "at1") == pytest.approx(at)
    assert status(redis_conn, "at1") == "scheduled"


def test_an_unreachable_redis_is_logged_once_and_retried_with_backoff(loaded, caplog):
    intake = Intake(redis.Redis.from_url("redis://127.0.0.1:1/0"), loaded, Settings())
    passes = []
    take_in = intake.take_in
    intake.take_in = lambda: passes.append(1) or take_in()
    stopping = threading.Event()
    thread = threading.Thread(target=intake.run, args=(stopping,))

    thread.start()
    time.sleep(2)
    stopping.set()
    thread.join(timeout=10)

    warnings = [r for r in caplog.records if "cannot reach Redis" in r.getMessage()]
    assert len(warnings) == 1
    assert 2 <= len(passes) < 10  # backing off, not spinning


# Sidekiq's own client gem against a real supervisor.

SIDEKIQ_CLIENT = (
    'require "sidekiq"; Sidekiq.logger.level = Logger::WARN; '
    'Sidekiq.configure_client { |c| c.redis = { url: ENV["REDIS_URL"] } }; '
)


@pytest.fixture(scope="session")
def sidekiq_gem():
    """Locally it skips when the gem is missing; in CI (CI set) that is a failure, because
    .ci/run installs ruby-sidekiq."""
    found = subprocess.run(["ruby", "-e", 'require "sidekiq"'], capture_output=True)
    if found.returncode != 0:
        if os.environ.get("CI"):
            pytest.fail("the sidekiq gem is missing, but .ci/run should have installed it")
        pytest.skip("the sidekiq gem is not installed (apt-get install ruby-sidekiq)")


def sidekiq_ruby(redis_url: str, code: str) -> list[str]:
    """Run Ruby with Sidekiq's client configured; each line it prints (jids)."""
    done = subprocess.run(
        ["ruby", "-e", SIDEKIQ_CLIENT + code],
        env={**os.environ, "REDIS_URL": redis_url},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


def test_jobs_pushed_by_sidekiqs_client_run_in_all_three_runtimes(
    sidekiq_gem, worker_env, redis_conn, redis_url
):
    with supervisor(worker_env, free_port(), "--accept-sidekiq"):
        jids = sidekiq_ruby(
            redis_url,
            "%w[PyEchoWorker RbEchoWorker JsEchoWorker].each { |name| puts Sidekiq::Client.push("
            '"class" => name, "args" => ["hi from #{name}"], "queue" => "default") }',
        )

        for jid in jids:
            wait_for(lambda jid=jid: status(redis_conn, jid) == "finished", timeout=15)
    results = [json.loads(redis_conn.hget(keys.job(jid), "result")) for jid in jids]
    assert results == ["hi from PyEchoWorker", "hi from RbEchoWorker", "hi from JsEchoWorker"]
    assert redis_conn.llen("queue:default") == 0


def test_a_sidekiq_perform_in_job_runs_after_its_time_and_not_before(
    sidekiq_gem, worker_env, redis_conn, redis_url
):
    env = {**worker_env, "SIMBI_ACCEPT_SIDEKIQ": "1"}  # the setting instead of the flag
    with supervisor(env, free_port()):
        [jid] = sidekiq_ruby(
            redis_url,
            "class PyEchoWorker; include Sidekiq::Worker; end; "
            'puts PyEchoWorker.perform_in(3, "later")',
        )
        [(_member, at)] = redis_conn.zrange("schedule", 0, -1, withscores=True)

        time.sleep(1)
        if time.time() < at - 1:  # clearly before its time (a slow machine may be past it)
            assert redis_conn.exists(keys.job(jid)) == 0
            assert redis_conn.zcard("schedule") == 1
        wait_for(lambda: status(redis_conn, jid) == "finished", timeout=15)

    started_at = redis_conn.hget(keys.job(jid), "started_at").decode()
    assert datetime.fromisoformat(started_at.replace("Z", "+00:00")).timestamp() >= at
    assert redis_conn.hget(keys.job(jid), "result") == b'"later"'


def test_a_sidekiq_job_of_an_unknown_class_is_listed_dead_with_its_class(
    sidekiq_gem, worker_env, redis_conn, redis_url
):
    with supervisor(worker_env, free_port(), "--accept-sidekiq"):
        [jid] = sidekiq_ruby(
            redis_url, 'puts Sidekiq::Client.push("class" => "FooWorker", "args" => [1, "two"])'
        )
        wait_for(lambda: redis_conn.zscore(keys.failed("default"), jid), timeout=10)

    listed = run_cli(worker_env, "failed", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    [entry] = json.loads(listed.stdout)["jobs"]
    assert (entry["id"], entry["worker"]) == (jid, "FooWorker")
    assert "Sidekiq job class FooWorker is not in queues.yaml" in entry["error"]
