"""UploadImageWorker(image_id, upload_id): an upload becomes stored, normalised variants."""

from __future__ import annotations

from collections.abc import Callable

from PIL import Image

from simbi_workers.errors import PermanentJobError
from simbi_workers.images import pipeline, records
from simbi_workers.images.fetch import read_upload
from simbi_workers.runtimes.context import JobContext
from simbi_workers.services.storage import Storage

# name -> (how to make it from the prepared image, JPEG quality).
VARIANTS: dict[str, tuple[Callable[[Image.Image], Image.Image], int]] = {
    "original": (Image.Image.copy, pipeline.ORIGINAL_JPEG_QUALITY),
    "large": (lambda image: pipeline.fit(image, 1024), pipeline.JPEG_QUALITY),
    "medium": (lambda image: pipeline.fit(image, 512), pipeline.JPEG_QUALITY),
    "thumb": (lambda image: pipeline.square(image, 128), pipeline.JPEG_QUALITY),
}


def upload_image(ctx: JobContext, image_id: int, upload_id: int) -> dict:
    engine = ctx.services.db.engine
    records.get_image(engine, image_id)

    try:
        upload = records.get_upload(engine, upload_id)
        data = read_upload(upload["source"], ctx.services.storage, ctx.services.settings)
        image = pipeline.prepare(data)
    except PermanentJobError as exc:
        # The app shows the reason to the user; the job goes to the dead set, no retry.
        records.mark_failed(engine, image_id, str(exc))
        ctx.log.info("image failed image_id=%s reason=%s", image_id, exc)
        raise

    # Keys depend only on the image id, so a retried or repeated job overwrites in place.
    variants = store_variants(ctx.services.storage, image_id, image)
    records.mark_ready(engine, image_id, upload_id, len(data), variants)

    ctx.log.info(
        "image ready image_id=%s size=%sx%s upload_bytes=%s",
        image_id,
        image.width,
        image.height,
        len(data),
    )
    return {"image_id": image_id, "status": "ready", "variants": variants}


def store_variants(storage: Storage, image_id: int, image: Image.Image) -> dict[str, dict]:
    variants = {}
    for name, (make, quality) in VARIANTS.items():
        encoded = pipeline.encode(make(image), quality)
        key = f"images/{image_id}/{name}.{encoded.ext}"
        storage.put_bytes(key, encoded.data, encoded.content_type)
        variants[name] = {
            "key": key,
            "width": encoded.width,
            "height": encoded.height,
            "bytes": len(encoded.data),
        }
    return variants
