"""The app records the workers read and write: the one schema module.

`simbi-workers db init` creates these tables on SQLite or PostgreSQL. Each issue adds the
tables its workers need here, never in a second place.
"""

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    func,
)

metadata = MetaData()

users = Table(
    "users",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("email", String(255), nullable=False, unique=True),
    Column("first_name", String(100), nullable=False),
    Column("last_name", String(100), nullable=False, server_default=""),
    Column("phone", String(32)),
    Column("time_zone", String(64), nullable=False, server_default="UTC"),
    Column("is_admin", Boolean, nullable=False, server_default="0"),
    Column("avatar", JSON),  # {"400": key, "200": key, "64": key}
    Column("strength", Integer, nullable=False, server_default="0"),
    Column("tier", String(16), nullable=False, server_default="bronze"),
    Column("display_score", Integer),
    Column("simbi_balance", BigInteger, nullable=False, server_default="0"),
    Column("notification_preferences", JSON),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("deleted_at", DateTime(timezone=True)),
)

# uploads and images: see images/ (UploadImageWorker, UpdateAvatarWorker, ...).
uploads = Table(
    "uploads",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("user_id", ForeignKey("users.id"), nullable=True),
    Column("source", Text, nullable=False),  # a storage key or an http(s) URL
    Column("content_type", String(100)),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

images = Table(
    "images",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("upload_id", ForeignKey("uploads.id"), nullable=True),
    Column("status", String(16), nullable=False, server_default="pending"),
    Column("failure_reason", Text),
    Column("width", Integer),
    Column("height", Integer),
    Column("bytes", BigInteger),
    Column("variants", JSON),  # {"original": {"key", "width", "height", "bytes"}, ...}
    Column("bytes_saved", BigInteger),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True)),
)
