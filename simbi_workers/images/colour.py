"""Colour normalisation: every stored image is 8-bit sRGB, RGB or (with real alpha) RGBA.

Browsers assume sRGB for untagged images, so an embedded ICC profile is applied to the
pixels here and then dropped along with the rest of the metadata.
"""

from __future__ import annotations

import io
import logging

from PIL import Image, ImageCms

log = logging.getLogger(__name__)

_SRGB = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))

# Modes whose pixels carry an alpha channel of their own.
_ALPHA_MODES = ("RGBA", "LA", "PA", "RGBa", "La")


def to_srgb(image: Image.Image) -> Image.Image:
    """An RGB or RGBA copy of `image` in sRGB, with an empty info dict (no metadata)."""
    alpha = _alpha(image)
    base = _base_colours(image)

    icc = image.info.get("icc_profile")
    rgb = _apply_icc(base, icc) if icc else base.convert("RGB")

    # Alpha that is opaque everywhere is dropped, so such a picture can be a JPEG.
    if alpha is not None and alpha.getextrema()[0] < 255:
        rgb.putalpha(alpha)
    rgb.info = {}
    return rgb


def _alpha(image: Image.Image) -> Image.Image | None:
    if image.mode in _ALPHA_MODES or "transparency" in image.info:
        return image.convert("RGBA").getchannel("A")
    return None


def _base_colours(image: Image.Image) -> Image.Image:
    """The colour channels without alpha, in a mode an ICC transform understands."""
    if image.mode in ("RGB", "CMYK", "L"):
        return image
    if image.mode.startswith("I") or image.mode == "F":
        return _sixteen_to_eight_bits(image)
    if image.mode in ("1", "LA", "La"):
        return image.convert("L")
    return image.convert("RGB")


def _sixteen_to_eight_bits(image: Image.Image) -> Image.Image:
    # NOTE: Pillow's plain convert("L") clips 16-bit values at 255 (a white picture);
    # scale 0..65535 down to 0..255 first.
    return image.convert("I").point(lambda value: value * (1 / 257)).convert("L")


def _apply_icc(base: Image.Image, icc: bytes) -> Image.Image:
    try:
        profile = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        return ImageCms.profileToProfile(
            base,
            profile,
            _SRGB,
            renderingIntent=ImageCms.Intent.PERCEPTUAL,
            outputMode="RGB",
        )
    except (ImageCms.PyCMSError, OSError, ValueError) as exc:
        # A broken or mismatched profile (e.g. an RGB profile on a grey image) is common
        # in the wild; the pixels are still usable as if they were sRGB.
        log.warning("icc profile ignored mode=%s reason=%s", base.mode, exc)
        return base.convert("RGB")
