"""The `opus` command: serve, init, maintenance, jdl validate."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from urllib.parse import urlsplit

from opus import __version__
from opus.settings import SettingsError, load_settings


def _serve(args: argparse.Namespace) -> int:
    from opus.server.app import create_app
    from opus.server.httpserver import serve

    settings = load_settings()
    default = urlsplit(settings.BASE_URL)
    host = args.host or default.hostname or "127.0.0.1"
    port = args.port or default.port or 8080
    app = create_app(settings, start_reconciler=True)
    logging.getLogger("opus").info(
        "OPUS %s serving on http://%s:%s (data in %s)", __version__, host, port, settings.VAR_PATH
    )
    serve(app, host, port, settings.SERVER_THREADS, settings.MAX_UPLOAD_SIZE)
    return 0


def _init(args: argparse.Namespace) -> int:
    from opus.server.app import build_service

    settings = load_settings()
    service = build_service(settings)
    print(f"data directory: {settings.VAR_PATH}")
    print(f"job definitions: {settings.jdl_path} ({', '.join(service.registry.names())})")
    print(f"database: {settings.DATABASE_URL}")
    return 0


def _maintenance(args: argparse.Namespace) -> int:
    from opus.server.app import build_service

    service = build_service(load_settings())
    report = service.reconcile()
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="opus", description="OPUS UWS job server")
    parser.add_argument("--version", action="version", version=f"opus {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the server")
    serve.add_argument("--host", help="address to listen on (default: from BASE_URL)")
    serve.add_argument("--port", type=int, help="port to listen on (default: from BASE_URL)")
    serve.set_defaults(func=_serve)

    init = commands.add_parser("init", help="create the data directory and database")
    init.set_defaults(func=_init)

    maintenance = commands.add_parser(
        "maintenance", help="one reconcile pass: lost jobs, time limits, destruction (cron)"
    )
    maintenance.set_defaults(func=_maintenance)

    jdl = commands.add_parser("jdl", help="job definitions")
    jdl_commands = jdl.add_subparsers(dest="jdl_command", required=True)
    validate = jdl_commands.add_parser("validate", help="check job definition files")
    validate.add_argument("files", nargs="+")
    validate.set_defaults(func=_jdl_validate)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        level = load_settings().LOG_LEVEL
    except SettingsError as exc:
        print(f"opus: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    return int(args.func(args))
