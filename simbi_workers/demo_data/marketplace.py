"""The demo's small marketplace: people, uploads made from real photos plus three files
that no image worker may accept, the social records of social.py and the balances,
trades, reviews and scores of economy.py.

Everything the demo adds is found again by the people's e-mail domain, so a second run
removes the first run's rows before adding its own and never touches anyone else's.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import Connection, Select, delete, insert, select

from simbi_workers.config import Settings
from simbi_workers.demo_data import economy, rerun, social
from simbi_workers.demo_data.economy import Economy
from simbi_workers.demo_data.rerun import Previous
from simbi_workers.demo_data.social import Social
from simbi_workers.services.db import Database
from simbi_workers.services.storage import Storage, from_settings
from simbi_workers.store.schema import images, uploads, users

PHOTOS_DIR = Path(__file__).parent / "photos"
PHOTO_SUFFIXES = (".jpg", ".png", ".gif")
EMAIL_DOMAIN = "demo.simbi.example"  # .example is reserved: no mail can ever reach it
ADMIN_COUNT = 3
NEW_PEOPLE = 5  # the last five joined today; the others over the past year
PEOPLE = (
    ("Amara", "Okafor"),
    ("Bruno", "Silva"),
    ("Chen", "Wei"),
    ("Dana", "Kowalski"),
    ("Emeka", "Adeyemi"),
    ("Farah", "Haddad"),
    ("Gustav", "Lind"),
    ("Hana", "Sato"),
    ("Ines", "Moreau"),
    ("Jonah", "Brooks"),
    ("Kiri", "Tane"),
    ("Lucia", "Romero"),
    ("Mateo", "Cruz"),
    ("Nadia", "Petrova"),
    ("Omar", "Farouk"),
    ("Priya", "Nair"),
    ("Quinn", "Harper"),
    ("Rosa", "Lindqvist"),
    ("Samir", "Khan"),
    ("Tess", "Walker"),
)

# The 1-bit PNG bomb: 400 million pixels (over twice PIL.Image.MAX_IMAGE_PIXELS, so Pillow
# refuses it outright) in about 50 kB.
BOMB_SIDE_PX = 20_000


@dataclass(frozen=True)
class Person:
    id: int
    first_name: str
    last_name: str
    email: str
    is_admin: bool
    phone: str | None = None
    sms_opt_in: bool = False
    is_new: bool = False


@dataclass(frozen=True)
class Upload:
    id: int
    image_id: int
    source: str  # the storage key
    photo: str | None  # the photo it was made from; None for a bad file
    bad_reason: str | None  # for a bad file: the words its failure reason must contain


@dataclass(frozen=True)
class Marketplace:
    people: list[Person]
    uploads: list[Upload]
    social: Social | None = None
    economy: Economy | None = None
    previous: Previous = field(default_factory=Previous)  # what the run before left behind

    @property
    def good(self) -> list[Upload]:
        return [upload for upload in self.uploads if upload.bad_reason is None]

    @property
    def bad(self) -> list[Upload]:
        return [upload for upload in self.uploads if upload.bad_reason is not None]


def photos() -> list[Path]:
    return sorted(path for path in PHOTOS_DIR.iterdir() if path.suffix in PHOTO_SUFFIXES)


def build(settings: Settings, photo_uploads: int, talk_count: int) -> Marketplace:
    """Replace the previous demo's records with ~20 people, photo_uploads good uploads
    (each photo several times over) plus the three bad ones, social records around
    talk_count talks, and the economy's records."""
    settings.var_dir.mkdir(parents=True, exist_ok=True)
    database = Database(settings.database_url_or_default)
    database.create_tables()
    storage = from_settings(settings)

    with database.engine.begin() as conn:
        previous = forget_previous(conn, storage)
        people = _add_people(conn)
        files = [*_photo_files(photo_uploads), *bad_files()]
        added = [_add_upload(conn, storage, people, n, file) for n, file in enumerate(files)]
        records = social.build(conn, people, talk_count)
        trades = economy.build(conn, people, records, EMAIL_DOMAIN)
    database.engine.dispose()
    return Marketplace(people, added, records, trades, previous)


def forget_previous(conn: Connection, storage: Storage) -> Previous:
    """Delete an earlier demo's social records, images, uploads and people (children first:
    foreign keys) and their files, so that no old variant lies beside a new image that
    reuses its id. What the records keyed outside the database comes back."""
    demo_users = select(users.c.id).where(users.c.email.like(f"%@{EMAIL_DOMAIN}"))
    demo_uploads = select(uploads.c.id).where(uploads.c.user_id.in_(demo_users))
    stored = _stored_keys(conn, demo_users, demo_uploads)
    previous = rerun.forget_records(conn, demo_users)

    conn.execute(delete(images).where(images.c.upload_id.in_(demo_uploads)))
    conn.execute(delete(uploads).where(uploads.c.user_id.in_(demo_users)))
    conn.execute(delete(users).where(users.c.id.in_(demo_users)))
    for key in stored:
        storage.delete_key(key)
    return previous


def _stored_keys(conn: Connection, demo_users: Select, demo_uploads: Select) -> list[str]:
    """The storage keys the demo's rows point at: uploads, image variants, avatars."""
    query = select(images.c.variants).where(images.c.upload_id.in_(demo_uploads))
    variants = [v["key"] for row in conn.execute(query).scalars() if row for v in row.values()]
    query = select(users.c.avatar).where(users.c.id.in_(demo_users))
    avatars = [key for row in conn.execute(query).scalars() if row for key in row.values()]
    sources = conn.execute(select(uploads.c.source).where(uploads.c.id.in_(demo_uploads)))
    return [*sources.scalars(), *variants, *avatars]


def bad_files() -> list[tuple[str, bytes, str, str]]:
    """(file name, bytes, content type, expected failure words) for the three bad uploads."""
    flower = (PHOTOS_DIR / "flower.jpg").read_bytes()
    text = b"Minutes of the Simbi meetup: bring a photo of your service next time.\n"
    return [
        ("not-an-image.txt", text, "text/plain", "not an image"),
        ("truncated.jpg", flower[: len(flower) // 2], "image/jpeg", "truncated"),
        ("bomb.png", png_bomb(BOMB_SIDE_PX), "image/png", "decompression bomb"),
    ]


def png_bomb(side_px: int) -> bytes:
    """A valid all-black 1-bit PNG of side_px x side_px pixels, small on disk.

    Written chunk by chunk rather than with Pillow: Pillow would hold a byte per pixel in
    memory (400 MB) to encode it, which is exactly the cost the worker must refuse.
    """
    row_bytes = 1 + (side_px + 7) // 8  # a filter byte, then 8 pixels a byte
    compressor = zlib.compressobj(9)
    row = bytes(row_bytes)
    pixels = b"".join(compressor.compress(row) for _ in range(side_px)) + compressor.flush()
    header = struct.pack(">IIBBBBB", side_px, side_px, 1, 0, 0, 0, 0)  # 1-bit greyscale
    return b"".join(
        (b"\x89PNG\r\n\x1a\n", _chunk(b"IHDR", header), _chunk(b"IDAT", pixels), _chunk(b"IEND"))
    )


def _chunk(kind: bytes, body: bytes = b"") -> bytes:
    crc = zlib.crc32(kind + body)
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)


def _photo_files(count: int) -> list[tuple[str, bytes, str, None]]:
    files = []
    available = photos()
    for n in range(count):
        path = available[n % len(available)]
        content_type = {".jpg": "image/jpeg", ".png": "image/png", ".gif": "image/gif"}
        files.append((path.name, path.read_bytes(), content_type[path.suffix], None))
    return files


def _add_people(conn: Connection) -> list[Person]:
    """Two in three have a phone, written as people type it (the SMS workers strip the
    spaces and brackets); every other one of those opted in to SMS."""
    people = []
    now = datetime.now(UTC)
    for index, (first, last) in enumerate(PEOPLE):
        email = f"{first}.{last}@{EMAIL_DOMAIN}".lower()
        is_new = index >= len(PEOPLE) - NEW_PEOPLE
        phone = f"+1 (415) 555-01{index:02d}" if index % 3 != 2 else None  # 555-01xx: fictional
        values = {"email": email, "first_name": first, "last_name": last, "phone": phone}
        values["is_admin"] = index < ADMIN_COUNT
        opt_in = values["sms_opt_in"] = phone is not None and index % 2 == 0
        values["created_at"] = now - timedelta(days=0 if is_new else 400 - 19 * index)
        user_id = conn.execute(insert(users).values(**values)).inserted_primary_key[0]
        people.append(
            Person(user_id, first, last, email, index < ADMIN_COUNT, phone, opt_in, is_new)
        )
    return people


def _add_upload(
    conn: Connection, storage: Storage, people: list[Person], n: int, file: tuple
) -> Upload:
    name, data, content_type, bad_reason = file
    key = f"uploads/demo/{n + 1}{Path(name).suffix}"
    storage.put_bytes(key, data, content_type)

    owner = people[n % len(people)].id
    values = {"user_id": owner, "source": key, "content_type": content_type}
    upload_id = conn.execute(insert(uploads).values(**values)).inserted_primary_key[0]
    image_id = conn.execute(insert(images).values(upload_id=upload_id)).inserted_primary_key[0]
    photo = None if bad_reason else name
    return Upload(upload_id, image_id, key, photo, bad_reason)
