"""SQLAlchemy tables of the annotation store (our own metadata, never jupyterhub.orm.Base)."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator):
    """Timezone-aware UTC datetimes on every backend (SQLite drops the zone)."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is not None:
            value = value.astimezone(UTC).replace(tzinfo=None)
        return value

    def process_result_value(self, value, dialect):
        if value is not None:
            value = value.replace(tzinfo=UTC)
        return value


class Base(DeclarativeBase):
    pass


class Account(Base):
    """A login of ours: a person (``kind='user'``) or, later, a service account."""

    __tablename__ = "accounts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(255), unique=True, nullable=False)
    kind: Mapped[str] = mapped_column(String(16), nullable=False, default="user")
    # NULL means "no usable password": the account waits for a setup/invite/reset link.
    password_hash: Mapped[str | None] = mapped_column(Text, nullable=True)
    admin: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    active: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    # Bumped whenever the password changes: every link carries the value it was
    # issued for, so one use (or any password change) kills all outstanding links.
    credential_version: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    # Bumped when a link is issued, when the account is deactivated and when an admin
    # revokes its links: a link carries the value it was issued with, so only the
    # newest unused one works, and none survives a deactivation or a revocation.
    link_generation: Mapped[int] = mapped_column(
        Integer, nullable=False, default=0, server_default="0"
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    password_changed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class LoginFailure(Base):
    """One failed login, kept for the throttling window (shared by replicas, survives restarts)."""

    __tablename__ = "login_failures"
    __table_args__ = (
        Index("ix_login_failures_name_at", "name", "at"),
        Index("ix_login_failures_address_at", "address", "at"),
        Index("ix_login_failures_at", "at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(255), nullable=False)
    address: Mapped[str] = mapped_column(String(64), nullable=False)
    at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)


class Project(Base):
    __tablename__ = "projects"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    slug: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    description: Mapped[str] = mapped_column(Text, nullable=False, default="")
    share_annotations: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    api_access: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    # Work distribution (docs/work.md): annotators per item, how long a claim lasts,
    # and whether annotators see others' annotations of an item before their own.
    overlap: Mapped[int] = mapped_column(Integer, nullable=False, default=1, server_default="1")
    lease_minutes: Mapped[int] = mapped_column(
        Integer, nullable=False, default=30, server_default="30"
    )
    blind: Mapped[bool] = mapped_column(
        Boolean, nullable=False, default=False, server_default=text("false")
    )


class Membership(Base):
    """One account's role in one project; ``source`` says who may change it."""

    __tablename__ = "memberships"
    __table_args__ = (UniqueConstraint("project_id", "account_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), nullable=False, index=True
    )
    account_id: Mapped[int] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False, index=True
    )
    role: Mapped[str] = mapped_column(String(16), nullable=False)
    # "config": declared in jupyterhub_config.py, re-applied at every start, read-only
    # at runtime. "api": added at runtime, kept in the database.
    source: Mapped[str] = mapped_column(String(8), nullable=False, default="api")
    # The member's own choice to see others' annotations where the project shares them.
    show_others: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)


class Token(Base):
    """A personal access token: only the SHA-256 digest of its plaintext is kept."""

    __tablename__ = "tokens"
    __table_args__ = (
        # Names are unique among an account's live (unrevoked) tokens.
        Index(
            "ix_tokens_live_name",
            "account_id",
            "name",
            unique=True,
            sqlite_where=text("revoked_at IS NULL"),
            postgresql_where=text("revoked_at IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False, index=True
    )
    name: Mapped[str] = mapped_column(String(100), nullable=False)
    digest: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    scopes: Mapped[str] = mapped_column(Text, nullable=False)  # space-separated
    projects: Mapped[str | None] = mapped_column(Text, nullable=True)  # space-separated; NULL: all
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class Annotation(Base):
    """One owner's document for one item of a project.

    ``owner`` is the account name and stays when the account is deleted (``owner_id``
    becomes NULL and the annotation read-only). ``version`` grows by exactly one on
    every successful write, deletes included: a delete leaves a tombstone (``data``
    NULL, ``deleted_at`` set), so a stale ``If-Match`` can never match a re-created one.
    """

    __tablename__ = "annotations"
    __table_args__ = (
        # The key; also serves listing an item's annotations and the (item, owner) cursor.
        UniqueConstraint("project_id", "item", "owner", name="uq_annotations_key"),
        # Listing one owner's annotations in a project, in cursor order.
        Index("ix_annotations_project_owner_item", "project_id", "owner", "item"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), nullable=False
    )
    item: Mapped[str] = mapped_column(String(256), nullable=False)
    owner: Mapped[str] = mapped_column(String(255), nullable=False)
    owner_id: Mapped[int | None] = mapped_column(
        ForeignKey("accounts.id", ondelete="SET NULL"), nullable=True, index=True
    )
    data: Mapped[str | None] = mapped_column(Text, nullable=True)  # JSON text
    version: Mapped[int] = mapped_column(Integer, nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class Item(Base):
    """An item registered for the queue, with the ``data`` its annotators receive."""

    __tablename__ = "items"
    __table_args__ = (UniqueConstraint("project_id", "item", name="uq_items_key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), nullable=False
    )
    item: Mapped[str] = mapped_column(String(256), nullable=False)
    data: Mapped[str] = mapped_column(Text, nullable=False)  # JSON text
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)


class Claim(Base):
    """One hand-out of an item to one annotator: at most one per pair, ever, so nobody
    gets an item twice. ``state`` "claimed" is live until ``expires_at`` or until its
    annotator writes their annotation of the item (then it is done); "released" and
    "expired" free the slot."""

    __tablename__ = "claims"
    __table_args__ = (
        UniqueConstraint("item_id", "account_id", name="uq_claims_item_account"),
        Index("ix_claims_project_state", "project_id", "state", "expires_at"),
        Index("ix_claims_account", "account_id", "project_id", "state"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), nullable=False
    )
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"), nullable=False)
    item: Mapped[str] = mapped_column(String(256), nullable=False)  # the item's name
    account_id: Mapped[int] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False
    )
    state: Mapped[str] = mapped_column(String(8), nullable=False)
    claimed_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)


class AuditEvent(Base):
    """One security event: who did what to whom, when, and from which address.

    Names are kept as text, not foreign keys, so the record outlives the accounts it
    names. ``details`` is JSON and never holds a secret.
    """

    __tablename__ = "audit_events"
    __table_args__ = (
        Index("ix_audit_events_actor", "actor", "id"),
        Index("ix_audit_events_action", "action", "id"),
        Index("ix_audit_events_target", "target", "id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow, index=True)
    actor: Mapped[str | None] = mapped_column(String(255), nullable=True)
    action: Mapped[str] = mapped_column(String(64), nullable=False)
    target: Mapped[str | None] = mapped_column(String(255), nullable=True)
    address: Mapped[str | None] = mapped_column(String(64), nullable=True)
    details: Mapped[str] = mapped_column(Text, nullable=False, default="{}")
