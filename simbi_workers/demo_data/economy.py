"""The records the TypeScript workers read beyond the social ones: Simbi balances and the
sample trades, reviews of what was traded, two score formulas, bios and last visits, a
listing posted today, a service its owner withdraws during the run, and someone leaving.

The trades are the same whatever the job count, so that the leaderboard always has the
same top earner: Nadia, whose guitar lessons three people pay for (180 Simbi).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import Connection, func, insert, select, update

from simbi_workers.config import Settings
from simbi_workers.demo_data import texts
from simbi_workers.demo_data.social import Service, Social
from simbi_workers.services.db import Database
from simbi_workers.store.schema import follows, reviews, score_formulas, services, users

if TYPE_CHECKING:
    from simbi_workers.demo_data.marketplace import Person

# (payer's index in marketplace.PEOPLE, title of the service paid for, sessions): the
# payee is the service's owner and the amount its price times the sessions.
PAYMENTS = (
    (0, "Guitar lessons for beginners", 2),
    (2, "Painting one room", 1),
    (5, "Guitar lessons for beginners", 1),
    (9, "Website fixes in WordPress", 1),
    (3, "Morning yoga in the park", 3),
    (11, "Guitar lessons for beginners", 1),
    (6, "Homemade dumplings workshop", 2),
)
REFUSED = (14, "Painting one room", 1)  # Omar has LOW_BALANCE_SIMBI: PayingSimbiWorker refuses
STARTING_BALANCE_SIMBI = 150  # for everyone who joined before today; new people have 0
LOW_BALANCE_SIMBI = 20
KEY_PREFIX = "demo:payment:"  # idempotency keys; a rerun deletes the ledger rows first

SEARCH_WORD = "beginners"  # in three titles of texts.SERVICES and in LEAVING_SERVICE
WITHDRAWN = "Chess for beginners"  # taken down mid-run: SearchRemoveWorker drops it
NEW_LISTING = ("Home repair", "Bike tune-up and puncture repair", 35)
LEAVING = ("Vera", "Quinlan")  # DestroyUserWorker deletes her, and her service with her
LEAVING_SERVICE = ("Lessons", "Knitting for beginners", 25)

FORMULA_PREFIX = "demo: "  # score formula names are unique: a rerun deletes these first
FORMULAS = {
    "user": ("demo: trusted members", {"rating_average": 10, "review_count": 5,
                                       "followers_count": 2, "display_score": 0.5}),
    "service": ("demo: popular services", {"rating_average": 10, "favorites_count": 3,
                                           "comments_count": 1}),
}  # fmt: skip


@dataclass(frozen=True)
class Payment:
    payer: int
    payee: int
    amount: int
    reason: str
    key: str  # idempotency key

    @property
    def args(self) -> list:
        return [self.payer, self.payee, self.amount, self.reason, self.key]


@dataclass(frozen=True)
class Economy:
    payments: list[Payment]  # each payer can afford theirs
    refused: Payment
    reviewed: list[int]  # the reviewed services' ids, each of another owner
    formulas: dict[str, int]  # subject type -> score formula id
    new_listing: int  # a service posted today
    withdrawn: Service  # active until the run withdraws it
    leaving: int  # the user DestroyUserWorker deletes


def build(conn: Connection, people: list[Person], records: Social, email_domain: str) -> Economy:
    _add_profiles(conn, people)
    by_title = {service.title: service for service in records.services}
    payments = [
        _payment(people, by_title, plan, f"{KEY_PREFIX}{n}") for n, plan in enumerate(PAYMENTS, 1)
    ]
    formulas = {
        subject: _insert(conn, score_formulas, name=name, subject_type=subject, weights=weights)
        for subject, (name, weights) in FORMULAS.items()
    }
    return Economy(
        payments=payments,
        refused=_payment(people, by_title, REFUSED, f"{KEY_PREFIX}refused"),
        reviewed=_add_reviews(conn, people, by_title),
        formulas=formulas,
        new_listing=_add_new_listing(conn, people),
        withdrawn=by_title[WITHDRAWN],
        leaving=_add_leaving(conn, email_domain),
    )


def withdraw(settings: Settings, service: Service) -> None:
    """What the app does when an owner takes a service down, before it enqueues
    SearchRemoveWorker for it."""
    database = Database(settings.database_url_or_default)
    now = datetime.now(UTC)
    with database.engine.begin() as conn:
        change = update(services).where(services.c.id == service.id)
        conn.execute(change.values(status="withdrawn", updated_at=now))
    database.engine.dispose()


def _insert(conn: Connection, table, **values) -> int:
    return conn.execute(insert(table).values(**values)).inserted_primary_key[0]


def _payment(people, by_title: dict[str, Service], plan: tuple, key: str) -> Payment:
    payer_index, title, sessions = plan
    service = by_title[title]
    amount = service.price * sessions
    reason = f"{title} ({sessions} session{'s' if sessions > 1 else ''})"
    return Payment(people[payer_index].id, service.owner_id, amount, reason, key)


def _add_profiles(conn: Connection, people: list[Person]) -> None:
    """Balances, last visits (recency counts in the display score), and a bio for the new
    people, who complete their profile today, and for every third of the others."""
    now = datetime.now(UTC)
    for index, person in enumerate(people):
        balance = 0 if person.is_new else STARTING_BALANCE_SIMBI
        if index == REFUSED[0]:
            balance = LOW_BALANCE_SIMBI
        values = {"simbi_balance": balance, "last_seen_at": now - timedelta(days=index % 10)}
        if person.is_new or index % 3 == 0:
            values["bio"] = texts.BIOS[index % len(texts.BIOS)]
        conn.execute(update(users).where(users.c.id == person.id).values(**values))


def _add_reviews(conn: Connection, people, by_title: dict[str, Service]) -> list[int]:
    reviewed = []
    for reviewer, title, rating, body in texts.REVIEWS:
        service_id = by_title[title].id
        values = {"service_id": service_id, "reviewer_id": people[reviewer].id}
        conn.execute(insert(reviews).values(**values, rating=rating, body=body))
        reviewed.append(service_id)
    return list(dict.fromkeys(reviewed))


def _add_new_listing(conn: Connection, people: list[Person]) -> int:
    """A service posted today by the person with the most followers, for
    FriendNewListingWorker to announce."""
    followed = follows.c.followed_id
    query = select(followed).where(followed.in_([person.id for person in people]))
    query = query.group_by(followed).order_by(func.count().desc(), followed).limit(1)
    owner = conn.execute(query).scalar_one()
    category, title, price = NEW_LISTING
    return _insert(conn, services, user_id=owner, title=title, category=category, price=price)


def _add_leaving(conn: Connection, email_domain: str) -> int:
    """Someone who closes their account during the run; not one of the people the other
    jobs are about, so that only DestroyUserWorker and the search index see them."""
    first, last = LEAVING
    email = f"{first}.{last}@{email_domain}".lower()
    joined = datetime.now(UTC) - timedelta(days=200)
    user_id = _insert(
        conn, users, email=email, first_name=first, last_name=last, created_at=joined,
        bio=texts.BIOS[0],
    )  # fmt: skip
    category, title, price = LEAVING_SERVICE
    _insert(conn, services, user_id=user_id, title=title, category=category, price=price)
    return user_id
