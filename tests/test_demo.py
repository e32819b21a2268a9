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
    economy,
    followups,
    marketplace,
    notifications,
    outboxes,
    social,
    typescript,
    workload,
)
from simbi_workers.services.redis_kv import PREFIX
from simbi_workers.store.schema import (
    follows,
    images,
    metadata,
    scores,
    services,
    talks,
    users,
)

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
    """The dead jobs' lines, each "description: reason", without their "expected: why"."""
    start = text.index("dead jobs (")
    block = text[start:].split("\n\n")[0].splitlines()[1:]
    return [line.strip() for line in block if not line.strip().startswith("expected: ")]


def typescript_pushes(demo_run) -> int:
    """The pushes the TypeScript workers hand to SendPushWorker: one per leaderboard
    newcomer (all of them: the Redis was empty), per tier risen from bronze, and per
    follower of the new listing's owner."""
    settings, result, _text = demo_run
    engine = create_engine(settings.database_url_or_default)
    changed = typescript.changed_people(result.market)
    risen = select(func.count()).where(users.c.id.in_(changed), users.c.tier != "bronze")
    listing = select(services.c.user_id).where(services.c.id == result.market.economy.new_listing)
    followers = select(func.count()).where(follows.c.followed_id == listing.scalar_subquery())
    with engine.connect() as conn:
        counts = [conn.execute(query).scalar() for query in (risen, followers)]
    assert len(result.results.leaderboard) > 0 and all(counts), counts
    return len(result.results.leaderboard) + sum(counts)


def typescript_jobs(market) -> list:
    """The TypeScript workers' jobs on the economy, all four phases."""
    phases = (typescript.first_phase, typescript.second_phase, typescript.third_phase)
    return [job for phase in (*phases, typescript.fourth_phase) for job in phase(market)]


def user_named(market, first_name: str):
    return next(person for person in market.people if person.first_name == first_name)


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
    # The signups, and the refused payment's post to #payments as a follow-up.
    assert rows["SlackNotifierWorker"] == row("ruby", new + 1, new + 1, dead=1, followups=1)
    assert rows["UpdateAvatarWorker"]["dead"] == 1
    for worker in ("MixpanelTrackWorker", "UserEventTrackerWorker"):
        assert rows[worker]["runtime"] == "node"
        assert rows[worker]["done"] == rows[worker]["jobs"] > 0
    # JOB_COUNT jobs of the mixed workload, and the TypeScript jobs on top.
    assert sum(row["jobs"] for row in rows.values()) == JOB_COUNT + len(typescript_jobs(market))
    # Only the six deliberate failures die; nothing is left retrying.
    assert sum(row["dead"] for row in rows.values()) == 6
    assert sum(row["retried"] for row in rows.values()) == 0


def test_every_notification_worker_ran_and_the_pushes_they_handed_on_count_as_follow_ups(
    demo_run,
):
    _settings, result, text = demo_run
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
    # NotifyComplimentWorker and NotifyFavorWorker each hand one push to SendPushWorker, and
    # so do the TypeScript workers (test_the_typescript_workers_push...).
    pushes = len(records.compliments) + len(records.favors) + typescript_pushes(demo_run)
    assert rows["SendPushWorker"] == rows["SendPushWorker"] | {"jobs": 0, "followups": pushes}
    # Besides the pushes: the #payments post, 5 display scores and 5 more search batches.
    ours = JOB_COUNT + len(typescript_jobs(result.market))
    assert f"{ours} jobs and {pushes + 11} follow-ups done or dead" in text


def test_every_typescript_worker_but_social_friends_ran_its_planned_jobs(demo_run):
    settings, result, text = demo_run
    market, rows = result.market, table(text)
    node = [name for name, spec in catalog.load(settings.queues_file).workers.items()
            if spec.runtime == "node"]  # fmt: skip

    assert len(node) == 20
    assert sorted(name for name, r in rows.items() if r["runtime"] == "node") == sorted(
        set(node) - {"SocialFriendsWorker"}  # needs a live provider: not in the demo
    )
    assert rows["PayingSimbiWorker"] == row("node", 9, 8, dead=1)  # 7, one repeated, Omar's
    assert rows["QuicksterWorker"] == row("node", 6, 6, skipped=1)  # 5 new people, one repeat
    assert rows["DisplayScoreWorker"] == row("node", 0, 5, followups=5)  # per rated owner
    # 37 services (35, the new listing, Vera's) and 21 users in batches of 10: 4 + 3 jobs.
    assert rows["SearchBulkIndexWorker"] == row("node", 2, 7, followups=5)
    for worker in ("UpdateRatingWorker", "ScoreWorker"):
        assert rows[worker] == row("node", 5, 5), worker
    for worker in ("RecalculateStrengthWorker", "MixpanelUpdateUserWorker"):
        assert rows[worker] == row("node", 14, 14), worker  # 9 parties of payments, 5 new
    for worker in (
        *("NotifyLeaderboardWorker", "DestroyUserWorker", "SearchRemoveWorker"),
        *("SearchIndexWorker", "FriendNewListingWorker", "RemoveUserEventsWorker"),
    ):
        assert rows[worker] == row("node", 1, 1), worker
    assert rows["ScoreQueryProcessorWorker"] == row("node", 2, 2)
    talk_count = len(market.social.talks)
    assert rows["ResponseTimeWorker"] == row("node", talk_count, talk_count)
    stats = len(market.social.favorites) + 2  # and the new listing's views and share
    assert rows["RecordServiceStatsWorker"] == row("node", stats, stats)
    planned = Counter(worker for worker, _args in typescript_jobs(market))
    assert all(rows[worker]["jobs"] >= count for worker, count in planned.items())


def test_the_typescript_workers_changed_the_records_and_analytics(demo_run):
    settings, result, _text = demo_run
    market, money = result.market, result.market.economy
    nadia, omar = user_named(market, "Nadia"), user_named(market, "Omar")
    engine = create_engine(settings.database_url_or_default)
    with engine.connect() as conn:
        balances = dict(conn.execute(select(users.c.id, users.c.simbi_balance)).all())
        guitar = conn.execute(
            select(services.c.rating_average, services.c.rating_count)
            .where(services.c.title == "Guitar lessons for beginners")
        ).one()  # fmt: skip
        scored = conn.execute(
            select(scores.c.subject_id).where(scores.c.formula_id == money.formulas["service"])
        ).scalars().all()  # fmt: skip
        withdrawn = conn.execute(
            select(services.c.status).where(services.c.id == money.withdrawn.id)
        ).scalar()  # fmt: skip

    # Three guitar payments (90, 45, 45) whatever the repeat; Omar's refused one moved nothing.
    assert balances[nadia.id] == economy.STARTING_BALANCE_SIMBI + 180
    assert balances[omar.id] == economy.LOW_BALANCE_SIMBI
    new = [person for person in market.people if person.is_new]
    assert [balances[person.id] for person in new] == [10] * len(new)  # profile_completed bonus
    assert money.leaving not in balances  # DestroyUserWorker
    assert tuple(guitar) == (4.5, 2)  # reviews of 5 and 4
    assert set(money.reviewed) <= set(scored)
    assert withdrawn == "withdrawn"
    connection = redis.Redis.from_url(settings.redis_url)
    # Each owner's reply came REPLY_MINUTES after the question (social.py).
    for k, (talk, owner) in enumerate(typescript.talk_owners(market)):
        seconds = connection.hget(f"{PREFIX}response_time:{owner}", f"talk:{talk}")
        assert int(seconds) == social.REPLY_MINUTES[k % len(social.REPLY_MINUTES)] * 60
    assert connection.get(f"{PREFIX}display_score:{nadia.id}") is not None


def test_the_leaderboard_ends_the_demo_with_nadia_first(demo_run):
    settings, result, text = demo_run
    board = [(e.rank, e.name, e.earned) for e in result.results.leaderboard]
    nadia = user_named(result.market, "Nadia")

    assert board == [
        (1, "Nadia Petrova", 180),
        (2, "Hana Sato", 120),
        (3, "Farah Haddad", 70),  # a tie: the lower user id first, as the worker ranks
        (4, "Jonah Brooks", 70),
        (5, "Chen Wei", 60),
    ]
    connection = redis.Redis.from_url(settings.redis_url)
    key = f"{PREFIX}leaderboard:weekly_earners"
    assert connection.zscore(key, str(nadia.id)) == 180  # as NotifyLeaderboardWorker stored it
    assert re.search(r"^[│|] +1 [│|] Nadia Petrova +[│|] +180 [│|]$", text, re.MULTILINE)
    order = ("what the workers did", "stopped.", "leaderboard weekly_earners", "hit(s) for")
    assert [text.index(words) for words in order] == sorted(text.index(w) for w in order)


def test_the_search_finds_the_services_still_listed_for_the_word(demo_run):
    _settings, result, text = demo_run
    titles = sorted(hit["title"] for hit in result.results.hits)
    printed = text[text.index("2 hit(s) for 'beginners'") :]
    rows = [line for line in printed.splitlines() if re.match(r"^[│|] [\d.]+ +[│|] service", line)]

    # Not the withdrawn service, nor the one of the user who left.
    assert titles == ["Guitar lessons for beginners", "Vegetable patch for beginners"]
    assert len(rows) == 2
    assert any("Guitar lessons for beginners" in line for line in rows)
    assert not [line for line in rows if "Chess" in line or "Knitting" in line]
    assert text.rstrip().endswith("(its owner closed her account: DestroyUserWorker)")


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
    repeated = next(p.id for p in result.market.people if p.is_new)
    quickster = [reason for worker, reason in reasons if worker == "QuicksterWorker"]
    assert quickster == [f"user {repeated} reached profile_completed before"]
    # Besides those, only pushes and texts to people without a device, phone or opt-in.
    assert {worker for worker, _reason in reasons} - {"NotifyMessageWorker", "QuicksterWorker"} <= {
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


def test_exactly_the_deliberate_failures_die_each_with_its_reason(run):
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
    omar = user_named(result.market, "Omar")
    (refused,) = [line for line in lines if line.startswith("PayingSimbiWorker(")]
    assert f"insufficient funds: user {omar.id} has 20 Simbi, the transfer of 120" in refused
    assert len(lines) == 6
    # Each is said to be expected, and why.
    assert "dead jobs (6), each with its reason; all 6 expected" in text
    assert text.count("      expected: a bad upload") == 3
    assert "expected: a payment over the payer's balance" in text
    assert "NOT EXPECTED" not in text


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

    signups = [line for line in slack if line["channel"] == "signups"]
    assert sorted(line["user_id"] for line in signups) == [p.id for p in new_people]
    (refused,) = [line for line in slack if line["channel"] == "payments"]
    assert refused["user_id"] == user_named(result.market, "Omar").id
    assert refused["text"].startswith("Payment refused, insufficient Simbi")
    for person in new_people:
        (line,) = [line for line in slack if line["user_id"] == person.id]
        assert f"{person.first_name} {person.last_name} <{person.email}>" in line["text"]
    kinds = Counter(line["kind"] for line in mixpanel)
    rows = table(text)
    assert kinds["track"] == rows["MixpanelTrackWorker"]["done"]
    assert kinds["people_set"] == rows["MixpanelUpdateUserWorker"]["done"] == 14
    assert kinds["people_delete"] == 1  # DestroyUserWorker's
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
    assert len(dead_lines(text)) == 6
    # The first run's ledger, milestones and index are gone: the same trades, one repeat.
    assert second.results.leaderboard[0] == first.results.leaderboard[0]
    assert rows["QuicksterWorker"]["skipped"] == 1
    assert [hit["title"] for hit in second.results.hits] == [h["title"] for h in first.results.hits]
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


def test_the_demo_refuses_to_run_under_a_running_supervisor_and_touches_nothing(
    worker_env, settings
):
    from simbi_workers.errors import InfrastructureError
    from tests.conftest import free_port
    from tests.harness import supervisor

    refused = pytest.raises(InfrastructureError, match=r"1 worker process\(es\) of a running")
    with supervisor(worker_env, free_port(), "--processes", "1"), refused:
        demo(settings)

    assert not (settings.var_dir / "simbi.db").exists()
    assert not (settings.var_dir / "storage").exists()
