"""The mixpanel service through the real mixpanel Consumer against a local HTTP server,
and its outbox on disk."""

from __future__ import annotations

import json
from urllib.parse import parse_qs

import pytest

from simbi_workers.config import Settings
from simbi_workers.errors import JobError, PermanentJobError
from simbi_workers.services import Services
from simbi_workers.services.mixpanel import Mixpanel

TOKEN = "mp-t0k3n-0f-the-pr0ject"
SIGNUP = {
    "distinct_id": 7,
    "event": "Signed Up",
    "properties": {"plan": "pro", "invited": True},
    "time": 1_780_000_000,
    "insert_id": "signup-7-job-3f2a",
}


@pytest.fixture
def mixpanel_live(settings, httpserver, monkeypatch) -> Mixpanel:
    """A Mixpanel service with a token, talking to the local server."""
    monkeypatch.setenv("MIXPANEL_TOKEN", TOKEN)
    monkeypatch.setenv("MIXPANEL_API_URL", httpserver.url_for("/"))
    return Mixpanel(Settings())


def sent_event(httpserver) -> tuple[dict, dict]:
    """The one request the server received: its form fields, and the decoded event.

    mixpanel 5.4.1 posts form-encoded fields: `data` (the event as plain JSON, not
    base64), `verbose=1` and `ip=0`.
    """
    assert len(httpserver.log) == 1
    request = httpserver.log[0][0]
    form = parse_qs(request.get_data(as_text=True))
    return form, json.loads(form["data"][0])


def test_track_with_a_token_posts_the_event_to_the_track_endpoint(mixpanel_live, httpserver):
    httpserver.expect_request("/track", method="POST").respond_with_json({"status": 1})

    result = mixpanel_live.track(**SIGNUP)

    assert result == {"delivered": "mixpanel"}
    form, event = sent_event(httpserver)
    assert form["verbose"] == ["1"]
    assert event["event"] == "Signed Up"
    properties = event["properties"]
    assert properties["distinct_id"] == "7"
    assert properties["time"] == 1_780_000_000
    assert properties["$insert_id"] == "signup-7-job-3f2a"
    assert properties["token"] == TOKEN
    assert properties["plan"] == "pro"
    assert properties["invited"] is True


def test_an_error_status_is_retryable_and_hides_the_token(mixpanel_live, httpserver):
    error = f"token {TOKEN} is not a valid project token"
    httpserver.expect_request("/track").respond_with_json({"status": 0, "error": error})

    with pytest.raises(JobError) as caught:
        mixpanel_live.track(**SIGNUP)

    message = str(caught.value)
    assert caught.value.retryable is True
    assert "mixpanel track failed" in message
    assert "is not a valid project token" in message
    assert TOKEN not in message


def test_a_server_error_page_is_retryable(mixpanel_live, httpserver):
    httpserver.expect_request("/track").respond_with_data("<html>502</html>", status=502)

    with pytest.raises(JobError) as caught:
        mixpanel_live.track(**SIGNUP)

    assert not isinstance(caught.value, PermanentJobError)
    assert "Cannot interpret Mixpanel server response" in str(caught.value)


def test_without_a_token_the_event_goes_to_the_outbox_with_every_field(settings):
    result = Mixpanel(settings).track(**SIGNUP)

    assert result == {"delivered": "outbox"}
    path = settings.var_dir / "outbox" / "mixpanel.jsonl"
    assert path.read_text(encoding="utf-8") == (
        '{"kind":"track","distinct_id":7,"event":"Signed Up",'
        '"properties":{"plan":"pro","invited":true},"time":1780000000,'
        '"insert_id":"signup-7-job-3f2a"}\n'
    )


@pytest.mark.parametrize(
    ("change", "complaint"),
    [
        ({"insert_id": "signup:7:job"}, "insert_id must be 1-36 letters"),
        ({"insert_id": "x" * 37}, "insert_id must be 1-36 letters"),
        ({"time": "yesterday"}, "time must be Unix seconds"),
        ({"event": ""}, "event must be a non-empty string"),
        ({"distinct_id": None}, "distinct_id must be a non-empty string or an integer"),
        ({"properties": ["plan"]}, "properties must be an object with string keys"),
        ({"properties": {"token": "other-project"}}, "properties may not set token"),
    ],
)
def test_bad_input_is_refused_before_anything_is_sent(mixpanel_live, httpserver, change, complaint):
    with pytest.raises(PermanentJobError, match=complaint):
        mixpanel_live.track(**{**SIGNUP, **change})

    assert httpserver.log == []


def test_a_child_reaches_track_through_a_host_call(settings, redis_conn):
    services = Services(settings, redis_conn)

    result = services.call("mixpanel", "track", dict(SIGNUP))

    assert result == {"delivered": "outbox"}
    line = (settings.var_dir / "outbox" / "mixpanel.jsonl").read_text(encoding="utf-8")
    assert json.loads(line)["insert_id"] == "signup-7-job-3f2a"


# People profiles: people_set and people_delete, to /engage

PROFILE = {"$email": "ada@example.org", "$first_name": "Ada", "tier": "gold", "strength": 320}


def sent_update(httpserver) -> dict:
    """The one people update the server received, decoded from its `data` field."""
    assert len(httpserver.log) == 1
    request = httpserver.log[0][0]
    assert request.path == "/engage"
    return json.loads(parse_qs(request.get_data(as_text=True))["data"][0])


def test_people_set_with_a_token_posts_the_profile_to_the_engage_endpoint(
    mixpanel_live, httpserver
):
    httpserver.expect_request("/engage", method="POST").respond_with_json({"status": 1})

    result = mixpanel_live.people_set(7, PROFILE)

    assert result == {"delivered": "mixpanel"}
    update = sent_update(httpserver)
    assert update["$token"] == TOKEN
    assert update["$distinct_id"] == "7"
    assert update["$set"] == PROFILE
    # A worker's sync is not the person being seen.
    assert update["$ignore_time"] is True


def test_people_delete_with_a_token_posts_a_delete_for_the_profile(mixpanel_live, httpserver):
    httpserver.expect_request("/engage", method="POST").respond_with_json({"status": 1})

    result = mixpanel_live.people_delete("7")

    assert result == {"delivered": "mixpanel"}
    update = sent_update(httpserver)
    assert update["$distinct_id"] == "7"
    assert update["$delete"] == ""
    assert "$set" not in update


def test_a_refused_people_update_is_retryable_and_hides_the_token(mixpanel_live, httpserver):
    error = f"token {TOKEN} is not a valid project token"
    httpserver.expect_request("/engage").respond_with_json({"status": 0, "error": error})

    with pytest.raises(JobError) as caught:
        mixpanel_live.people_delete("7")

    assert not isinstance(caught.value, PermanentJobError)
    assert "mixpanel people_delete failed" in str(caught.value)
    assert TOKEN not in str(caught.value)


def test_without_a_token_people_updates_go_to_the_outbox_naming_their_kind(settings):
    service = Mixpanel(settings)

    assert service.people_set("7", PROFILE) == {"delivered": "outbox"}
    assert service.people_delete("7") == {"delivered": "outbox"}

    lines = (settings.var_dir / "outbox" / "mixpanel.jsonl").read_text(encoding="utf-8")
    assert [json.loads(line) for line in lines.splitlines()] == [
        {"kind": "people_set", "distinct_id": "7", "properties": PROFILE},
        {"kind": "people_delete", "distinct_id": "7"},
    ]


@pytest.mark.parametrize(
    ("call", "complaint"),
    [
        (("people_set", {"distinct_id": "7", "properties": {}}), "must be a non-empty object"),
        (("people_set", {"distinct_id": "7", "properties": ["x"]}), "must be a non-empty object"),
        (("people_set", {"distinct_id": "7", "properties": {"": 1}}), "non-empty strings"),
        (("people_set", {"distinct_id": "", "properties": PROFILE}), "distinct_id must be"),
        (("people_delete", {"distinct_id": True}), "distinct_id must be"),
        (("people_delete", {"distinct_id": None}), "distinct_id must be"),
    ],
)
def test_bad_people_input_is_refused_before_anything_is_sent(
    mixpanel_live, httpserver, call, complaint
):
    method, params = call
    with pytest.raises(PermanentJobError, match=complaint):
        getattr(mixpanel_live, method)(**params)

    assert httpserver.log == []


def test_a_child_reaches_people_delete_with_the_user_id_as_a_string(settings, redis_conn):
    services = Services(settings, redis_conn)

    result = services.call("mixpanel", "people_delete", {"distinct_id": "42"})

    assert result == {"delivered": "outbox"}
    line = (settings.var_dir / "outbox" / "mixpanel.jsonl").read_text(encoding="utf-8")
    assert json.loads(line) == {"kind": "people_delete", "distinct_id": "42"}
