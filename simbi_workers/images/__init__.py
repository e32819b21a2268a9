"""The Python image workers, run in-process: name -> function(ctx, *args)."""

from simbi_workers.images.avatar import update_avatar
from simbi_workers.images.optimize import optimize_image
from simbi_workers.images.upload import upload_image

WORKERS = {
    "UploadImageWorker": upload_image,
    "UpdateAvatarWorker": update_avatar,
    "ImageOptimizationWorker": optimize_image,
}

__all__ = ["WORKERS", "optimize_image", "update_avatar", "upload_image"]
