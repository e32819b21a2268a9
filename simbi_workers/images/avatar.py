"""UpdateAvatarWorker(user_id, params, actor_id): square avatars from an upload."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from PIL import Image

from simbi_workers.errors import JobError, PermanentJobError
from simbi_workers.images import pipeline, records
from simbi_workers.images.fetch import read_upload
from simbi_workers.runtimes.context import JobContext

AVATAR_SIZES_PX = (400, 200, 64)
CROP_FIELDS = ("x", "y", "w", "h")


def update_avatar(ctx: JobContext, user_id: int, params: Any, actor_id: int) -> dict | None:
    engine = ctx.services.db.engine
    if records.get_live_user(engine, user_id) is None:
        ctx.skip(f"user {user_id} is gone")
        return None
    check_actor(engine, user_id, actor_id)
    upload_id, crop = parse_params(params)

    upload = records.get_upload(engine, upload_id)
    data = read_upload(upload["source"], ctx.services.storage, ctx.services.settings)
    image = pipeline.prepare(data)
    if crop is not None:
        image = crop_inside(image, crop)

    # A content hash, not a random name: a retried job writes the same keys again.
    version = hashlib.sha256(data + json.dumps(crop).encode()).hexdigest()[:16]
    avatar = _store_sizes(ctx, user_id, version, image)
    previous = records.swap_avatar(engine, user_id, avatar)

    _delete_previous(ctx, previous, avatar)
    ctx.log.info("avatar updated user_id=%s actor_id=%s version=%s", user_id, actor_id, version)
    return {"user_id": user_id, "avatar": avatar}


def check_actor(engine, user_id: int, actor_id: int) -> None:
    if actor_id == user_id:
        return
    actor = records.get_live_user(engine, actor_id)
    if actor is None or not actor["is_admin"]:
        raise PermanentJobError(
            f"actor {actor_id} may not change the avatar of user {user_id}: "
            "only the user or an admin may"
        )


def parse_params(params: Any) -> tuple[int, dict[str, int] | None]:
    if not isinstance(params, dict):
        raise PermanentJobError(f"params must be an object {{upload_id, crop}}, got {params!r}")

    upload_id = params.get("upload_id")
    if not _is_int(upload_id) or upload_id < 1:
        raise PermanentJobError(f"params.upload_id must be a positive integer, got {upload_id!r}")

    crop = params.get("crop")
    if crop is None:
        return upload_id, None
    if not isinstance(crop, dict):
        raise PermanentJobError(f"params.crop must be an object {{x, y, w, h}}, got {crop!r}")
    for field in CROP_FIELDS:
        value, minimum = crop.get(field), (0 if field in ("x", "y") else 1)
        if not _is_int(value) or value < minimum:
            raise PermanentJobError(
                f"params.crop.{field} must be an integer >= {minimum}, got {value!r}"
            )
    return upload_id, {field: crop[field] for field in CROP_FIELDS}


def crop_inside(image: Image.Image, crop: dict[str, int]) -> Image.Image:
    """The crop box is in the upright image's pixels (what the user saw when choosing it)."""
    x, y, w, h = (crop[field] for field in CROP_FIELDS)
    if x + w > image.width:
        raise PermanentJobError(
            f"params.crop x + w = {x + w} is outside the image, which is {image.width} wide"
        )
    if y + h > image.height:
        raise PermanentJobError(
            f"params.crop y + h = {y + h} is outside the image, which is {image.height} high"
        )
    return image.crop((x, y, x + w, y + h))


def _store_sizes(ctx: JobContext, user_id: int, version: str, image: Image.Image) -> dict:
    avatar = {}
    for size in AVATAR_SIZES_PX:
        encoded = pipeline.encode(pipeline.square(image, size))
        key = f"avatars/{user_id}/{version}/{size}.{encoded.ext}"
        ctx.services.storage.put_bytes(key, encoded.data, encoded.content_type)
        avatar[str(size)] = key
    return avatar


def _delete_previous(ctx: JobContext, previous: Any, avatar: dict[str, str]) -> None:
    if not isinstance(previous, dict):
        return
    # The same upload and crop again gives the same keys: those must survive.
    old_keys = {key for key in previous.values() if isinstance(key, str)}
    stale = old_keys - set(avatar.values())
    for key in sorted(stale):
        try:
            ctx.services.storage.delete_key(key)
        except JobError as exc:
            # The new avatar is already set; failing the job now would not bring the old
            # files back, so they are left for a cleanup and the job succeeds.
            ctx.log.warning("old avatar file kept key=%s reason=%s", key, exc)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
