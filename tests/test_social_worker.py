"""SocialFriendsWorker through the real Node child and the real social service, against
local stand-ins for Facebook and Google (pytest-httpserver), on SQLite and PostgreSQL: two
pages of friends stored and linked, and an expired token that leaves the job dead with the
token nowhere an operator looks (job hash, dead set, logs, /stats)."""

from __future__ import annotations

import base64
import json
import logging
import zlib

import pytest
from sqlalchemy import select

from simbi_workers import keys, stats
from simbi_workers.store import schema
from tests import provider_fixtures
from tests.app_records import AppRecords
from tests.harness import run_cli
from tests.provider_fixtures import perform, result_of

make_worker = provider_fixtures.make_worker

TOKEN = "EAAGm0PX4ZCpsBAKZCs3cr3tT0k3n"
FRIENDS_PATH = {"facebook": "/v19.0/me/friends", "google": "/v1/people/me/connections"}


@pytest.fixture
def social_env(httpserver, monkeypatch, database_url):
    base = httpserver.url_for("").rstrip("/")
    monkeypatch.setenv("SOCIAL_FACEBOOK_API_URL", f"{base}/v19.0")
    monkeypatch.setenv("SOCIAL_GOOGLE_API_URL", base)
    monkeypatch.setenv("DATABASE_URL", database_url)


def serve_two_facebook_pages(httpserver) -> None:
    after = httpserver.url_for(f"/v19.0/1001/friends?access_token={TOKEN}&limit=100&after=Q2")
    httpserver.expect_ordered_request(FRIENDS_PATH["facebook"]).respond_with_json(
        {"data": [{"id": "11", "name": "Ada Lovelace"}], "paging": {"next": after}}
    )
    httpserver.expect_ordered_request(
        "/v19.0/1001/friends", query_string={"access_token": TOKEN, "limit": "100", "after": "Q2"}
    ).respond_with_json({"data": [{"id": "12", "name": "Alan Turing"}], "paging": {}})


def serve_two_google_pages(httpserver) -> None:
    def person(uid: str, name: str) -> dict:
        return {"resourceName": f"people/{uid}", "names": [{"displayName": name}]}

    httpserver.expect_ordered_request(FRIENDS_PATH["google"]).respond_with_json(
        {"connections": [person("11", "Ada Lovelace")], "nextPageToken": "p2"}
    )
    httpserver.expect_ordered_request(
        FRIENDS_PATH["google"],
        query_string={"personFields": "names", "pageSize": "100", "pageToken": "p2"},
    ).respond_with_json({"connections": [person("12", "Alan Turing")]})


def connections(process, user_id: int) -> list[tuple]:
    table = schema.social_connections
    query = (
        select(table.c.provider, table.c.friend_uid, table.c.friend_name, table.c.friend_user_id)
        .where(table.c.user_id == user_id)
        .order_by(table.c.friend_uid)
    )
    with process.services.db.engine.connect() as conn:
        return [tuple(row) for row in conn.execute(query)]


@pytest.mark.parametrize("provider", ["facebook", "google"])
def test_two_pages_of_friends_are_stored_and_the_one_who_is_a_user_linked(
    make_worker, httpserver, social_env, provider
):
    (serve_two_facebook_pages if provider == "facebook" else serve_two_google_pages)(httpserver)
    process = make_worker()
    records = AppRecords(process.services.db.engine)
    user = records.user("Grace")
    alan = records.user("Alan")
    records.insert(schema.social_accounts, user_id=alan, provider=provider, provider_uid="12")

    fields = perform(process, "SocialFriendsWorker", user, provider, TOKEN)

    assert result_of(fields) == {"provider": provider, "friends": 2, "linked": 1}
    assert connections(process, user) == [
        (provider, "11", "Ada Lovelace", None),
        (provider, "12", "Alan Turing", alan),
    ]
    assert fields["description"].decode() == (
        f'SocialFriendsWorker({user}, "{provider}", "[redacted]")'
    )
    httpserver.check_assertions()


def test_a_second_run_updates_the_same_rows_and_links_a_friend_who_joined(
    make_worker, httpserver, social_env
):
    process = make_worker()
    records = AppRecords(process.services.db.engine)
    user = records.user("Grace")
    serve_two_facebook_pages(httpserver)
    perform(process, "SocialFriendsWorker", user, "facebook", TOKEN)
    ada = records.user("Ada")
    records.insert(schema.social_accounts, user_id=ada, provider="facebook", provider_uid="11")
    httpserver.clear()
    serve_two_facebook_pages(httpserver)

    fields = perform(process, "SocialFriendsWorker", user, "facebook", TOKEN)

    assert result_of(fields) == {"provider": "facebook", "friends": 2, "linked": 1}
    assert connections(process, user) == [
        ("facebook", "11", "Ada Lovelace", ada),
        ("facebook", "12", "Alan Turing", None),
    ]


def test_a_deleted_user_is_skipped_without_asking_facebook(make_worker, httpserver, social_env):
    process = make_worker()
    user = AppRecords(process.services.db.engine).user("Gone", deleted_at=None)
    process.services.db.execute(
        "UPDATE users SET deleted_at = CURRENT_TIMESTAMP WHERE id = :id", {"id": user}
    )

    fields = perform(process, "SocialFriendsWorker", user, "facebook", TOKEN)

    assert fields["status"] == b"finished"
    assert fields["simbi_skipped"].decode() == f"user {user} is deleted"
    assert httpserver.log == []


@pytest.mark.parametrize("provider", ["facebook", "google"])
def test_an_expired_token_is_dead_and_the_token_is_nowhere_an_operator_looks(
    make_worker, httpserver, social_env, worker_env, redis_conn, caplog, provider
):
    expired = {
        "facebook": (
            400,
            {
                "error": {
                    "message": f"Invalid OAuth access token {TOKEN}.",
                    "type": "OAuthException",
                    "code": 190,
                }
            },
        ),
        "google": (
            401,
            {
                "error": {
                    "code": 401,
                    "status": "UNAUTHENTICATED",
                    "message": "Request had invalid authentication credentials.",
                }
            },
        ),
    }[provider]
    httpserver.expect_request(FRIENDS_PATH[provider]).respond_with_json(
        expired[1], status=expired[0]
    )
    process = make_worker()
    user = AppRecords(process.services.db.engine).user("Grace")

    with caplog.at_level(logging.DEBUG):
        fields = perform(process, "SocialFriendsWorker", user, provider, TOKEN)

    assert fields["status"] == b"failed"
    assert fields["simbi_error"].decode().startswith("InvalidToken: social: the ")
    assert fields["simbi_attempt"] == b"1"  # permanent: no retry
    job_id = fields["job_id"]
    listing = run_cli(worker_env, "failed", "list", "--json")
    shown = run_cli(worker_env, "failed", "show", job_id)
    shown_json = run_cli(worker_env, "failed", "show", "--json", job_id)
    assert listing.returncode == shown.returncode == shown_json.returncode == 0, shown.stderr
    assert [job["id"] for job in json.loads(listing.stdout)["jobs"]] == [job_id]
    assert json.loads(shown_json.stdout)["args"] == [user, provider, "[redacted]"]
    assert f'SocialFriendsWorker({user}, "{provider}", "[redacted]")' in shown.stdout
    logged = "\n".join(
        record.getMessage() for record in caplog.records if record.name != "werkzeug"
    )
    assert f"dead worker=SocialFriendsWorker job={job_id}" in logged

    # Everywhere but the payload (which the worker needs, zlib-compressed in `data`).
    places = {
        "job hash": [readable(v) for k, v in fields.items() if k not in ("data", "job_id")],
        "failed list": listing.stdout + listing.stderr,
        "failed show": shown.stdout + shown.stderr + shown_json.stdout,
        "log": logged,
        "/stats": json.dumps(stats.collect(redis_conn, process.catalog)),
        "redis": everything_in_redis(redis_conn, skip=keys.job(job_id)),
    }
    assert "InvalidToken: social: the" in places["redis"]  # exc_info, inflated, was read
    for place, content in places.items():
        assert TOKEN not in str(content), place


def everything_in_redis(connection, skip: str) -> str:
    """Every key's values as text, compressed ones (exc_info, RQ's results stream)
    inflated, for a search; `skip` (a job hash) is read without its payload."""
    texts = []
    for raw_key in connection.scan_iter():
        key = raw_key.decode()
        kind = connection.type(key).decode()
        if kind == "hash":
            values = connection.hgetall(key)
            if key == skip:
                values.pop(b"data")
            values = list(values.values())
        elif kind == "string":
            values = [connection.get(key)]
        elif kind == "list":
            values = connection.lrange(key, 0, -1)
        elif kind in ("set", "zset"):
            values = list(
                connection.smembers(key) if kind == "set" else connection.zrange(key, 0, -1)
            )
        else:
            values = [v for _id, entry in connection.xrange(key) for v in entry.values()]
        texts += [f"{key}: {readable(value)}" for value in values]
    return "\n".join(texts)


def readable(value: bytes) -> str:
    for inflate in (zlib.decompress, lambda raw: zlib.decompress(base64.b64decode(raw))):
        try:
            return inflate(value).decode("utf-8", "replace")
        except (zlib.error, ValueError):
            continue
    return value.decode("utf-8", "replace")
