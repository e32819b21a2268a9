"""Cron entries: one job per tick across hosts, one catch-up after downtime, next runs.

Each "host" is its own CronTicker and Client on the one test Redis; time is passed in.
"""

import logging
import threading
from datetime import UTC, datetime, timedelta, timezone

import pytest
import redis

from simbi_workers import catalog, keys, wire
from simbi_workers.client import Client
from simbi_workers.cron import (
    CLAIM_KEEP_SECONDS,
    CLAIM_LEASE_SECONDS,
    CRON_LAST,
    CronTicker,
    cron_claim,
    next_run,
)

NOON = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)

QUEUES_YAML = """\
queues:
  default: {priority: 5}
  critical: {priority: 10}
workers:
  PyNoopWorker: {runtime: python, args: [], cron: "*/5 * * * *"}
  JsNoopWorker: {runtime: node, args: [], queue: critical, cron: "0 3 * * *"}
  PyEchoWorker: {runtime: python, args: [value], cron: "0 3 29 2 *", cron_args: [weekly]}
  PySleepWorker: {runtime: python, args: [seconds]}
"""


@pytest.fixture
def cron_catalog(tmp_path):
    path = tmp_path / "queues.yaml"
    path.write_text(QUEUES_YAML)
    return catalog.load(path)


@pytest.fixture
def host(cron_catalog, redis_conn, settings):
    """Makes a new "host": a ticker with its own client, as each supervisor has."""

    def make(client_class=Client):
        client = client_class(connection=redis_conn, catalog=cron_catalog, settings=settings)
        return CronTicker(redis_conn, cron_catalog, client)

    return make


def queued(redis_conn, queue="default") -> list[str]:
    return [job_id.decode() for job_id in redis_conn.lrange(keys.queue(queue), 0, -1)]


def worker_of(redis_conn, job_id: str, queue="default") -> str:
    return wire.decode(job_id, redis_conn.hgetall(keys.job(job_id)), queue).worker


def at(minutes: float) -> datetime:
    return NOON + timedelta(minutes=minutes)


# One job per tick, however many hosts tick


def test_two_hosts_ticking_the_same_minute_enqueue_one_job(host, redis_conn):
    first, second = host(), host()

    fired = first.tick(at(0.2)) + second.tick(at(0.3))

    assert len(fired) == 1
    assert queued(redis_conn) == fired
    assert worker_of(redis_conn, fired[0]) == "PyNoopWorker"
    assert redis_conn.zscore(CRON_LAST, "PyNoopWorker") == at(0).timestamp()


def test_a_host_ticking_while_another_holds_the_claim_enqueues_nothing(host, redis_conn):
    second = host()
    during_enqueue = []

    class SlowClient(Client):
        """Host one's client: host two ticks between host one's claim and its enqueue."""

        def perform_async(self, worker, *args):
            during_enqueue.extend(second.tick(at(0.5)))
            return super().perform_async(worker, *args)

    fired = host(SlowClient).tick(at(0.5))

    assert during_enqueue == []
    assert len(fired) == 1 and queued(redis_conn) == fired
    assert second.tick(at(0.6)) == []
    assert queued(redis_conn) == fired


def test_many_hosts_racing_on_one_tick_enqueue_one_job(host, redis_conn):
    tickers = [host() for _ in range(8)]
    start = threading.Barrier(len(tickers))
    fired: list[str] = []

    def run(ticker):
        start.wait()
        fired.extend(ticker.tick(at(0.1)))

    threads = [threading.Thread(target=run, args=(ticker,)) for ticker in tickers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)

    assert len(fired) == 1
    assert queued(redis_conn) == fired


def test_ticking_again_in_the_same_interval_enqueues_nothing(host, redis_conn):
    first = host()
    fired = first.tick(at(0))

    assert first.tick(at(1)) == []
    assert first.tick(at(4.99)) == []
    # A host that never saw the tick (a restarted supervisor) reads it from Redis.
    assert host().tick(at(4.5)) == []
    assert queued(redis_conn) == fired


def test_the_next_tick_fires_again(host, redis_conn):
    first, second = host(), host()
    fired = first.tick(at(0))

    fired += second.tick(at(5)) + first.tick(at(5.1))

    assert len(fired) == 2
    assert queued(redis_conn) == fired
    assert redis_conn.zscore(CRON_LAST, "PyNoopWorker") == at(5).timestamp()


def test_a_fired_claim_is_kept_for_a_day(host, redis_conn):
    host().tick(at(0))

    ttl = redis_conn.ttl(cron_claim("PyNoopWorker", int(at(0).timestamp())))
    assert CLAIM_LEASE_SECONDS < ttl <= CLAIM_KEEP_SECONDS


# Downtime: one catch-up, no more


def test_after_three_missed_ticks_only_the_latest_fires(host, redis_conn, caplog):
    host().tick(at(0))

    # Every host down for 12:05, 12:10 and 12:15; a new supervisor starts at 12:16.
    restarted = host()
    with caplog.at_level(logging.INFO, logger="simbi_workers.cron"):
        fired = restarted.tick(at(16))
    again = restarted.tick(at(16.5)) + host().tick(at(19))

    assert len(fired) == 1 and again == []
    assert len(queued(redis_conn)) == 2 and queued(redis_conn)[1] == fired[0]
    assert redis_conn.zscore(CRON_LAST, "PyNoopWorker") == at(15).timestamp()
    assert redis_conn.exists(cron_claim("PyNoopWorker", int(at(15).timestamp())))
    for missed in (5, 10):
        assert not redis_conn.exists(cron_claim("PyNoopWorker", int(at(missed).timestamp())))
    assert (
        "cron PyNoopWorker: missed the ticks after 2026-03-02 12:00 UTC up to "
        "2026-03-02 12:10 UTC; fired only 2026-03-02 12:15 UTC"
    ) in caplog.text


def test_a_daily_entry_down_over_its_tick_catches_up_once(host, redis_conn):
    three_am = datetime(2026, 3, 2, 3, 0, tzinfo=UTC)
    host().tick(three_am)

    # Down from 02:00 on the 3rd to 09:00 on the 5th: the 3rd's and 4th's runs missed.
    fired = host().tick(datetime(2026, 3, 5, 9, 0, tzinfo=UTC))

    daily = queued(redis_conn, "critical")
    assert len(daily) == 2 and daily[1] in fired
    assert worker_of(redis_conn, daily[1], "critical") == "JsNoopWorker"
    assert len(fired) == 2  # and the every-five-minutes entry's one catch-up
    assert redis_conn.zscore(CRON_LAST, "JsNoopWorker") == three_am.timestamp() + 3 * 86_400


# A new entry


def test_a_new_entry_waits_for_its_next_tick_when_the_last_one_is_old(host, redis_conn):
    first = host()

    assert first.tick(at(3)) == []
    assert host().tick(at(4)) == []
    assert queued(redis_conn) == []
    fired = first.tick(at(5))
    assert len(fired) == 1 and queued(redis_conn) == fired


def test_a_new_entry_fires_a_tick_less_than_a_minute_old(host, redis_conn):
    assert len(host().tick(at(0.9))) == 1


# Failures


def test_an_enqueue_failure_releases_the_claim_so_another_host_fires_it(host, redis_conn):
    class DownClient(Client):
        def perform_async(self, worker, *args):
            raise redis.ConnectionError("Error 111 connecting: Connection refused.")

    failing = host(DownClient)

    assert failing.tick(at(0)) == []
    assert not redis_conn.exists(cron_claim("PyNoopWorker", int(at(0).timestamp())))
    assert redis_conn.zscore(CRON_LAST, "PyNoopWorker") is None

    fired = host().tick(at(0.5))
    assert len(fired) == 1
    assert queued(redis_conn) == fired
    assert worker_of(redis_conn, fired[0]) == "PyNoopWorker"


def test_a_failed_host_retries_the_tick_itself_on_its_next_pass(host, redis_conn):
    outcomes = [redis.TimeoutError("Timeout reading from socket"), None]

    class FlakyClient(Client):
        def perform_async(self, worker, *args):
            error = outcomes.pop(0)
            if error is not None:
                raise error
            return super().perform_async(worker, *args)

    ticker = host(FlakyClient)

    assert ticker.tick(at(0)) == []
    fired = ticker.tick(at(0.1))
    assert len(fired) == 1 and queued(redis_conn) == fired


def test_a_host_that_dies_after_claiming_leaves_only_a_short_lease(host, redis_conn):
    class DyingClient(Client):
        def perform_async(self, worker, *args):
            raise SystemExit(1)  # a crash: nothing runs after the claim

    with pytest.raises(SystemExit):
        host(DyingClient).tick(at(0))

    claim = cron_claim("PyNoopWorker", int(at(0).timestamp()))
    assert 0 < redis_conn.ttl(claim) <= CLAIM_LEASE_SECONDS
    assert host().tick(at(0.2)) == []  # the lease still holds

    redis_conn.delete(claim)  # the lease expiring, without waiting 30 s
    fired = host().tick(at(0.4))
    assert len(fired) == 1 and queued(redis_conn) == fired


# Entries that cannot run


def test_an_entry_whose_worker_takes_arguments_runs_with_its_cron_args(
    cron_catalog, host, redis_conn
):
    three = datetime(2028, 2, 29, 3, 0, tzinfo=UTC)  # its only ticks are on 29 February

    fired = host().tick(three + timedelta(seconds=5))

    echo = [j for j in fired if worker_of(redis_conn, j) == "PyEchoWorker"]
    assert len(echo) == 1
    job = wire.decode(echo[0], redis_conn.hgetall(keys.job(echo[0])), "default")
    assert job.args == ["weekly"]
    assert next_run(cron_catalog.worker("PyEchoWorker"), three) == three.replace(year=2032)


def test_a_naive_datetime_is_refused(host):
    with pytest.raises(ValueError, match="timezone-aware"):
        host().tick(datetime(2026, 3, 2, 12, 0))


# next_run


@pytest.mark.parametrize(
    ("worker", "now", "expected"),
    [
        ("PyNoopWorker", at(3.2), at(5)),
        ("PyNoopWorker", at(5), at(10)),
        (
            "PyNoopWorker",
            datetime(2026, 3, 2, 23, 58, tzinfo=UTC),
            datetime(2026, 3, 3, tzinfo=UTC),
        ),
        ("JsNoopWorker", at(0), datetime(2026, 3, 3, 3, 0, tzinfo=UTC)),
        # 04:30 in UTC+02:00 is 02:30 UTC: the daily 03:00 UTC run is half an hour away.
        (
            "JsNoopWorker",
            datetime(2026, 3, 2, 4, 30, tzinfo=timezone(timedelta(hours=2))),
            datetime(2026, 3, 2, 3, 0, tzinfo=UTC),
        ),
    ],
)
def test_next_run_is_the_first_tick_after_now_in_utc(cron_catalog, worker, now, expected):
    upcoming = next_run(cron_catalog.worker(worker), now)

    assert upcoming == expected
    assert upcoming.utcoffset() == timedelta(0)


def test_next_run_is_none_without_cron(cron_catalog):
    assert next_run(cron_catalog.worker("PySleepWorker"), at(0)) is None
