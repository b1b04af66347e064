"""Saved logins: the servers a user works with, by name, their tokens, and a default.

``opus login`` saves a server's URL, user name and token under a name (the server's
host by default) in ``logins.json`` of the user's configuration directory:
``$OPUS_CONFIG_DIR`` when set (tests, several setups), else ``$XDG_CONFIG_HOME/opus``,
else ``~/.config/opus``. The file holds secrets, so the directory is created 0700 and
the file is always written 0600, atomically (a temporary file in the same directory,
renamed over the old one: a crash never leaves half a file, and nobody ever sees the
token under a wider mode). The latest login becomes the default; ``Client.from_login``
and every `opus` client command use the default unless given another name.

The file, ``{"default": NAME, "logins": {NAME: {"url", "user", "token"}}}``, is read
whole and written whole; it is a handful of lines.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from opus.client.errors import LoginError

FILE_NAME = "logins.json"


@dataclass(frozen=True)
class Login:
    """A saved server: its base URL, the user name (None: the token is sent as a
    Bearer token) and the token (None: no credentials, anonymous access)."""

    name: str
    url: str
    user: str | None = None
    token: str | None = field(default=None, repr=False)


def config_dir(environ: Mapping[str, str] | None = None) -> Path:
    """The directory of the client's configuration (see the module's docstring)."""
    env = os.environ if environ is None else environ
    if env.get("OPUS_CONFIG_DIR"):
        return Path(env["OPUS_CONFIG_DIR"])
    base = env.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "opus"


def default_name(url: str) -> str:
    """The name a login gets when none is given: its host (with a port other than
    the scheme's, ``localhost:8080``)."""
    parts = urlsplit(url)
    host = parts.hostname or "server"
    return f"{host}:{parts.port}" if parts.port else host


class Logins:
    """The saved logins of one configuration directory."""

    def __init__(self, directory: Path | None = None) -> None:
        self.directory = directory or config_dir()
        self.path = self.directory / FILE_NAME
        self.default: str | None = None
        self.logins: dict[str, Login] = {}
        self._read()

    def _read(self) -> None:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return
        except OSError as exc:
            raise LoginError(f"cannot read {self.path}: {exc.strerror or exc}") from None
        try:
            data = json.loads(text)
            entries = data.get("logins") or {}
            for name, entry in entries.items():
                self.logins[name] = Login(
                    name=name,
                    url=str(entry["url"]),
                    user=entry.get("user") or None,
                    token=entry.get("token") or None,
                )
            default = data.get("default")
        except (ValueError, AttributeError, KeyError, TypeError):
            raise LoginError(f"{self.path} is not a logins file of opus: remove it") from None
        self.default = default if default in self.logins else None

    def get(self, name: str | None = None) -> Login:
        """The login called ``name`` (None: the default); LoginError if there is none."""
        chosen = name or self.default
        if chosen is None:
            raise LoginError("no saved login: run `opus login URL` first")
        login = self.logins.get(chosen)
        if login is None:
            known = ", ".join(sorted(self.logins)) or "none"
            raise LoginError(f"no saved login named {chosen!r} (saved: {known})")
        return login

    def matching(self, url: str) -> Login | None:
        """The saved login of the server ``url`` is on (the longest base URL that is a
        prefix of it), or None."""
        found = [
            login
            for login in self.logins.values()
            if url == login.url.rstrip("/") or url.startswith(login.url.rstrip("/") + "/")
        ]
        return max(found, key=lambda login: len(login.url), default=None)

    def save(self, login: Login, make_default: bool = True) -> None:
        """Add or replace ``login`` (the default, unless told otherwise) and write."""
        self.logins[login.name] = login
        if make_default or self.default is None:
            self.default = login.name
        self.write()

    def remove(self, name: str | None = None) -> Login:
        """Forget the login called ``name`` (None: the default) and write; the default
        passes to the first of the others by name. Returns the login removed."""
        login = self.get(name)
        del self.logins[login.name]
        if self.default == login.name:
            self.default = min(self.logins, default=None)
        self.write()
        return login

    def write(self) -> None:
        """Write the file: the directory 0700, the file 0600, atomically."""
        data = {
            "default": self.default,
            "logins": {
                name: {"url": login.url, "user": login.user, "token": login.token}
                for name, login in sorted(self.logins.items())
            },
        }
        try:
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            handle, temporary = tempfile.mkstemp(dir=self.directory, prefix=f".{FILE_NAME}.")
        except OSError as exc:
            raise LoginError(f"cannot write in {self.directory}: {exc.strerror or exc}") from None
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as out:
                os.fchmod(out.fileno(), 0o600)
                json.dump(data, out, indent=2)
                out.write("\n")
                out.flush()
                os.fsync(out.fileno())
            os.replace(temporary, self.path)
        except OSError as exc:
            Path(temporary).unlink(missing_ok=True)
            raise LoginError(f"cannot write {self.path}: {exc.strerror or exc}") from None
