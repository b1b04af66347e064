"""Who is asking: users, their tokens and passwords, and the Authenticator of every tree.

Requests authenticate with HTTP Basic ``name:token`` (as OPUS clients always did) or
``Authorization: Bearer token``. Only a SHA-256 of each API token is stored (tokens
carry 256 random bits, so a fast hash is enough); web passwords are hashed with scrypt,
a memory-hard KDF. Wrong credentials get a 401 that never says whether the user exists.
Requests without credentials are the shared owner ``anonymous`` when ALLOW_ANONYMOUS
is true, else 401. No address or forwarded header ever counts for identity. The rules
of what a caller may do are the core's (opus.core.access), applied by the service.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets

from opus.core.access import ANONYMOUS, Caller
from opus.core.errors import Unauthorized
from opus.core.records import User
from opus.core.times import utcnow
from opus.server.storage import UserStore
from opus.settings import Settings

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


def check_roles(roles: list[str]) -> tuple[str, ...]:
    """The roles, each checked against ROLE_NAME, without repeats (UserError)."""
    for role in roles:
        if not ROLE_NAME.fullmatch(role):
            raise UserError(f"invalid role name {role!r}")
    return tuple(dict.fromkeys(roles))


class UserManager:
    """Creating, listing and changing users (used by `opus user` and the admin API)."""

    def __init__(self, users: UserStore) -> None:
        self.users = users

    def add(
        self, name: str, roles: list[str] | None = None, password: str | None = None
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
        )
        if not self.users.add(user):
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

    def rotate_token(self, name: str) -> str:
        """A new token for the user; the old one stops working at once."""
        token = new_token()
        if not self.users.set_token_hash(name, hash_token(token)):
            raise UserError(f"no user {name!r}")
        return token

    def set_active(self, name: str, active: bool) -> None:
        """Enable or disable a user (a disabled user's requests get 401)."""
        if not self.users.set_active(name, active):
            raise UserError(f"no user {name!r}")

    def set_roles(self, name: str, roles: list[str]) -> None:
        """Replace the user's roles (checked like those given at creation)."""
        if not self.users.set_roles(name, check_roles(roles)):
            raise UserError(f"no user {name!r}")

    def set_password(self, name: str, password: str) -> None:
        """Set the user's web password (stored as an scrypt hash)."""
        if not self.users.set_password_hash(name, hash_password(password)):
            raise UserError(f"no user {name!r}")

    def delete(self, name: str) -> None:
        """Delete a user (their jobs stay)."""
        if not self.users.delete(name):
            raise UserError(f"no user {name!r}")


class Authenticator:
    """Turns a request's Authorization header into a Caller (or Unauthorized)."""

    def __init__(self, settings: Settings, users: UserStore) -> None:
        self.settings = settings
        self.users = users

    def caller(self, authorization: str) -> Caller:
        """The caller an Authorization header value (empty: none) stands for.

        Raises Unauthorized (401) for missing credentials when ALLOW_ANONYMOUS is off,
        and for credentials that identify no active user.
        """
        if not authorization:
            if self.settings.ALLOW_ANONYMOUS:
                return Caller(ANONYMOUS)
            raise Unauthorized("authentication required")
        scheme, _, credentials = authorization.strip().partition(" ")
        user = self._user(scheme.lower(), credentials.strip())
        if user is None or not user.active:
            # One answer for unknown users, wrong tokens and disabled accounts.
            raise Unauthorized("invalid credentials")
        return Caller(user.name, frozenset(user.roles))

    def _user(self, scheme: str, credentials: str) -> User | None:
        if scheme == "bearer" and credentials:
            return self.users.by_token_hash(hash_token(credentials))
        if scheme != "basic":
            return None
        try:
            decoded = base64.b64decode(credentials, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None
        name, separator, token = decoded.partition(":")
        if not separator or not token:
            return None
        user = self.users.get(name)
        expected = user.token_hash if user else hash_token(new_token())
        if hmac.compare_digest(hash_token(token), expected):
            return user
        return None
