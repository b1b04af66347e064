"""Who is asking: users, tokens, passwords and the permission checks of every route.

Requests authenticate with HTTP Basic ``name:token`` (as OPUS clients always did) or
``Authorization: Bearer token``. Only a SHA-256 of each API token is stored (tokens
carry 256 random bits, so a fast hash is enough); web passwords are hashed with scrypt,
a memory-hard KDF. Wrong credentials get a 401 that never says whether the user exists.
Requests without credentials are the shared owner ``anonymous`` when ALLOW_ANONYMOUS
is true, else 401. No address or forwarded header ever counts for identity.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

import bottle
from sqlalchemy.exc import IntegrityError

from opus.server.storage import User, UserStore
from opus.server.uwsxml import utcnow
from opus.settings import Settings

ANONYMOUS = "anonymous"
ADMIN_ROLE = "admin"
USER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}")
ROLE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}")
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1
CHALLENGE = 'Basic realm="OPUS", Bearer realm="OPUS"'


class UserError(ValueError):
    """A user operation refused: bad name or role, name taken, no such user."""


@dataclass(frozen=True)
class Caller:
    """The identity behind a request."""

    name: str
    roles: frozenset[str] = frozenset()

    @property
    def is_admin(self) -> bool:
        return ADMIN_ROLE in self.roles


def new_token() -> str:
    """A fresh API token (256 random bits, URL-safe)."""
    return secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def hash_password(password: str) -> str:
    """``scrypt$N$r$p$salt$hash`` (hex) of a password."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(
        password.encode(), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, dklen=32
    )
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${salt.hex()}${digest.hex()}"


def verify_password(password: str, stored: str | None) -> bool:
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
        try:
            self.users.add(user)
        except IntegrityError:
            raise UserError(f"user {name!r} already exists") from None
        return user, token

    def rotate_token(self, name: str) -> str:
        """A new token for the user; the old one stops working at once."""
        token = new_token()
        if not self.users.update(name, token_hash=hash_token(token)):
            raise UserError(f"no user {name!r}")
        return token

    def set_active(self, name: str, active: bool) -> None:
        if not self.users.update(name, active=active):
            raise UserError(f"no user {name!r}")

    def set_roles(self, name: str, roles: list[str]) -> None:
        """Replace the user's roles (checked like those given at creation)."""
        if not self.users.update(name, roles=check_roles(roles)):
            raise UserError(f"no user {name!r}")

    def set_password(self, name: str, password: str) -> None:
        if not self.users.update(name, password_hash=hash_password(password)):
            raise UserError(f"no user {name!r}")

    def delete(self, name: str) -> None:
        if not self.users.delete(name):
            raise UserError(f"no user {name!r}")


def _unauthorized(reason: str) -> bottle.HTTPResponse:
    return bottle.HTTPResponse(
        status=401,
        body=f"{reason}\n",
        headers={"Content-Type": "text/plain; charset=UTF-8", "WWW-Authenticate": CHALLENGE},
    )


class Authenticator:
    """Turns a request's Authorization header into a Caller (or a 401)."""

    def __init__(self, settings: Settings, users: UserStore) -> None:
        self.settings = settings
        self.users = users

    def caller(self, request: bottle.BaseRequest) -> Caller:
        header = request.get_header("Authorization", "")
        if not header:
            if self.settings.ALLOW_ANONYMOUS:
                return Caller(ANONYMOUS)
            raise _unauthorized("authentication required")
        scheme, _, credentials = header.strip().partition(" ")
        user = self._user(scheme.lower(), credentials.strip())
        if user is None or not user.active:
            # One answer for unknown users, wrong tokens and disabled accounts.
            raise _unauthorized("invalid credentials")
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


ALL_JOB_TYPES_ROLE = "all"


def may_use(caller: Caller, jobname: str, settings: Settings) -> bool:
    """True when the caller may create jobs of this type (CHECK_PERMISSIONS)."""
    if not settings.CHECK_PERMISSIONS or caller.is_admin:
        return True
    return jobname in caller.roles or ALL_JOB_TYPES_ROLE in caller.roles


def can_access(caller: Caller, job_owner: str) -> bool:
    """True when the caller may see and change a job of ``job_owner``."""
    return caller.is_admin or caller.name == job_owner
