"""Browser sessions: signing in with a web password or an API token, the session cookie,
its expiry, and the CSRF token every change made with it carries.

Signing in (``SessionManager.sign_in``) takes a user name and a secret: the user's web
password (scrypt) or API token. It follows the rule of API authentication (auth.py,
throttle.py): the user and the failure counters of the client's address and of the name
are read in one statement; while a counter refuses, the answer is 429 and the secret is
not looked at; a failure is counted and logged; wrong secrets, unknown names and
disabled users get the same 401, and cost the same work (the secret is always put
through scrypt, against a stand-in hash when the user has no password or does not
exist, and always hashed and compared as a token).

A session is a random id (256 bits) in the ``opus_session`` cookie (HttpOnly,
SameSite=Strict, Path=/, Secure when BASE_URL is https); the database keeps only its
SHA-256 (storage/sessions.py), so that every process of the server knows it and a copy
of the database signs nobody in. A session ends SESSION_IDLE_TIMEOUT after it was last
seen, SESSION_MAX_AGE after it began, when its user signs out, and when its user is
disabled, deleted, or given a new token or password (auth.UserManager). Reading a
session costs one small read; ``last_seen`` is written when it is a minute old, not by
every request, so idle expiry is exact to a minute.

A session has a CSRF token of its own (256 bits), which every request made with the
cookie that changes something must carry (``X-CSRF-Token`` header or ``csrf_token``
form field, routes/common.py); it is compared in constant time. Requests with HTTP
Basic or Bearer credentials carry no cookie authority and need none.
"""

from __future__ import annotations

import functools
import hmac
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import MappingProxyType

from opus.core.errors import Unauthorized
from opus.core.records import User
from opus.core.times import utcnow
from opus.server.auth import hash_password, hash_token, new_token, verify_password
from opus.server.storage import UserStore
from opus.server.storage.sessions import SessionStore
from opus.server.throttle import Throttle
from opus.settings import Settings

log = logging.getLogger("opus.auth")

SESSION_COOKIE = "opus_session"
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"
# How old ``last_seen`` may get before a request writes it again.
TOUCH_INTERVAL = timedelta(seconds=60)
# Longer cookie values are nobody's session (ours are 43 characters).
MAX_COOKIE_LENGTH = 128
# What a 401 of signing in, or of a session that has ended, asks for: a cookie got by
# signing in (no browser prompts for this scheme, as it would for Basic).
COOKIE_CHALLENGE = f'Cookie realm="OPUS", cookie-name="{SESSION_COOKIE}"'
SIGN_IN_REFUSED = "invalid user name, password or token"
# What the token of a user that does not exist is compared with (the same work).
_ABSENT_TOKEN_HASH = hash_token(new_token())


class SessionRefused(Unauthorized):
    """A sign-in refused, or a session that has ended (401, with the cookie challenge)."""

    headers = MappingProxyType({"WWW-Authenticate": COOKIE_CHALLENGE})


@functools.cache
def _absent_password_hash() -> str:
    """What the secret is put through scrypt against when the user has no password."""
    return hash_password(new_token())


@dataclass(frozen=True)
class Session:
    """A signed-in browser session. ``id`` is the cookie value: in the session that
    ``sign_in`` returns only (the server keeps its hash). ``expires`` is when it ends
    at the latest (SESSION_MAX_AGE after ``created``); it ends sooner when unused for
    SESSION_IDLE_TIMEOUT. ``roles`` are its user's, as they are now."""

    id: str | None
    user_name: str
    csrf_token: str
    created: datetime
    expires: datetime
    roles: tuple[str, ...] = ()

    def csrf_matches(self, token: str | None) -> bool:
        """True when ``token`` is this session's CSRF token (constant-time)."""
        if not token:
            return False
        given = token.encode("utf-8", "replace")
        return hmac.compare_digest(given, self.csrf_token.encode())


def session_cookie(header: str | None) -> str | None:
    """The value of the ``opus_session`` cookie of a Cookie header (the first), or None."""
    if not header:
        return None
    for part in header.split(";"):
        name, separator, value = part.strip().partition("=")
        if separator and name == SESSION_COOKIE:
            value = value.strip().strip('"')
            return value or None
    return None


class SessionManager:
    """Signing in and out, and the session of a request's cookie."""

    def __init__(
        self,
        settings: Settings,
        users: UserStore,
        sessions: SessionStore,
        throttle: Throttle,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.users = users
        self.sessions = sessions
        self.throttle = throttle
        self.clock = clock or (lambda: utcnow())
        self.idle = timedelta(seconds=settings.SESSION_IDLE_TIMEOUT)
        self.max_age = timedelta(seconds=settings.SESSION_MAX_AGE)
        _absent_password_hash()  # made now, not in the first unknown name's sign-in

    def sign_in(self, name: str, secret: str, address: str) -> tuple[Session, str]:
        """A new session of the user ``name``, whose web password or API token
        ``secret`` is, signing in from ``address`` (auth.Authenticator.client_address);
        returns it and the cookie value.

        Raises SessionRefused (an Unauthorized, 401) with one message whatever was
        wrong (a failure, counted); TooManyRequests (429) while the address or the name
        is refused after failures, the secret not checked.
        """
        keys = self.throttle.keys(address, name)
        user, refused_until = self.users.authenticate(keys, name=name)
        self.throttle.check(refused_until)
        matches = _secret_matches(user, secret)
        if user is None or not matches or not user.active:
            self.throttle.failed(keys, address, user.name if user else None)
            raise SessionRefused(SIGN_IN_REFUSED)
        return self._open(user, address)

    def sign_in_verified(self, user: User, address: str) -> tuple[Session, str]:
        """A new session of ``user``, whom another party has authenticated (an OpenID
        Connect provider, oidc.py), signing in from ``address``; returns it and the
        cookie value. Raises SessionRefused when the user is disabled (or is disabled,
        deleted or given new credentials while the session is made)."""
        if not user.active:
            raise SessionRefused(SIGN_IN_REFUSED)
        return self._open(user, address)

    def _open(self, user: User, address: str) -> tuple[Session, str]:
        """A new session of ``user``, whose credentials have been checked."""
        now = self.clock()
        cookie_value, csrf_token = new_token(), new_token()
        ends = now + min(self.idle, self.max_age)
        if not self.sessions.create(hash_token(cookie_value), user, csrf_token, now, ends):
            # Disabled, deleted or given new credentials since it was read.
            raise SessionRefused(SIGN_IN_REFUSED)
        self.sessions.sweep(now)
        log.info("user %s signed in from %s", user.name, address or "an unknown address")
        session = Session(cookie_value, user.name, csrf_token, now, now + self.max_age, user.roles)
        return session, cookie_value

    def session_of(self, cookie_value: str) -> Session | None:
        """The session of a cookie value, or None: unknown, ended (signed out, idle for
        SESSION_IDLE_TIMEOUT, older than SESSION_MAX_AGE), or of a disabled user. One
        read; a write at most every TOUCH_INTERVAL of a session."""
        if not cookie_value or len(cookie_value) > MAX_COOKIE_LENGTH:
            return None
        id_hash = hash_token(cookie_value)
        found = self.sessions.find(id_hash)
        if found is None:
            return None
        now = self.clock()
        ends = found.created + self.max_age
        if now >= ends or now >= found.last_seen + self.idle:
            self.sessions.end(id_hash)
            return None
        if not found.active:
            return None
        if now - found.last_seen >= TOUCH_INTERVAL:
            self.sessions.touch(id_hash, now, min(ends, now + self.idle))
        return Session(None, found.user_name, found.csrf_token, found.created, ends, found.roles)

    def sign_out(self, cookie_value: str) -> None:
        """End the session of a cookie value (nothing if it has none)."""
        if cookie_value and len(cookie_value) <= MAX_COOKIE_LENGTH:
            self.sessions.end(hash_token(cookie_value))

    def cookie_header(self, cookie_value: str, base_url: str) -> str:
        """The Set-Cookie value that gives a browser the session ``cookie_value``."""
        max_age = int(self.max_age.total_seconds())
        return _cookie(f"{SESSION_COOKIE}={cookie_value}", f"Max-Age={max_age}", base_url)

    def expired_cookie_header(self, base_url: str) -> str:
        """The Set-Cookie value that makes a browser forget its session cookie."""
        expired = "Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT"
        return _cookie(f"{SESSION_COOKIE}=", expired, base_url)


def _cookie(value: str, lifetime: str, base_url: str) -> str:
    attributes = [value, "Path=/", lifetime, "HttpOnly", "SameSite=Strict"]
    if base_url.lower().startswith("https://"):
        attributes.append("Secure")
    return "; ".join(attributes)


def _secret_matches(user: User | None, secret: str) -> bool:
    """Whether ``secret`` is the user's web password or API token; the same work
    whether the user exists, has a password, or not."""
    has_password = user is not None and bool(user.password_hash)
    stored = user.password_hash if user is not None and user.password_hash else None
    password_ok = verify_password(secret, stored or _absent_password_hash())
    expected = user.token_hash if user is not None else _ABSENT_TOKEN_HASH
    token_ok = hmac.compare_digest(hash_token(secret), expected)
    return bool(secret) and ((has_password and password_ok) or token_ok)
