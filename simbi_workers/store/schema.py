"""The app records the workers read and write: the one schema module.

`simbi-workers db init` creates these tables on SQLite or PostgreSQL. Each issue adds the
tables its workers need here, never in a second place.
"""

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    event,
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
    Column("sms_opt_in", Boolean, nullable=False, server_default="0"),
    Column("bio", Text),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    # Bumped by the app on every profile change; ScoreQueryProcessorWorker reads it.
    Column("updated_at", DateTime(timezone=True)),
    Column("last_seen_at", DateTime(timezone=True)),
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


# Issue 3: the records the email and notification workers read.


def _id() -> Column:
    return Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True)


def _created() -> Column:
    return Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now())


def _user(name: str, **kwargs) -> Column:
    return Column(name, ForeignKey("users.id", ondelete="CASCADE"), **kwargs)


services = Table(
    "services",
    metadata,
    _id(),
    _user("user_id", nullable=False),
    Column("title", String(200), nullable=False),
    Column("description", Text, nullable=False, server_default=""),
    Column("category", String(64), nullable=False),
    Column("price", Integer, nullable=False, server_default="0"),  # in Simbi
    Column("status", String(16), nullable=False, server_default="active"),
    Column("rating_average", Float),
    Column("rating_count", Integer, nullable=False, server_default="0"),
    _created(),
    Column("updated_at", DateTime(timezone=True)),
)

talks = Table(
    "talks",
    metadata,
    _id(),
    Column("service_id", ForeignKey("services.id", ondelete="SET NULL")),
    _created(),
)

# A participant has read every message up to last_read_message_id.
talk_participants = Table(
    "talk_participants",
    metadata,
    Column("talk_id", ForeignKey("talks.id", ondelete="CASCADE"), primary_key=True),
    _user("user_id", primary_key=True),
    Column("last_read_message_id", BigInteger),
)

messages = Table(
    "messages",
    metadata,
    _id(),
    Column("talk_id", ForeignKey("talks.id", ondelete="CASCADE"), nullable=False),
    _user("sender_id", nullable=False),
    Column("body", Text, nullable=False),
    _created(),
)

comments = Table(
    "comments",
    metadata,
    _id(),
    Column("service_id", ForeignKey("services.id", ondelete="CASCADE"), nullable=False),
    _user("user_id", nullable=False),
    Column("body", Text, nullable=False),
    _created(),
)

compliments = Table(
    "compliments",
    metadata,
    _id(),
    _user("sender_id", nullable=False),
    _user("receiver_id", nullable=False),
    Column("body", Text, nullable=False, server_default=""),
    _created(),
)

# A favor is a request for help: requester asks asked_user, maybe about a service.
favors = Table(
    "favors",
    metadata,
    _id(),
    _user("requester_id", nullable=False),
    _user("asked_user_id", nullable=False),
    Column("service_id", ForeignKey("services.id", ondelete="SET NULL")),
    Column("body", Text, nullable=False, server_default=""),
    _created(),
)

favorites = Table(
    "favorites",
    metadata,
    _id(),
    _user("user_id", nullable=False),
    Column("service_id", ForeignKey("services.id", ondelete="CASCADE"), nullable=False),
    _created(),
    UniqueConstraint("user_id", "service_id"),
)

matches = Table(
    "matches",
    metadata,
    _id(),
    _user("user_a_id", nullable=False),
    _user("user_b_id", nullable=False),
    Column("service_a_id", ForeignKey("services.id", ondelete="SET NULL")),
    Column("service_b_id", ForeignKey("services.id", ondelete="SET NULL")),
    _created(),
)

follows = Table(
    "follows",
    metadata,
    _id(),
    _user("follower_id", nullable=False),
    _user("followed_id", nullable=False),
    _created(),
    UniqueConstraint("follower_id", "followed_id"),
)

devices = Table(
    "devices",
    metadata,
    _id(),
    _user("user_id", nullable=False),
    Column("provider", String(16), nullable=False),  # fcm | onesignal
    Column("token", String(512), nullable=False, unique=True),
    Column("platform", String(16)),  # ios | android | web
    _created(),
    CheckConstraint("provider IN ('fcm', 'onesignal')", name="devices_provider"),
)

# One row per (user, channel, category) the user changed; no row means enabled.
# channel: email | push | sms. Push categories: messages, compliments, favors, matches,
# followers, leaderboard, account. Email categories: messages, comments, favorites,
# suggestions, intro, compliments, favors.
notification_preferences = Table(
    "notification_preferences",
    metadata,
    _user("user_id", primary_key=True),
    Column("channel", String(16), primary_key=True),
    Column("category", String(32), primary_key=True),
    Column("enabled", Boolean, nullable=False),
)

suggestion_history = Table(
    "suggestion_history",
    metadata,
    _id(),
    _user("user_id", nullable=False),
    Column("service_id", ForeignKey("services.id", ondelete="CASCADE"), nullable=False),
    Column("suggested_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

# What was sent once and must not be sent again (an intro step, say): the unique key
# makes a second run of the same job a no-op even when two run at once.
notifications_sent = Table(
    "notifications_sent",
    metadata,
    _id(),
    _user("user_id", nullable=False),
    Column("kind", String(64), nullable=False),
    Column("dedupe_key", String(200), nullable=False, unique=True),
    # created_at is when the claim was taken (or taken over); sent_at is NULL while the
    # send is in flight. A NULL sent_at older than the Ruby workers' lease (120 s) is a
    # claim whose run died mid-send, and the next run takes it over.
    _created(),
    Column("sent_at", DateTime(timezone=True)),
)


# Issue 4: the records the TypeScript workers read and write.

reviews = Table(
    "reviews",
    metadata,
    _id(),
    Column("service_id", ForeignKey("services.id", ondelete="CASCADE"), nullable=False),
    _user("reviewer_id", nullable=False),
    Column("rating", Integer, nullable=False),
    Column("body", Text, nullable=False, server_default=""),
    _created(),
    CheckConstraint("rating BETWEEN 1 AND 5", name="reviews_rating"),
)

# A formula is a weighted sum of named metrics: weights is {"rating_average": 2.0, ...}.
score_formulas = Table(
    "score_formulas",
    metadata,
    _id(),
    Column("name", String(64), nullable=False, unique=True),
    Column("subject_type", String(16), nullable=False),  # user | service
    Column("weights", JSON, nullable=False),
    Column("last_run_at", DateTime(timezone=True)),
    CheckConstraint("subject_type IN ('user', 'service')", name="score_formulas_subject"),
)

scores = Table(
    "scores",
    metadata,
    _id(),
    Column("subject_type", String(16), nullable=False),
    Column("subject_id", BigInteger, nullable=False),
    Column("formula_id", ForeignKey("score_formulas.id", ondelete="CASCADE"), nullable=False),
    Column("value", Float, nullable=False),
    Column("computed_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    UniqueConstraint("subject_type", "subject_id", "formula_id"),
)

# The Simbi ledger. kind transfer moves money between two users; kind bonus is paid by
# the house (from_user_id NULL). A deleted user's rows stay, with their id set to NULL.
simbi_transactions = Table(
    "simbi_transactions",
    metadata,
    _id(),
    Column("kind", String(16), nullable=False, server_default="transfer"),
    Column("from_user_id", ForeignKey("users.id", ondelete="SET NULL")),
    Column("to_user_id", ForeignKey("users.id", ondelete="SET NULL")),
    Column("amount", BigInteger, nullable=False),
    Column("reason", String(200), nullable=False, server_default=""),
    Column("idempotency_key", String(200), nullable=False, unique=True),
    _created(),
    CheckConstraint("amount > 0", name="simbi_transactions_amount"),
    CheckConstraint("kind IN ('transfer', 'bonus')", name="simbi_transactions_kind"),
)

milestones = Table(
    "milestones",
    metadata,
    _user("user_id", primary_key=True),
    Column("kind", String(32), primary_key=True),
    _created(),
)

# A user's own account at a provider, so that a friend list can be linked to users.
social_accounts = Table(
    "social_accounts",
    metadata,
    _id(),
    _user("user_id", nullable=False),
    Column("provider", String(16), nullable=False),  # facebook | google
    Column("provider_uid", String(128), nullable=False),
    UniqueConstraint("provider", "provider_uid"),
)

social_connections = Table(
    "social_connections",
    metadata,
    _id(),
    _user("user_id", nullable=False),
    Column("provider", String(16), nullable=False),
    Column("friend_uid", String(128), nullable=False),
    Column("friend_name", String(200)),
    _user("friend_user_id"),  # set when the friend is a user too
    _created(),
    UniqueConstraint("user_id", "provider", "friend_uid"),
)

# What the search index holds: one row per indexed record. The index itself (SQLite FTS5
# or a PostgreSQL tsvector) follows this table, so deleting a row here removes the
# document from search results.
search_documents = Table(
    "search_documents",
    metadata,
    Column("record_type", String(16), primary_key=True),  # service | user
    Column("record_id", BigInteger, primary_key=True),
    Column("owner_id", BigInteger, nullable=False),  # the user the document names
    Column("title", Text, nullable=False),
    Column("body", Text, nullable=False, server_default=""),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

# The index over search_documents, queried by services/search.py. SQLite: an FTS5 table
# whose content is this table's rows (external content), kept in step by triggers.
# PostgreSQL: a generated tsvector column, title weighted above body, with a GIN index.
# NOTE: on SQLite, INSERT OR REPLACE into search_documents would bypass the delete trigger
# and leave stale index entries: write with ON CONFLICT ... DO UPDATE instead.
SEARCH_FTS = "search_documents_fts"
_FTS_ROW = "(rowid, title, body) VALUES (new.rowid, new.title, new.body)"
_FTS_DELETE = (
    f"({SEARCH_FTS}, rowid, title, body) VALUES ('delete', old.rowid, old.title, old.body)"
)
_SEARCH_INDEX_DDL = {
    "sqlite": (
        f"CREATE VIRTUAL TABLE IF NOT EXISTS {SEARCH_FTS} USING fts5(title, body, "
        "content='search_documents', content_rowid='rowid', tokenize='unicode61')",
        "CREATE TRIGGER IF NOT EXISTS search_documents_ai AFTER INSERT ON search_documents "
        f"BEGIN INSERT INTO {SEARCH_FTS} {_FTS_ROW}; END",
        "CREATE TRIGGER IF NOT EXISTS search_documents_ad AFTER DELETE ON search_documents "
        f"BEGIN INSERT INTO {SEARCH_FTS} {_FTS_DELETE}; END",
        "CREATE TRIGGER IF NOT EXISTS search_documents_au AFTER UPDATE OF title, body "
        f"ON search_documents BEGIN INSERT INTO {SEARCH_FTS} {_FTS_DELETE}; "
        f"INSERT INTO {SEARCH_FTS} {_FTS_ROW}; END",
    ),
    "postgresql": (
        "ALTER TABLE search_documents ADD COLUMN IF NOT EXISTS search_vector tsvector "
        "GENERATED ALWAYS AS (setweight(to_tsvector('simple', title), 'A') "
        "|| setweight(to_tsvector('simple', body), 'B')) STORED",
        "CREATE INDEX IF NOT EXISTS search_documents_search_vector "
        "ON search_documents USING GIN (search_vector)",
    ),
}


@event.listens_for(metadata, "after_create")
def _create_search_index(_target, connection, **_kw) -> None:
    # On every create_all (IF NOT EXISTS throughout), so that `db init` also indexes a
    # search_documents table made before the index existed.
    dialect = connection.dialect
    if not dialect.has_table(connection, "search_documents"):
        return
    fresh = dialect.name == "sqlite" and not dialect.has_table(connection, SEARCH_FTS)
    for statement in _SEARCH_INDEX_DDL.get(dialect.name, ()):
        connection.exec_driver_sql(statement)
    if fresh:
        # Rows already in the table were written before the triggers: index them now.
        connection.exec_driver_sql(f"INSERT INTO {SEARCH_FTS}({SEARCH_FTS}) VALUES ('rebuild')")


@event.listens_for(search_documents, "after_drop")
def _drop_search_index(_target, connection, **_kw) -> None:
    # PostgreSQL drops the column and its index with the table; the FTS5 table stays.
    if connection.dialect.name == "sqlite":
        connection.exec_driver_sql(f"DROP TABLE IF EXISTS {SEARCH_FTS}")
