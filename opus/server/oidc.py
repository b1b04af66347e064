"""Signing in with OpenID Connect: the authorization code flow with PKCE, for each
provider of OIDC_PROVIDERS, ending in an ordinary OPUS session (sessions.py).

A sign-in is an *attempt*: its state, nonce and PKCE code verifier (S256) are random
per attempt and travel in the ``opus_oidc`` cookie only, sealed (JWE, ``dir`` with
A256GCM: encrypted and authenticated) with a key of the server's kept in VAR_PATH, and
ending ATTEMPT_LIFETIME after it began. No table holds them, so every process of the
server finishes an attempt another began, and no attempt outlives ten minutes. The
callback accepts the provider's answer only when its ``state`` is the sealed one of
the cookie, for the same provider; the code is exchanged (with the verifier) at the
provider's token endpoint, and the ID token's signature is checked against the
provider's JWKS (asymmetric algorithms only, never ``none``), with its issuer (the one
of the provider's discovery document, which must be the discovery URL's own), audience
(the client id), expiry and nonce (the attempt's). The protocol is Authlib's and
joserfc's; OPUS writes no cryptography of its own.

The user is the one the provider's account, its ID token's ``sub``, is linked to
(storage/identities.py): an ordinary user, whose roles, tokens and sessions are those
of any user. The name the provider sends (its ``username_claim``), which many
providers let their users change, only names the user an account not linked yet gets:
a new one (the provider's ``unknown_users`` = "create", with its default roles), or an
existing one nobody of that provider signs in as, when the provider is trusted to say
so (``link_existing``). Any other account claiming a user's name is refused, so the
account that signed in as a user once is the only one of its provider that ever does.
A disabled user is refused. Every refusal is a ``SignInFailed`` whose reason is a key
of REASONS: the login page shows that key's sentence, never text of the provider's
or of the request, and no session is made.

The protocol with each provider (discovery, keys, the ID token's checks) is
oidcprovider.py's.
"""

from __future__ import annotations

import hmac
import logging
import os
import re
import secrets
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwe import JWERegistry
from joserfc.jwk import OctKey

from opus.core.access import ANONYMOUS
from opus.core.records import User
from opus.core.times import utcnow
from opus.server.auth import USER_NAME, UserError, UserManager
from opus.server.oidcprovider import (
    Attempt,
    ProviderClient,
    SignInFailed,
)
from opus.server.sessions import Session, SessionManager, SessionRefused
from opus.server.storage.identities import Identity, IdentityStore
from opus.settings import OIDCProvider, Settings

log = logging.getLogger("opus.auth")

ATTEMPT_COOKIE = "opus_oidc"
# How long a person has at the provider before the attempt ends, in seconds.
ATTEMPT_LIFETIME = 600
ATTEMPT_KEY_FILE = "oidc-attempts.key"
_SEAL = JWERegistry(algorithms=["dir", "A256GCM"])
_SEAL_HEADER = {"alg": "dir", "enc": "A256GCM"}
_EXPIRED = "Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT"
# OpenID Connect Core 1.0, section 2: ``sub`` is at most 255 ASCII characters.
SUBJECT = re.compile(r"[\x20-\x7e]{1,255}")

# What the login page says of each refusal (routes/oidc.py sends the key only).


def attempt_key(var_path: Path) -> bytes:
    """The server's key of attempt cookies (32 bytes), made on first use in
    ``var_path``: one file that every process of the server reads (never replaced
    once there, so two processes starting at once agree)."""
    path = var_path / ATTEMPT_KEY_FILE
    if not path.exists():
        var_path.mkdir(parents=True, exist_ok=True)
        fresh = var_path / f".{ATTEMPT_KEY_FILE}.{secrets.token_hex(8)}"
        descriptor = os.open(fresh, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            handle.write(secrets.token_hex(32))
        try:
            os.link(fresh, path)  # fails if another process made it first: theirs wins
        except FileExistsError:
            pass
        finally:
            fresh.unlink()
    key = bytes.fromhex(path.read_text().strip())
    if len(key) != 32:
        raise ValueError(f"{path}: not a key of 32 bytes (delete it to make a new one)")
    return key


class AttemptSeal:
    """Attempts to and from the value of their cookie (encrypted and authenticated)."""

    def __init__(self, key: bytes, clock: Callable[[], float] = time.time) -> None:
        self.key = OctKey.import_key(key)
        self.clock = clock

    def seal(self, attempt: Attempt) -> str:
        """The cookie value of ``attempt``, good for ATTEMPT_LIFETIME."""
        claims = {
            "p": attempt.provider,
            "s": attempt.state,
            "n": attempt.nonce,
            "v": attempt.verifier,
            "next": attempt.next,
            "exp": int(self.clock()) + ATTEMPT_LIFETIME,
        }
        return jwt.encode(_SEAL_HEADER, claims, self.key, registry=_SEAL)

    def open(self, value: str) -> Attempt | None:
        """The attempt of a cookie value; None when it is not one of ours, or ended."""
        try:
            claims = jwt.decode(value, self.key, registry=_SEAL).claims
        except (JoseError, ValueError):
            return None
        expires = claims.get("exp")
        if not isinstance(expires, int) or expires <= self.clock():
            return None
        values = [claims.get(key) for key in ("p", "s", "n", "v", "next")]
        strings = [value for value in values if isinstance(value, str)]
        if len(strings) != len(values):
            return None
        return Attempt(*strings)


class OpenIDSignIn:
    """Signing in with the providers of OIDC_PROVIDERS: an attempt's start, its end."""

    def __init__(
        self,
        settings: Settings,
        sessions: SessionManager,
        users: UserManager,
        identities: IdentityStore | None = None,
    ) -> None:
        self.settings = settings
        self.sessions = sessions
        self.users = users
        self.identities = identities or IdentityStore(users.users.engine)
        self.providers = {
            provider.name: ProviderClient(provider, self.callback_url(provider.name))
            for provider in settings.OIDC_PROVIDERS
        }
        self._seal: AttemptSeal | None = None

    def callback_url(self, name: str) -> str:
        """The redirect URI to register at the provider ``name``."""
        return f"{self.settings.BASE_URL}/login/oidc/{name}/callback"

    @property
    def seal(self) -> AttemptSeal:
        # Made when first needed: a server without providers has no key file.
        if self._seal is None:
            self._seal = AttemptSeal(attempt_key(self.settings.VAR_PATH))
        return self._seal

    def start(self, name: str, next_path: str) -> tuple[str, str]:
        """A new attempt at the provider ``name`` (one of ``providers``), to end on
        ``next_path``: the provider's authorization URL and the attempt's cookie
        value. Raises SignInFailed ("provider") when the provider cannot be used."""
        attempt = Attempt(
            provider=name,
            state=secrets.token_urlsafe(32),
            nonce=secrets.token_urlsafe(32),
            verifier=secrets.token_urlsafe(48),
            next=next_path,
        )
        return self.providers[name].authorization_url(attempt), self.seal.seal(attempt)

    def attempt(self, cookie_value: str | None) -> Attempt | None:
        """The attempt of a cookie value, or None (none, not ours, or ended)."""
        return self.seal.open(cookie_value) if cookie_value else None

    def finish(
        self, name: str, attempt: Attempt | None, answer: Mapping[str, str], address: str
    ) -> tuple[Session, str]:
        """The session that the provider's answer (the callback's query) signs in.

        Raises SignInFailed: "expired" without a (live) attempt, "state" when the
        answer is not the attempt's, "denied" or "provider" when the provider signed
        nobody in, "token" for an ID token that fails a check, and the reasons of
        ``_user`` for an account that may not sign in.
        """
        client = self.providers[name]
        if attempt is None:
            raise SignInFailed("expired", "no attempt cookie, or an ended one")
        given = answer.get("state", "").encode("utf-8", "replace")
        if attempt.provider != name or not hmac.compare_digest(given, attempt.state.encode()):
            raise SignInFailed("state", "the answer's state is not the attempt's")
        if answer.get("error"):
            reason = "denied" if answer["error"] == "access_denied" else "provider"
            raise SignInFailed(reason, f"the provider answered {answer['error']!r}")
        code = answer.get("code", "")
        if not code:
            raise SignInFailed("provider", "the answer has no code")
        try:
            claims = client.identity(code, attempt)
        except SignInFailed:
            raise
        except Exception:
            # An answer of the provider that the libraries choke on: the provider's
            # fault, said as such on the login page (not a 500), with its traceback here.
            log.exception("sign-in with %s: the provider's answer could not be used", name)
            raise SignInFailed("provider", "unusable answer (traceback logged)") from None
        user = self._user(client.provider, claims)
        try:
            session, cookie = self.sessions.sign_in_verified(user, address)
        except SessionRefused:
            raise SignInFailed("disabled", f"user {user.name} is disabled") from None
        log.info("user %s signed in with %s", user.name, name)
        return session, cookie

    def _user(self, provider: OIDCProvider, claims: Mapping[str, Any]) -> User:
        """The user the provider's account signs in as: the one it is linked to, else
        the one of its name claim that it may be linked to now (``_link``).

        Raises SignInFailed: "token" for a ``sub`` that is not one, "disabled", and
        those of ``_link``.
        """
        subject = claims.get("sub")
        if not isinstance(subject, str) or not SUBJECT.fullmatch(subject):
            raise SignInFailed("token", f"claim sub is {subject!r}")
        linked = self.identities.user_of(provider.name, subject)
        # None too when the user was deleted since the look-up (its links with it).
        user = self.users.get(linked) if linked is not None else None
        if user is None:
            user = self._link(provider, subject, self._claimed_name(provider, claims))
        if not user.active:
            raise SignInFailed("disabled", f"user {user.name} is disabled")
        return user

    @staticmethod
    def _claimed_name(provider: OIDCProvider, claims: Mapping[str, Any]) -> str:
        name = claims.get(provider.username_claim)
        if not isinstance(name, str) or not USER_NAME.fullmatch(name) or name.lower() == ANONYMOUS:
            raise SignInFailed("name", f"claim {provider.username_claim} is {name!r}")
        return name

    def _link(self, provider: OIDCProvider, subject: str, name: str) -> User:
        """The user ``name`` that the account ``subject``, linked to nobody, may sign
        in as from now on: made now, or (``link_existing``) one of that name that no
        account of the provider signs in as. The link is stored before returning.

        Raises SignInFailed: "unknown" for a name nobody has (and no user made),
        "taken" for a user of the name that the provider may not take, "linked" for
        one another account of the provider signs in as, "disabled".
        """
        where = f"{provider.name} account {subject!r}"
        user, created = self.users.get(name), False
        if user is None and provider.unknown_users == "create":
            try:
                user, _token = self.users.add(name, list(provider.default_roles))
                created = True
                log.info("user %s created at sign-in with %s", name, provider.name)
            except UserError:
                user = self.users.get(name)  # made meanwhile by another request
        if user is None:
            raise SignInFailed("unknown", f"{where}: no user {name}")
        if not created:
            owner = self.identities.subject_of(provider.name, name)
            if owner == subject:  # the same account, signing in twice at once
                return user
            if owner is not None:
                raise SignInFailed("linked", f"{where}: user {name} is account {owner!r}'s")
            if not provider.link_existing:
                raise SignInFailed("taken", f"{where}: user {name} is not linked to it")
            if not user.active:  # a disabled user gets no link either
                raise SignInFailed("disabled", f"user {name} is disabled")
        linked = self.identities.link(Identity(provider.name, subject, name, utcnow()))
        # Not linked: another request linked the account, or another one to the user,
        # meanwhile (the account to this user is a sign-in of the same at once: fine).
        if not linked and self.identities.user_of(provider.name, subject) != name:
            raise SignInFailed("linked", f"{where}: not linked to {name}, another was")
        log.info("%s linked to user %s", where, name)
        return user

    def attempt_cookie_header(self, value: str) -> str:
        """The Set-Cookie value of an attempt."""
        return self._cookie(f"{ATTEMPT_COOKIE}={value}", f"Max-Age={ATTEMPT_LIFETIME}")

    def expired_attempt_cookie_header(self) -> str:
        """The Set-Cookie value that makes a browser forget its attempt."""
        return self._cookie(
            f"{ATTEMPT_COOKIE}=", "Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT"
        )

    def _cookie(self, value: str, lifetime: str) -> str:
        # Lax, not Strict: the provider's redirect back is a navigation from its site,
        # which a Strict cookie would not go with. Path: only the callbacks get it.
        attributes = [value, "Path=/login/oidc/", lifetime, "HttpOnly", "SameSite=Lax"]
        if self.settings.BASE_URL.lower().startswith("https://"):
            attributes.append("Secure")
        return "; ".join(attributes)
