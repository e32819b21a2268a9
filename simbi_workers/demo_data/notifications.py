"""The email and notification jobs over the social records: what the app would enqueue as
people message, comment, compliment, ask favors, favorite, match and follow.

Every message gets a push and an SMS job (the workers skip those without devices, phone
or opt-in), and every unread one an email to its recipient (NotifyMessageWorker). New
people get the first intro email, which schedules the second two days later.
"""

from __future__ import annotations

from simbi_workers.demo_data import texts
from simbi_workers.demo_data.marketplace import Marketplace, Person
from simbi_workers.demo_data.social import Social

Job = tuple[str, list]

SMS_REMINDERS = 2  # one to someone who opted in, one to someone who did not: a skip


def jobs(market: Marketplace) -> list[Job]:
    records = market.social
    assert records is not None, "the marketplace was built without social records"
    found: list[Job] = []
    for message in records.messages:
        if message.unread:
            args = [message.recipient_id, message.talk_id, message.id]
            found.append(("NotifyMessageWorker", args))
        found.append(("SendPushMessageWorker", [message.id]))
        found.append(("SendSmsMessageWorker", [message.id]))
    found += [("NotifyCommentEmailWorker", [comment_id]) for comment_id in records.comments]
    found += [("SendEngagementFavoritedWorker", list(pair)) for pair in records.favorites]
    found += [("SendSuggestedServicesWorker", [user_id]) for user_id in suggest_to(records)]
    found += [("SendIntroWorker", [p.id, "first"]) for p in market.people if p.is_new]
    found += [("NotifyComplimentWorker", [record_id]) for record_id in records.compliments]
    found += [("NotifyFavorWorker", [record_id]) for record_id in records.favors]
    found += [("NotifyMatchWorker", [record_id]) for record_id in records.matches]
    found += [("NotifyNewFollowerWorker", [record_id]) for record_id in records.follows]
    found += sms_reminders(market.people)
    return found


def suggest_to(records: Social) -> list[int]:
    """A third as many people as there are talks, those who favorited something first:
    their suggestions come from their own categories and the ones they favorited."""
    fans = list(dict.fromkeys(user_id for _service, user_id in records.favorites))
    owners = list(dict.fromkeys(service.owner_id for service in records.services))
    candidates = list(dict.fromkeys(fans + owners))
    return candidates[: max(1, len(records.talks) // 3)]


def sms_reminders(people: list[Person]) -> list[Job]:
    opted_in = [person for person in people if person.sms_opt_in and not person.is_admin]
    not_opted = [person for person in people if person.phone and not person.sms_opt_in]
    chosen = [*opted_in[: SMS_REMINDERS - 1], *not_opted[:1]]
    jobs_ = []
    for n, person in enumerate(chosen):
        other = people[(people.index(person) + 1 + n) % len(people)]
        jobs_.append(
            ("SendSmsWorker", [person.id, texts.SMS_REMINDER.format(other=other.first_name)])
        )
    return jobs_
