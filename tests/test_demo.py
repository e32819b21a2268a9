"""`simbi-workers demo` end to end: the real supervisor in a subprocess, real Ruby and Node
children, real photos, the test Redis and a SQLite database under the test's var/."""

from __future__ import annotations

import io
import json
import re

import pytest
import redis
from PIL import Image
from rich.console import Console
from sqlalchemy import create_engine, select

from simbi_workers import keys
from simbi_workers.config import Settings
from simbi_workers.demo import run_demo
from simbi_workers.demo_data import marketplace, workload
from simbi_workers.store.schema import images, users

JOB_COUNT = 60
VARIANTS = ("original", "large", "medium", "thumb")
ROW = re.compile(r"^[│|] (\w+) +[│|] (\w+) +[│|] +(\d+) [│|] +(\d+) [│|] +(\d+) [│|] +(\d+) [│|]")


def demo(settings, job_count=JOB_COUNT, **options):
    """run_demo with a wide recording console; returns (result, printed text)."""
    console = Console(record=True, width=240, color_system=None)
    result = run_demo(settings, job_count=job_count, processes=2, console=console, **options)
    return result, console.export_text()


def table(text: str) -> dict[str, dict[str, int | str]]:
    """The printed per-worker table: worker -> runtime, jobs, done, dead, retried."""
    found = {}
    for line in text.splitlines():
        match = ROW.match(line)
        if match:
            worker, runtime, jobs, done, dead, retried = match.groups()
            numbers = {"jobs": jobs, "done": done, "dead": dead, "retried": retried}
            found[worker] = {"runtime": runtime} | {k: int(v) for k, v in numbers.items()}
    return found


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

    assert result.finished
    assert rows["UploadImageWorker"] == {
        "runtime": "python",
        "jobs": len(market.uploads),
        "done": len(market.good),
        "dead": 3,
        "retried": 0,
    }
    assert rows["ImageOptimizationWorker"]["done"] == len(market.good)
    assert rows["SlackNotifierWorker"] == {
        "runtime": "ruby",
        "jobs": len(market.people) + 1,
        "done": len(market.people),
        "dead": 1,
        "retried": 0,
    }
    assert rows["UpdateAvatarWorker"]["dead"] == 1
    for worker in ("MixpanelTrackWorker", "UserEventTrackerWorker"):
        assert rows[worker]["runtime"] == "node"
        assert rows[worker]["done"] == rows[worker]["jobs"] > 0
    assert sum(row["jobs"] for row in rows.values()) == JOB_COUNT


def test_exactly_the_bad_uploads_die_each_with_its_reason(run):
    result, text = run
    lines = dead_lines(text)

    upload_lines = [line for line in lines if line.startswith("UploadImageWorker(")]
    assert len(upload_lines) == len(result.market.bad) == 3
    for upload in result.market.bad:
        prefix = f"UploadImageWorker({upload.image_id}, {upload.id}): UnusableImage: "
        (line,) = [line for line in upload_lines if line.startswith(prefix)]
        assert upload.bad_reason in line
    assert {upload.bad_reason for upload in result.market.bad} == {
        "not an image",
        "truncated",
        "decompression bomb",
    }

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


def test_the_outboxes_hold_a_signup_per_person_and_every_mixpanel_event(demo_run):
    settings, result, text = demo_run
    slack = read_jsonl(settings.outbox_dir / "slack.jsonl")
    mixpanel = read_jsonl(settings.outbox_dir / "mixpanel.jsonl")

    assert {line["channel"] for line in slack} == {"signups"}
    assert sorted(line["user_id"] for line in slack) == [p.id for p in result.market.people]
    for person in result.market.people:
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
    first, _first_text = demo(settings, job_count=30)
    second, text = demo(settings, job_count=20)  # fewer uploads: ids that were good go bad

    rows = table(text)
    assert rows["UploadImageWorker"]["done"] == len(second.market.good) < len(first.market.good)
    assert rows["UploadImageWorker"]["dead"] == 3
    assert len(dead_lines(text)) == 5

    engine = create_engine(settings.database_url_or_default)
    with engine.connect() as conn:
        emails = conn.execute(select(users.c.email)).scalars().all()
    assert sorted(emails) == sorted(person.email for person in second.market.people)
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
    for queue in ("paperclip", "slack", "mixpanel", "default"):
        assert connection.llen(keys.queue(queue)) == 0


def test_the_bomb_is_small_on_disk_and_refused_by_pillow_before_decoding():
    data = marketplace.png_bomb(marketplace.BOMB_SIDE_PX)
    assert len(data) < 100_000
    with pytest.raises(Image.DecompressionBombError):
        Image.open(io.BytesIO(data))


@pytest.mark.parametrize("job_count", [60, 300])
def test_the_workload_adds_up_to_job_count_with_both_kinds_of_event(job_count):
    people = [marketplace.Person(n, "A", "B", f"{n}@x", n <= 3) for n in range(1, 21)]
    good = workload.photo_uploads(job_count)
    uploads = [marketplace.Upload(n, n, f"k{n}", "hopper.jpg", None) for n in range(1, good + 1)]
    uploads += [marketplace.Upload(n, n, f"k{n}", None, "bad") for n in range(good + 1, good + 4)]

    first = workload.first_phase(marketplace.Marketplace(people, uploads), job_count)
    second = workload.second_phase(list(range(1, good + 1)))

    assert len(first) + len(second) == job_count
    workers = {worker for worker, _args in first}
    assert {"MixpanelTrackWorker", "UserEventTrackerWorker"} <= workers


def read_jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines()]
