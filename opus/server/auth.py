"""Who is asking: users, their tokens and passwords, and the Authenticator of every tree.

Requests authenticate with HTTP Basic ``name:token`` (as OPUS clients always did) or
``Authorization: Bearer token``. Only a SHA-256 of each API token is stored (tokens
carry 256 random bits, so a fast hash is enough); web passwords are hashed with scrypt,
a memory-hard KDF. Wrong credentials get a 401 that never says whether the user exists,
nor takes longer either way: the user and the client's failure counters are read in
one statement that costs the same for a name nobody has, and every token is hashed and
compared. Failures are counted, logged and, past a few, refused for a while (429,
throttle.py). Requests without credentials are the shared owner ``anonymous`` when
ALLOW_ANONYMOUS is true, else 401. A browser signs in instead (sessions.py): without an
Authorization header, its session cookie stands for its user. No address or forwarded
header ever counts for identity (the connection's address counts failures only). The
rules of what a caller may do are the core's (opus.core.access), applied by the service.

A deleted user's jobs pass to an owner nobody can be (``deleted:<name>:<random>``, not
a user name): admins still see and delete them, and a new user of the same name does
not. The jobs of a name that a new user is given (those of a request that was still
under way at the deletion) pass the same way.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets
from typing import TYPE_CHECKING

from opus.core.access import ANONYMOUS, Caller
from opus.core.errors import Unauthorized
from opus.core.records import User
from opus.core.times import utcnow
from opus.server.storage import UserStore
from opus.server.storage.sessions import SessionStore
from opus.server.storage.throttle import FailureStore
from opus.server.throttle import Throttle, client_address
from opus.settings import Settings, proxy_networks

if TYPE_CHECKING:
    from opus.server.sessions import SessionManager

USER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}")
ROLE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}")
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1


class UserError(ValueError):
    """A user operation refused: bad name or role, name taken, no such user."""


def new_token() -> str:
    """A fresh API token (256 random bits, URL-safe)."""
    return secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    """The stored form of a token (API or job signal token): its SHA-256, in hex."""
    return hashlib.sha256(token.encode()).hexdigest()


def hash_password(password: str) -> str:
    """``scrypt$N$r$p$salt$hash`` (hex) of a password."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(
        password.encode(), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, dklen=32
    )
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${salt.hex()}${digest.hex()}"


def verify_password(password: str, stored: str | None) -> bool:
    """True when ``password`` is the one ``stored`` (an hash_password value) was made of."""
    if not stored:
        return False
    try:
        kind, n, r, p, salt, digest = stored.split("$")
        if kind != "scrypt":
            return False
        computed = hashlib.scrypt(
            password.encode(),
            salt=bytes.fromhex(salt),
            n=int(n),
            r=int(r),
            p=int(p),
            dklen=len(digest) // 2,
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(computed.hex(), digest)


def tombstone(name: str) -> str:
    """The owner the jobs of a deleted user ``name`` pass to: nobody can be it."""
    return f"deleted:{name}:{secrets.token_hex(6)}"


# What the token of a user that does not exist is compared with (the same work).
_ABSENT_TOKEN_HASH = hash_token(new_token())


def _credentials(scheme: str, credentials: str) -> tuple[str | None, str | None]:
    """(user name, token) of an Authorization header: a Bearer token names nobody;
    (None, None) for what is neither."""
    if scheme == "bearer" and credentials:
        return None, credentials
    if scheme != "basic":
        return None, None
    try:
        decoded = base64.b64decode(credentials, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None, None
    name, separator, token = decoded.partition(":")
    return (name, token) if separator else (None, None)


def check_roles(roles: list[str]) -> tuple[str, ...]:
    """The roles, each checked against ROLE_NAME, without repeats (UserError)."""
    for role in roles:
        if not ROLE_NAME.fullmatch(role):
            raise UserError(f"invalid role name {role!r}")
    return tuple(dict.fromkeys(roles))


class UserManager:
    """Creating, listing and changing users (used by `opus user` and the admin API).

    Disabling a user, or giving them a new token or password, ends their browser
    sessions (sessions.py); deleting them does too (their rows go with the user's)."""

    def __init__(self, users: UserStore, sessions: SessionStore | None = None) -> None:
        self.users = users
        self.sessions = sessions or SessionStore(users.engine)

    def add(
        self,
        name: str,
        roles: list[str] | None = None,
        password: str | None = None,
        external_id: str | None = None,
    ) -> tuple[User, str]:
        """Create a user; returns it and its token (shown once, never stored)."""
        if not USER_NAME.fullmatch(name) or name.lower() == ANONYMOUS:
            raise UserError(f"invalid user name {name!r}")
        token = new_token()
        user = User(
            name=name,
            roles=check_roles(roles or []),
            active=True,
            token_hash=hash_token(token),
            password_hash=hash_password(password) if password else None,
            creation_time=utcnow(),
            external_id=external_id,
        )
        if not self.users.add(user, earlier_jobs_to=tombstone(name)):
            raise UserError(f"user {name!r} already exists")
        return user, token

    def get(self, name: str) -> User | None:
        """The user called ``name``, or None."""
        return self.users.get(name)

    def all(self) -> list[User]:
        """Every user, by name."""
        return self.users.all()

    def count(self) -> int:
        """How many users there are."""
        return self.users.count()

    def with_external_id(self, external_id: str) -> list[User]:
        """The users an identity provider gave ``external_id``, by name."""
        return self.users.with_external_id(external_id)

    def rotate_token(self, name: str) -> str:
        """A new token for the user; the old one stops working at once."""
        token = new_token()
        if not self.users.set_token_hash(name, hash_token(token)):
            raise UserError(f"no user {name!r}")
        self.sessions.end_user(name)
        return token

    def set_active(self, name: str, active: bool) -> None:
        """Enable or disable a user (a disabled user's requests get 401, and their
        sessions end)."""
        if not self.users.set_active(name, active):
            raise UserError(f"no user {name!r}")
        if not active:
            self.sessions.end_user(name)

    def set_roles(self, name: str, roles: list[str]) -> None:
        """Replace the user's roles (checked like those given at creation)."""
        if not self.users.set_roles(name, check_roles(roles)):
            raise UserError(f"no user {name!r}")

    def set_password(self, name: str, password: str) -> None:
        """Set the user's web password (stored as an scrypt hash); their sessions end."""
        if not self.users.set_password_hash(name, hash_password(password)):
            raise UserError(f"no user {name!r}")
        self.sessions.end_user(name)

    def remove_password(self, name: str) -> None:
        """Remove the user's web password (the API token still works); their sessions end."""
        if not self.users.set_password_hash(name, None):
            raise UserError(f"no user {name!r}")
        self.sessions.end_user(name)

    def set_external_id(self, name: str, external_id: str | None) -> None:
        """Set (or with None, remove) what an identity provider knows the user by."""
        if not self.users.set_external_id(name, external_id):
            raise UserError(f"no user {name!r}")

    def delete(self, name: str) -> str:
        """Delete a user; their jobs stay, passed to an owner nobody can be: admins still
        see them, a new user of the same name does not. Returns that owner."""
        owner = tombstone(name)
        if not self.users.delete(name, jobs_to=owner):
            raise UserError(f"no user {name!r}")
        return owner


class Authenticator:
    """Turns a request's Authorization header into a Caller (or Unauthorized); with
    ``sessions``, a request without one may be a browser session's (routes/common.py)."""

    def __init__(
        self,
        settings: Settings,
        users: UserStore,
        throttle: Throttle | None = None,
        sessions: SessionManager | None = None,
    ) -> None:
        self.settings = settings
        self.users = users
        self.throttle = throttle or Throttle(settings, FailureStore(users.engine))
        self.trusted_proxies = proxy_networks(settings.TRUSTED_PROXIES)
        self.sessions = sessions

    def client_address(self, remote_addr: str, forwarded_for: str | None) -> str:
        """The address failed authentications of a request count by (throttle.py)."""
        return client_address(remote_addr, forwarded_for, self.trusted_proxies)

    def caller(self, authorization: str, address: str = "") -> Caller:
        """The caller an Authorization header value (empty: none) stands for, the
        request coming from ``address`` (``client_address``).

        Raises Unauthorized (401) for missing credentials when ALLOW_ANONYMOUS is off,
        and for credentials that identify no active user (a failure, counted);
        TooManyRequests (429) for credentials from an address, or for a name, refused
        after failures, whatever the credentials.
        """
        if not authorization:
            if self.settings.ALLOW_ANONYMOUS:
                return Caller(ANONYMOUS)
            raise Unauthorized("authentication required")
        scheme, _, credentials = authorization.strip().partition(" ")
        name, token = _credentials(scheme.lower(), credentials.strip())
        keys = self.throttle.keys(address, name)
        digest = hash_token(token or "")
        if name is None and token:
            user, refused_until = self.users.authenticate(keys, token_hash=digest)
        else:
            user, refused_until = self.users.authenticate(keys, name=name or "")
        self.throttle.check(refused_until)
        # Compared whether the user exists or not: the same work either way.
        expected = user.token_hash if user else _ABSENT_TOKEN_HASH
        matches = hmac.compare_digest(digest, expected)
        if user is None or not token or not matches or not user.active:
            # One answer for unknown users, wrong tokens and disabled accounts.
            self.throttle.failed(keys, address, user.name if user else None)
            raise Unauthorized("invalid credentials")
        return Caller(user.name, frozenset(user.roles))
