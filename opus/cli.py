"""The `opus` command: serve, init, db, maintenance, user, jdl validate (the server's
verbs), and the client's (login, submit, jobs, wait, download…: opus/client/commands.py).

The server's verbs read the settings and import the server lazily, each what it needs;
the client's are handed to opus.client.commands before any setting is read, so they
run wherever the client is installed, without a settings file or the server's
packages.
"""

from __future__ import annotations

import argparse
import errno
import getpass
import logging
import os
import socket
import sys
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from opus import __version__
from opus.client.cliparse import CLIENT_COMMANDS, add_client_commands
from opus.client.exits import SUMMARY
from opus.commandline import opus_command
from opus.core.access import ADMIN_ROLE
from opus.settings import SettingsError, load_settings

if TYPE_CHECKING:
    from opus.server.auth import UserManager


def _serve(args: argparse.Namespace) -> int:
    from opus.server.app import create_application
    from opus.server.httpserver import serve
    from opus.server.managers.jobusers import startup_problem

    settings = load_settings()
    problem = startup_problem(settings)
    if problem is not None:
        print(f"opus: {problem}", file=sys.stderr)
        return 1
    default = urlsplit(settings.BASE_URL)
    host = args.host or default.hostname or "127.0.0.1"
    port = args.port or default.port or 8080
    workers = args.workers or settings.WORKERS
    if workers > 1 and not settings.DATABASE_URL.startswith("postgresql"):
        print(
            "opus: several workers need PostgreSQL (DATABASE_URL=postgresql+psycopg2://…):"
            " SQLite serves one process",
            file=sys.stderr,
        )
        return 2
    _require_migrated_database()
    problem = _listen_problem(host, port, args)
    if problem is not None:
        print(f"opus: {problem}", file=sys.stderr)
        return 1
    logging.getLogger("opus").info(
        "OPUS %s serving on http://%s:%s with %d worker%s (data in %s)",
        __version__,
        host,
        port,
        workers,
        "s" if workers > 1 else "",
        settings.VAR_PATH,
    )

    def serve_here(reuse_port: bool) -> None:
        application = create_application(settings)
        application.background.start()
        serve(
            application.wsgi,
            host,
            port,
            settings.SERVER_THREADS,
            settings.MAX_UPLOAD_SIZE,
            reuse_port=reuse_port,
            on_stop=application.background.stop,
            max_header_size=settings.MAX_REQUEST_HEADER_SIZE,
            header_timeout=settings.REQUEST_HEADER_TIMEOUT,
        )

    if workers == 1:
        serve_here(reuse_port=False)
        return 0

    from opus.server.workers import Supervisor

    def work(_index: int) -> None:
        serve_here(reuse_port=True)

    return Supervisor(workers, work).run()


def _listen_problem(host: str, port: int, args: argparse.Namespace) -> str | None:
    """Why `opus serve` could not listen on ``host``:``port`` (None: it can), with what
    to do: said before anything starts, rather than a traceback from the server."""
    reason = _bind_error(host, port)
    if reason is None:
        return None
    if reason.errno != errno.EADDRINUSE:
        return f"cannot listen on {host} port {port}: {reason.strerror or reason}"
    other = next((p for p in range(port + 1, port + 21) if _bind_error(host, p) is None), port + 1)
    command = f"{opus_command()} serve"
    if args.host:
        command += f" --host {args.host}"
    command += f" --port {other}"
    if args.workers:
        command += f" --workers {args.workers}"
    if "MAKELEVEL" in os.environ:  # started by `make run`
        host_variable = "" if host == "127.0.0.1" else f" HOST={host}"
        command = f"make run PORT={other}{host_variable}, or {command}"
    return (
        f"port {port} on {host} is already in use: stop what uses it, "
        f"or start on another port ({command})"
    )


def _bind_error(host: str, port: int) -> OSError | None:
    """The error binding ``host``:``port`` gives (None: the port is free); the socket is
    closed at once.

    Bound as the server binds, with SO_REUSEADDR (connections of a server just stopped,
    in TIME_WAIT, do not count) but without SO_REUSEPORT: the workers of
    `opus serve --workers N` share their port with it, and the check would then succeed
    on the port of another OPUS (or of this one's own workers) already listening.
    """
    try:
        addresses = socket.getaddrinfo(
            host or None, port, socket.AF_UNSPEC, socket.SOCK_STREAM, 0, socket.AI_PASSIVE
        )
    except socket.gaierror as exc:
        return OSError(errno.EADDRNOTAVAIL, f"unknown host ({exc.strerror})")
    error: OSError | None = None
    for family, kind, proto, _name, address in addresses:
        try:
            with socket.socket(family, kind, proto) as probe:
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                probe.bind(address)
        except OSError as exc:
            # The server tries each address too, and listens on the first that binds.
            error = error or exc
            continue
        return None
    return error


def _init(args: argparse.Namespace) -> int:
    from opus.server.app import open_database
    from opus.server.auth import UserManager
    from opus.server.jdl import JDLRegistry

    settings = load_settings()
    revision = _upgrade_database(settings.DATABASE_URL)
    database = open_database(settings)
    registry = JDLRegistry(settings.jdl_path)
    print(f"data directory: {settings.VAR_PATH}")
    print(f"job definitions: {settings.jdl_path} ({', '.join(registry.names())})")
    print(f"database: {_display_url(settings.DATABASE_URL)} (schema revision {revision})")
    users = UserManager(database.users)
    if users.count() == 0:
        # First start: an admin to log in with (the token is shown this once).
        _user_record, token = users.add(args.admin, [ADMIN_ROLE])
        print()
        print(f"created the admin user {args.admin!r}; its API token (shown once):")
        print(f"    {token}")
        command = opus_command()
        print(
            "use it as HTTP Basic credentials or a Bearer token, for example, "
            f"with the server running (`{command} serve`):"
        )
        print(f"    curl -u {args.admin}:{token} {settings.BASE_URL}/rest")
        print(
            f"a new token: {command} user token {args.admin}; more users: {command} user add NAME"
        )
    return 0


def _maintenance(args: argparse.Namespace) -> int:
    from opus.server.app import build_service
    from opus.server.service import reconcile

    _require_migrated_database()
    service = build_service(load_settings())
    # The same lock as the servers' reconcilers: one pass at a time, server or cron.
    lock = service.coordination.reconciler_lock()
    if not lock.acquire():
        print("another OPUS process is reconciling (it holds the lock): nothing done")
        return 0
    try:
        report = reconcile(service)
    finally:
        lock.release()
    print(
        f"checked {report.checked} running jobs; changed {len(report.changed)}, "
        f"timed out {len(report.timed_out)}, destroyed {len(report.destroyed)}, "
        f"archived {len(report.archived)}"
    )
    return 0


def _jdl_validate(args: argparse.Namespace) -> int:
    from opus.server.jdl import JDLError, load_definition

    status = 0
    for name in args.files:
        try:
            jdl = load_definition(Path(name))
        except (JDLError, OSError) as exc:
            print(f"{name}: {exc}" if isinstance(exc, OSError) else str(exc), file=sys.stderr)
            status = 1
        else:
            print(f"{name}: ok ({jdl.name}, {len(jdl.parameters)} parameters)")
    return status


def _users() -> UserManager:
    from opus.server.app import open_database
    from opus.server.auth import UserManager

    return UserManager(open_database(load_settings()).users)


def _user(args: argparse.Namespace) -> int:
    from opus.server.auth import UserError

    _require_migrated_database()
    manager = _users()
    try:
        if args.user_command == "add":
            roles = [r.strip() for r in (args.roles or "").split(",") if r.strip()]
            if args.admin:
                roles.insert(0, ADMIN_ROLE)
            password = getpass.getpass(f"web password for {args.name}: ") if args.password else None
            user, token = manager.add(args.name, roles, password)
            print(f"created user {user.name} (roles: {', '.join(user.roles) or 'none'})")
            print("API token (shown once; use HTTP Basic name:token or Bearer token):")
            print(token)
        elif args.user_command == "list":
            for user in manager.all():
                state = "active" if user.active else "disabled"
                print(f"{user.name}\t{state}\t{','.join(user.roles)}")
        elif args.user_command == "token":
            token = manager.rotate_token(args.name)
            print(f"new API token for {args.name} (the old one no longer works):")
            print(token)
        elif args.user_command in ("disable", "enable"):
            manager.set_active(args.name, args.user_command == "enable")
            print(f"{args.name} {args.user_command}d")
        elif args.user_command == "delete":
            owner = manager.delete(args.name)
            print(f"{args.name} deleted; their jobs stay, owned by {owner} (admins see them)")
    except UserError as exc:
        print(f"opus: {exc}", file=sys.stderr)
        return 1
    return 0


def _display_url(url: str) -> str:
    from opus.server.schema import display_url

    return display_url(url)


def _database_fault(url: str, exc: Exception) -> SystemExit:
    """Exit status 1 after a one-line message: the database could not be used."""
    reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    print(f"opus: cannot use the database {_display_url(url)}: {reason[0]}", file=sys.stderr)
    return SystemExit(1)


def _upgrade_database(url: str) -> str:
    """Migrate the database to the current schema revision; returns the revision."""
    from sqlalchemy.exc import SQLAlchemyError

    from opus.server import schema

    try:
        return schema.upgrade(url)
    except SQLAlchemyError as exc:
        raise _database_fault(url, exc) from None


def _require_migrated_database() -> None:
    """Refuse to start (exit status 1, the reason on stderr) on a database that is not
    at the schema revision of this OPUS: tables that do not match the code would fail
    later, in the middle of requests."""
    from sqlalchemy.exc import SQLAlchemyError

    from opus.server import schema
    from opus.server.storage import make_engine

    url = load_settings().DATABASE_URL
    engine = make_engine(url)
    try:
        schema.check(engine)
    except schema.SchemaError as exc:
        print(f"opus: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
    except SQLAlchemyError as exc:
        raise _database_fault(url, exc) from None
    finally:
        engine.dispose()


def _db(args: argparse.Namespace) -> int:
    from sqlalchemy.exc import SQLAlchemyError

    from opus.server import schema
    from opus.server.storage import make_engine

    url = load_settings().DATABASE_URL
    engine = make_engine(url)
    try:
        before = schema.current(engine)
    except SQLAlchemyError as exc:
        raise _database_fault(url, exc) from None
    finally:
        engine.dispose()
    head = schema.head_revision()
    if args.db_command == "current":
        state = (
            "head" if before == head else f"not at head {head}: run `{opus_command()} db upgrade`"
        )
        print(f"{before or 'none'} ({state})")
        return 0
    revision = _upgrade_database(url)
    where = _display_url(url)
    if revision == before:
        print(f"database {where}: already at revision {revision} (head)")
    else:
        print(f"database {where}: upgraded from revision {before or 'none'} to {revision}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="opus",
        description="OPUS UWS job server: the server's commands (serve, init, db,"
        " maintenance, user, jdl) and the client's (login, types, submit, jobs, wait…)",
        epilog=f"client commands' {SUMMARY}",
    )
    parser.add_argument("--version", action="version", version=f"opus {__version__}")
    parser.add_argument(
        "--server",
        metavar="NAME",
        help="client commands: the saved login to use, or a server's URL",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the server")
    serve.add_argument("--host", help="address to listen on (default: from BASE_URL)")
    serve.add_argument("--port", type=int, help="port to listen on (default: from BASE_URL)")
    serve.add_argument(
        "--workers",
        type=int,
        help="server processes (default: the WORKERS setting; more than 1 needs PostgreSQL)",
    )
    serve.set_defaults(func=_serve)

    init = commands.add_parser(
        "init", help="create the data directory and database (and an admin, the first time)"
    )
    init.add_argument("--admin", default="admin", help="name of the first admin user")
    init.set_defaults(func=_init)

    maintenance = commands.add_parser(
        "maintenance", help="one reconcile pass: lost jobs, time limits, destruction (cron)"
    )
    maintenance.set_defaults(func=_maintenance)

    db = commands.add_parser("db", help="the database schema (migrations)")
    db_commands = db.add_subparsers(dest="db_command", required=True)
    db_commands.add_parser(
        "upgrade", help="migrate the database to this version of OPUS (creates the tables)"
    )
    db_commands.add_parser("current", help="print the database's schema revision")
    db.set_defaults(func=_db)

    user = commands.add_parser("user", help="manage users and their API tokens")
    user_commands = user.add_subparsers(dest="user_command", required=True)
    add = user_commands.add_parser("add", help="create a user; prints its token last")
    add.add_argument("name")
    add.add_argument("--admin", action="store_true", help="give the admin role")
    add.add_argument("--roles", help="comma-separated roles (job types, or all)")
    add.add_argument("--password", action="store_true", help="ask for a web password")
    user_commands.add_parser("list", help="list users, their state and roles")
    for verb, text in [
        ("token", "give a user a new token (the old one stops working)"),
        ("disable", "refuse a user's requests"),
        ("enable", "accept a disabled user's requests again"),
        ("delete", "delete a user (their jobs stay, under an owner nobody can be)"),
    ]:
        user_commands.add_parser(verb, help=text).add_argument("name")
    user.set_defaults(func=_user)

    jdl = commands.add_parser("jdl", help="job definitions")
    jdl_commands = jdl.add_subparsers(dest="jdl_command", required=True)
    validate = jdl_commands.add_parser("validate", help="check job definition files")
    validate.add_argument("files", nargs="+")
    validate.set_defaults(func=_jdl_validate)
    add_client_commands(commands)
    return parser


# The server's commands: what they create (data directories, the database, job files)
# is the server account's alone, whatever umask they were started with.
PRIVATE_COMMANDS = frozenset({"serve", "init", "maintenance", "db", "user"})


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command in CLIENT_COMMANDS:
        # Before any setting is read: the client needs none of the server's.
        from opus.client.commands import run

        return run(args)
    if args.command in PRIVATE_COMMANDS:
        os.umask(0o077)
    try:
        level = load_settings().LOG_LEVEL
    except SettingsError as exc:
        print(f"opus: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        # The process id tells apart the workers of `opus serve --workers N`.
        format="%(asctime)s [%(process)d] %(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args.func(args))
    except SettingsError as exc:
        print(f"opus: {exc}", file=sys.stderr)
        return 2
