"""What a second demo run removes of the first: its social records and economy.py's, the
Redis keys the workers keyed by them, and the onboarding steps still scheduled for its
people.

On SQLite a rerun reuses the same row ids, so whatever the first run left keyed by an id
would meet the second run's records: a follow "already notified today", an SMS throttled,
an intro step from two days ago arriving for someone who just joined.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import redis
from sqlalchemy import Connection, Select, and_, delete, or_, select

from simbi_workers.catalog import Catalog
from simbi_workers.demo_data import economy, followups
from simbi_workers.services.redis_kv import PREFIX
from simbi_workers.store.schema import (
    comments,
    compliments,
    devices,
    favorites,
    favors,
    follows,
    matches,
    messages,
    milestones,
    notification_preferences,
    notifications_sent,
    reviews,
    score_formulas,
    scores,
    search_documents,
    services,
    simbi_transactions,
    suggestion_history,
    talk_participants,
    talks,
)

# The tables that point at people, and the columns that do.
PERSONAL_COLUMNS = {
    messages: ("sender_id",),
    talk_participants: ("user_id",),
    comments: ("user_id",),
    compliments: ("sender_id", "receiver_id"),
    favors: ("requester_id", "asked_user_id"),
    favorites: ("user_id",),
    matches: ("user_a_id", "user_b_id"),
    follows: ("follower_id", "followed_id"),
    devices: ("user_id",),
    notification_preferences: ("user_id",),
    suggestion_history: ("user_id",),
    notifications_sent: ("user_id",),
    reviews: ("reviewer_id",),
    milestones: ("user_id",),
    # Ledger rows would outlive the users with NULL ids, and a rerun reusing their
    # idempotency keys (economy.KEY_PREFIX, QuicksterWorker's) would then be refused.
    simbi_transactions: ("from_user_id", "to_user_id"),
    search_documents: ("owner_id",),
}
# The per-user analytics the TypeScript workers keep (analytics_worker.ts): a rerun's
# ResponseTimeWorker would find the talks of the reused ids counted already.
USER_KEYS = ("events:user:{}", "display_score:{}", "response_time:{}")
LEADERBOARD_TOP = f"{PREFIX}leaderboard:weekly_earners:top10"


@dataclass(frozen=True)
class Previous:
    """What the run before this one left outside the database."""

    user_ids: list[int] = field(default_factory=list)
    redis_keys: list[str] = field(default_factory=list)


def forget_records(conn: Connection, demo_users: Select) -> Previous:
    """Delete the social records of demo_users, their ledger, reviews, scores and search
    documents, children first (foreign keys); what they keyed in Redis comes back for
    forget_state."""
    previous = Previous(list(conn.execute(demo_users).scalars()), _keys(conn, demo_users))
    demo_services = select(services.c.id).where(services.c.user_id.in_(demo_users))
    demo_talks = select(talk_participants.c.talk_id).where(
        talk_participants.c.user_id.in_(demo_users)
    )

    talk_ids = list(conn.execute(demo_talks).scalars())
    for table, column in ((messages, "talk_id"), (talk_participants, "talk_id"), (talks, "id")):
        conn.execute(delete(table).where(table.c[column].in_(talk_ids)))
    for table, columns in PERSONAL_COLUMNS.items():
        clause = or_(*(table.c[name].in_(demo_users) for name in columns))
        conn.execute(delete(table).where(clause))
    for table in (comments, favorites, favors, matches, suggestion_history, reviews):
        service_columns = [c for c in table.c if c.name.startswith("service")]
        clause = or_(*(column.in_(demo_services) for column in service_columns))
        conn.execute(delete(table).where(clause))
    _forget_scores(conn, demo_users, demo_services)
    # Also the demo's payments whose users are gone (a deleted user's rows stay, detached).
    keys = simbi_transactions.c.idempotency_key.like(f"{economy.KEY_PREFIX}%")
    conn.execute(delete(simbi_transactions).where(keys))
    conn.execute(delete(services).where(services.c.user_id.in_(demo_users)))
    return previous


def _forget_scores(conn: Connection, demo_users: Select, demo_services: Select) -> None:
    """The demo's score formulas and every score of its people and services."""
    formulas = select(score_formulas.c.id).where(
        score_formulas.c.name.like(f"{economy.FORMULA_PREFIX}%")
    )
    of_users = and_(scores.c.subject_type == "user", scores.c.subject_id.in_(demo_users))
    of_services = and_(scores.c.subject_type == "service", scores.c.subject_id.in_(demo_services))
    conn.execute(
        delete(scores).where(or_(of_users, of_services, scores.c.formula_id.in_(formulas)))
    )
    conn.execute(delete(score_formulas).where(score_formulas.c.id.in_(formulas)))


def forget_state(connection: redis.Redis, catalog: Catalog, previous: Previous) -> None:
    """Delete the previous run's Redis keys and take out its people's follow-up jobs (the
    intro steps it left scheduled days ahead)."""
    if previous.redis_keys:
        connection.delete(*previous.redis_keys)
    _leave_top(connection, set(previous.user_ids))
    followups.take_out(connection, followups.for_people(connection, catalog, previous.user_ids))


def _keys(conn: Connection, demo_users: Select) -> list[str]:
    """NotifyNewFollowerWorker's key per pair and SendSmsMessageWorker's throttle per talk
    and recipient (workers/ruby/workers/), and each person's USER_KEYS, under the redis
    service's prefix."""
    query = select(follows.c.follower_id, follows.c.followed_id)
    query = query.where(follows.c.follower_id.in_(demo_users))
    keys = [f"{PREFIX}follow:notified:{a}:{b}" for a, b in conn.execute(query)]
    query = select(talk_participants.c.talk_id, talk_participants.c.user_id)
    query = query.where(talk_participants.c.user_id.in_(demo_users))
    keys += [f"{PREFIX}sms:talk:{talk}:user:{user}" for talk, user in conn.execute(query)]
    user_ids = conn.execute(demo_users).scalars()
    keys += [PREFIX + key.format(user_id) for user_id in user_ids for key in USER_KEYS]
    return keys


def _leave_top(connection: redis.Redis, user_ids: set[int]) -> None:
    """Take the previous run's people out of the stored top 10, so that
    NotifyLeaderboardWorker tells this run's earners they entered it, as on a first run."""
    stored = connection.get(LEADERBOARD_TOP)
    if stored is None:
        return
    try:
        top = [int(user_id) for user_id in json.loads(stored)]
    except (ValueError, TypeError):
        return  # not NotifyLeaderboardWorker's list: its next run rewrites it
    kept = [user_id for user_id in top if user_id not in user_ids]
    if kept != top:
        connection.set(LEADERBOARD_TOP, json.dumps(kept))
