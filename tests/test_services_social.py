"""The social service against local stand-ins for the Facebook Graph API and the Google
People API (pytest-httpserver): pagination, an expired token, rate limits, and a token that
never leaves the configured host nor reaches a message or a log line."""

from __future__ import annotations

import logging

import pytest
from werkzeug import Response

from simbi_workers.config import Settings
from simbi_workers.errors import JobError
from simbi_workers.services.provider_errors import (
    ProviderRejected,
    ProviderUnavailable,
    RateLimited,
)
from simbi_workers.services.social import InvalidToken, Social

TOKEN = "EAAGm0PX4ZCpsBAKZCs3cr3tT0k3n"
FACEBOOK_EXPIRED = {
    "error": {
        "message": f"Error validating access token: Session has expired; token {TOKEN}",
        "type": "OAuthException",
        "code": 190,
        "error_subcode": 463,
        "fbtrace_id": "A1b2C3",
    }
}
GOOGLE_EXPIRED = {
    "error": {
        "code": 401,
        "message": "Request had invalid authentication credentials.",
        "status": "UNAUTHENTICATED",
    }
}


@pytest.fixture
def social(httpserver, monkeypatch, settings) -> Social:
    base = httpserver.url_for("").rstrip("/")
    monkeypatch.setenv("SOCIAL_FACEBOOK_API_URL", f"{base}/v19.0")
    monkeypatch.setenv("SOCIAL_GOOGLE_API_URL", base)
    return Social(Settings())


def facebook_page(httpserver, path: str, query: dict, friends: list, next_url: str = ""):
    body = {"data": [{"id": uid, "name": name} for uid, name in friends], "paging": {}}
    if next_url:
        body["paging"]["next"] = next_url
    httpserver.expect_ordered_request(path, method="GET", query_string=query).respond_with_json(
        body
    )


def google_person(contact: str, name: str, account: str | None = None) -> dict:
    sources = [{"type": "CONTACT", "id": contact}]
    if account:
        sources.append({"type": "PROFILE", "id": account})
    return {
        "resourceName": f"people/{contact}",
        "metadata": {"sources": sources},
        "names": [{"displayName": name, "metadata": {"primary": True}}],
    }


def assert_no_token(error: BaseException) -> None:
    assert TOKEN not in str(error)
    assert TOKEN not in repr(error.args)
    # Nothing chained: a printed traceback shows no requests frames or URLs.
    assert error.__cause__ is None
    assert error.__context__ is None or error.__suppress_context__


def test_facebook_friends_follow_paging_next_with_the_token_sent_again(httpserver, social):
    first = {"access_token": TOKEN, "fields": "id,name", "limit": "100"}
    # Facebook's next URL names the user's id and carries the token itself.
    next_url = httpserver.url_for(
        f"/v19.0/1001/friends?access_token={TOKEN}&fields=id,name&limit=100&after=QVFIUm"
    )
    facebook_page(
        httpserver,
        "/v19.0/me/friends",
        first,
        [("11", "Ada Lovelace"), ("12", "Alan Turing")],
        next_url,
    )
    second = {"access_token": TOKEN, "fields": "id,name", "limit": "100", "after": "QVFIUm"}
    facebook_page(httpserver, "/v19.0/1001/friends", second, [("13", "Grace Hopper")])

    friends = social.friends("facebook", TOKEN)

    assert friends == [
        {"uid": "11", "name": "Ada Lovelace"},
        {"uid": "12", "name": "Alan Turing"},
        {"uid": "13", "name": "Grace Hopper"},
    ]
    httpserver.check_assertions()


def test_google_connections_follow_next_page_token_with_a_bearer_header(httpserver, social):
    path = "/v1/people/me/connections"
    headers = {"Authorization": f"Bearer {TOKEN}"}
    httpserver.expect_ordered_request(
        path, query_string={"personFields": "names", "pageSize": "100"}, headers=headers
    ).respond_with_json(
        {
            "connections": [
                google_person("c1", "Ada Lovelace", account="108000000000000000001"),
                google_person("c2", "Alan Turing"),
            ],
            "nextPageToken": "page-2",
            "totalPeople": 3,
        }
    )
    httpserver.expect_ordered_request(
        path,
        query_string={"personFields": "names", "pageSize": "100", "pageToken": "page-2"},
        headers=headers,
    ).respond_with_json({"connections": [google_person("c3", "Grace Hopper")]})

    friends = social.friends("google", TOKEN)

    assert friends == [
        {"uid": "108000000000000000001", "name": "Ada Lovelace"},
        {"uid": "c2", "name": "Alan Turing"},
        {"uid": "c3", "name": "Grace Hopper"},
    ]
    httpserver.check_assertions()


def test_an_expired_facebook_token_is_permanent_and_named_without_the_token(httpserver, social):
    httpserver.expect_request("/v19.0/me/friends").respond_with_json(FACEBOOK_EXPIRED, status=400)

    with pytest.raises(InvalidToken) as caught:
        social.friends("facebook", TOKEN)

    assert caught.value.retryable is False
    assert "status 400" in str(caught.value) and "connect facebook again" in str(caught.value)
    assert "[redacted]" in str(caught.value)  # the body quoted the token; it is blanked
    assert_no_token(caught.value)


def test_an_expired_google_token_is_permanent_and_named_without_the_token(httpserver, social):
    httpserver.expect_request("/v1/people/me/connections").respond_with_json(
        GOOGLE_EXPIRED, status=401
    )

    with pytest.raises(InvalidToken) as caught:
        social.friends("google", TOKEN)

    assert caught.value.retryable is False
    assert "UNAUTHENTICATED" in str(caught.value)
    assert_no_token(caught.value)


def test_another_facebook_400_is_rejected_not_an_invalid_token(httpserver, social):
    body = {"error": {"message": "Unsupported get request", "type": "GraphMethodException"}}
    body["error"]["code"] = 100
    httpserver.expect_request("/v19.0/me/friends").respond_with_json(body, status=400)

    with pytest.raises(ProviderRejected, match="status 400") as caught:
        social.friends("facebook", TOKEN)

    assert caught.value.retryable is False and not isinstance(caught.value, InvalidToken)


@pytest.mark.parametrize("provider", ["facebook", "google"])
def test_a_429_retries_after_what_retry_after_says(httpserver, social, provider):
    httpserver.expect_request(
        "/v19.0/me/friends" if provider == "facebook" else "/v1/people/me/connections"
    ).respond_with_response(Response("slow down", status=429, headers={"Retry-After": "120"}))

    with pytest.raises(RateLimited) as caught:
        social.friends(provider, TOKEN)

    assert caught.value.retryable is True
    assert caught.value.retry_after_seconds == 120.0
    assert_no_token(caught.value)


def test_a_5xx_is_retryable(httpserver, social):
    httpserver.expect_request("/v1/people/me/connections").respond_with_data("oops", status=503)

    with pytest.raises(ProviderUnavailable, match="status 503") as caught:
        social.friends("google", TOKEN)

    assert caught.value.retryable is True


def test_a_paging_next_on_another_host_is_refused_and_gets_no_request(httpserver, social):
    # The same server under another name: a request there would be logged, so none must be.
    elsewhere = httpserver.url_for("/v19.0/1001/friends").replace("localhost", "127.0.0.1")
    httpserver.expect_request("/v19.0/me/friends").respond_with_json(
        {"data": [{"id": "11", "name": "Ada"}], "paging": {"next": f"{elsewhere}?after=x"}}
    )

    with pytest.raises(ProviderRejected, match=r"points at http://127\.0\.0\.1") as caught:
        social.friends("facebook", TOKEN)

    assert len(httpserver.log) == 1
    assert_no_token(caught.value)


def test_an_unreachable_api_is_retryable_and_quotes_no_token(monkeypatch, settings):
    # A port nothing listens on: requests' error quotes the URL, query string and all.
    monkeypatch.setenv("SOCIAL_FACEBOOK_API_URL", "http://127.0.0.1:9")

    with pytest.raises(ProviderUnavailable, match="could not reach the facebook API") as caught:
        Social(Settings()).friends("facebook", TOKEN)

    assert "access_token=[redacted]" in str(caught.value)
    assert_no_token(caught.value)


def test_the_page_cap_stops_an_api_that_pages_forever(httpserver, monkeypatch, settings, caplog):
    monkeypatch.setenv("SOCIAL_GOOGLE_API_URL", httpserver.url_for("").rstrip("/"))
    httpserver.expect_request("/v1/people/me/connections").respond_with_json(
        {"connections": [google_person("c1", "Ada")], "nextPageToken": "again"}
    )

    friends = Social(Settings(), max_pages=3).friends("google", TOKEN)

    assert len(friends) == 3 and len(httpserver.log) == 3
    assert "stopped reading the google friend list after 3 pages" in caplog.text


@pytest.mark.parametrize(
    ("provider", "token", "expected"),
    [
        ("myspace", TOKEN, "provider must be one of facebook, google, got 'myspace'"),
        ("google", "", "access_token must be a token, got an empty string"),
        ("google", 42, "access_token must be a token, got a int"),
        ("google", f"{TOKEN} x", "access_token must not contain whitespace"),
    ],
)
def test_bad_parameters_are_permanent_and_never_echo_the_token(social, provider, token, expected):
    with pytest.raises(JobError) as caught:
        social.friends(provider, token)

    assert caught.value.retryable is False
    assert expected in str(caught.value)
    assert TOKEN not in str(caught.value)


def test_an_empty_base_url_switches_the_provider_off_with_a_clear_error(monkeypatch, settings):
    monkeypatch.setenv("SOCIAL_FACEBOOK_API_URL", "")

    with pytest.raises(JobError, match="SOCIAL_FACEBOOK_API_URL is empty") as caught:
        Social(Settings()).friends("facebook", TOKEN)

    assert caught.value.retryable is False


def test_urllib3_request_lines_at_debug_show_no_token(httpserver, social, caplog):
    httpserver.expect_request("/v19.0/me/friends").respond_with_json({"data": []})

    with caplog.at_level(logging.DEBUG):
        assert social.friends("facebook", TOKEN) == []

    # Ours only: werkzeug, the stand-in Facebook, logs what it received.
    ours = "\n".join(r.getMessage() for r in caplog.records if r.name != "werkzeug")
    assert "GET /v19.0/me/friends?fields=id%2Cname&limit=100&access_token=[redacted]" in ours
    assert TOKEN not in ours
