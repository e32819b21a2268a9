"""The TypeScript workers' jobs on the marketplace's economy (economy.py), by phase. Each
phase starts once every job before it, follow-ups included, is done or dead, so that
what a worker reads is there:

1. the trades, onboarding bonuses, response times, service counters, old events, the
   search index, and the listing posted today;
2. strength (after the trades and new avatars), the weekly leaderboard (after the trades),
   a withdrawn service out of the index, and the leaving user's deletion;
3. ratings from the reviews (each enqueues the owner's display score, which reads the
   strength and response times), Mixpanel profiles, and old events removed;
4. scores, which weigh the ratings and display scores.

One job is meant to fail: Omar's payment, larger than his balance (dead at once, and
posted to Slack #payments). Two repeat another job on purpose and change nothing: a
payment under the same idempotency key, and an onboarding milestone (a skip).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from simbi_workers.demo_data.economy import Economy
from simbi_workers.demo_data.marketplace import Marketplace

Job = tuple[str, list]

BULK_BATCH = 10  # small, so that SearchBulkIndexWorker's chain of batches shows
BOARD = "weekly_earners"
OLD_EVENTS = 3  # events for RemoveUserEventsWorker to remove
OLD_EVENT_DAYS = 120  # it keeps 90 days (analytics_worker.ts, EVENT_RETENTION_MS)


def first_phase(market: Marketplace) -> list[Job]:
    money = _economy(market)
    jobs: list[Job] = [("PayingSimbiWorker", payment.args) for payment in money.payments]
    # The app retrying the first payment: the same key moves the money once.
    jobs += [
        ("PayingSimbiWorker", money.payments[0].args),
        ("PayingSimbiWorker", money.refused.args),
    ]
    new = [person.id for person in market.people if person.is_new]
    jobs += [("QuicksterWorker", [user_id, "profile_completed"]) for user_id in new]
    jobs.append(("QuicksterWorker", [new[0], "profile_completed"]))  # a skip: paid once
    jobs += [("ResponseTimeWorker", [owner, talk]) for talk, owner in talk_owners(market)]
    jobs += _service_stats(market)
    jobs += _old_events(market)
    jobs += [("SearchBulkIndexWorker", [kind, 0, BULK_BATCH]) for kind in ("service", "user")]
    jobs.append(("FriendNewListingWorker", [money.new_listing]))
    jobs.append(("SearchIndexWorker", ["service", money.new_listing]))
    return jobs


def second_phase(market: Marketplace) -> list[Job]:
    """The run withdraws economy.withdrawn (economy.withdraw) before these are enqueued."""
    money = _economy(market)
    jobs = [("RecalculateStrengthWorker", [user_id]) for user_id in changed_people(market)]
    jobs.append(("NotifyLeaderboardWorker", [BOARD]))
    jobs.append(("SearchRemoveWorker", ["service", money.withdrawn.id]))
    jobs.append(("DestroyUserWorker", [money.leaving]))
    return jobs


def third_phase(market: Marketplace) -> list[Job]:
    jobs = [("UpdateRatingWorker", [service_id]) for service_id in _economy(market).reviewed]
    jobs += [("MixpanelUpdateUserWorker", [user_id]) for user_id in changed_people(market)]
    jobs.append(("RemoveUserEventsWorker", []))
    return jobs


def fourth_phase(market: Marketplace) -> list[Job]:
    money = _economy(market)
    jobs: list[Job] = [
        ("ScoreWorker", [service_id, "service", money.formulas["service"]])
        for service_id in money.reviewed
    ]
    jobs += [
        ("ScoreQueryProcessorWorker", [kind, money.formulas[kind]]) for kind in ("user", "service")
    ]
    return jobs


def changed_people(market: Marketplace) -> list[int]:
    """Whose Simbi or profile changes in the run: the parties of the payments that go
    through and the new people, who complete their profile."""
    money = _economy(market)
    parties = [user_id for p in money.payments for user_id in (p.payer, p.payee)]
    new = [person.id for person in market.people if person.is_new]
    return sorted(set(parties + new))


def _economy(market: Marketplace) -> Economy:
    assert market.economy is not None, "the marketplace was built without its economy"
    return market.economy


def talk_owners(market: Marketplace) -> list[tuple[int, int]]:
    """(talk id, the owner of the service it is about): the one who answers, whose reply
    time ResponseTimeWorker measures."""
    assert market.social is not None
    first: dict[int, int] = {}
    for message in sorted(market.social.messages, key=lambda m: m.id):
        first.setdefault(message.talk_id, message.recipient_id)
    return sorted(first.items())


def _service_stats(market: Marketplace) -> list[Job]:
    """A favorite counted per favorite, and views and a share of the new listing."""
    assert market.social is not None
    jobs: list[Job] = [
        ("RecordServiceStatsWorker", [service_id, "favorites", 1])
        for service_id, _user in market.social.favorites
    ]
    listing = _economy(market).new_listing
    jobs += [
        ("RecordServiceStatsWorker", [listing, "views", 5]),
        ("RecordServiceStatsWorker", [listing, "shares", 1]),
    ]
    return jobs


def _old_events(market: Marketplace) -> list[Job]:
    """Services the first members viewed long ago, past the streams' 90-day retention."""
    members = [person for person in market.people if not person.is_new][:OLD_EVENTS]
    when = (datetime.now(UTC) - timedelta(days=OLD_EVENT_DAYS)).isoformat(timespec="seconds")
    properties = {"source": "demo"}
    return [
        ("UserEventTrackerWorker", [person.id, "Service Viewed", properties, when])
        for person in members
    ]
