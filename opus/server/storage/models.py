"""The tables of OPUS as SQLAlchemy 2.0 typed models.

They change only together with a migration (opus/server/migrations/versions); a test
checks that the migrated schema equals these models on SQLite and PostgreSQL.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes, stored naive-UTC (portable across databases)."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the database")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


class Base(DeclarativeBase):
    """Declarative base of the OPUS tables."""


class JobRow(Base):
    """A UWS job."""

    __tablename__ = "jobs"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    jobname: Mapped[str] = mapped_column(String(64))
    run_id: Mapped[str | None] = mapped_column(Text, default=None)
    owner: Mapped[str] = mapped_column(String(255))
    phase: Mapped[str] = mapped_column(String(16))
    creation_time: Mapped[datetime] = mapped_column(UTCDateTime)
    start_time: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    end_time: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    destruction_time: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    quote: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    # When the phase last changed: lets the reconciler give a new phase a grace time.
    phase_time: Mapped[datetime] = mapped_column(UTCDateTime)
    execution_duration: Mapped[int] = mapped_column(Integer)
    error_type: Mapped[str | None] = mapped_column(String(16), default=None)
    error_message: Mapped[str | None] = mapped_column(Text, default=None)
    external_id: Mapped[str | None] = mapped_column(String(255), default=None)
    token_hash: Mapped[str] = mapped_column(String(128))
    # Incremented by every write of the job, its parameters or its results.
    version: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # What the job's files take: its inputs when saved, its whole directory once ended
    # (owner_usage adds these up).
    stored_bytes: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    # The job definition the job was created with (migration 0009; storage/definitions.py):
    # its revision (None for a draft's trial job) and the SHA-256 of its canonical text.
    definition_revision: Mapped[int | None] = mapped_column(Integer, default=None)
    definition_hash: Mapped[str | None] = mapped_column(String(64), default=None)
    # The latest progress its script reported (migration 0012; storage/progress.py): a
    # percentage, a message, and when the server received it.
    progress: Mapped[float | None] = mapped_column(Float, default=None)
    progress_message: Mapped[str | None] = mapped_column(Text, default=None)
    progress_time: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    # The git source of its code (migration 0013; storage/sources.py): the repository,
    # the ref cloned, and the commit the batch script checked out.
    source_url: Mapped[str | None] = mapped_column(Text, default=None)
    source_ref: Mapped[str | None] = mapped_column(Text, default=None)
    source_commit: Mapped[str | None] = mapped_column(String(64), default=None)
    # When the job last changed, in the database's order of changes: set by triggers on
    # every insert and update, whatever the writer gives (migration 0005; changes.py).
    change_seq: Mapped[int | None] = mapped_column(BigInteger, default=0, server_default="0")

    __table_args__ = (
        # Job lists: per job type, newest first, optionally by phase.
        Index("ix_jobs_list", "jobname", "creation_time", "id"),
        Index("ix_jobs_list_phase", "jobname", "phase", "creation_time", "id"),
        # An owner's jobs, newest first, optionally by phase (storage/listing.py).
        Index("ix_jobs_owner_list", "owner", "creation_time", "id"),
        Index("ix_jobs_owner_phase", "owner", "phase", "creation_time", "id"),
        # Reconciler (active jobs), destruction sweep.
        Index("ix_jobs_phase", "phase"),
        Index("ix_jobs_destruction", "destruction_time"),
        # The change feed: an owner's changes, and everybody's (admins).
        Index("ix_jobs_owner_changes", "owner", "change_seq"),
        Index("ix_jobs_changes", "change_seq"),
    )


class JobTombstoneRow(Base):
    """A deleted job, for the change feed (migration 0005): written by a trigger on
    every delete of a job, with the change's number and the database's time; forgotten
    after a while (storage/changes.py)."""

    __tablename__ = "job_tombstones"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    owner: Mapped[str] = mapped_column(String(255))
    change_seq: Mapped[int] = mapped_column(BigInteger)
    deleted_time: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (
        Index("ix_job_tombstones_owner", "owner", "change_seq"),
        Index("ix_job_tombstones_changes", "change_seq"),
        Index("ix_job_tombstones_time", "deleted_time"),
    )


class ChangeMarkRow(Base):
    """Numbers of the change feed (migration 0005): ``last``, the number of the last
    change (SQLite's counter; PostgreSQL numbers changes by transaction id), and
    ``pruned``, the highest number of a tombstone forgotten."""

    __tablename__ = "change_marks"

    name: Mapped[str] = mapped_column(String(16), primary_key=True)
    value: Mapped[int] = mapped_column(BigInteger)


class OwnerUsageRow(Base):
    """What one owner's jobs add up to, kept by triggers on ``jobs`` (migration 0003):
    the jobs kept (every phase but ARCHIVED), the bytes they store, the active ones.

    Maintained by the database itself on every insert, delete and change of a job's
    owner, phase or stored bytes, in the write's transaction, so that a per-owner limit
    costs one row's read however many jobs the owner has.
    """

    __tablename__ = "owner_usage"

    owner: Mapped[str] = mapped_column(String(255), primary_key=True)
    kept: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    stored: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    active: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class ParameterRow(Base):
    """A job parameter (value as text, no length limit)."""

    __tablename__ = "job_parameters"

    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    name: Mapped[str] = mapped_column(String(255), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
    by_reference: Mapped[bool] = mapped_column(Boolean, default=False)


class ResultRow(Base):
    """A file a job produced, registered when it ended."""

    __tablename__ = "job_results"

    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    result_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    path: Mapped[str] = mapped_column(Text)
    content_type: Mapped[str] = mapped_column(String(255))
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))


class LeaseRow(Base):
    """A named lease held by one process until ``expires`` (the SQLite reconciler lock)."""

    __tablename__ = "leases"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str] = mapped_column(String(255))
    expires: Mapped[datetime] = mapped_column(UTCDateTime)


class UserRow(Base):
    """A user: roles, active flag, API token (hash only), optional web password and
    optional external id."""

    __tablename__ = "users"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    roles: Mapped[str] = mapped_column(Text, default="")
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    token_hash: Mapped[str] = mapped_column(String(128), unique=True)
    password_hash: Mapped[str | None] = mapped_column(Text, default=None)
    creation_time: Mapped[datetime] = mapped_column(UTCDateTime)
    # What an identity provider knows the user by (SCIM externalId, migration 0008).
    external_id: Mapped[str | None] = mapped_column(Text, default=None)


class AuthFailureRow(Base):
    """Failed authentications of one client address or user name (``key``), shared by
    the server's processes: how many since the counter was last forgotten, and until
    when its requests are refused."""

    __tablename__ = "auth_failures"

    key: Mapped[str] = mapped_column(String(128), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer)
    last_failure: Mapped[datetime] = mapped_column(UTCDateTime)
    blocked_until: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)

    __table_args__ = (Index("ix_auth_failures_last", "last_failure"),)


class SessionRow(Base):
    """A signed-in browser session (migration 0004): the SHA-256 of its cookie value
    only, its user (gone with the user), its CSRF token, and when it began, was last
    seen (written at most every minute) and ends unless it is used again (the sweep's)."""

    __tablename__ = "sessions"

    id_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_name: Mapped[str] = mapped_column(ForeignKey("users.name", ondelete="CASCADE"))
    csrf_token: Mapped[str] = mapped_column(String(64))
    created: Mapped[datetime] = mapped_column(UTCDateTime)
    last_seen: Mapped[datetime] = mapped_column(UTCDateTime)
    expires: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (
        Index("ix_sessions_expires", "expires"),
        Index("ix_sessions_user", "user_name"),
    )


class SharedLinkRow(Base):
    """A shared link of one result (migration 0006): the SHA-256 of its token only, the
    job and result it reads (gone with the job), who made it, and when it ends."""

    __tablename__ = "shared_links"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    result_id: Mapped[str] = mapped_column(String(255))
    created_by: Mapped[str] = mapped_column(String(255))
    created: Mapped[datetime] = mapped_column(UTCDateTime)
    expires: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (
        Index("ix_shared_links_expires", "expires"),
        Index("ix_shared_links_job", "job_id"),
    )


class DefinitionVersionRow(Base):
    """A job definition as it was used or approved (migration 0009): its canonical YAML
    text (script inline) and SHA-256, its revision number (None for a draft's text that
    only ran trial jobs), its author, and who approved it when (None: read from a file
    an admin put in JDL_PATH). Never changed once written, but for the revision a trial
    text gets when it is approved."""

    __tablename__ = "jdl_versions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(64))
    revision: Mapped[int | None] = mapped_column(Integer, default=None)
    hash: Mapped[str] = mapped_column(String(64))
    text: Mapped[str] = mapped_column(Text)
    version_label: Mapped[str] = mapped_column(Text, default="")
    author: Mapped[str | None] = mapped_column(String(255), default=None)
    approved_by: Mapped[str | None] = mapped_column(String(255), default=None)
    created: Mapped[datetime] = mapped_column(UTCDateTime)
    approved_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)

    __table_args__ = (
        UniqueConstraint("name", "hash", name="uq_jdl_versions_hash"),
        UniqueConstraint("name", "revision", name="uq_jdl_versions_revision"),
    )


class DefinitionDraftRow(Base):
    """The draft of a job type (migration 0009): the text as its author gave it, in its
    form, with the script when given apart, and when it was last saved and submitted
    for approval (None: not submitted since)."""

    __tablename__ = "jdl_drafts"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    author: Mapped[str] = mapped_column(String(255))
    format: Mapped[str] = mapped_column(String(16))
    text: Mapped[str] = mapped_column(Text)
    script: Mapped[str | None] = mapped_column(Text, default=None)
    updated: Mapped[datetime] = mapped_column(UTCDateTime)
    submitted: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)


class OIDCIdentityRow(Base):
    """Who an OpenID Connect provider's account is on OPUS (migration 0010): the
    provider's name in OIDC_PROVIDERS and the ID token's ``sub``, never reassigned by
    the provider, for the OPUS user it signs in (gone with the user), made when the
    link was. One account of a provider per user: the unique index."""

    __tablename__ = "oidc_identities"

    provider: Mapped[str] = mapped_column(String(32), primary_key=True)
    subject: Mapped[str] = mapped_column(String(255), primary_key=True)
    user_name: Mapped[str] = mapped_column(ForeignKey("users.name", ondelete="CASCADE"))
    created: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (Index("ix_oidc_identities_user", "user_name", "provider", unique=True),)


class EntityRow(Base):
    """A file of provenance (an Entity): an input a job received, or a result.

    Rows outlive their job (no foreign key to ``jobs``): a later job that used a result
    still names what it used, with its hash, once the job that made it is deleted;
    ``present`` is then false and the file is gone. A result's id is derived from its
    job and result ids (storage/entities.py), so it is the same whoever records it.
    """

    __tablename__ = "entities"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(8))  # "input" or "result"
    # The job whose directory holds the file (the one that made a result).
    job_id: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(255))  # the result id or the input's name
    path: Mapped[str] = mapped_column(Text)  # inside the job's directory
    owner: Mapped[str] = mapped_column(String(255))
    content_type: Mapped[str] = mapped_column(String(255))
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    creation_time: Mapped[datetime] = mapped_column(UTCDateTime)
    source: Mapped[str | None] = mapped_column(Text, default=None)  # a fetched input's URL
    present: Mapped[bool] = mapped_column(Boolean, default=True)

    __table_args__ = (
        Index("ix_entities_job", "job_id"),
        Index("ix_entities_owner", "owner", "creation_time"),
    )


class EntityUseRow(Base):
    """A job used an entity as its input ``role`` (the used entity's name)."""

    __tablename__ = "entity_uses"

    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    role: Mapped[str] = mapped_column(String(255), primary_key=True)
    entity_id: Mapped[str] = mapped_column(String(64))

    __table_args__ = (Index("ix_entity_uses_entity", "entity_id"),)
