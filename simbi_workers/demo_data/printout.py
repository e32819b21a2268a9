"""The demo's printed text beyond the progress bar and the workers' table: the marketplace
it built, where the results are, what stays scheduled, the skips and the dead jobs."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console
from rich.table import Table
from sqlalchemy import make_url

from simbi_workers.config import Settings
from simbi_workers.demo_data import economy, outboxes, skips, start_process, texts
from simbi_workers.demo_data.followups import FollowUp
from simbi_workers.demo_data.marketplace import Marketplace
from simbi_workers.demo_data.outboxes import Added

SKIP_REASON_CHARS = 110


def describe_market(console: Console, settings: Settings, market: Marketplace) -> None:
    admins = sum(person.is_admin for person in market.people)
    new = sum(person.is_new for person in market.people)
    photos = len({upload.photo for upload in market.good})
    bad = ", ".join(upload.bad_reason for upload in market.bad)
    console.print(
        f"marketplace in {database(settings)}: {len(market.people)} people ({admins} admins, "
        f"{new} joined today), {len(market.uploads)} uploads: {len(market.good)} made from "
        f"{photos} photos and {len(market.bad)} bad files ({bad})"
    )
    social = market.social
    if social is None:
        return
    by_id = {person.id: person for person in market.people}
    categories = len({service.category for service in social.services})
    phones = [person for person in market.people if person.phone]
    devices = ", ".join(f"{count} {name}" for name, count in sorted(social.devices.items()))
    user_id, channel, category = social.opt_out
    console.print(
        f"  {len(social.services)} services in {categories} categories, {len(social.talks)} "
        f"talks with {len(social.messages)} messages ({len(social.unread)} unread), "
        f"{len(social.comments)} comments, {len(social.compliments)} compliments, "
        f"{len(social.favors)} favors, {len(social.favorites)} favorites, "
        f"{len(social.matches)} matches, {len(social.follows)} follows",
        highlight=False,
    )
    console.print(
        f"  devices: {devices} (no push account is set, so pushes go to the outbox); "
        f"{len(phones)} phones, {sum(p.sms_opt_in for p in phones)} opted in to SMS; "
        f"{by_id[user_id].first_name} (user {user_id}) turned off {channel} about {category}",
        highlight=False,
    )
    if market.economy is not None:
        _describe_economy(console, market)


def _describe_economy(console: Console, market: Marketplace) -> None:
    money = market.economy
    by_id = {person.id: person for person in market.people}
    refused = money.refused
    console.print(
        f"  {economy.STARTING_BALANCE_SIMBI} Simbi each, 0 for the new people; "
        f"{len(money.payments)} payments to make (one sent twice), and "
        f"{by_id[refused.payer].first_name} trying to pay {refused.amount} with "
        f"{economy.LOW_BALANCE_SIMBI} (to be refused); {len(texts.REVIEWS)} reviews "
        f"of {len(money.reviewed)} services, {len(money.formulas)} score formulas, a listing "
        f"posted today, a service to withdraw, and {' '.join(economy.LEAVING)} about to close "
        "her account",
        highlight=False,
    )


def where_things_are(console: Console, settings: Settings, market, added: Added) -> None:
    storage = f"s3://{settings.s3_bucket}" if settings.s3_bucket else shown(settings.var_dir)
    if not settings.s3_bucket:
        storage += "/storage"
    first, last = market.good[0].image_id, market.good[-1].image_id
    grid = Table.grid(padding=(0, 2))
    grid.add_column(no_wrap=True)
    grid.add_column()
    grid.add_row("image variants", f"{storage}/images/<id>/original|large|medium|thumb.jpg")
    grid.add_row("", f"ids {first}-{last}; .png for the photo with transparency")
    grid.add_row("avatars", f"{storage}/avatars/<user id>/<version>/400|200|64.jpg")
    _emails(grid, settings, added)
    for name in ("sms", "push", "slack", "mixpanel"):
        where = shown(outboxes.path(settings, name))
        grid.add_row(f"{name} outbox", f"{where}: +{added.lines[name]} lines")
    grid.add_row("workers' log", shown(settings.var_dir / start_process.LOG_NAME))
    console.print(grid, highlight=False)


def _emails(grid: Table, settings: Settings, added: Added) -> None:
    folder = outboxes.mail_dir(settings)
    total = len(list(folder.glob("*.eml")))
    count = f"+{len(added.emails)} .eml files" + (
        f" ({total} in all)" if total > len(added.emails) else ""
    )
    grid.add_row("mail outbox", f"{shown(folder)}/: {count}")
    sample = outboxes.sample(added.emails)
    if sample:
        file, message = sample
        grid.add_row("", f"open one: {shown(file)}")
        grid.add_row("", f"(“{message['Subject']}”, to {message['To']})")


def scheduled(console: Console, later: list[FollowUp]) -> None:
    """The follow-up jobs scheduled days ahead, which the demo does not wait for."""
    if not later:
        return
    kinds = Counter((job.worker, job.args[1] if len(job.args) > 1 else "") for job in later)
    due = datetime.fromtimestamp(min(job.due or 0 for job in later), UTC)
    days = round((due - datetime.now(UTC)).total_seconds() / 86_400)
    what = ", ".join(f'{n} {worker}(…, "{step}")' for (worker, step), n in sorted(kinds.items()))
    console.print(
        f"\nstill scheduled: {what}, the next onboarding emails, due {due:%Y-%m-%d %H:%M} UTC "
        f"(in {days} days);\n  the demo does not wait for them, and its next run takes them out",
        highlight=False,
    )


def skipped(console: Console, found: list[skips.Skip], log_level: str) -> None:
    if log_level.upper() not in ("DEBUG", "INFO"):
        console.print(f"\nskipped jobs: not known, the log says why only at INFO ({log_level})")
        return
    console.print(f"\nskipped jobs ({len(found)}), done without sending; one reason of each kind:")
    grid = Table.grid(padding=(0, 2))
    grid.add_column(no_wrap=True)
    grid.add_column(justify="right")
    grid.add_column()
    for worker, count, reason in skips.by_kind(found):
        short = (
            reason if len(reason) <= SKIP_REASON_CHARS else reason[: SKIP_REASON_CHARS - 1] + "…"
        )
        grid.add_row(f"  {worker}", str(count), short)
    console.print(grid, highlight=False)


def dead(console: Console, found: list[tuple[str, str]], expected: dict[str, str]) -> None:
    """Each dead job with its reason; those the demo enqueued to fail (expected: description
    -> why) say so, and any other stands out as a fault to look into."""
    surprises = [description for description, _reason in found if description not in expected]
    if not surprises:
        verdict = f"all {len(found)} expected: the demo enqueues them to show permanent failures"
    else:
        verdict = f"[red]{len(surprises)} not expected[/], {len(found) - len(surprises)} expected"
    console.print(f"\ndead jobs ({len(found)}), each with its reason; {verdict}")
    for description, reason in found:
        console.print(f"  {description}: {reason}", highlight=False, soft_wrap=True)
        why = expected.get(description)
        mark = f"expected: {why}" if why else "[red]NOT EXPECTED: a fault, see the workers' log[/]"
        console.print(f"      {mark}", highlight=False)


def stats_hint(console: Console) -> None:
    console.print(
        "\nthe counters stay in Redis: run `.venv/bin/simbi-workers start` and then\n"
        "`curl -s localhost:9191/stats` or `.venv/bin/simbi-workers stats` in another terminal"
    )


def database(settings: Settings) -> str:
    url = make_url(settings.database_url_or_default)
    if url.get_backend_name() == "sqlite":
        return shown(url.database)
    return url.render_as_string(hide_password=True)  # DATABASE_URL may hold a password


def shown(path: str | Path) -> str:
    """A path as short as it can be: relative when it is under the working directory."""
    resolved = Path(path).resolve()
    return str(resolved.relative_to(Path.cwd()) if resolved.is_relative_to(Path.cwd()) else path)
