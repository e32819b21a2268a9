"""`simbi-workers demo` end to end: the real supervisor in a subprocess, real Ruby and Node
children, real photos, the test Redis and a SQLite database under the test's var/."""

from __future__ import annotations

import io
import json
import re
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
import redis
from PIL import Image
from rich.console import Console
from sqlalchemy import create_engine, func, select

from simbi_workers import catalog, keys
from simbi_workers.config import Settings
from simbi_workers.demo import run_demo
from simbi_workers.demo_data import (
    followups,
    marketplace,
    notifications,
    outboxes,
    social,
    workload,
)
from simbi_workers.store.schema import images, metadata, talks, users

JOB_COUNT = 60
APP_URL = "https://app.simbi.test"  # links must follow SIMBI_APP_URL
VARIANTS = ("original", "large", "medium", "thumb")
CELL = r" +[│|] +(\d+)"
ROW = re.compile(r"^[│|] (\w+) +[│|] (\w+) +[│|] +(\d*)\+?(\d*)" + CELL * 4 + " [│|]")
# Accounts that would send for real instead of writing the outboxes.
PROVIDERS = (
    "SMTP_URL TWILIO_ACCOUNT_SID TWILIO_AUTH_TOKEN FCM_SERVICE_ACCOUNT_FILE ONESIGNAL_APP_ID"
)


def demo(settings, job_count=JOB_COUNT, **options):
    """run_demo with a wide recording console; returns (result, printed text)."""
    console = Console(record=True, width=240, color_system=None)
    result = run_demo(settings, job_count=job_count, processes=2, console=console, **options)
    return result, console.export_text()


def table(text: str) -> dict[str, dict[str, int | str]]:
    """The printed per-worker table: worker -> runtime, jobs (the demo's), followups (the
    "+N" other workers enqueued), done, skipped, dead, retried."""
    found = {}
    names = ("jobs", "followups", "done", "skipped", "dead", "retried")
    for line in text.splitlines():
        match = ROW.match(line)
        if match:
            worker, runtime, *numbers = match.groups()
            values = {name: int(value or 0) for name, value in zip(names, numbers, strict=True)}
            found[worker] = {"runtime": runtime} | values
    return found


def row(runtime, jobs, done, dead=0, followups=0, skipped=0, retried=0) -> dict:
    """A table row as table() reads it."""
    numbers = {"jobs": jobs, "followups": followups, "done": done, "skipped": skipped}
    return {"runtime": runtime, **numbers, "dead": dead, "retried": retried}


def dead_lines(text: str) -> list[str]:
    start = text.index("dead jobs (")
    return [line.strip() for line in text[start:].splitlines()[1:] if line.startswith("  ")]


@pytest.fixture(scope="module")
def demo_run(redis_server, tmp_path_factory):
    """One demo run shared by the tests that read its output (each run takes seconds)."""
    root = tmp_path_factory.mktemp("demo")
    redis.Redis.from_url(redis_server).flushdb()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("REDIS_URL", redis_server)
        patch.setenv("SIMBI_VAR_DIR", str(root / "var"))
        patch.setenv("SIMBI_APP_URL", APP_URL)
        for name in PROVIDERS.split():
            patch.delenv(name, raising=False)
        patch.chdir(root)
        settings = Settings()
        result, text = demo(settings)
    return settings, result, text


@pytest.fixture
def run(demo_run):
    _settings, result, text = demo_run
    return result, text


def test_the_table_counts_every_upload_optimization_and_notification(run):
    result, text = run
    market = result.market
    rows = table(text)
    new = sum(person.is_new for person in market.people)  # a Slack signup post each

    assert result.finished
    assert rows["UploadImageWorker"] == row("python", len(market.uploads), len(market.good), 3)
    assert rows["ImageOptimizationWorker"]["done"] == len(market.good)
    assert rows["SlackNotifierWorker"] == row("ruby", new + 1, new, dead=1)
    assert rows["UpdateAvatarWorker"]["dead"] == 1
    for worker in ("MixpanelTrackWorker", "UserEventTrackerWorker"):
        assert rows[worker]["runtime"] == "node"
        assert rows[worker]["done"] == rows[worker]["jobs"] > 0
    assert sum(row["jobs"] for row in rows.values()) == JOB_COUNT
    # Only the five deliberate failures die; nothing is left retrying.
    assert sum(row["dead"] for row in rows.values()) == 5
    assert sum(row["retried"] for row in rows.values()) == 0


def test_every_notification_worker_ran_and_the_pushes_they_handed_on_count_as_follow_ups(run):
    result, text = run
    records = result.market.social
    rows = table(text)

    expected = Counter(worker for worker, _args in notifications.jobs(result.market))
    assert len(expected) == 12  # every email and notification worker but SendPushWorker
    for worker, count in expected.items():
        assert rows[worker] == row("ruby", count, count, skipped=rows[worker]["skipped"]), worker
    assert expected["NotifyMessageWorker"] == len(records.unread) > 0
    assert (
        expected["SendPushMessageWorker"]
        == expected["SendSmsMessageWorker"]
        == len(records.messages)
    )
    assert expected["NotifyComplimentWorker"] == len(records.compliments) > 0
    # NotifyComplimentWorker and NotifyFavorWorker each hand one push to SendPushWorker.
    pushes = len(records.compliments) + len(records.favors)
    assert rows["SendPushWorker"] == rows["SendPushWorker"] | {"jobs": 0, "followups": pushes}
    assert f"{JOB_COUNT} jobs and {pushes} follow-ups done or dead" in text


def test_each_unread_message_is_emailed_with_a_text_and_an_html_part(run):
    result, text = run
    people = {person.id: person for person in result.market.people}
    opted_out = result.market.social.opt_out[0]
    emailed = [m for m in result.market.social.unread if m.recipient_id != opted_out]
    by_email = {people[m.recipient_id].email: people[m.recipient_id] for m in emailed}
    parsed = [outboxes.read_email(file) for file in result.added.emails]
    about_messages = [email for email in parsed if "sent you a message" in email["Subject"]]

    # One email per unread message, to its recipient, from its sender, linking its talk.
    sent = Counter((e["To"].addresses[0].addr_spec, e["Subject"], talk(e)) for e in about_messages)
    expected = Counter(
        (people[m.recipient_id].email, f"{people[m.sender_id].first_name} sent you a message",
         m.talk_id) for m in emailed
    )  # fmt: skip
    assert sent == expected and len(result.added.emails) > len(emailed) > 0
    for email in about_messages:
        recipient = by_email[email["To"].addresses[0].addr_spec]
        plain, html = (email.get_body((kind,)).get_content() for kind in ("plain", "html"))
        link = f"{APP_URL}/talks/{talk(email)}"
        assert plain.startswith(f"Hi {recipient.first_name},\n") and f": {link}\n" in plain
        assert f"<p>Hi {recipient.first_name},</p>" in html and f'<a href="{link}">' in html
        assert email["List-Unsubscribe"].strip().startswith(f"<{APP_URL}/unsubscribe/")

    assert f"mail outbox      var/outbox/mail/: +{len(result.added.emails)} .eml files" in text
    assert re.search(r"open one: var/outbox/mail/\S+\.eml", text)


def test_sms_and_push_go_to_their_outboxes(demo_run):
    settings, result, text = demo_run
    sms = read_jsonl(outboxes.path(settings, "sms"))
    push = read_jsonl(outboxes.path(settings, "push"))
    opted_in = {re.sub(r"[\s().-]", "", p.phone) for p in result.market.people if p.sms_opt_in}

    assert len(sms) == result.added.lines["sms"] == expected_sms(result.market)
    assert {line["to"] for line in sms} <= opted_in
    assert all(APP_URL in line["body"] for line in sms if "sent you a message" in line["body"])
    assert len(push) == result.added.lines["push"] > 0
    assert {line["provider"] for line in push} == {"fcm", "onesignal"}
    assert {line["title"] for line in push} >= {"New message", "New compliment", "New match"}
    assert f"sms.jsonl: +{len(sms)} lines" in text
    assert f"push.jsonl: +{len(push)} lines" in text


def test_the_skips_show_with_their_reasons_and_the_opt_out_among_them(run):
    result, text = run
    opted_out = result.market.social.opt_out[0]
    reasons = {(skip.worker, skip.reason) for skip in result.skipped}

    assert ("NotifyMessageWorker", f"user {opted_out} opted out of messages emails") in reasons
    # Besides the opt-out, only pushes and texts to people without a device, phone or opt-in.
    assert {worker for worker, _reason in reasons} - {"NotifyMessageWorker"} <= {
        *("SendPushMessageWorker", "SendPushWorker", "SendSmsMessageWorker", "SendSmsWorker"),
        *("NotifyMatchWorker", "NotifyNewFollowerWorker"),
    }
    assert len([r for w, r in reasons if w == "NotifyMessageWorker"]) == 1
    assert f"skipped jobs ({len(result.skipped)})" in text
    assert re.search(rf"NotifyMessageWorker +1 +user {opted_out} opted out", text)
    assert sum(row["skipped"] for row in table(text).values()) == len(result.skipped)


def test_the_next_intro_steps_stay_scheduled_and_nothing_waits_for_them(run):
    result, text = run
    new_people = sorted(person.id for person in result.market.people if person.is_new)
    in_two_days = datetime.now(UTC) + timedelta(days=2)

    assert result.finished
    assert sorted(job.args[0] for job in result.scheduled) == new_people
    for job in result.scheduled:
        assert job.worker == "SendIntroWorker" and job.args[1] == "second"
        due = datetime.fromtimestamp(job.due, UTC)
        assert abs((due - in_two_days).total_seconds()) < 600
    assert f'still scheduled: {len(new_people)} SendIntroWorker(…, "second")' in text
    assert "the demo does not wait for them" in text


def test_exactly_the_bad_uploads_die_each_with_its_reason(run):
    result, text = run
    lines = dead_lines(text)

    upload_lines = [line for line in lines if line.startswith("UploadImageWorker(")]
    assert len(upload_lines) == len(result.market.bad) == 3
    for upload in result.market.bad:
        prefix = f"UploadImageWorker({upload.image_id}, {upload.id}): UnusableImage: "
        (line,) = [line for line in upload_lines if line.startswith(prefix)]
        assert upload.bad_reason in line
    reasons = {upload.bad_reason for upload in result.market.bad}
    assert reasons == {"not an image", "truncated", "decompression bomb"}

    assert any("UnknownChannel: unknown slack channel '#marketing'" in line for line in lines)
    assert any("may not change the avatar" in line for line in lines)
    assert len(lines) == 5


def test_good_uploads_are_stored_as_variants_with_a_128_pixel_thumb(demo_run):
    settings, result, _text = demo_run
    engine = create_engine(settings.database_url_or_default)
    with engine.connect() as conn:
        status = dict(conn.execute(select(images.c.id, images.c.status)).all())

    for upload in result.market.good:
        assert status[upload.image_id] == "ready"
        folder = settings.var_dir / "storage" / "images" / str(upload.image_id)
        assert sorted(path.stem for path in folder.iterdir()) == sorted(VARIANTS)
        (thumb,) = folder.glob("thumb.*")
        with Image.open(thumb) as image:
            assert image.size == (128, 128)
    assert {status[upload.image_id] for upload in result.market.bad} == {"failed"}


def test_the_outboxes_hold_a_signup_per_new_person_and_every_mixpanel_event(demo_run):
    settings, result, text = demo_run
    slack = read_jsonl(settings.outbox_dir / "slack.jsonl")
    mixpanel = read_jsonl(settings.outbox_dir / "mixpanel.jsonl")
    new_people = [person for person in result.market.people if person.is_new]

    assert {line["channel"] for line in slack} == {"signups"}
    assert sorted(line["user_id"] for line in slack) == [p.id for p in new_people]
    for person in new_people:
        (line,) = [line for line in slack if line["user_id"] == person.id]
        assert f"{person.first_name} {person.last_name} <{person.email}>" in line["text"]
    assert len(mixpanel) == table(text)["MixpanelTrackWorker"]["done"]
    assert f"slack.jsonl: +{len(slack)} lines" in text


def test_the_supervisor_is_stopped_when_the_demo_returns(demo_run):
    settings, _result, _text = demo_run
    connection = redis.Redis.from_url(settings.redis_url)
    assert connection.scard(keys.PROCESSES) == 0
    log = (settings.var_dir / "demo-start.log").read_text()
    assert "stopping: no new jobs" in log


def test_a_second_run_replaces_the_first_runs_records_files_and_counts(
    settings, tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    first, _first_text = demo(settings, job_count=70)
    second, text = demo(settings, job_count=60)  # fewer uploads: ids that were good go bad

    rows = table(text)
    assert rows["UploadImageWorker"]["done"] == len(second.market.good) < len(first.market.good)
    assert rows["UploadImageWorker"]["dead"] == 3
    assert len(dead_lines(text)) == 5
    assert "note:" not in text  # nothing of the first run is left queued, running or due

    # What the first run keyed in Redis by the ids the second reuses does not hold it back.
    assert not [skip for skip in second.skipped if "within the last day" in skip.reason]
    assert second.added.lines["sms"] == expected_sms(second.market)
    connection = redis.Redis.from_url(settings.redis_url)
    people = [person.id for person in second.market.people]
    later = followups.for_people(connection, catalog.load(settings.queues_file), people)
    assert len(later) == len(second.scheduled) == sum(p.is_new for p in second.market.people)

    engine = create_engine(settings.database_url_or_default)
    with engine.connect() as conn:
        emails = conn.execute(select(users.c.email)).scalars().all()
        talk_count = conn.execute(select(func.count()).select_from(talks)).scalar()
    assert sorted(emails) == sorted(person.email for person in second.market.people)
    assert talk_count == len(second.market.social.talks) < len(first.market.social.talks)
    reused = {u.image_id for u in first.market.good} & {u.image_id for u in second.market.bad}
    assert reused
    for image_id in reused:
        folder = settings.var_dir / "storage" / "images" / str(image_id)
        assert not [path for path in folder.glob("*") if path.is_file()]


def test_a_timeout_reports_the_pending_jobs_and_takes_the_waiting_ones_out(
    settings, tmp_path, monkeypatch, redis_url
):
    monkeypatch.chdir(tmp_path)
    result, text = demo(settings, timeout_seconds=0)

    assert not result.finished
    assert re.search(r"timed out: \d+ jobs are not finished", text)
    assert re.search(r"^  UploadImageWorker: \d+ (queued|started)$", text, re.MULTILINE)
    connection = redis.Redis.from_url(redis_url)
    for queue in ("paperclip", "slack", "mixpanel", "default", "email_templates"):
        assert connection.llen(keys.queue(queue)) == 0


def test_the_bomb_is_small_on_disk_and_refused_by_pillow_before_decoding():
    data = marketplace.png_bomb(marketplace.BOMB_SIDE_PX)
    assert len(data) < 100_000
    with pytest.raises(Image.DecompressionBombError):
        Image.open(io.BytesIO(data))


@pytest.mark.parametrize("job_count", [60, 300])
def test_the_workload_adds_up_to_job_count_with_both_kinds_of_event(job_count):
    engine = create_engine("sqlite://")
    metadata.create_all(engine)
    with engine.begin() as conn:
        people = marketplace._add_people(conn)
        records = social.build(conn, people, workload.talk_count(job_count))
    good = workload.photo_uploads(job_count)
    uploads = [marketplace.Upload(n, n, f"k{n}", "hopper.jpg", None) for n in range(1, good + 1)]
    uploads += [marketplace.Upload(n, n, f"k{n}", None, "bad") for n in range(good + 1, good + 4)]
    market = marketplace.Marketplace(people, uploads, records)

    first = workload.first_phase(market, job_count)
    second = workload.second_phase(list(range(1, good + 1)))

    assert len(first) + len(second) == job_count
    workers = {worker for worker, _args in first}
    assert {"MixpanelTrackWorker", "UserEventTrackerWorker"} <= workers
    assert len([w for w in workers if w.startswith(("Notify", "Send"))]) == 12
    # The opt-out is someone with an unread message, so that its skip shows.
    assert records.opt_out[0] in {message.recipient_id for message in records.unread}


def expected_sms(market) -> int:
    """SendSmsMessageWorker texts each opted-in recipient once per talk (the 10-minute
    throttle); of the two SendSmsWorker reminders one goes to someone who opted in."""
    opted_in = {person.id for person in market.people if person.sms_opt_in}
    pairs = {(m.talk_id, m.recipient_id) for m in market.social.messages}
    return sum(1 for _talk, user in pairs if user in opted_in) + 1


def talk(email) -> int:
    """The talk id an email about a message links to."""
    return int(re.search(r"/talks/(\d+)", email.get_body(("plain",)).get_content())[1])


def read_jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines()]
