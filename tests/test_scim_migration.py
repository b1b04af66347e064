"""Migration 0008 (users.external_id, the SCIM externalId): users of a database at 0007
are kept, with no external id, and the downgrade takes the column away, users kept."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import inspect, text
from sqlalchemy.engine import Engine

from opus.server import schema
from opus.server.storage import UserStore, make_engine
from tests.conftest import DATABASES


@pytest.fixture(params=DATABASES)
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """An engine on a database without any table."""
    if request.param == "sqlite":
        path = tmp_path / "opus.db"
        url = f"sqlite:///{path}"
    else:
        cluster = request.getfixturevalue("pg_cluster")
        url = cluster.create_empty_database()
    made = make_engine(url)
    try:
        yield made
    finally:
        made.dispose()
        if request.param != "sqlite":
            cluster.drop_database(url)


def migrate(engine: Engine, revision: str, down: bool = False) -> None:
    with engine.begin() as conn:
        config = schema.alembic_config(conn)
        (command.downgrade if down else command.upgrade)(config, revision)


def user_columns(engine: Engine) -> set[str]:
    return {c["name"] for c in inspect(engine).get_columns("users")}


def test_users_of_revision_0007_get_no_external_id(engine: Engine) -> None:
    migrate(engine, "0007")
    assert "external_id" not in user_columns(engine)
    now = datetime.now(UTC).replace(tzinfo=None)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO users (name, roles, active, token_hash, password_hash, "
                "creation_time) VALUES ('old', 'sleep', :yes, 'hash-old', NULL, :now)"
            ),
            {"yes": True, "now": now},
        )
    migrate(engine, "0008")
    assert "external_id" in user_columns(engine)
    store = UserStore(engine)
    old = store.get("old")
    assert old is not None and (old.roles, old.external_id) == (("sleep",), None)
    assert store.set_external_id("old", "idp-1")
    assert store.with_external_id("idp-1") == [store.get("old")]

    migrate(engine, "0007", down=True)
    assert "external_id" not in user_columns(engine)
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT name, roles FROM users")).all()
    assert [tuple(row) for row in rows] == [("old", "sleep")]
