"""The Pillow work shared by the image workers: open an untrusted file safely, normalise
it (orientation, colours, no metadata), resize it and encode it."""

from __future__ import annotations

import io
import struct
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from PIL import Image, ImageOps, UnidentifiedImageError

from simbi_workers.errors import PermanentJobError
from simbi_workers.images.colour import to_srgb

# Only formats Pillow decodes itself: EPS and friends would run Ghostscript on user input.
# (Phone cameras' MPO files open through the JPEG plugin.)
ALLOWED_FORMATS = ("JPEG", "PNG", "GIF", "WEBP", "BMP", "TIFF")

JPEG_QUALITY = 85
ORIGINAL_JPEG_QUALITY = 92
RESAMPLE = Image.Resampling.LANCZOS

# What Pillow raises on a damaged file; anything else is a bug worth a traceback.
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, struct.error, IndexError)


class UnusableImage(PermanentJobError):
    """The bytes are not an image we can safely use: no retry changes that."""


@dataclass(frozen=True)
class Encoded:
    data: bytes
    ext: str
    content_type: str
    width: int
    height: int


def prepare(data: bytes) -> Image.Image:
    """Decode an upload into an upright, metadata-free sRGB RGB/RGBA image.

    NOTE: animated GIF/WebP keep only their first frame.
    """
    if not data:
        raise UnusableImage("the upload is empty (0 bytes)")

    with _decoding():
        # verify() checks structure (PNG CRCs, ...) but leaves the image unusable,
        # so the file is opened a second time to decode the pixels.
        with Image.open(io.BytesIO(data), formats=ALLOWED_FORMATS) as probe:
            probe.verify()
        image = Image.open(io.BytesIO(data), formats=ALLOWED_FORMATS)
        image.load()
        # Inside the guard: a malformed EXIF block fails here, not as a crash.
        upright = ImageOps.exif_transpose(image)

    return to_srgb(upright)


@contextmanager
def _decoding() -> Iterator[None]:
    """Turns Pillow's failures on hostile or broken files into UnusableImage reasons."""
    try:
        with warnings.catch_warnings():
            # Image.open checks the header's size against MAX_IMAGE_PIXELS before decoding
            # a pixel, but between 1x and 2x the limit it only warns: refuse those too.
            # NOTE: the warnings filter is process-global; fine for one job per process.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            yield
    except UnidentifiedImageError:
        known = ", ".join(ALLOWED_FORMATS)
        raise UnusableImage(f"not an image (or not one of {known})") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise UnusableImage(f"decompression bomb: {exc}") from None
    except _DECODE_ERRORS as exc:
        raise UnusableImage(f"truncated or corrupt image: {exc}") from None


def fit(image: Image.Image, size_px: int) -> Image.Image:
    """Shrink to fit a size_px square, keeping the aspect ratio; never enlarge."""
    if max(image.size) <= size_px:
        return image.copy()
    return ImageOps.contain(image, (size_px, size_px), method=RESAMPLE)


def square(image: Image.Image, size_px: int) -> Image.Image:
    """Exactly size_px x size_px: centre crop to a square, then scale (up if needed)."""
    return ImageOps.fit(image, (size_px, size_px), method=RESAMPLE, centering=(0.5, 0.5))


def encode(image: Image.Image, quality: int = JPEG_QUALITY) -> Encoded:
    """PNG when the image has alpha (JPEG has none), otherwise JPEG. No metadata is written
    because prepare() left image.info empty."""
    buffer = io.BytesIO()
    if image.mode == "RGBA":
        image.save(buffer, "PNG")
        ext, content_type = "png", "image/png"
    else:
        image.save(buffer, "JPEG", quality=quality)
        ext, content_type = "jpg", "image/jpeg"
    return Encoded(buffer.getvalue(), ext, content_type, image.width, image.height)


def recompress(data: bytes) -> bytes:
    """Re-encode a stored JPEG as optimized progressive, or a PNG with optimize=True."""
    with Image.open(io.BytesIO(data), formats=("JPEG", "PNG")) as image:
        buffer = io.BytesIO()
        if image.format == "JPEG":
            # "keep" reuses the file's own quantization tables and subsampling, so the
            # pixels barely change: only the entropy coding is redone.
            image.save(
                buffer,
                "JPEG",
                quality="keep",
                subsampling="keep",
                optimize=True,
                progressive=True,
            )
        else:
            image.save(buffer, "PNG", optimize=True)
        return buffer.getvalue()
