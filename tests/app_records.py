"""The app's records for tests: each method inserts one row of simbi_workers/store/schema.py
with SQLAlchemy Core and returns its id. Defaults cover what a test does not care about;
ids come from the database, so the same code runs on SQLite and PostgreSQL."""

from __future__ import annotations

import itertools
from typing import Any

from sqlalchemy import Table, delete, insert, select, update
from sqlalchemy.engine import Engine

from simbi_workers.store import schema


class AppRecords:
    def __init__(self, engine: Engine):
        self.engine = engine
        self._serial = itertools.count(1)

    def user(self, first_name: str = "Ada", **values: Any) -> int:
        values.setdefault("email", f"{first_name.lower()}.{next(self._serial)}@example.org")
        return self.insert(schema.users, first_name=first_name, **values)

    def service(self, user_id: int, title: str = "Guitar lessons", **values: Any) -> int:
        values.setdefault("category", "music")
        return self.insert(schema.services, user_id=user_id, title=title, **values)

    def talk(self, *participant_ids: int, service_id: int | None = None) -> int:
        talk_id = self.insert(schema.talks, service_id=service_id)
        for user_id in participant_ids:
            self.insert(schema.talk_participants, talk_id=talk_id, user_id=user_id)
        return talk_id

    def message(self, talk_id: int, sender_id: int, body: str = "hi") -> int:
        return self.insert(schema.messages, talk_id=talk_id, sender_id=sender_id, body=body)

    def comment(self, service_id: int, user_id: int, body: str = "Nice!") -> int:
        return self.insert(schema.comments, service_id=service_id, user_id=user_id, body=body)

    def compliment(self, sender_id: int, receiver_id: int, body: str = "") -> int:
        return self.insert(
            schema.compliments, sender_id=sender_id, receiver_id=receiver_id, body=body
        )

    def favor(self, requester_id: int, asked_user_id: int, **values: Any) -> int:
        return self.insert(
            schema.favors, requester_id=requester_id, asked_user_id=asked_user_id, **values
        )

    def favorite(self, user_id: int, service_id: int) -> int:
        return self.insert(schema.favorites, user_id=user_id, service_id=service_id)

    def match(self, user_a_id: int, user_b_id: int) -> int:
        return self.insert(schema.matches, user_a_id=user_a_id, user_b_id=user_b_id)

    def follow(self, follower_id: int, followed_id: int) -> int:
        return self.insert(schema.follows, follower_id=follower_id, followed_id=followed_id)

    def device(self, user_id: int, token: str, provider: str = "fcm") -> int:
        return self.insert(schema.devices, user_id=user_id, token=token, provider=provider)

    def preference(self, user_id: int, channel: str, category: str, enabled: bool) -> None:
        self.insert(
            schema.notification_preferences,
            user_id=user_id,
            channel=channel,
            category=category,
            enabled=enabled,
        )

    def review(self, service_id: int, reviewer_id: int, rating: int, **values: Any) -> int:
        return self.insert(
            schema.reviews, service_id=service_id, reviewer_id=reviewer_id, rating=rating, **values
        )

    def score_formula(self, subject_type: str, weights: dict[str, float], **values: Any) -> int:
        values.setdefault("name", f"formula {next(self._serial)}")
        return self.insert(
            schema.score_formulas, subject_type=subject_type, weights=weights, **values
        )

    def transfer(
        self, from_user_id: int | None, to_user_id: int, amount: int, **values: Any
    ) -> int:
        """A ledger row of kind transfer (pass kind="bonus" and no payer for a bonus)."""
        values.setdefault("idempotency_key", f"test-transfer-{next(self._serial)}")
        return self.insert(
            schema.simbi_transactions,
            from_user_id=from_user_id,
            to_user_id=to_user_id,
            amount=amount,
            **values,
        )

    # Generic steps

    def insert(self, table: Table, **values: Any) -> Any:
        """Inserts one row; returns its primary key (the first column of a composite one)."""
        with self.engine.begin() as conn:
            key = conn.execute(insert(table).values(**values)).inserted_primary_key
        return key[0] if key else None

    def rows(self, table: Table, **where: Any) -> list[dict[str, Any]]:
        """The rows whose columns equal `where`, in primary-key order."""
        query = select(table).where(*(table.c[name] == value for name, value in where.items()))
        query = query.order_by(*table.primary_key.columns)
        with self.engine.connect() as conn:
            return [dict(row._mapping) for row in conn.execute(query)]

    def one(self, table: Table, **where: Any) -> dict[str, Any]:
        (row,) = self.rows(table, **where)
        return row

    def update(self, table: Table, row_id: int, **values: Any) -> None:
        with self.engine.begin() as conn:
            conn.execute(update(table).where(table.c.id == row_id).values(**values))

    def delete(self, table: Table, row_id: int) -> None:
        with self.engine.begin() as conn:
            conn.execute(delete(table).where(table.c.id == row_id))
