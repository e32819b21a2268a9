"""The Ruby email workers through the real Ruby child and the real mail, db and jobs host
services: an SMTP server with STARTTLS and login, the .eml outbox, records in SQLite (and
PostgreSQL where the SQL differs most), follow-up jobs in Redis."""

from __future__ import annotations

import datetime as dt
import re
import time
from email import message_from_bytes
from email.policy import default
from urllib.parse import quote

from rq.job import Job as RQJob
from rq.serializers import JSONSerializer

from simbi_workers import keys
from simbi_workers.store import schema
from tests import provider_fixtures
from tests.app_records import AppRecords
from tests.provider_fixtures import (
    SMTP_PASSWORD,
    SMTP_USER,
    Recorder,
    outbox_mail,
    parts,
    perform,
    redeliver,
    result_of,
)

no_provider_settings_from_the_shell = provider_fixtures.no_provider_settings_from_the_shell
make_worker = provider_fixtures.make_worker
smtp_server = provider_fixtures.smtp_server
tls = provider_fixtures.tls

TWO_DAYS_SECONDS = 2 * 86_400


def test_a_message_email_crosses_starttls_smtp_with_the_excerpt_escaped_and_the_talk_link(
    make_worker, smtp_server, tls, monkeypatch
):
    recorder = Recorder()
    port = smtp_server(
        recorder,
        tls_context=tls.server_context,
        require_starttls=True,
        authenticator=recorder.authenticate,
        auth_required=True,
    )
    password = quote(SMTP_PASSWORD, safe="")
    monkeypatch.setenv("SMTP_URL", f"smtp://{SMTP_USER}:{password}@127.0.0.1:{port}")
    monkeypatch.setenv("SMTP_CA_FILE", str(tls.ca_file))
    monkeypatch.setenv("SIMBI_APP_URL", "https://simbi.test/")
    process = make_worker()
    db = AppRecords(process.services.db.engine)
    ada = db.user("Ada", last_name="Lovelace")
    zoe = db.user("Zoë", last_name="O'Brien", email="zoe@example.org")
    talk = db.talk(ada, zoe)
    message = db.message(talk, ada, "<b>hi</b> & bye")

    result = result_of(perform(process, "NotifyMessageWorker", zoe, talk, message))

    assert result["delivered"] == "smtp"
    assert [(login, ok) for _, login, ok in recorder.logins] == [(SMTP_USER, True)]
    [(_, recipients, raw)] = recorder.received
    assert recipients == ["zoe@example.org"]
    email = message_from_bytes(raw, policy=default)
    assert email["Message-ID"] == result["message_id"]
    assert email["To"].addresses[0].display_name == "Zoë O'Brien"
    assert email["To"].addresses[0].addr_spec == "zoe@example.org"
    assert str(email["Subject"]) == "Ada sent you a message"

    text, html = parts(email)
    link = f"https://simbi.test/talks/{talk}"
    assert "Hi Zoë," in text and "<b>hi</b> & bye" in text and link in text
    assert "&lt;b&gt;hi&lt;/b&gt; &amp; bye" in html and "<b>hi</b>" not in html
    assert f'<a href="{link}">' in html

    unsubscribe = process.services.mail.unsubscribe_url(zoe, "messages")["url"]
    assert unsubscribe.startswith("https://simbi.test/unsubscribe/")
    assert str(email["List-Unsubscribe"]).strip() == f"<{unsubscribe}>"
    assert str(email["List-Unsubscribe-Post"]) == "List-Unsubscribe=One-Click"
    assert unsubscribe in text


def test_a_favorited_email_goes_to_the_outbox_by_default(make_worker):
    process = make_worker()
    db = AppRecords(process.services.db.engine)
    omar = db.user("Omar", last_name="Haddad", email="omar@example.org")
    ada = db.user("Ada")
    service = db.service(omar, "Bike repair", category="repairs")

    result = result_of(perform(process, "SendEngagementFavoritedWorker", service, ada))

    assert result["delivered"] == "outbox"
    [email] = outbox_mail(process)
    assert email["Message-ID"] == result["message_id"]
    assert str(email["To"]) == "Omar Haddad <omar@example.org>"
    assert str(email["Subject"]) == "Ada favorited Bike repair"
    text, html = parts(email)
    assert 'Ada added your service "Bike repair" to their favorites.' in text
    assert f"http://localhost:3000/services/{service}" in text
    assert f'<a href="http://localhost:3000/users/{ada}">' in html
    assert "List-Unsubscribe" in email


def test_the_first_intro_sent_twice_emails_once_and_schedules_the_second_two_days_later(
    make_worker, redis_conn
):
    process = make_worker()
    db = AppRecords(process.services.db.engine)
    ada = db.user("Ada", email="ada@example.org")
    before = time.time()

    fields = perform(process, "SendIntroWorker", ada, "first")
    again = result_of(redeliver(process, fields["job_id"]))
    first = result_of(fields)

    assert again is None  # skipped: already sent
    [email] = outbox_mail(process)
    assert str(email["Subject"]) == "Welcome to Simbi, Ada"
    assert "http://localhost:3000/services/new" in parts(email)[0]

    scheduled = redis_conn.zrange(keys.scheduled("email_templates"), 0, -1, withscores=True)
    [(job_id, run_at)] = scheduled
    assert job_id.decode() == first["next_job_id"]
    assert before + TWO_DAYS_SECONDS <= run_at <= time.time() + TWO_DAYS_SECONDS
    job = RQJob.fetch(job_id.decode(), connection=redis_conn, serializer=JSONSerializer)
    assert job.func_name == "simbi_workers.jobs.SendIntroWorker"
    assert job.args == [ada, "second"]
    assert [row["dedupe_key"] for row in db.rows(schema.notifications_sent)] == [
        f"intro:{ada}:first",
        f"intro:{ada}:second:scheduled",
    ]


def test_a_comment_emails_the_owner_and_earlier_commenters_once_but_not_its_author(make_worker):
    process = make_worker()
    db = AppRecords(process.services.db.engine)
    omar = db.user("Omar", email="omar@example.org")
    bea = db.user("Bea", email="bea@example.org")
    ada = db.user("Ada", email="ada@example.org")
    service = db.service(omar, "Bike repair")
    db.comment(service, bea, "Do you fix gears?")
    db.comment(service, ada, "Me too?")
    db.comment(service, bea, "And brakes?")
    comment = db.comment(service, ada, "Thanks, <that> was quick")

    result = result_of(perform(process, "NotifyCommentEmailWorker", comment))

    assert result == {"sent": [omar, bea], "skipped": {}}
    emails = {email["To"].addresses[0].addr_spec: email for email in outbox_mail(process)}
    assert sorted(emails) == ["bea@example.org", "omar@example.org"]
    assert str(emails["omar@example.org"]["Subject"]) == "Ada commented on Bike repair"
    assert str(emails["bea@example.org"]["Subject"]) == "Ada also commented on Bike repair"
    text, html = parts(emails["omar@example.org"])
    assert "Thanks, <that> was quick" in text
    assert "Thanks, &lt;that&gt; was quick" in html
    assert f"http://localhost:3000/services/{service}#comment-{comment}" in text


def test_suggested_services_are_the_best_rated_five_from_the_users_categories(
    make_worker, database_url, monkeypatch
):
    monkeypatch.setenv("DATABASE_URL", database_url)
    process = make_worker()
    db = AppRecords(process.services.db.engine)
    ada = db.user("Ada", email="ada@example.org")
    bob = db.user("Bob")
    gone = db.user("Carl", deleted_at=dt.datetime.now(dt.UTC))
    db.service(ada, "Ada's guitar lessons", category="music")
    pasta = db.service(bob, "Pasta", category="cooking", rating_average=4.8, rating_count=5)
    db.favorite(ada, pasta)
    expected = [
        db.service(bob, "Piano", category="music", rating_average=4.9, rating_count=12, price=30),
        db.service(bob, "Drums", category="music", rating_average=4.5, rating_count=1),
        db.service(bob, "Flute", category="music", rating_average=4.0, rating_count=2),
        db.service(bob, "Sushi", category="cooking", rating_average=3.0, rating_count=3),
        db.service(bob, "Violin", category="music"),
    ]
    harp = db.service(bob, "Harp", category="music")  # unrated and newer: past the five
    cello = db.service(bob, "Cello", category="music", rating_average=5.0, rating_count=9)
    flute = expected[2]
    for service, days_ago in ((cello, 2), (flute, 40)):
        suggested_at = dt.datetime.now(dt.UTC) - dt.timedelta(days=days_ago)
        db.insert(
            schema.suggestion_history, user_id=ada, service_id=service, suggested_at=suggested_at
        )
    db.service(bob, "Bass", category="music", status="paused", rating_average=5.0)
    db.service(gone, "Ukulele", category="music", rating_average=5.0, rating_count=40)
    db.service(bob, "Roses", category="gardening", rating_average=5.0, rating_count=40)

    result = result_of(perform(process, "SendSuggestedServicesWorker", ada))

    assert result == {"suggested": expected}
    [email] = outbox_mail(process)
    assert str(email["Subject"]) == "Ada, 5 services you might like"
    text, _ = parts(email)
    assert "* Piano (music, 30 Simbi, rated 4.9 by 12 people)" in text
    assert "* Drums (music, 0 Simbi, rated 4.5 by 1 person)" in text
    assert "* Violin (music, 0 Simbi, not rated yet)" in text
    titles = re.findall(r"^\* (\w+) \(", text, flags=re.MULTILINE)
    assert titles == ["Piano", "Drums", "Flute", "Sushi", "Violin"]
    recorded = [row["service_id"] for row in db.rows(schema.suggestion_history, user_id=ada)]
    assert sorted(recorded) == sorted([cello, flute, *expected])

    # The five are remembered for 30 days: the next run suggests only what is left.
    assert result_of(perform(process, "SendSuggestedServicesWorker", ada)) == {"suggested": [harp]}
    assert str(outbox_mail(process)[1]["Subject"]) == "Ada, a service you might like"


def test_an_unknown_intro_step_is_dead_at_once(make_worker, redis_conn):
    process = make_worker()

    fields = perform(process, "SendIntroWorker", 1, "fourth")

    assert fields["status"] == b"failed"
    assert redis_conn.zscore(keys.failed("email_templates"), fields["job_id"]) is not None
    assert fields["simbi_error"].decode() == (
        'SimbiWorker::PermanentError: unknown intro step "fourth"; '
        "the steps are: first, second, third"
    )
    assert outbox_mail(process) == []
