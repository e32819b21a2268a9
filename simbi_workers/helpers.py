"""One helper per worker, grouped as app code thinks of them:

    from simbi_workers.helpers import Emails, Users

    Emails.send_intro(user_id, "first")
    Emails.send_intro_in(3600, user_id, "second")           # seconds, or a timedelta
    Users.pay_simbi_at(when, from_id, to_id, 25, "trade", key)

Each call enqueues through the default client (simbi_workers.client) and returns the job
id. CATEGORIES is the one table of helper names: the TypeScript client's camelCase helpers
are generated from it (simbi_workers.client_catalog), and tests/test_helpers.py checks that
it names each worker of queues.yaml exactly once and that every helper's parameters are
that worker's `args`.
"""

from __future__ import annotations

import inspect
from datetime import datetime, timedelta
from typing import Any

from simbi_workers import client

CATEGORIES: dict[str, dict[str, str]] = {
    "Emails": {
        "notify_message": "NotifyMessageWorker",
        "send_intro": "SendIntroWorker",
        "notify_comment": "NotifyCommentEmailWorker",
        "send_engagement_favorited": "SendEngagementFavoritedWorker",
        "send_suggested_services": "SendSuggestedServicesWorker",
    },
    "Notifications": {
        "send_push": "SendPushWorker",
        "send_push_message": "SendPushMessageWorker",
        "send_sms": "SendSmsWorker",
        "send_sms_message": "SendSmsMessageWorker",
        "notify_compliment": "NotifyComplimentWorker",
        "notify_favor": "NotifyFavorWorker",
        "notify_match": "NotifyMatchWorker",
        "notify_new_follower": "NotifyNewFollowerWorker",
    },
    "Slack": {"notify": "SlackNotifierWorker"},
    "Images": {
        "upload": "UploadImageWorker",
        "update_avatar": "UpdateAvatarWorker",
        "optimize": "ImageOptimizationWorker",
    },
    "Analytics": {
        "mixpanel_track": "MixpanelTrackWorker",
        "mixpanel_update_user": "MixpanelUpdateUserWorker",
        "track_user_event": "UserEventTrackerWorker",
        "record_service_stat": "RecordServiceStatsWorker",
        "display_score": "DisplayScoreWorker",
        "remove_user_events": "RemoveUserEventsWorker",
        "response_time": "ResponseTimeWorker",
    },
    "Scores": {
        "score": "ScoreWorker",
        "process_score_query": "ScoreQueryProcessorWorker",
        "update_rating": "UpdateRatingWorker",
        "recalculate_strength": "RecalculateStrengthWorker",
        "notify_leaderboard": "NotifyLeaderboardWorker",
    },
    "Users": {
        "destroy": "DestroyUserWorker",
        "social_friends": "SocialFriendsWorker",
        "quickster": "QuicksterWorker",
        "pay_simbi": "PayingSimbiWorker",
        "friend_new_listing": "FriendNewListingWorker",
    },
    "Search": {
        "index": "SearchIndexWorker",
        "bulk_index": "SearchBulkIndexWorker",
        "remove": "SearchRemoveWorker",
    },
}


class _Category:
    """A namespace of helpers; `_category` builds one from a row of CATEGORIES."""

    def __init__(self, name: str):
        self.__name__ = name

    def __repr__(self) -> str:
        return f"<helpers {self.__name__}>"


def _category(name: str, helpers: dict[str, str]) -> _Category:
    namespace = _Category(name)
    for method, worker in helpers.items():
        setattr(namespace, method, _now_helper(method, worker))
        setattr(namespace, f"{method}_in", _in_helper(method, worker))
        setattr(namespace, f"{method}_at", _at_helper(method, worker))
    return namespace


def _parameters(worker: str) -> list[inspect.Parameter]:
    # Read when a signature is asked for, not at import: the catalogue comes from
    # SIMBI_QUEUES_FILE, which a test or an app may set after importing this module.
    args = client.default_client().catalog.worker(worker).args
    return [inspect.Parameter(arg, inspect.Parameter.POSITIONAL_OR_KEYWORD) for arg in args]


class _Helper:
    """A function with the worker's argument names as its signature (help() shows them);
    the client itself refuses a wrong count, with its usual message."""

    def __init__(self, name: str, worker: str, lead: list[str], call):
        self.__name__ = name
        self.worker = worker
        self._lead = lead
        self._call = call

    @property
    def __signature__(self) -> inspect.Signature:
        lead = [inspect.Parameter(n, inspect.Parameter.POSITIONAL_ONLY) for n in self._lead]
        return inspect.Signature([*lead, *_parameters(self.worker)])

    def __call__(self, *args: Any) -> str:
        return self._call(*args)


def _now_helper(method: str, worker: str) -> _Helper:
    return _Helper(method, worker, [], lambda *args: client.perform_async(worker, *args))


def _in_helper(method: str, worker: str) -> _Helper:
    def call(delay: float | timedelta, *args: Any) -> str:
        return client.perform_in(delay, worker, *args)

    return _Helper(f"{method}_in", worker, ["delay"], call)


def _at_helper(method: str, worker: str) -> _Helper:
    def call(when: datetime | float, *args: Any) -> str:
        return client.perform_at(when, worker, *args)

    return _Helper(f"{method}_at", worker, ["when"], call)


Emails = _category("Emails", CATEGORIES["Emails"])
Notifications = _category("Notifications", CATEGORIES["Notifications"])
Slack = _category("Slack", CATEGORIES["Slack"])
Images = _category("Images", CATEGORIES["Images"])
Analytics = _category("Analytics", CATEGORIES["Analytics"])
Scores = _category("Scores", CATEGORIES["Scores"])
Users = _category("Users", CATEGORIES["Users"])
Search = _category("Search", CATEGORIES["Search"])
