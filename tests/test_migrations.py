"""Schema migrations (opus.server.schema, opus/server/migrations) on SQLite and PostgreSQL:
the migrated schema is the models' schema, upgrades are idempotent, a database made
before migrations is stamped, and the commands refuse a database that is not migrated."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Column, Integer, MetaData, insert, inspect, select, text, tuple_
from sqlalchemy.engine import Engine, Inspector, make_url

from opus.commandline import MAIN_MODULE, opus_command
from opus.core.records import User
from opus.server import schema
from opus.server.storage import Base, JobRow, UserStore, make_engine
from tests.conftest import DATABASES, free_port

TABLES = {
    "jobs",
    "job_parameters",
    "job_results",
    "users",
    "leases",
    "auth_failures",
    "owner_usage",
    "sessions",
    "job_tombstones",
    "change_marks",
    "shared_links",
    "jdl_versions",
    "jdl_drafts",
    "oidc_identities",
    "entities",
    "entity_uses",
}


@pytest.fixture(params=DATABASES)
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database without any table (a SQLite file that does not exist yet)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'new' / 'opus.db'}"
        return
    cluster = request.getfixturevalue("pg_cluster")
    url = cluster.create_empty_database()
    try:
        yield url
    finally:
        cluster.drop_database(url)


@pytest.fixture
def engines() -> Iterator[list[Engine]]:
    """Engines made by a test, disposed at its end (PostgreSQL drops need no holders)."""
    made: list[Engine] = []
    yield made
    for engine in made:
        engine.dispose()


def engine_of(url: str, engines: list[Engine]) -> Engine:
    engine = make_engine(url)
    engines.append(engine)
    return engine


def differences(engine: Engine, metadata: MetaData = Base.metadata) -> list:
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        return compare_metadata(context, metadata)


def revision_rows(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        return list(conn.execute(text("SELECT version_num FROM alembic_version")).scalars())


def a_user(name: str) -> User:
    return User(name, ("admin",), True, f"hash-{name}", None, datetime.now(UTC))


def opus(*args: str, url: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = dict(
        os.environ,
        OPUS_VAR_PATH=str(tmp_path / "var"),
        OPUS_DATABASE_URL=url,
        OPUS_LOG_LEVEL="WARNING",
    )
    env.pop("OPUS_SETTINGS", None)
    return subprocess.run(
        [sys.executable, "-m", "opus", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


# The `opus` command as the hints of the processes opus() starts spell it.
COMMAND = opus_command(str(MAIN_MODULE))


def refusal(url: str, command: str) -> str:
    """What OPUS says of the database ``url`` of empty_url, which it must not open."""
    path = schema._sqlite_file(make_url(url))
    if path is not None:  # the file does not exist
        return (
            f"no OPUS database at {path} (a relative VAR_PATH is taken from the working "
            f"directory, {Path.cwd()}): run OPUS from the directory where you ran "
            f"`{command} init`, set OPUS_VAR_PATH or OPUS_SETTINGS, or create it with "
            f"`{command} db upgrade`"
        )
    return (
        f"the database {schema.display_url(url)} is not migrated (at revision none, "
        f"expected {schema.head_revision()}; working directory {Path.cwd()}): "
        f"run `{command} db upgrade`"
    )


# -- upgrade --------------------------------------------------------------------------


def test_upgrade_of_an_empty_database(empty_url: str, engines: list[Engine]) -> None:
    assert schema.upgrade(empty_url) == schema.head_revision() == "0013"
    engine = engine_of(empty_url, engines)
    assert set(inspect(engine).get_table_names()) == TABLES | {"alembic_version"}
    assert revision_rows(engine) == ["0013"]
    assert schema.check(engine) == "0013"


def test_migrated_schema_equals_the_models(empty_url: str, engines: list[Engine]) -> None:
    schema.upgrade(empty_url)
    engine = engine_of(empty_url, engines)
    assert differences(engine) == []
    # What compare_metadata looks at, checked directly too.
    found = inspect(engine)
    for table in TABLES:
        indexes = indexes_of(found, table)
        model = {i.name: [c.name for c in i.columns] for i in Base.metadata.tables[table].indexes}
        assert indexes == model, table
    assert indexes_of(found, "jobs")["ix_jobs_list_phase"] == [
        "jobname",
        "phase",
        "creation_time",
        "id",
    ]
    for table in ("job_parameters", "job_results", "shared_links"):
        (key,) = found.get_foreign_keys(table)
        assert key["referred_table"] == "jobs" and key["constrained_columns"] == ["job_id"]
        assert key["options"].get("ondelete") == "CASCADE"
    (key,) = found.get_foreign_keys("sessions")
    assert key["referred_table"] == "users" and key["constrained_columns"] == ["user_name"]
    assert key["options"].get("ondelete") == "CASCADE"
    (unique,) = found.get_unique_constraints("users")
    assert unique["column_names"] == ["token_hash"]
    assert found.get_pk_constraint("job_results")["constrained_columns"] == ["job_id", "result_id"]


def indexes_of(found: Inspector, table: str) -> dict[str, list[str]]:
    """The indexes of a table, without those PostgreSQL makes for unique constraints."""
    return {
        i["name"]: i["column_names"]
        for i in found.get_indexes(table)
        if "duplicates_constraint" not in i
    }


def test_the_comparison_sees_a_model_change(empty_url: str, engines: list[Engine]) -> None:
    """The test above could not pass by comparing nothing."""
    schema.upgrade(empty_url)
    changed = MetaData()
    for table in Base.metadata.sorted_tables:
        table.to_metadata(changed)
    changed.tables["jobs"].append_column(Column("priority", Integer, nullable=True))
    found = differences(engine_of(empty_url, engines), changed)
    assert [(d[0], d[3].name) for d in found] == [("add_column", "priority")]


def test_cascading_deletes_work_after_migration(empty_url: str, engines: list[Engine]) -> None:
    schema.upgrade(empty_url)
    engine = engine_of(empty_url, engines)
    now = datetime.now(UTC)
    job = {c.name: None for c in JobRow.__table__.columns}
    job.update(
        id="j1",
        jobname="sleep",
        owner="anonymous",
        phase="PENDING",
        creation_time=now,
        phase_time=now,
        execution_duration=1,
        token_hash="",
        version=0,
        stored_bytes=0,
    )
    parameter = {"job_id": "j1", "name": "duration", "value": "1", "by_reference": False}
    parameters = Base.metadata.tables["job_parameters"]
    with engine.begin() as conn:
        conn.execute(insert(JobRow), [job])
        conn.execute(insert(parameters), [parameter])
    with engine.begin() as conn:
        conn.execute(JobRow.__table__.delete())
    with engine.connect() as conn:
        assert conn.execute(select(parameters)).all() == []


def test_upgrade_is_idempotent(empty_url: str, engines: list[Engine]) -> None:
    assert schema.upgrade(empty_url) == "0013"
    UserStore(engine_of(empty_url, engines)).add(a_user("kept"))
    assert schema.upgrade(empty_url) == "0013"
    engine = engine_of(empty_url, engines)
    assert revision_rows(engine) == ["0013"]
    assert differences(engine) == []
    assert UserStore(engine).get("kept") is not None


# -- databases made before migrations -----------------------------------------------------


def test_pre_migration_database_is_stamped(empty_url: str, engines: list[Engine]) -> None:
    schema.upgrade(empty_url)  # only to have the database (and SQLite file) exist
    engine = engine_of(empty_url, engines)
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE alembic_version"))
        for table in reversed(Base.metadata.sorted_tables):
            table.drop(conn)
    Base.metadata.create_all(engine)  # what OPUS did before it had migrations
    UserStore(engine).add(a_user("old"))
    with pytest.raises(schema.SchemaError, match="at revision none, expected 0013"):
        schema.check(engine)

    assert schema.upgrade(empty_url) == "0013"
    assert schema.check(engine) == "0013"
    assert revision_rows(engine) == ["0013"]
    assert differences(engine) == []
    assert UserStore(engine).get("old") is not None, "the data is kept"


def test_database_of_an_older_version_gets_the_missing_tables(
    empty_url: str, engines: list[Engine]
) -> None:
    """OPUS versions before users and leases made only the job tables."""
    schema.upgrade(empty_url)
    engine = engine_of(empty_url, engines)
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE alembic_version"))
        # Nor the sessions and provider accounts of users, which came later still.
        for name in ("oidc_identities", "sessions", "users", "leases"):
            Base.metadata.tables[name].drop(conn)
    assert schema.upgrade(empty_url) == "0013"
    assert differences(engine) == []


# -- check ------------------------------------------------------------------------------


def test_check_names_the_command_and_hides_the_password(
    empty_url: str, engines: list[Engine]
) -> None:
    url = make_url(empty_url)
    if url.get_backend_name() == "postgresql":
        url = url.set(password="s3cret")  # trust authentication ignores it
        shown = url.render_as_string(hide_password=True)
    else:
        # A SQLite file without tables (test_check_names_a_missing_sqlite_file: none).
        assert url.database is not None
        Path(url.database).parent.mkdir(parents=True)
        Path(url.database).touch()
        shown = url.database  # the file, not the URL
    engine = engine_of(url.render_as_string(hide_password=False), engines)
    with pytest.raises(schema.SchemaError) as refused:
        schema.check(engine)
    message = str(refused.value)
    assert message == (
        f"the database {shown} is not migrated (at revision none, expected "
        f"{schema.head_revision()}; working directory {Path.cwd()}): "
        f"run `{opus_command()} db upgrade`"
    )
    assert "s3cret" not in message


def test_check_refuses_a_revision_it_does_not_know(empty_url: str, engines: list[Engine]) -> None:
    schema.upgrade(empty_url)
    engine = engine_of(empty_url, engines)
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = 'f00d'"))
    with pytest.raises(schema.SchemaError, match="at revision f00d, which this version"):
        schema.check(engine)


def test_check_does_not_create_a_sqlite_file(tmp_path: Path, engines: list[Engine]) -> None:
    path = tmp_path / "opus.db"
    with pytest.raises(schema.SchemaError, match="no OPUS database at"):
        schema.check(engine_of(f"sqlite:///{path}", engines))
    assert not path.exists()


def test_check_names_a_missing_sqlite_file(
    tmp_path: Path, engines: list[Engine], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`opus` run from another directory than `opus init` looks for var/opus.db there:
    the message says where it looked, from where, and what to do."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(schema.SchemaError) as refused:
        schema.check(engine_of("sqlite:///var/opus.db", engines))
    command = opus_command()
    assert str(refused.value) == (
        f"no OPUS database at {tmp_path / 'var' / 'opus.db'} (a relative VAR_PATH is taken "
        f"from the working directory, {tmp_path}): run OPUS from the directory where you "
        f"ran `{command} init`, set OPUS_VAR_PATH or OPUS_SETTINGS, or create it with "
        f"`{command} db upgrade`"
    )
    assert not (tmp_path / "var").exists()


# -- the commands -----------------------------------------------------------------------


@pytest.mark.parametrize("command", [["serve"], ["maintenance"], ["user", "list"]], ids=" ".join)
def test_commands_refuse_an_unmigrated_database(
    empty_url: str, tmp_path: Path, command: list[str]
) -> None:
    if command == ["serve"]:
        command += ["--port", str(free_port())]
    done = opus(*command, url=empty_url, tmp_path=tmp_path)
    assert done.returncode == 1, done
    assert done.stderr == f"opus: {refusal(empty_url, COMMAND)}\n"
    assert done.stdout == ""


def test_db_upgrade_and_current(empty_url: str, tmp_path: Path) -> None:
    before = opus("db", "current", url=empty_url, tmp_path=tmp_path)
    assert before.returncode == 0, before.stderr
    assert before.stdout == f"none (not at head 0013: run `{COMMAND} db upgrade`)\n"

    shown = schema.display_url(empty_url)
    upgraded = opus("db", "upgrade", url=empty_url, tmp_path=tmp_path)
    assert upgraded.returncode == 0, upgraded.stderr
    assert upgraded.stdout == f"database {shown}: upgraded from revision none to 0013\n"
    again = opus("db", "upgrade", url=empty_url, tmp_path=tmp_path)
    assert again.stdout == f"database {shown}: already at revision 0013 (head)\n"

    after = opus("db", "current", url=empty_url, tmp_path=tmp_path)
    assert after.returncode == 0 and after.stdout == "0013 (head)\n"
    # Now the commands start: `opus user` works on the migrated database.
    listed = opus("user", "list", url=empty_url, tmp_path=tmp_path)
    assert listed.returncode == 0 and listed.stderr == ""


def test_unreachable_database_is_one_line_without_password(tmp_path: Path) -> None:
    url = f"postgresql+psycopg2://opus:s3cret@127.0.0.1:{free_port()}/opus"
    for command in (["db", "upgrade"], ["db", "current"], ["serve", "--port", "1"]):
        done = opus(*command, url=url, tmp_path=tmp_path)
        assert done.returncode == 1, done
        assert done.stderr.startswith(
            "opus: cannot use the database postgresql+psycopg2://opus:***@"
        )
        assert done.stderr.count("\n") == 1 and "s3cret" not in done.stderr
        assert "Traceback" not in done.stderr


def test_init_migrates_a_new_database(empty_url: str, tmp_path: Path) -> None:
    done = opus("init", url=empty_url, tmp_path=tmp_path)
    assert done.returncode == 0, done.stderr
    assert f"database: {schema.display_url(empty_url)} (schema revision 0013)" in done.stdout
    assert "shown once" in done.stdout


def test_jobs_of_the_first_revision_get_a_version(empty_url: str, engines: list[Engine]) -> None:
    """0002 adds jobs.version to a database at 0001 whose jobs are kept, at version 0."""
    from alembic import command

    database = make_url(empty_url).database
    if make_url(empty_url).get_backend_name() == "sqlite" and database:
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    engine = engine_of(empty_url, engines)
    now = datetime.now(UTC).replace(tzinfo=None)
    with engine.begin() as conn:
        command.upgrade(schema.alembic_config(conn), "0001")
        columns = {c["name"] for c in inspect(conn).get_columns("jobs")}
        assert "version" not in columns
        conn.execute(
            text(
                "INSERT INTO jobs (id, jobname, owner, phase, creation_time, phase_time, "
                "execution_duration, token_hash) VALUES ('old', 'sleep', 'anonymous', "
                "'COMPLETED', :now, :now, 60, '')"
            ),
            {"now": now},
        )
    assert schema.upgrade(empty_url) == schema.head_revision()
    with engine.connect() as conn:
        rows = conn.execute(select(JobRow.id, JobRow.phase, JobRow.version)).all()
    assert [tuple(row) for row in rows] == [("old", "COMPLETED", 0)]
    assert differences(engine) == []


def test_jobs_of_revision_0002_store_their_results_bytes(
    empty_url: str, engines: list[Engine]
) -> None:
    """0003 gives every job the bytes of its registered results, and the counters' table."""
    from alembic import command

    database = make_url(empty_url).database
    if make_url(empty_url).get_backend_name() == "sqlite" and database:
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    engine = engine_of(empty_url, engines)
    now = datetime.now(UTC).replace(tzinfo=None)
    with engine.begin() as conn:
        command.upgrade(schema.alembic_config(conn), "0002")
        assert "auth_failures" not in inspect(conn).get_table_names()
        for job_id in ("done", "new"):
            conn.execute(
                text(
                    "INSERT INTO jobs (id, jobname, owner, phase, creation_time, phase_time, "
                    "execution_duration, token_hash, version) VALUES (:id, 'sleep', "
                    "'anonymous', 'COMPLETED', :now, :now, 60, '', 3)"
                ),
                {"id": job_id, "now": now},
            )
        for result_id, size in (("a", 1000), ("b", 234)):
            conn.execute(
                text(
                    "INSERT INTO job_results (job_id, result_id, path, content_type, size, "
                    "sha256) VALUES ('done', :result_id, 'results/x', 'text/plain', :size, '')"
                ),
                {"result_id": result_id, "size": size},
            )
    assert schema.upgrade(empty_url) == "0013"
    with engine.connect() as conn:
        rows = conn.execute(select(JobRow.id, JobRow.stored_bytes, JobRow.version)).all()
    assert sorted(tuple(row) for row in rows) == [("done", 1234, 3), ("new", 0, 3)]
    assert "auth_failures" in inspect(engine).get_table_names()
    assert differences(engine) == []


def test_job_times_written_without_their_fraction_get_it(
    empty_url: str, engines: list[Engine]
) -> None:
    """0007 (SQLite) writes ``.000000`` into the times creation once wrote without it; a
    list page ending on such a job then no longer lists it again on the next page."""
    from alembic import command

    database = make_url(empty_url).database
    sqlite = make_url(empty_url).get_backend_name() == "sqlite"
    if sqlite and database:
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    engine = engine_of(empty_url, engines)
    with engine.begin() as conn:
        command.upgrade(schema.alembic_config(conn), "0006")
        for job_id, when in (
            ("whole", "2026-12-02 03:16:58"),
            ("part", "2026-12-02 03:16:58.500000"),
        ):
            conn.execute(
                text(
                    "INSERT INTO jobs (id, jobname, owner, phase, creation_time, phase_time, "
                    "execution_duration, token_hash, version) VALUES (:id, 'sleep', "
                    "'anonymous', 'PENDING', :when, :when, 60, '', 0)"
                ),
                {"id": job_id, "when": when},
            )
    assert schema.upgrade(empty_url) == "0013"
    with engine.connect() as conn:
        stored = dict(conn.execute(text("SELECT id, creation_time FROM jobs")).all())
        whole = conn.execute(select(JobRow.creation_time).where(JobRow.id == "whole")).scalar()
        earlier = conn.execute(
            select(JobRow.id).where(
                tuple_(JobRow.creation_time, JobRow.id) < tuple_(whole, "whole")
            )
        ).all()
    if sqlite:
        assert stored == {
            "whole": "2026-12-02 03:16:58.000000",
            "part": "2026-12-02 03:16:58.500000",
        }
    assert earlier == [], "a job is never earlier than its own position"


# Revisions that add nullable columns to jobs: the revision before, and the columns.
NULLABLE_JOB_COLUMNS = [
    pytest.param("0011", ("progress", "progress_message", "progress_time"), id="0012-progress"),
    pytest.param("0012", ("source_url", "source_ref", "source_commit"), id="0013-source"),
]


@pytest.mark.parametrize(("before", "columns"), NULLABLE_JOB_COLUMNS)
def test_jobs_kept_from_before_a_revision_get_its_columns_empty_and_lose_them_on_downgrade(
    before: str, columns: tuple[str, ...], empty_url: str, engines: list[Engine]
) -> None:
    """0012 adds the job's progress, 0013 its git source, each as three nullable
    columns: a job kept from the revision before has none; a downgrade drops them and
    keeps the job."""
    from alembic import command

    database = make_url(empty_url).database
    if make_url(empty_url).get_backend_name() == "sqlite" and database:
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    engine = engine_of(empty_url, engines)
    now = datetime.now(UTC).replace(tzinfo=None)
    with engine.begin() as conn:
        command.upgrade(schema.alembic_config(conn), before)
        conn.execute(
            text(
                "INSERT INTO jobs (id, jobname, owner, phase, creation_time, phase_time, "
                "execution_duration, token_hash, version) VALUES ('old', 'sleep', "
                "'anonymous', 'EXECUTING', :now, :now, 60, '', 2)"
            ),
            {"now": now},
        )
    assert schema.upgrade(empty_url) == "0013"
    added = [getattr(JobRow, name) for name in columns]
    with engine.connect() as conn:
        row = conn.execute(select(JobRow.version, *added)).one()
    assert tuple(row) == (2, None, None, None)
    assert differences(engine) == []
    with engine.begin() as conn:
        command.downgrade(schema.alembic_config(conn), before)
        kept = {c["name"] for c in inspect(conn).get_columns("jobs")}
        assert not set(columns) & kept
        assert conn.execute(text("SELECT id FROM jobs")).scalars().all() == ["old"]
