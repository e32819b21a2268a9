"""queues.yaml: the real file loads, and every mistake names the file, worker and key."""

import pytest

from simbi_workers import catalog
from simbi_workers.errors import ConfigError

GOOD_QUEUES = "queues:\n  default: {priority: 5}\n  critical: {priority: 10}\n"


def write(tmp_path, text):
    path = tmp_path / "queues.yaml"
    path.write_text(text)
    return path


def test_the_real_catalogue_has_seven_queues_in_priority_order():
    loaded = catalog.load()

    assert loaded.queue_names() == [
        "critical",
        "email_templates",
        "slack",
        "default",
        "paperclip",
        "searchkick",
        "mixpanel",
    ]
    slack = loaded.worker("SlackNotifierWorker")
    assert (slack.runtime, slack.queue, slack.args) == (
        "ruby",
        "slack",
        ("channel", "user_id", "text"),
    )
    upload = loaded.worker("UploadImageWorker")
    assert (upload.timeout_seconds, upload.concurrency, upload.retry) == (120, 3, 5)


def test_defaults_follow_workers_md(tmp_path):
    path = write(tmp_path, GOOD_QUEUES + "workers:\n  W: {runtime: node, args: [a]}\n")

    spec = catalog.load(path).worker("W")

    assert (spec.queue, spec.retry, spec.timeout_seconds) == ("default", 5, 60)
    assert spec.concurrency is None and spec.unique_seconds is None and spec.cron is None


@pytest.mark.parametrize(
    ("worker_yaml", "expected"),
    [
        ("W: {runtime: node, args: [], colour: blue}", "worker W, key 'colour'"),
        (
            "W: {runtime: node, args: [], queue: nowhere}",
            "worker W, key 'queue': unknown queue 'nowhere' (known: critical, default)",
        ),
        ("W: {runtime: perl, args: []}", "worker W, key 'runtime'"),
        (
            "W: {runtime: node, args: [], cron: 'every day'}",
            "worker W, key 'cron': 'every day' is not a five-field cron expression",
        ),
        (
            "W: {runtime: node, args: [board], cron: '0 3 * * *'}",
            "worker W, key 'cron_args': each cron run needs 1 argument(s) (board), got 0",
        ),
        (
            "W: {runtime: node, args: [], cron_args: [1]}",
            "worker W, key 'cron_args': given without 'cron'",
        ),
        (
            "W: {runtime: node, args: [day], cron: '0 3 * * *', cron_args: [2026-12-03]}",
            "worker W, key 'cron_args': [datetime.date(2026, 12, 3)] is not plain JSON",
        ),
        ("W: {runtime: node, args: [], retry: -1}", "worker W, key 'retry'"),
        ("W: {runtime: node, args: [], timeout: '60'}", "worker W, key 'timeout'"),
        ("W: {runtime: node}", "worker W, key 'args'"),
        ("W: {runtime: node, args: [a, a]}", "worker W, key 'args': an argument name is repeated"),
        (
            "W: {runtime: node, args: [user_id, token], secret_args: [access_token]}",
            "worker W, key 'secret_args': 'access_token' is not one of its args (user_id, token)",
        ),
        ("W: {runtime: node, args: [a], secret_args: a}", "worker W, key 'secret_args'"),
    ],
)
def test_each_mistake_names_file_worker_and_key(tmp_path, worker_yaml, expected):
    path = write(tmp_path, GOOD_QUEUES + "workers:\n  " + worker_yaml + "\n")

    with pytest.raises(ConfigError) as error:
        catalog.load(path)

    assert str(error.value).startswith(str(path))
    assert expected in str(error.value)


def test_a_worker_listed_twice_is_refused_with_its_line(tmp_path):
    text = (
        GOOD_QUEUES + "workers:\n  W: {runtime: node, args: []}\n  W: {runtime: ruby, args: []}\n"
    )
    path = write(tmp_path, text)

    with pytest.raises(ConfigError, match=r"queues.yaml:6: 'W' is listed twice"):
        catalog.load(path)


def test_a_bad_queue_priority_names_the_queue(tmp_path):
    path = write(tmp_path, "queues:\n  default: {priority: high}\nworkers: {}\n")

    with pytest.raises(ConfigError, match="queue default, key 'priority'"):
        catalog.load(path)


def test_missing_file_and_broken_yaml_are_clear(tmp_path):
    with pytest.raises(ConfigError, match="cannot read the queues file"):
        catalog.load(tmp_path / "absent.yaml")
    with pytest.raises(ConfigError, match="not valid YAML"):
        catalog.load(write(tmp_path, "queues: [unclosed\n"))


def test_secret_args_are_shown_redacted_and_the_real_catalogue_hides_the_social_token(tmp_path):
    text = "workers:\n  W: {runtime: node, args: [user_id, token], secret_args: [token]}\n"
    spec = catalog.load(write(tmp_path, GOOD_QUEUES + text)).worker("W")

    assert spec.secret_args == ("token",) and spec.secret_positions == (1,)
    assert spec.shown_args([7, "EAAB-secret"]) == [7, "[redacted]"]
    social = catalog.load().worker("SocialFriendsWorker")
    assert social.shown_args([7, "facebook", "EAAB-secret"]) == [7, "facebook", "[redacted]"]
