"""What the demo shows last: the weekly earners' leaderboard as NotifyLeaderboardWorker
stored it in Redis, and a search of the index the search workers keep, through the search
host service as `simbi-workers search` does."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import redis
from rich.console import Console
from rich.table import Table
from sqlalchemy import select

from simbi_workers.config import Settings
from simbi_workers.demo_data import economy, typescript
from simbi_workers.demo_data.economy import Economy
from simbi_workers.demo_data.marketplace import Marketplace
from simbi_workers.search_table import hits_table
from simbi_workers.services.db import Database
from simbi_workers.services.redis_kv import PREFIX
from simbi_workers.services.search import Search
from simbi_workers.store.schema import users

TOP = 10


@dataclass(frozen=True)
class Earner:
    rank: int
    user_id: int
    name: str
    earned: int  # Simbi received in the board's week


@dataclass(frozen=True)
class Results:
    leaderboard: list[Earner]
    word: str
    hits: list[dict[str, Any]]  # services/search.py's hits, best first


def read(settings: Settings, connection: redis.Redis) -> Results:
    """Read before the supervisor stops: without REDIS_URL, its Redis stops with it."""
    key = f"{PREFIX}leaderboard:{typescript.BOARD}"
    # The worker ranks ties by user id; Redis would order them by the member's text.
    board = sorted(
        (
            (int(member), int(score))
            for member, score in connection.zrange(key, 0, -1, withscores=True)
        ),
        key=lambda entry: (-entry[1], entry[0]),
    )[:TOP]

    database = Database(settings.database_url_or_default)
    ids = [user_id for user_id, _earned in board]
    query = select(users.c.id, users.c.first_name, users.c.last_name).where(users.c.id.in_(ids))
    with database.engine.connect() as conn:
        names = {row.id: f"{row.first_name} {row.last_name}" for row in conn.execute(query)}
    hits = Search(database).query(economy.SEARCH_WORD)["hits"]
    database.engine.dispose()

    earners = [
        Earner(rank, user_id, names.get(user_id, f"user {user_id}"), earned)
        for rank, (user_id, earned) in enumerate(board, 1)
    ]
    return Results(earners, economy.SEARCH_WORD, hits)


def show(console: Console, results: Results, market: Marketplace) -> None:
    money = market.economy
    assert money is not None
    _leaderboard(console, results.leaderboard, market, money)
    _search(console, results, money)


def _leaderboard(
    console: Console, earners: list[Earner], market: Marketplace, money: Economy
) -> None:
    table = Table(title=f"leaderboard {typescript.BOARD}: Simbi received in the last 7 days")
    for column in ("rank", "user", "Simbi earned"):
        table.add_column(column, justify="left" if column == "user" else "right")
    for earner in earners:
        table.add_row(str(earner.rank), earner.name, str(earner.earned))
    console.print()
    console.print(table)
    payer = next(person for person in market.people if person.id == money.refused.payer)
    console.print(
        f"  NotifyLeaderboardWorker's board in Redis ({PREFIX}leaderboard:{typescript.BOARD}); "
        f"{payer.first_name}'s refused {money.refused.amount} Simbi count for no one, and the "
        "payment sent twice under one idempotency key counts once",
        highlight=False,
    )


def _search(console: Console, results: Results, money: Economy) -> None:
    console.print(
        f"\nsearch for {results.word!r} (the same as `simbi-workers search {results.word}`):",
        highlight=False,
    )
    console.print(hits_table(results.word, results.hits))
    console.print(
        f"  not found, as expected: “{money.withdrawn.title}” (withdrawn during the run: "
        f"SearchRemoveWorker) and “{economy.LEAVING_SERVICE[1]}” (its owner closed her "
        "account: DestroyUserWorker)",
        highlight=False,
    )
