"""What a hostile review found, kept found: poison jobs, orphaned processes, bad settings,
secrets in error pages, partial records in Redis."""

import zlib

import pytest

from simbi_workers import catalog, keys, stats
from simbi_workers.client import Client
from simbi_workers.config import Settings, load
from simbi_workers.errors import ConfigError, JobInputError
from simbi_workers.recovery import Recovery
from simbi_workers.registration import Registration

GOOD_DATA = zlib.compress(b'["simbi_workers.jobs.PyEchoWorker", null, [1], {}]')
# 17 MB unpacked, 17 kB in Redis: past what any client may write (4 MiB by default).
HUGE_DATA = zlib.compress(
    b'["simbi_workers.jobs.PyEchoWorker", null, ["' + b"x" * 17_000_000 + b'"], {}]'
)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"simbi_attempt": "abc"}, "field simbi_attempt is b'abc', not a number"),
        ({"timeout": "soon"}, "field timeout is b'soon', not a number"),
        ({"simbi_attempt": "-3"}, "field simbi_attempt is negative (-3)"),
        ({"data": HUGE_DATA}, "its payload unpacks to more than 16,777,216 bytes"),
    ],
)
def test_a_job_hash_with_a_bad_field_goes_to_the_dead_set_alone(
    worker, redis_conn, fields, message
):
    redis_conn.hset(keys.job("poison"), mapping={"data": GOOD_DATA, **fields})
    redis_conn.rpush(keys.queue("default"), "poison")
    good = Client(connection=redis_conn).perform_async("PyEchoWorker", "fine")

    for _ in range(2):
        worker.process(worker.fetcher.fetch())

    assert redis_conn.hget(keys.job("poison"), "status") == b"failed"
    assert message in redis_conn.hget(keys.job("poison"), "simbi_error").decode()
    assert redis_conn.hget(keys.job(good), "status") == b"finished"


def test_a_lone_surrogate_is_refused_at_enqueue_with_its_place(worker_env, redis_conn):
    with pytest.raises(JobInputError, match=r"args\[2\] contains a lone surrogate \(U\+D800\)"):
        Client(connection=redis_conn).perform_async(
            "SlackNotifierWorker", "signups", None, "hi \ud800"
        )


def test_jobs_of_a_process_that_lost_its_heartbeat_go_back_to_their_queues(redis_conn):
    redis_conn.sadd(keys.PROCESSES, "gone")
    redis_conn.hset(keys.job("j1"), mapping={"origin": "slack", "simbi_queue": "slack"})
    redis_conn.rpush(keys.processing("gone"), "j1")
    redis_conn.zadd(keys.started("slack"), {"j1:gone": 1})
    redis_conn.sadd(keys.PROCESSES, "alive")
    redis_conn.hset(keys.process("alive"), "host", "h")
    redis_conn.rpush(keys.processing("alive"), "j2")

    Recovery(redis_conn).scan_orphans()

    assert redis_conn.lrange(keys.queue("slack"), 0, -1) == [b"j1"]
    assert redis_conn.hget(keys.job("j1"), "status") == b"queued"
    assert redis_conn.zcard(keys.started("slack")) == 0
    assert redis_conn.smembers(keys.PROCESSES) == {b"alive"}
    assert redis_conn.lrange(keys.processing("alive"), 0, -1) == [b"j2"]


def test_a_heartbeat_restores_a_process_hash_that_expired(redis_conn):
    registration = Registration(redis_conn, "p1", ["default"])
    registration.register()
    redis_conn.delete(keys.process("p1"))

    registration.heartbeat(None, {"ruby": True})

    fields = redis_conn.hgetall(keys.process("p1"))
    assert fields[b"host"] == registration.hostname.encode()
    assert fields[b"children"] == b"ruby=up"


def test_stats_survive_a_partial_process_hash(worker_env, redis_conn):
    redis_conn.sadd(keys.PROCESSES, "half")
    redis_conn.hset(keys.process("half"), mapping={"heartbeat": "x", "job": ""})

    numbers = stats.collect(redis_conn, catalog.load(Settings().queues_file))

    assert numbers["processes"]["unknown"][0]["id"] == "half"


def test_a_bad_environment_value_names_the_variable_and_hides_the_value(monkeypatch):
    monkeypatch.setenv("SLACK_WEBHOOKS", '["http://127.0.0.1:9/secret-token-XYZ"]')

    with pytest.raises(ConfigError) as error:
        load()

    assert str(error.value).startswith("environment variable SLACK_WEBHOOKS: ")
    assert "secret-token-XYZ" not in str(error.value)


def test_a_bad_log_level_is_refused(monkeypatch):
    monkeypatch.setenv("SIMBI_LOG_LEVEL", "LOUD")

    with pytest.raises(ConfigError, match=r"SIMBI_LOG_LEVEL: .*must be DEBUG, INFO"):
        load()


def test_slack_error_pages_that_echo_the_webhook_path_are_redacted(
    settings, httpserver, monkeypatch
):
    import json

    from simbi_workers.errors import JobError
    from simbi_workers.services.slack import Slack

    url = httpserver.url_for("/services/T0/B0/secret-path")
    monkeypatch.setenv("SLACK_WEBHOOKS", json.dumps({"payments": url}))
    httpserver.expect_request("/services/T0/B0/secret-path").respond_with_data(
        "Cannot POST /services/T0/B0/secret-path", status=500
    )

    with pytest.raises(JobError) as error:
        Slack(Settings()).post("payments", "paid")

    assert "secret-path" not in str(error.value)
    assert "<webhook URL>" in str(error.value)


@pytest.mark.parametrize(
    ("queues_yaml", "message"),
    [
        (
            "queues:\n  'mix,panel': {priority: 3}\nworkers: {}\n",
            "queue 'mix,panel': use letters, digits",
        ),
        (
            "queues:\n  default: {priority: 5}\nworkers:\n  W: {runtime: node, args: [], "
            "cron: '* * * * * *'}\n",
            "is not a five-field cron expression",
        ),
    ],
)
def test_catalogue_names_that_would_break_later_are_refused_now(tmp_path, queues_yaml, message):
    path = tmp_path / "queues.yaml"
    path.write_text(queues_yaml)

    with pytest.raises(ConfigError, match=message):
        catalog.load(path)


@pytest.mark.parametrize(
    ("name", "value"),
    [("SIMBI_MAX_PAYLOAD_BYTES", "0"), ("SIMBI_RESULT_TTL", "-5"), ("SIMBI_FAILURE_TTL", "0")],
)
def test_limits_that_would_refuse_every_job_or_drop_dead_ones_are_refused(monkeypatch, name, value):
    monkeypatch.setenv(name, value)

    with pytest.raises(ConfigError, match=f"environment variable {name}: "):
        load()
