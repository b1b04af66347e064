"""`opus login`, `logout`, `logins`, `whoami`, `completion`: the client's own set-up.

``opus login URL`` checks the token with the server (``GET /rest`` with it: 401 for a
wrong one) before it saves anything, and refuses an ``http://`` URL to a host other
than this machine unless ``--insecure``: the token would cross the network in clear
text. The token is asked for without echo, or read from ``--token-file`` (``-``:
standard input), never taken from the command line, where other users could see it
in the process list and the shell would keep it in its history.
"""

from __future__ import annotations

import argparse
import getpass
import ipaddress
import sys
from urllib.parse import urlsplit

from opus.client import exits
from opus.client.api import Client
from opus.client.clicontext import UsageError, current_login
from opus.client.config import Login, Logins, default_name
from opus.client.output import print_json, table


def is_loopback(host: str) -> bool:
    """Whether ``host`` is this machine (``localhost``, 127.0.0.0/8, ``::1``)."""
    if host.lower() in ("localhost", "localhost.localdomain") or host.lower().endswith(
        ".localhost"
    ):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _token(args: argparse.Namespace, url: str) -> str | None:
    if args.token_file == "-":  # noqa: S105 - standard input, not a password
        text = sys.stdin.read()
    elif args.token_file:
        try:
            with open(args.token_file, encoding="utf-8") as source:
                text = source.read()
        except OSError as exc:
            raise UsageError(f"cannot read {args.token_file}: {exc.strerror or exc}") from None
    else:
        text = getpass.getpass(f"API token for {url} (empty: none, anonymous access): ")
    token = text.strip()
    if args.token_file and not token:
        raise UsageError(f"{args.token_file} holds no token")
    return token or None


def login(args: argparse.Namespace) -> int:
    url = args.url.strip().rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(f"{args.url!r} is not a server URL (https://host[/path])")
    if parts.scheme == "http" and not is_loopback(parts.hostname) and not args.insecure:
        raise UsageError(
            f"refusing http://{parts.netloc}: the token would cross the network unencrypted"
            " (use https://, or --insecure for a network you trust)"
        )
    token = _token(args, url)
    client = Client(url, token, args.user)
    names = client.type_names()  # a wrong token: AuthenticationFailed, exit status 6
    name = args.name or default_name(url)
    Logins().save(Login(name, url, args.user, token))
    who = args.user or ("the token's user" if token else "anonymous")
    print(f"logged in to {url} as {who}: saved as {name!r}, the default login")
    print(f"job types: {', '.join(names) or 'none'}")
    return exits.OK


def logout(args: argparse.Namespace) -> int:
    saved = Logins()
    gone = saved.remove(args.name or getattr(args, "server", None))
    print(f"forgot the login {gone.name!r} ({gone.url})")
    if gone.token:
        print("the token still works until it is replaced (a new one: the profile page)")
    if saved.default:
        print(f"the default login is now {saved.default!r}")
    return exits.OK


def logins(args: argparse.Namespace) -> int:
    saved = Logins()
    if args.default:
        saved.get(args.default)
        saved.default = args.default
        saved.write()
    entries = sorted(saved.logins.values(), key=lambda login: login.name)
    if args.json:
        print_json(
            [
                {"name": e.name, "url": e.url, "user": e.user, "default": e.name == saved.default}
                for e in entries
            ]
        )
        return exits.OK
    rows = [["*" if e.name == saved.default else "", e.name, e.url, _user(e)] for e in entries]
    table(["", "NAME", "URL", "USER"], rows)
    return exits.OK


def _user(login: Login) -> str:
    if login.user:
        return login.user
    return "(Bearer token)" if login.token else "anonymous"


def whoami(args: argparse.Namespace) -> int:
    login = current_login(args)
    names = Client(login.url, login.token, login.user).type_names()
    default = Logins().default
    if args.json:
        print_json(
            {
                "login": login.name,
                "default": login.name == default,
                "url": login.url,
                "user": login.user,
                "token": login.token is not None,
                "types": names,
            }
        )
        return exits.OK
    print(f"{_user(login)} at {login.url}")
    marker = " (the default)" if login.name == default else ""
    print(f"login: {login.name}{marker}; job types: {', '.join(names) or 'none'}")
    return exits.OK


def completion(args: argparse.Namespace) -> int:
    from opus.cli import build_parser
    from opus.client.completion import script

    sys.stdout.write(script(build_parser(), args.shell))
    return exits.OK
