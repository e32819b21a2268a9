"""The Ruby notification workers through the real Ruby child and the real sms, push, mail,
db, redis and jobs host services: Twilio's and OneSignal's APIs on a local server, FCM
through firebase-admin, the sms/push/mail outboxes, and what each leaves in the records
(SQLite; PostgreSQL too where a worker writes) and in Redis."""

from __future__ import annotations

import time
from urllib.parse import parse_qs

import pytest
from rq.job import Job as RQJob
from rq.serializers import JSONSerializer

from simbi_workers import keys
from simbi_workers.store import schema
from tests import provider_fixtures
from tests.app_records import AppRecords
from tests.provider_fixtures import (
    FCM_OK,
    FCM_UNREGISTERED,
    ONESIGNAL_API_KEY,
    ONESIGNAL_APP_ID,
    TWILIO_FROM,
    TWILIO_MESSAGES_PATH,
    outbox_mail,
    outbox_records,
    parts,
    perform,
    redeliver,
    result_of,
    run_next,
    twilio_error,
    use_onesignal,
    use_twilio,
)

no_provider_settings_from_the_shell = provider_fixtures.no_provider_settings_from_the_shell
make_worker = provider_fixtures.make_worker
private_key_pem = provider_fixtures.private_key_pem
fcm_env = provider_fixtures.fcm_env
fcm = provider_fixtures.fcm

PHONE = "+4915112345678"


def texting_user(db: AppRecords, first_name: str = "Zoë") -> int:
    """A user with a phone typed as people type it, who opted in to SMS."""
    return db.user(first_name, phone="+49 (151) 1234-5678", sms_opt_in=True)


def answer_twilio(httpserver, status: int, body: str, **headers: str) -> None:
    httpserver.expect_request(TWILIO_MESSAGES_PATH, method="POST").respond_with_data(
        body, status=status, content_type="application/json", headers=headers
    )


# SendSmsWorker through the twilio library


def test_an_sms_reaches_twilio_with_the_users_number_and_the_body(
    make_worker, httpserver, monkeypatch
):
    use_twilio(monkeypatch, httpserver.url_for("/"))
    answer_twilio(httpserver, 201, '{"sid": "SM0123456789abcdef0123456789abcdef"}')
    process = make_worker()
    zoe = texting_user(AppRecords(process.services.db.engine))

    result = result_of(perform(process, "SendSmsWorker", zoe, "Ana sent you 30 Simbi ✨"))

    assert result == {
        "user_id": zoe,
        "sid": "SM0123456789abcdef0123456789abcdef",
        "delivered": "twilio",
    }
    [(request, _)] = httpserver.log
    assert parse_qs(request.get_data(as_text=True)) == {
        "To": [PHONE],
        "From": [TWILIO_FROM],
        "Body": ["Ana sent you 30 Simbi ✨"],
    }


def test_an_invalid_number_is_dead_at_once_and_named(
    make_worker, redis_conn, httpserver, monkeypatch
):
    use_twilio(monkeypatch, httpserver.url_for("/"))
    message = "The 'To' number +4915112345678 is not a valid phone number."
    answer_twilio(httpserver, 400, twilio_error(21211, 400, message))
    process = make_worker()
    db = AppRecords(process.services.db.engine)
    zoe = texting_user(db)

    fields = perform(process, "SendSmsWorker", zoe, "hi")

    assert fields["status"] == b"failed"
    assert redis_conn.zscore(keys.failed("default"), fields["job_id"]) is not None
    assert redis_conn.zcard(keys.scheduled("default")) == 0
    error = fields["simbi_error"].decode()
    assert error.startswith(
        f"NotificationWorker::SmsRefused: SMS to user {zoe} refused (InvalidNumber)"
    )
    assert "code 21211" in error and "is not a valid phone number" in error
    assert db.one(schema.users, id=zoe)["sms_opt_in"] is True


def test_an_unsubscribed_recipient_is_dead_and_their_opt_in_cleared(
    make_worker, redis_conn, httpserver, monkeypatch, database_url
):
    monkeypatch.setenv("DATABASE_URL", database_url)
    use_twilio(monkeypatch, httpserver.url_for("/"))
    answer_twilio(
        httpserver, 400, twilio_error(21610, 400, "Attempt to send to unsubscribed recipient")
    )
    process = make_worker()
    db = AppRecords(process.services.db.engine)
    zoe = texting_user(db)
    other = texting_user(db, "Bea")

    fields = perform(process, "SendSmsWorker", zoe, "hi")

    assert fields["status"] == b"failed"
    assert redis_conn.zscore(keys.failed("default"), fields["job_id"]) is not None
    assert "refused (Unsubscribed)" in fields["simbi_error"].decode()
    assert db.one(schema.users, id=zoe)["sms_opt_in"] is False
    assert db.one(schema.users, id=other)["sms_opt_in"] is True

    # With the opt-in gone the next SMS is a skip, and Twilio hears nothing more.
    assert result_of(perform(process, "SendSmsWorker", zoe, "hi again")) is None
    assert len(httpserver.log) == 1


RATE_LIMITED = (429, twilio_error(20429, 429, "Too Many Requests"), {"Retry-After": "30"})
UNAVAILABLE = (500, "upstream trouble", {})


@pytest.mark.parametrize(
    ("answer", "error_class", "earliest", "latest"),
    [
        pytest.param(RATE_LIMITED, "RateLimited", 30, 30, id="429-after-retry-after"),
        # The ladder's first step: 0⁴ + 15 + rand(0..9) seconds.
        pytest.param(UNAVAILABLE, "ProviderUnavailable", 15, 24, id="500-on-the-ladder"),
    ],
)
def test_a_rate_limit_or_5xx_from_twilio_schedules_a_retry(
    make_worker, redis_conn, httpserver, monkeypatch, answer, error_class, earliest, latest
):
    use_twilio(monkeypatch, httpserver.url_for("/"))
    status, body, headers = answer
    answer_twilio(httpserver, status, body, **headers)
    process = make_worker()
    zoe = texting_user(AppRecords(process.services.db.engine))
    before = time.time()

    fields = perform(process, "SendSmsWorker", zoe, "hi")
    after = time.time()

    assert fields["status"] == b"scheduled"
    assert fields["simbi_attempt"] == b"1"
    assert fields["simbi_error"].decode().startswith(f"{error_class}: sms: ")
    run_at = redis_conn.zscore(keys.scheduled("default"), fields["job_id"])
    assert before + earliest <= run_at <= after + latest


# SendSmsMessageWorker


def test_three_messages_in_ten_minutes_send_one_sms_per_recipient(make_worker):
    process = make_worker()
    db = AppRecords(process.services.db.engine)
    ada = db.user("Ada")
    zoe = texting_user(db)
    talk = db.talk(ada, zoe)
    messages = [db.message(talk, ada, body) for body in ("Hi!", "Are you free?", "Tomorrow?")]

    results = [result_of(perform(process, "SendSmsMessageWorker", m)) for m in messages]

    assert results[0]["sent"][0]["user_id"] == zoe
    assert results[1] is None and results[2] is None  # skipped: within ten minutes
    [sms] = outbox_records(process, "sms")
    assert sms["to"] == PHONE
    assert sms["body"] == f"Ada sent you a message on Simbi: Hi! http://localhost:3000/talks/{talk}"
    assert sms["sid"] == results[0]["sent"][0]["sid"]


# SendPushWorker through FCM and OneSignal


def test_fcm_pushes_and_the_device_it_reports_unregistered_is_deleted(make_worker, fcm_env, fcm):
    answers, sent = fcm
    answers["tok-ok"] = FCM_OK
    answers["tok-gone"] = FCM_UNREGISTERED
    process = make_worker()
    db = AppRecords(process.services.db.engine)
    zoe = db.user("Zoë")
    db.device(zoe, "tok-ok")
    db.device(zoe, "tok-gone")

    result = result_of(
        perform(
            process, "SendPushWorker", zoe, "messages", "Ada: hi 👋", {"talk_id": 12, "x": None}
        )
    )

    assert result == {"user_id": zoe, "devices": 2, "sent": 1, "removed_devices": 1}
    assert [row["token"] for row in db.rows(schema.devices)] == ["tok-ok"]
    message = next(s["message"] for s in sent if s["message"]["token"] == "tok-ok")
    assert message["notification"] == {"title": "New message", "body": "Ada: hi 👋"}
    assert message["data"] == {"talk_id": "12"}


def test_onesignal_gets_one_request_and_an_invalid_id_it_reports_is_deleted(
    make_worker, httpserver, monkeypatch
):
    use_onesignal(monkeypatch, httpserver.url_for("/"))
    httpserver.expect_request("/notifications", method="POST").respond_with_json(
        {"id": "b98881cc-1e94-4366-bbd9-db8f3429292b", "errors": {"invalid_player_ids": ["sub-2"]}}
    )
    process = make_worker()
    db = AppRecords(process.services.db.engine)
    zoe = db.user("Zoë")
    db.device(zoe, "sub-1", provider="onesignal")
    db.device(zoe, "sub-2", provider="onesignal")

    result = result_of(
        perform(process, "SendPushWorker", zoe, "compliments", "Ada complimented you", {"id": 4})
    )

    assert result == {"user_id": zoe, "devices": 2, "sent": 1, "removed_devices": 1}
    [(request, _)] = httpserver.log
    assert request.headers["Authorization"] == f"Key {ONESIGNAL_API_KEY}"
    assert request.get_json() == {
        "app_id": ONESIGNAL_APP_ID,
        "target_channel": "push",
        "include_subscription_ids": ["sub-1", "sub-2"],
        "headings": {"en": "New compliment"},
        "contents": {"en": "Ada complimented you"},
        "data": {"id": "4"},
    }
    assert [row["token"] for row in db.rows(schema.devices)] == ["sub-1"]


# The other notification workers, through the outboxes


def test_a_message_push_goes_to_every_other_participant_with_a_device(make_worker):
    process = make_worker()
    db = AppRecords(process.services.db.engine)
    ada, zoe, bea = db.user("Ada"), db.user("Zoë"), db.user("Bea")
    db.device(ada, "tok-ada")
    db.device(zoe, "tok-zoe", provider="onesignal")
    talk = db.talk(ada, zoe, bea)
    message = db.message(talk, ada, "Are you free\n\ttomorrow?")

    result = result_of(perform(process, "SendPushMessageWorker", message))

    assert [o["user_id"] for o in result["sent"]] == [zoe]
    assert result["skipped"] == [{"user_id": bea, "reason": f"user {bea} has no devices"}]
    assert result["failed"] == []
    [push] = outbox_records(process, "push")
    assert (push["token"], push["provider"]) == ("tok-zoe", "onesignal")
    assert (push["title"], push["body"]) == ("New message", "Ada: Are you free tomorrow?")
    assert push["data"] == {"talk_id": str(talk), "message_id": str(message)}


def test_a_compliment_enqueues_a_push_and_emails_the_receiver_once(make_worker, redis_conn):
    process = make_worker()
    db = AppRecords(process.services.db.engine)
    ada = db.user("Ada")
    zoe = db.user("Zoë", email="zoe@example.org")
    db.device(zoe, "tok-zoe")
    compliment = db.compliment(ada, zoe, "Great <em>lesson</em>")

    fields = perform(process, "NotifyComplimentWorker", compliment)
    [job_id] = redis_conn.lrange(keys.queue("default"), 0, -1)
    push_job = RQJob.fetch(job_id.decode(), connection=redis_conn, serializer=JSONSerializer)
    push_result = result_of(run_next(process, job_id.decode()))
    again = result_of(redeliver(process, fields["job_id"]))
    result = result_of(fields)

    assert result == {"push": "enqueued", "email": "sent"}
    url = f"http://localhost:3000/compliments/{compliment}"
    assert push_job.func_name == "simbi_workers.jobs.SendPushWorker"
    assert push_job.args == [
        zoe,
        "compliments",
        "Ada complimented you: “Great <em>lesson</em>”",
        {"type": "compliment", "compliment_id": str(compliment), "url": url},
    ]
    assert push_result["sent"] == 1
    [push] = outbox_records(process, "push")
    assert (push["token"], push["title"]) == ("tok-zoe", "New compliment")
    assert push["body"] == "Ada complimented you: “Great <em>lesson</em>”"

    [email] = outbox_mail(process)
    assert str(email["To"]) == "Zoë <zoe@example.org>"
    assert str(email["Subject"]) == "Ada complimented you"
    text, html = parts(email)
    assert "Great <em>lesson</em>" in text and url in text
    assert "Great &lt;em&gt;lesson&lt;/em&gt;" in html

    assert again is None  # skipped: both channels were done
    assert redis_conn.llen(keys.queue("default")) == 0
    assert len(outbox_mail(process)) == 1


def test_a_favor_enqueues_a_push_and_emails_the_person_asked(make_worker, redis_conn):
    process = make_worker()
    db = AppRecords(process.services.db.engine)
    ada = db.user("Ada")
    omar = db.user("Omar", email="omar@example.org")
    db.device(omar, "tok-omar")
    service = db.service(omar, "Bike repair")
    favor = db.favor(ada, omar, service_id=service, body="Could you look at my brakes?")

    result = result_of(perform(process, "NotifyFavorWorker", favor))
    result_of(run_next(process))

    assert result == {"push": "enqueued", "email": "sent"}
    [push] = outbox_records(process, "push")
    assert push["token"] == "tok-omar"
    assert push["title"] == "Someone asked for your help"
    assert push["body"] == "Ada asked you for a favor: “Could you look at my brakes?”"
    assert push["data"]["favor_id"] == str(favor)
    [email] = outbox_mail(process)
    assert str(email["Subject"]) == "Ada asked you for a favor"
    text, _ = parts(email)
    assert 'Ada asked you for a favor with "Bike repair":' in text
    assert "Could you look at my brakes?" in text
    assert f"http://localhost:3000/favors/{favor}" in text


def test_a_match_pushes_to_both_people_naming_the_other(make_worker):
    process = make_worker()
    db = AppRecords(process.services.db.engine)
    ada, zoe = db.user("Ada"), db.user("Zoë")
    db.device(ada, "tok-ada")
    db.device(zoe, "tok-zoe")
    match = db.match(ada, zoe)

    result = result_of(perform(process, "NotifyMatchWorker", match))

    assert [o["user_id"] for o in result["sent"]] == [ada, zoe]
    pushes = {p["token"]: p for p in outbox_records(process, "push")}
    assert pushes["tok-ada"]["body"] == "You matched with Zoë on Simbi: say hello!"
    assert pushes["tok-zoe"]["body"] == "You matched with Ada on Simbi: say hello!"
    assert pushes["tok-ada"]["title"] == "New match"
    assert pushes["tok-ada"]["data"] == {"match_id": str(match), "user_id": str(zoe)}


def test_a_new_follower_is_pushed_once_a_day_even_after_unfollowing_and_following_again(
    make_worker,
):
    process = make_worker()
    db = AppRecords(process.services.db.engine)
    ada, zoe = db.user("Ada"), db.user("Zoë")
    db.device(zoe, "tok-zoe")
    follow = db.follow(ada, zoe)

    first = result_of(perform(process, "NotifyNewFollowerWorker", follow))
    db.delete(schema.follows, follow)
    second = result_of(perform(process, "NotifyNewFollowerWorker", db.follow(ada, zoe)))

    assert first["sent"] == 1
    assert second is None  # skipped: told within the day
    [push] = outbox_records(process, "push")
    assert (push["token"], push["title"]) == ("tok-zoe", "New follower")
    assert push["body"] == "Ada started following you on Simbi"
