"""The image workers with real Pillow, real photos, SQLite and the local storage directory."""

from __future__ import annotations

import io
import itertools
import re
import struct
import uuid
import zlib
from datetime import UTC, datetime

import pytest
from PIL import Image, ImageChops, ImageCms, ImageOps, ImageStat, PngImagePlugin
from sqlalchemy import insert, select
from werkzeug import Response

from simbi_workers.errors import JobError, PermanentJobError
from simbi_workers.images import WORKERS, optimize_image, pipeline, update_avatar, upload_image
from simbi_workers.runtimes.context import JobContext
from simbi_workers.services import Services
from simbi_workers.store.schema import images, uploads, users
from tests.conftest import FIXTURES

PHOTOS = FIXTURES / "images"
PHOTO_NAMES = sorted(
    path.name for path in PHOTOS.iterdir() if path.suffix in (".jpg", ".png", ".gif")
)


# -- helpers --------------------------------------------------------------------------


@pytest.fixture
def services(settings, redis_conn) -> Services:
    services = Services(settings, redis_conn)
    services.db.create_tables()
    return services


@pytest.fixture
def ctx(services) -> JobContext:
    return JobContext("job-1", "UploadImageWorker", "paperclip", 1, services)


def insert_row(services: Services, table, **values) -> int:
    with services.db.engine.begin() as conn:
        return conn.execute(insert(table).values(**values)).inserted_primary_key[0]


def add_upload(services: Services, data: bytes | None = None, source: str | None = None) -> int:
    """An uploads row; with data, the bytes are stored first under a fresh key."""
    if source is None:
        source = f"uploads/{uuid.uuid4().hex}.bin"
        services.storage.put_bytes(source, data, "application/octet-stream")
    return insert_row(services, uploads, source=source)


def image_row(services: Services, image_id: int) -> dict:
    with services.db.engine.connect() as conn:
        return dict(conn.execute(select(images).where(images.c.id == image_id)).one()._mapping)


def upload(ctx: JobContext, data: bytes | None = None, source: str | None = None) -> int:
    """Runs UploadImageWorker on new upload and image rows; returns the image id."""
    upload_id = add_upload(ctx.services, data, source)
    image_id = insert_row(ctx.services, images, upload_id=upload_id)
    upload_image(ctx, image_id, upload_id)
    return image_id


def stored(services: Services, key: str) -> Image.Image:
    image = Image.open(io.BytesIO(services.storage.get_bytes(key)))
    image.load()
    return image


def mean_difference(a: Image.Image, b: Image.Image) -> float:
    """Mean absolute difference per channel, 0..255."""
    diff = ImageChops.difference(a.convert("RGB"), b.convert("RGB"))
    return sum(ImageStat.Stat(diff).mean) / 3


def encoded(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def photo(name: str) -> bytes:
    return (PHOTOS / name).read_bytes()


def png_bomb(width: int, height: int) -> bytes:
    """A valid 1-bit PNG of width x height, all black: a few kB on disk."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body)
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    row = b"\0" * (1 + (width + 7) // 8)
    pixels = zlib.compressobj(9)
    body = b"".join(pixels.compress(row) for _ in range(height)) + pixels.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", body) + chunk(b"IEND", b"")
    )


def test_workers_maps_the_three_names_to_their_functions():
    assert {
        "UploadImageWorker": upload_image,
        "UpdateAvatarWorker": update_avatar,
        "ImageOptimizationWorker": optimize_image,
    } == WORKERS


# -- UploadImageWorker: good photos ---------------------------------------------------


@pytest.mark.parametrize("name", PHOTO_NAMES)
def test_every_fixture_photo_becomes_four_clean_variants(ctx, services, name):
    with Image.open(PHOTOS / name) as source:
        upright = ImageOps.exif_transpose(source).size
    image_id = upload(ctx, photo(name))

    row = image_row(services, image_id)
    assert row["status"] == "ready" and row["failure_reason"] is None
    assert (row["width"], row["height"]) == upright
    assert row["bytes"] == len(photo(name))
    assert sorted(row["variants"]) == ["large", "medium", "original", "thumb"]

    alpha = name == "rgb_trns.png"
    for variant_name, variant in row["variants"].items():
        ext = "png" if alpha else "jpg"
        assert variant["key"] == f"images/{image_id}/{variant_name}.{ext}"
        assert variant["bytes"] == len(services.storage.get_bytes(variant["key"]))
        out = stored(services, variant["key"])
        assert out.size == (variant["width"], variant["height"])
        assert (out.format, out.mode) == (("PNG", "RGBA") if alpha else ("JPEG", "RGB"))
        assert not out.getexif()
        assert not {"exif", "icc_profile", "xmp", "photoshop", "comment"} & set(out.info)

    variants = row["variants"]
    assert (variants["original"]["width"], variants["original"]["height"]) == upright
    for fitted in ("large", "medium"):  # these photos are smaller than 512: never enlarged
        assert (variants[fitted]["width"], variants[fitted]["height"]) == upright
    assert (variants["thumb"]["width"], variants["thumb"]["height"]) == (128, 128)


def test_a_large_photo_is_fitted_to_1024_and_512_keeping_its_aspect(ctx, services):
    big = Image.open(PHOTOS / "flower.jpg").resize((3000, 2250))
    image_id = upload(ctx, encoded(big, "JPEG"))

    variants = image_row(services, image_id)["variants"]
    sizes = {name: (v["width"], v["height"]) for name, v in variants.items()}
    assert sizes == {
        "original": (3000, 2250),
        "large": (1024, 768),
        "medium": (512, 384),
        "thumb": (128, 128),
    }
    assert stored(services, variants["medium"]["key"]).size == (512, 384)


def test_a_portrait_thumb_is_the_centre_of_the_picture(ctx, services):
    # Top third red, middle green, bottom blue: a centre crop keeps only green.
    tall = Image.new("RGB", (300, 900), "red")
    tall.paste("lime", (0, 300, 300, 600))
    tall.paste("blue", (0, 600, 300, 900))
    image_id = upload(ctx, encoded(tall, "PNG"))

    thumb = stored(services, image_row(services, image_id)["variants"]["thumb"]["key"])
    assert thumb.size == (128, 128)
    assert mean_difference(thumb, Image.new("RGB", (128, 128), "lime")) < 6


def test_exif_orientation_is_applied(ctx, services):
    # hopper_orientation_2.jpg holds hopper's pixels mirrored, with Orientation=2 to undo it.
    hopper = Image.open(PHOTOS / "hopper.jpg")
    image_id = upload(ctx, photo("hopper_orientation_2.jpg"))

    original = stored(services, image_row(services, image_id)["variants"]["original"]["key"])
    assert mean_difference(original, hopper) < 10
    assert mean_difference(original, ImageOps.mirror(hopper)) > 40


def test_the_palette_gif_is_converted_to_rgb_with_the_same_colours(ctx, services):
    gif = Image.open(PHOTOS / "hopper.gif").convert("RGB")
    image_id = upload(ctx, photo("hopper.gif"))

    original = stored(services, image_row(services, image_id)["variants"]["original"]["key"])
    assert original.mode == "RGB"
    assert mean_difference(original, gif) < 6


def test_transparency_survives_as_png_alpha(ctx, services):
    source = Image.open(PHOTOS / "rgb_trns.png").convert("RGBA")
    image_id = upload(ctx, photo("rgb_trns.png"))

    original = stored(services, image_row(services, image_id)["variants"]["original"]["key"])
    assert original.getchannel("A").getextrema() == (0, 255)
    assert original.getchannel("A").tobytes() == source.getchannel("A").tobytes()


def swapped_srgb_profile() -> bytes:
    """sRGB with its red and blue colorants swapped: pixels tagged with it that read as red
    are really blue. No such profile file ships anywhere, so it is made from lcms' sRGB."""
    profile = bytearray(ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes())
    (count,) = struct.unpack(">I", profile[128:132])
    tags = {bytes(profile[132 + 12 * i : 136 + 12 * i]): 132 + 12 * i for i in range(count)}
    red, blue = tags[b"rXYZ"] + 4, tags[b"bXYZ"] + 4
    profile[red : red + 8], profile[blue : blue + 8] = (
        profile[blue : blue + 8],
        profile[red : red + 8],
    )
    profile[84:100] = bytes(16)  # the profile ID (an MD5) no longer matches: mark it unset
    return bytes(profile)


def test_an_embedded_icc_profile_is_applied_then_dropped(ctx, services):
    reddish = Image.new("RGB", (64, 64), (200, 30, 30))
    image_id = upload(
        ctx, encoded(reddish, "JPEG", quality=100, icc_profile=swapped_srgb_profile())
    )

    original = stored(services, image_row(services, image_id)["variants"]["original"]["key"])
    assert "icc_profile" not in original.info
    red, green, blue = original.getpixel((32, 32))
    assert blue > 180 and red < 50 and green < 50


def test_metadata_is_stripped_from_png_outputs_too(ctx, services):
    # Pillow's PNG writer copies an image's own icc_profile unless told otherwise.
    source = Image.open(PHOTOS / "rgb_trns.png").convert("RGBA")
    text = PngImagePlugin.PngInfo()
    text.add_text("Author", "someone@example.com")
    exif = Image.Exif()
    exif[0x010F] = "CameraMaker"  # Make
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    image_id = upload(ctx, encoded(source, "PNG", pnginfo=text, exif=exif, icc_profile=srgb))

    for variant in image_row(services, image_id)["variants"].values():
        out = stored(services, variant["key"])
        assert out.format == "PNG"
        assert not out.getexif()
        assert not {"icc_profile", "exif", "Author"} & set(out.info)


def _cmyk_jpeg() -> bytes:
    return encoded(Image.open(PHOTOS / "hopper.jpg").convert("CMYK"), "JPEG", quality=95)


def _sixteen_bit_png() -> bytes:
    grey = Image.open(PHOTOS / "hopper.jpg").convert("L")
    return encoded(grey.convert("I").point(lambda value: value * 257).convert("I;16"), "PNG")


def _grey_alpha_png() -> bytes:
    grey = Image.open(PHOTOS / "hopper.jpg").convert("L")
    grey_alpha = Image.merge("LA", (grey, Image.linear_gradient("L").resize(grey.size)))
    return encoded(grey_alpha, "PNG")


@pytest.mark.parametrize(
    ("make", "mode", "expected"),
    [
        (_cmyk_jpeg, "RGB", lambda hopper: hopper),
        (_sixteen_bit_png, "RGB", lambda hopper: hopper.convert("L")),
        (_grey_alpha_png, "RGBA", lambda hopper: hopper.convert("L")),
    ],
    ids=["cmyk", "16-bit-grey", "grey+alpha"],
)
def test_other_colour_modes_become_srgb_with_the_right_pixels(ctx, services, make, mode, expected):
    hopper = Image.open(PHOTOS / "hopper.jpg").convert("RGB")
    image_id = upload(ctx, make())

    original = stored(services, image_row(services, image_id)["variants"]["original"]["key"])
    assert original.mode == mode
    # 16-bit values clipped instead of scaled would give a white picture: difference ~150.
    assert mean_difference(original.convert("RGB"), expected(hopper)) < 8


def test_running_twice_gives_the_same_files_and_record(ctx, services):
    upload_id = add_upload(services, photo("flower.jpg"))
    image_id = insert_row(services, images, upload_id=upload_id)

    first = upload_image(ctx, image_id, upload_id)
    first_files = {k: services.storage.get_bytes(v["key"]) for k, v in first["variants"].items()}
    upload_image(ctx, image_id, upload_id)

    row = image_row(services, image_id)
    assert row["variants"] == first["variants"]
    for name, variant in row["variants"].items():
        assert services.storage.get_bytes(variant["key"]) == first_files[name]
    assert sorted(
        p.name for p in (services.settings.var_dir / f"storage/images/{image_id}").iterdir()
    ) == [
        "large.jpg",
        "medium.jpg",
        "original.jpg",
        "thumb.jpg",
    ]


# -- UploadImageWorker: unusable uploads ----------------------------------------------


def _half_a_jpeg() -> bytes:
    data = photo("hopper.jpg")
    return data[: len(data) // 2]


@pytest.mark.parametrize(
    ("data", "source", "reason"),
    [
        (b"hello, this is a text file\n" * 20, None, "not an image"),
        (None, "uploads/never-stored.jpg", "storage key 'uploads/never-stored.jpg' does not exist"),
        (b"", None, "the upload is empty (0 bytes)"),
        (_half_a_jpeg(), None, "truncated or corrupt image"),
        (png_bomb(20_000, 20_000), None, "decompression bomb"),
    ],
    ids=["text", "missing-key", "empty", "truncated-jpeg", "bomb"],
)
def test_an_unusable_upload_fails_the_image_permanently_with_the_reason(
    ctx, services, data, source, reason
):
    upload_id = add_upload(services, data, source)
    image_id = insert_row(services, images, upload_id=upload_id)

    with pytest.raises(PermanentJobError, match=re.escape(reason)) as raised:
        upload_image(ctx, image_id, upload_id)

    row = image_row(services, image_id)
    assert row["status"] == "failed"
    assert row["failure_reason"] == str(raised.value)
    assert row["variants"] is None
    assert not (services.settings.var_dir / f"storage/images/{image_id}").exists()


def test_the_bomb_fixture_is_small_on_disk_but_huge_in_pixels():
    data = png_bomb(20_000, 20_000)
    assert len(data) < 200_000
    with pytest.raises(Image.DecompressionBombError):
        Image.open(io.BytesIO(data))


def test_pixels_between_the_limit_and_twice_it_are_refused_too(ctx, services, monkeypatch):
    # Pillow itself only warns in this band; flower.jpg is 480x360 = 172,800 pixels.
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100_000)
    upload_id = add_upload(services, photo("flower.jpg"))
    image_id = insert_row(services, images, upload_id=upload_id)

    with pytest.raises(PermanentJobError, match=r"decompression bomb: .*\b172800 pixels"):
        upload_image(ctx, image_id, upload_id)
    assert image_row(services, image_id)["status"] == "failed"


def test_a_missing_image_row_is_permanent_and_named(ctx, services):
    upload_id = add_upload(services, photo("hopper.jpg"))
    with pytest.raises(PermanentJobError, match="image 999 does not exist"):
        upload_image(ctx, 999, upload_id)


def test_a_missing_upload_row_is_permanent_and_fails_the_image(ctx, services):
    image_id = insert_row(services, images)
    with pytest.raises(PermanentJobError, match="upload 999 does not exist"):
        upload_image(ctx, image_id, 999)
    assert image_row(services, image_id)["failure_reason"] == "upload 999 does not exist"


# -- UploadImageWorker: uploads by URL ------------------------------------------------


def test_an_upload_url_on_the_allow_list_is_downloaded(ctx, services, httpserver):
    services.settings.upload_url_hosts = ("localhost",)
    httpserver.expect_request("/photos/flower.jpg").respond_with_data(
        photo("flower.jpg"), content_type="image/jpeg"
    )
    image_id = upload(ctx, source=httpserver.url_for("/photos/flower.jpg?sig=secret"))

    row = image_row(services, image_id)
    assert row["status"] == "ready"
    assert (row["width"], row["height"], row["bytes"]) == (480, 360, len(photo("flower.jpg")))


@pytest.mark.parametrize(
    ("hosts", "source", "reason"),
    [
        (("images.example.com",), "{server}/a.jpg", "host 'localhost' is not in"),
        (("localhost",), "{server}/redirect", "host '127.0.0.1' is not in"),
        (("localhost",), "file:///etc/passwd", "scheme 'file' is not http or https"),
    ],
    ids=["host-not-listed", "redirect-off-the-list", "file-scheme"],
)
def test_an_upload_url_off_the_allow_list_is_refused(
    ctx, services, httpserver, hosts, source, reason
):
    services.settings.upload_url_hosts = hosts
    elsewhere = f"http://127.0.0.1:{httpserver.port}/a.jpg"
    httpserver.expect_request("/redirect").respond_with_response(
        Response(status=302, headers={"Location": elsewhere})
    )
    httpserver.expect_request("/a.jpg").respond_with_data(photo("hopper.jpg"))
    upload_id = add_upload(services, source=source.format(server=httpserver.url_for("")[:-1]))
    image_id = insert_row(services, images, upload_id=upload_id)

    with pytest.raises(PermanentJobError, match=re.escape(reason)):
        upload_image(ctx, image_id, upload_id)

    assert image_row(services, image_id)["status"] == "failed"
    assert all(request.path != "/a.jpg" for request, _ in httpserver.log)


@pytest.mark.parametrize("streamed", [False, True], ids=["content-length", "chunked"])
def test_an_upload_url_over_the_size_cap_is_refused(ctx, services, httpserver, streamed):
    services.settings.upload_url_hosts = ("localhost",)
    services.settings.upload_max_bytes = 100_000
    body = b"\xff" * 300_000
    chunks = (body[i : i + 10_000] for i in range(0, len(body), 10_000))
    httpserver.expect_request("/big.jpg").respond_with_response(
        Response(chunks if streamed else body, content_type="image/jpeg")
    )
    upload_id = add_upload(services, source=httpserver.url_for("/big.jpg"))
    image_id = insert_row(services, images, upload_id=upload_id)

    with pytest.raises(PermanentJobError, match="over the limit of 100000") as raised:
        upload_image(ctx, image_id, upload_id)
    expected_size = "at least" if streamed else "is 300000 bytes"
    assert expected_size in str(raised.value)
    assert image_row(services, image_id)["status"] == "failed"


def test_a_server_error_is_retryable_and_leaves_the_image_pending(ctx, services, httpserver):
    services.settings.upload_url_hosts = ("localhost",)
    httpserver.expect_request("/flaky.jpg").respond_with_data("busy", status=503)
    upload_id = add_upload(services, source=httpserver.url_for("/flaky.jpg?token=s3cret"))
    image_id = insert_row(services, images, upload_id=upload_id)

    with pytest.raises(JobError, match="answered HTTP 503") as raised:
        upload_image(ctx, image_id, upload_id)
    assert not isinstance(raised.value, PermanentJobError)
    assert "s3cret" not in str(raised.value)
    assert image_row(services, image_id)["status"] == "pending"


# -- UpdateAvatarWorker ---------------------------------------------------------------


@pytest.fixture
def people(services) -> dict[str, int]:
    """The avatar's owner, another user, an admin and a deleted user."""
    rows = {
        "owner": {"is_admin": False},
        "other": {"is_admin": False},
        "admin": {"is_admin": True},
        "deleted": {"is_admin": True, "deleted_at": datetime.now(UTC)},
    }
    return {
        name: insert_row(services, users, email=f"{name}@example.com", first_name=name, **values)
        for name, values in rows.items()
    }


def avatar_of(services: Services, user_id: int) -> dict | None:
    with services.db.engine.connect() as conn:
        return conn.execute(select(users.c.avatar).where(users.c.id == user_id)).scalar_one()


def test_an_avatar_is_cropped_and_stored_in_three_square_sizes(ctx, services, people):
    owner = people["owner"]
    upload_id = add_upload(services, photo("flower.jpg"))
    crop = {"x": 280, "y": 160, "w": 200, "h": 200}  # the bottom-right corner of 480x360

    result = update_avatar(ctx, owner, {"upload_id": upload_id, "crop": crop}, owner)

    avatar = avatar_of(services, owner)
    assert avatar == result["avatar"]
    assert sorted(avatar) == ["200", "400", "64"]
    version = avatar["400"].split("/")[2]
    for size, key in avatar.items():
        assert key == f"avatars/{owner}/{version}/{size}.jpg"
        assert stored(services, key).size == (int(size), int(size))

    flower = Image.open(PHOTOS / "flower.jpg")
    cropped = ImageOps.fit(flower.crop((280, 160, 480, 360)), (400, 400))
    large = stored(services, avatar["400"])
    assert mean_difference(large, cropped) < 6
    assert mean_difference(large, ImageOps.fit(flower, (400, 400))) > 20


def test_an_avatar_with_alpha_is_stored_as_png(ctx, services, people):
    upload_id = add_upload(services, photo("rgb_trns.png"))
    update_avatar(ctx, people["owner"], {"upload_id": upload_id}, people["owner"])

    key = avatar_of(services, people["owner"])["64"]
    assert key.endswith("/64.png")
    assert stored(services, key).mode == "RGBA"


def test_the_new_avatar_replaces_the_old_files(ctx, services, people):
    owner = people["owner"]
    first = add_upload(services, photo("flower.jpg"))
    second = add_upload(services, photo("hopper.jpg"))
    update_avatar(ctx, owner, {"upload_id": first}, owner)
    old = avatar_of(services, owner)

    update_avatar(ctx, owner, {"upload_id": second}, owner)
    update_avatar(ctx, owner, {"upload_id": second}, owner)  # the same again keeps its files

    new = avatar_of(services, owner)
    assert set(new.values()).isdisjoint(old.values())
    assert not any(services.storage.exists(key) for key in old.values())
    assert all(services.storage.exists(key) for key in new.values())


def test_an_admin_may_change_another_users_avatar(ctx, services, people):
    upload_id = add_upload(services, photo("hopper.jpg"))
    update_avatar(ctx, people["owner"], {"upload_id": upload_id}, people["admin"])
    assert avatar_of(services, people["owner"]) is not None


@pytest.mark.parametrize("actor", ["other", "deleted", "missing"])
def test_only_the_user_or_a_live_admin_may_change_the_avatar(ctx, services, people, actor):
    actor_id = people.get(actor, 999)
    upload_id = add_upload(services, photo("hopper.jpg"))

    with pytest.raises(PermanentJobError, match=f"actor {actor_id} may not change the avatar"):
        update_avatar(ctx, people["owner"], {"upload_id": upload_id}, actor_id)
    assert avatar_of(services, people["owner"]) is None


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"crop": {"x": 400, "y": 0, "w": 200, "h": 100}}, "params.crop x + w = 600"),
        ({"crop": {"x": 0, "y": 300, "w": 10, "h": 61}}, "params.crop y + h = 361"),
        ({"crop": {"x": 0, "y": 0, "w": 0, "h": 10}}, "params.crop.w must be an integer >= 1"),
        ({"crop": {"x": -1, "y": 0, "w": 5, "h": 5}}, "params.crop.x must be an integer >= 0"),
        ({"crop": {"x": 0, "y": "0", "w": 5, "h": 5}}, "params.crop.y must be an integer"),
        ({"crop": {"x": 0, "y": 0, "w": 5, "h": True}}, "params.crop.h must be an integer"),
        ({"crop": [0, 0, 5, 5]}, "params.crop must be an object"),
        ({"upload_id": "7"}, "params.upload_id must be a positive integer"),
    ],
)
def test_bad_avatar_params_are_permanent_and_name_the_field(ctx, services, people, params, field):
    params = {"upload_id": add_upload(services, photo("flower.jpg")), **params}

    with pytest.raises(PermanentJobError, match=re.escape(field)):
        update_avatar(ctx, people["owner"], params, people["owner"])
    assert avatar_of(services, people["owner"]) is None
    assert not (services.settings.var_dir / "storage/avatars").exists()


@pytest.mark.parametrize("user", ["deleted", "missing"])
def test_a_gone_user_is_skipped(ctx, services, people, user):
    user_id = people.get(user, 999)
    upload_id = add_upload(services, photo("hopper.jpg"))

    assert update_avatar(ctx, user_id, {"upload_id": upload_id}, user_id) is None
    assert ctx.skipped == f"user {user_id} is gone"


# -- ImageOptimizationWorker ----------------------------------------------------------


def test_optimization_records_the_bytes_saved_and_shrinks_files(ctx, services):
    image_id = upload(ctx, photo("flower.jpg"))
    before = image_row(services, image_id)["variants"]
    before_files = {name: stored(services, v["key"]) for name, v in before.items()}

    result = optimize_image(ctx, image_id)

    row = image_row(services, image_id)
    saved = {name: before[name]["bytes"] - v["bytes"] for name, v in row["variants"].items()}
    assert result["bytes_saved"] == row["bytes_saved"] == sum(saved.values()) > 0
    assert saved["original"] > 0
    for name, variant in row["variants"].items():
        out = stored(services, variant["key"])
        assert len(services.storage.get_bytes(variant["key"])) == variant["bytes"]
        assert out.info.get("progressive") == 1
        assert mean_difference(out, before_files[name]) < 1  # same pixels, cheaper coding


def test_optimization_never_makes_a_file_larger(ctx, services):
    image_id = upload(ctx, photo("hopper.jpg"))
    keys = [v["key"] for v in image_row(services, image_id)["variants"].values()]
    # A tiny optimized baseline JPEG: progressive coding makes it larger, so it must stay.
    tiny = encoded(Image.open(PHOTOS / "hopper.jpg").resize((16, 16)), "JPEG", optimize=True)
    assert len(pipeline.recompress(tiny)) > len(tiny)
    services.storage.put_bytes(keys[-1], tiny, "image/jpeg")

    sizes = [{key: len(services.storage.get_bytes(key)) for key in keys}]
    runs = []
    for _ in range(2):  # the second run finds the files already optimized
        runs.append(optimize_image(ctx, image_id))
        sizes.append({key: len(services.storage.get_bytes(key)) for key in keys})

    assert services.storage.get_bytes(keys[-1]) == tiny
    for run, (before, after) in zip(runs, itertools.pairwise(sizes), strict=True):
        assert all(after[key] <= before[key] for key in keys)
        assert run["bytes_saved"] == sum(before[key] - after[key] for key in keys)
    assert image_row(services, image_id)["bytes_saved"] == sum(r["bytes_saved"] for r in runs)


def test_png_variants_are_optimized_as_png(ctx, services):
    image_id = upload(ctx, photo("rgb_trns.png"))
    before = image_row(services, image_id)["variants"]

    result = optimize_image(ctx, image_id)

    after = image_row(services, image_id)["variants"]
    for name, variant in after.items():
        out = stored(services, variant["key"])
        assert (out.format, out.mode) == ("PNG", "RGBA")
        assert out.tobytes() == stored(services, before[name]["key"]).tobytes()  # lossless
    assert after["thumb"]["bytes"] < before["thumb"]["bytes"]
    assert result["bytes_saved"] == sum(before[n]["bytes"] - after[n]["bytes"] for n in after)


@pytest.mark.parametrize("status", ["pending", "failed"])
def test_an_image_that_is_not_ready_is_skipped(ctx, services, status):
    image_id = insert_row(services, images, status=status)

    assert optimize_image(ctx, image_id) is None
    assert ctx.skipped == f"image {image_id} is {status}, not ready"
    assert image_row(services, image_id)["bytes_saved"] is None
