"""The demo's mixed workload: which jobs, with which arguments, in which phase.

Phase one is everything that does not depend on another job; phase two optimizes the
images that phase one left `ready`. The TypeScript workers' jobs on the marketplace's
economy (typescript.py) come on top, in four phases. Six jobs are meant to fail
permanently, one of each kind a newcomer should recognise (meant_to_fail): three bad
uploads, an avatar changed by someone who may not, a Slack post to a channel nobody
configured, and a payment larger than the payer's balance. The email and notification
jobs (notifications.py) follow the social records, whose size grows with the job count.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from PIL import Image, ImageOps

from simbi_workers.demo_data import notifications
from simbi_workers.demo_data.marketplace import PHOTOS_DIR, Marketplace, Person

Job = tuple[str, list[Any]]  # (worker name, positional JSON arguments)

UPLOAD_SHARE = 0.1  # of job_count; each good upload also gets an optimization job
JOBS_PER_TALK = 22  # a talk brings ~7 message jobs, and comments, favorites, ... grow with it
MIN_TALKS = 2  # the second talk holds the opt-out
MIN_PHOTO_UPLOADS = 6  # every photo at least once
JOBS_PER_AVATAR = 30
MIN_AVATARS = 3
UNKNOWN_CHANNEL = "#marketing"
EVENTS = ("Signed Up", "Service Viewed", "Message Sent", "Service Favorited", "Trade Completed")


def photo_uploads(job_count: int) -> int:
    """How many good uploads a workload of about job_count jobs gets."""
    return max(MIN_PHOTO_UPLOADS, round(job_count * UPLOAD_SHARE))


def talk_count(job_count: int) -> int:
    """How many talks the marketplace gets for a workload of about job_count jobs."""
    return max(MIN_TALKS, job_count // JOBS_PER_TALK)


def first_phase(market: Marketplace, job_count: int) -> list[Job]:
    jobs = [("UploadImageWorker", [upload.image_id, upload.id]) for upload in market.uploads]
    jobs += avatars(market, max(MIN_AVATARS, job_count // JOBS_PER_AVATAR))
    jobs += slack_posts([person for person in market.people if person.is_new])
    jobs += notifications.jobs(market)

    # Events fill the rest, leaving room for phase two's one job per good upload.
    room = job_count - len(jobs) - len(market.good)
    jobs += events(market.people, max(0, room))
    return jobs


def second_phase(ready_image_ids: list[int]) -> list[Job]:
    return [("ImageOptimizationWorker", [image_id]) for image_id in ready_image_ids]


def avatars(market: Marketplace, count: int) -> list[Job]:
    """count avatars of non-admins (every other one cropped, every third set by an admin),
    then one attempt by a non-admin on someone else's avatar: a permanent failure."""
    members = [person for person in market.people if not person.is_admin]
    admin = next(person for person in market.people if person.is_admin)
    jobs = []
    for n in range(count):
        person, upload = members[n % len(members)], market.good[n % len(market.good)]
        params: dict[str, Any] = {"upload_id": upload.id}
        if n % 2:
            params["crop"] = centre_crop(upload.photo)
        actor = admin.id if n % 3 == 2 else person.id
        jobs.append(("UpdateAvatarWorker", [person.id, params, actor]))

    jobs.append(_intruder(market))
    return jobs


def _intruder(market: Marketplace) -> Job:
    """Someone who is not an admin changing another member's avatar."""
    members = [person for person in market.people if not person.is_admin]
    victim, intruder = members[-1], members[-2]
    return ("UpdateAvatarWorker", [victim.id, {"upload_id": market.good[0].id}, intruder.id])


def meant_to_fail(market: Marketplace) -> list[tuple[Job, str]]:
    """The jobs that must end dead, each with why the demo enqueues it."""
    assert market.economy is not None
    refused = ("PayingSimbiWorker", market.economy.refused.args)
    return [
        *[(("UploadImageWorker", [u.image_id, u.id]), "a bad upload") for u in market.bad],
        (_intruder(market), "only the user or an admin may change an avatar"),
        (_unknown_channel(), "a Slack channel nobody configured"),
        (refused, "a payment over the payer's balance (posted to Slack #payments)"),
    ]


def centre_crop(photo: str) -> dict[str, int]:
    """The middle three quarters of the photo as the user sees it (orientation applied)."""
    with Image.open(PHOTOS_DIR / photo) as image:
        width, height = ImageOps.exif_transpose(image).size
    side = min(width, height) * 3 // 4
    return {"x": (width - side) // 2, "y": (height - side) // 2, "w": side, "h": side}


def slack_posts(people: list[Person]) -> list[Job]:
    jobs = [("SlackNotifierWorker", ["signups", person.id, "new signup"]) for person in people]
    jobs.append(_unknown_channel())
    return jobs


def _unknown_channel() -> Job:
    return ("SlackNotifierWorker", [UNKNOWN_CHANNEL, None, "the newsletter is out"])


def events(people: list[Person], count: int) -> list[Job]:
    """count analytics events, a few per person, alternating Mixpanel and the event stream."""
    now = datetime.now(UTC)
    jobs: list[Job] = []
    for n in range(count):
        # One event per person per round: kinds alternate across people and, for one
        # person, from round to round; each round has its own event name.
        person, round_number = people[n % len(people)], n // len(people)
        event = EVENTS[round_number % len(EVENTS)]
        properties = {"source": "demo", "service_id": 100 + n % 7}
        if (n + round_number) % 2 == 0:
            jobs.append(("MixpanelTrackWorker", [person.id, event, properties]))
        else:
            occurred_at = (now - timedelta(minutes=n)).isoformat(timespec="seconds")
            jobs.append(("UserEventTrackerWorker", [person.id, event, properties, occurred_at]))
    return jobs
