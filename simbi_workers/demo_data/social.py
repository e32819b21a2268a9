"""The demo's social records, what the email and notification workers read: services,
talks with messages (some read, some not), comments, compliments, favors, favorites,
matches, follows, devices and one opt-out.

Deterministic: the same people and talk count give the same records. Every count grows
with the number of talks, which the workload derives from its job count.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import Connection, insert

from simbi_workers.demo_data import texts
from simbi_workers.store.schema import (
    comments,
    compliments,
    devices,
    favorites,
    favors,
    follows,
    matches,
    messages,
    notification_preferences,
    services,
    talk_participants,
    talks,
)

if TYPE_CHECKING:
    from simbi_workers.demo_data.marketplace import Person

# Talk k has shape k % 3: (conversation, whether both people have read all of it). In an
# unread talk each person has read up to their own last message.
SHAPES = ((0, False), (1, False), (2, True))
# Minutes between the messages of talk k (by k % 5): the owner's reply time, which
# ResponseTimeWorker measures, from a quick answer to half a day.
REPLY_MINUTES = (12, 45, 95, 240, 720)
OPT_OUT_TALK = 1  # the person who wrote first in this talk turned off message emails
OPT_OUT = ("email", "messages")
# person index % 4 -> (provider, platform) of each device; % 4 == 3 has none
DEVICE_PLANS = (
    (("fcm", "android"), ("onesignal", "web")),
    (("fcm", "ios"),),
    (("onesignal", "android"),),
    (),
)


@dataclass(frozen=True)
class Service:
    id: int
    owner_id: int
    title: str
    category: str
    price: int  # in Simbi


@dataclass(frozen=True)
class Message:
    id: int
    talk_id: int
    sender_id: int
    recipient_id: int
    unread: bool  # by the recipient


@dataclass(frozen=True)
class Social:
    services: list[Service]
    talks: list[int]
    messages: list[Message]
    comments: list[int]
    compliments: list[int]
    favors: list[int]
    favorites: list[tuple[int, int]]  # (service id, user id)
    matches: list[int]
    follows: list[int]
    devices: Counter[str]  # provider -> devices
    opt_out: tuple[int, str, str]  # (user id, channel, category) turned off

    @property
    def unread(self) -> list[Message]:
        return [message for message in self.messages if message.unread]


def build(conn: Connection, people: list[Person], talk_count: int) -> Social:
    owners = [person for person in people if not person.is_new]  # new people offer nothing yet
    offered = _add_services(conn, owners)
    talk_ids, sent = _add_talks(conn, people, offered, talk_count)
    opt_out_talk = talk_ids[OPT_OUT_TALK]
    opt_out_user = next(m.recipient_id for m in sent if m.talk_id == opt_out_talk and m.unread)
    opt_out = (opt_out_user, *OPT_OUT)
    values = {"user_id": opt_out_user, "channel": OPT_OUT[0], "category": OPT_OUT[1]}
    conn.execute(insert(notification_preferences).values(**values, enabled=False))

    by_id = {person.id: person for person in people}
    half, third = max(1, talk_count // 2), max(1, talk_count // 3)
    return Social(
        services=offered,
        talks=talk_ids,
        messages=sent,
        comments=_add_comments(conn, people, offered, by_id, talk_count),
        compliments=_add_compliments(conn, people, owners, half),
        favors=_add_favors(conn, people, owners, offered, half),
        favorites=_add_favorites(conn, people, offered, talk_count),
        matches=_add_matches(conn, owners, offered, third),
        follows=_add_follows(conn, people, owners, max(1, talk_count * 2 // 3)),
        devices=_add_devices(conn, people),
        opt_out=opt_out,
    )


def _insert(conn: Connection, table, **values) -> int:
    return conn.execute(insert(table).values(**values)).inserted_primary_key[0]


def _add_services(conn: Connection, owners: list[Person]) -> list[Service]:
    """Two services each, three for every third person; ratings from 3.6 to 5.0, and every
    fifth service not rated yet."""
    offered = []
    for index, owner in enumerate(owners):
        for _ in range(3 if index % 3 == 0 else 2):
            n = len(offered)
            category, title, price = texts.SERVICES[n * 7 % len(texts.SERVICES)]
            rated = n % 5 != 4
            values = {"user_id": owner.id, "title": title, "category": category, "price": price}
            values["rating_average"] = 3.6 + (n * 3 % 15) / 10 if rated else None
            values["rating_count"] = 1 + n * 7 % 23 if rated else 0
            service_id = _insert(conn, services, **values)
            offered.append(Service(service_id, owner.id, title, category, price))
    return offered


def _add_talks(conn, people, offered: list[Service], count: int) -> tuple[list[int], list]:
    """Talk k: someone asks the owner of a service about it, in conversation k % 3."""
    by_id = {person.id: person for person in people}
    talk_ids: list[int] = []
    sent: list[Message] = []
    now = datetime.now(UTC)
    for k in range(count):
        service = offered[(k * 5 + 1) % len(offered)]
        asker = people[(k * 7 + 3) % len(people)]
        if asker.id == service.owner_id:
            asker = people[(k * 7 + 4) % len(people)]
        roles = {"a": asker, "b": by_id[service.owner_id]}
        started = now - timedelta(days=1 + k % 5, hours=k)
        clock = (started, timedelta(minutes=REPLY_MINUTES[k % len(REPLY_MINUTES)]))
        talk_id = _insert(conn, talks, service_id=service.id, created_at=started)
        talk_ids.append(talk_id)
        shape = SHAPES[k % len(SHAPES)]
        sent += _add_conversation(conn, talk_id, roles, service, shape, clock)
    return talk_ids, sent


def _add_conversation(conn, talk_id, roles, service, shape: tuple, clock: tuple) -> list:
    """The talk's messages, one every clock[1] from clock[0] on."""
    conversation, read = shape
    started, gap = clock
    names = {"a": roles["a"].first_name, "b": roles["b"].first_name, "service": service.title}
    lines = texts.CONVERSATIONS[conversation]
    sent = []  # (message id, sender role)
    for n, (role, text) in enumerate(lines):
        values = {"talk_id": talk_id, "sender_id": roles[role].id, "created_at": started + n * gap}
        sent.append((_insert(conn, messages, **values, body=text.format(**names)), role))

    last_read = {}
    for role in roles:
        own = [message_id for message_id, sender in sent if sender == role]
        last_read[role] = sent[-1][0] if read else (own[-1] if own else None)
        values = {"talk_id": talk_id, "user_id": roles[role].id}
        conn.execute(
            insert(talk_participants).values(**values, last_read_message_id=last_read[role])
        )

    found = []
    for message_id, role in sent:
        other = "b" if role == "a" else "a"
        unread = last_read[other] is None or last_read[other] < message_id
        found.append(Message(message_id, talk_id, roles[role].id, roles[other].id, unread))
    return found


def _add_comments(conn, people, offered, by_id, count: int) -> list[int]:
    """Three comments per service on the first few services, so that earlier commenters
    hear about the later comments too."""
    ids = []
    for c in range(count):
        service = offered[(c // 3) * 4 % len(offered)]
        author = people[(c * 3 + 11) % len(people)]
        if author.id == service.owner_id:
            author = people[(c * 3 + 12) % len(people)]
        body = texts.COMMENTS[c % len(texts.COMMENTS)].format(
            owner=by_id[service.owner_id].first_name
        )
        ids.append(_insert(conn, comments, service_id=service.id, user_id=author.id, body=body))
    return ids


def _add_compliments(conn, people, owners, count: int) -> list[int]:
    ids = []
    for c in range(count):
        sender, receiver = people[(c * 5 + 2) % len(people)], owners[c * 3 % len(owners)]
        if sender.id == receiver.id:
            sender = people[(c * 5 + 3) % len(people)]
        body = texts.COMPLIMENTS[c % len(texts.COMPLIMENTS)]
        ids.append(
            _insert(conn, compliments, sender_id=sender.id, receiver_id=receiver.id, body=body)
        )
    return ids


def _add_favors(conn, people, owners, offered, count: int) -> list[int]:
    """Every other favor is about one of the asked person's services."""
    ids = []
    for c in range(count):
        requester, asked = people[(c * 5 + 4) % len(people)], owners[(c * 3 + 2) % len(owners)]
        if requester.id == asked.id:
            requester = people[(c * 5 + 5) % len(people)]
        theirs = [service.id for service in offered if service.owner_id == asked.id]
        values = {"requester_id": requester.id, "asked_user_id": asked.id}
        about_service = c % 2 == 0
        values["service_id"] = theirs[0] if about_service else None
        bodies = texts.FAVORS_ABOUT_SERVICE if about_service else texts.FAVORS
        values["body"] = bodies[c // 2 % len(bodies)]
        ids.append(_insert(conn, favors, **values))
    return ids


def _add_favorites(conn, people, offered, count: int) -> list[tuple[int, int]]:
    pairs: list[tuple[int, int]] = []
    n = 0
    while len(pairs) < count:
        service, fan = offered[(n * 7 + 2) % len(offered)], people[(n * 3 + 1) % len(people)]
        n += 1
        if fan.id != service.owner_id and (service.id, fan.id) not in pairs:
            conn.execute(insert(favorites).values(user_id=fan.id, service_id=service.id))
            pairs.append((service.id, fan.id))
    return pairs


def _add_matches(conn, owners, offered, count: int) -> list[int]:
    """Two owners whose services could trade for each other."""
    first = {}
    for service in offered:
        first.setdefault(service.owner_id, service.id)
    ids = []
    for c in range(count):
        a, b = owners[c * 2 % len(owners)], owners[(c * 2 + 5) % len(owners)]
        values = {"user_a_id": a.id, "user_b_id": b.id}
        values |= {"service_a_id": first[a.id], "service_b_id": first[b.id]}
        ids.append(_insert(conn, matches, **values))
    return ids


def _add_follows(conn, people, owners, count: int) -> list[int]:
    ids, pairs = [], set()
    n = 0
    while len(ids) < count:
        follower, followed = people[(n * 3 + 7) % len(people)], owners[n * 5 % len(owners)]
        n += 1
        if follower.id != followed.id and (follower.id, followed.id) not in pairs:
            pairs.add((follower.id, followed.id))
            ids.append(_insert(conn, follows, follower_id=follower.id, followed_id=followed.id))
    return ids


def _add_devices(conn, people) -> Counter[str]:
    """No push account is configured in the demo, so every push goes to the outbox."""
    added: Counter[str] = Counter()
    for index, person in enumerate(people):
        for n, (provider, platform) in enumerate(DEVICE_PLANS[index % len(DEVICE_PLANS)]):
            token = f"demo-{provider}-{platform}-{person.id}-{n}"
            values = {"user_id": person.id, "provider": provider, "platform": platform}
            conn.execute(insert(devices).values(**values, token=token))
            added[provider] += 1
    return added
