"""The image workers' reads and writes of app records (SQLAlchemy Core, schema tables)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.engine import Engine

from simbi_workers.errors import PermanentJobError
from simbi_workers.store.schema import images, uploads, users


def get_image(engine: Engine, image_id: int) -> dict[str, Any]:
    row = _first(engine, select(images).where(images.c.id == image_id))
    if row is None:
        raise PermanentJobError(f"image {image_id} does not exist")
    return row


def get_upload(engine: Engine, upload_id: int) -> dict[str, Any]:
    row = _first(engine, select(uploads).where(uploads.c.id == upload_id))
    if row is None:
        raise PermanentJobError(f"upload {upload_id} does not exist")
    return row


def get_live_user(engine: Engine, user_id: int) -> dict[str, Any] | None:
    """The user, or None when the row is missing or soft-deleted."""
    query = select(users).where(users.c.id == user_id, users.c.deleted_at.is_(None))
    return _first(engine, query)


def mark_failed(engine: Engine, image_id: int, reason: str) -> None:
    _update_image(engine, image_id, status="failed", failure_reason=reason)


def mark_ready(
    engine: Engine, image_id: int, upload_id: int, upload_bytes: int, variants: dict
) -> None:
    original = variants["original"]
    _update_image(
        engine,
        image_id,
        upload_id=upload_id,
        status="ready",
        failure_reason=None,
        width=original["width"],
        height=original["height"],
        bytes=upload_bytes,
        variants=variants,
        bytes_saved=None,  # the variants are new: savings on the old ones no longer apply
    )


def record_optimized(engine: Engine, image_id: int, variants: dict, bytes_saved: int) -> None:
    _update_image(engine, image_id, variants=variants, bytes_saved=bytes_saved)


def swap_avatar(engine: Engine, user_id: int, avatar: dict[str, str]) -> dict | None:
    """Set the user's avatar and return the previous one, in one transaction so that two
    concurrent avatar jobs each learn the avatar they really replaced (a row lock on
    PostgreSQL; SQLite serialises writers anyway)."""
    with engine.begin() as conn:
        query = select(users.c.avatar).where(users.c.id == user_id).with_for_update()
        previous = conn.execute(query).scalar_one_or_none()
        conn.execute(update(users).where(users.c.id == user_id).values(avatar=avatar))
    return previous


def _update_image(engine: Engine, image_id: int, **values: Any) -> None:
    values["updated_at"] = datetime.now(UTC)
    with engine.begin() as conn:
        conn.execute(update(images).where(images.c.id == image_id).values(**values))


def _first(engine: Engine, query) -> dict[str, Any] | None:
    with engine.connect() as conn:
        row = conn.execute(query).first()
    return dict(row._mapping) if row is not None else None
