"""The OpenID Connect protocol with one provider: discovery, the authorization URL of an
attempt, and the verified claims of the ID token its answer is exchanged for (oidc.py
runs the sign-in around it).

Discovery documents and key sets are fetched when first needed (not at start: a
provider down then would stop the server) and kept for METADATA_LIFETIME; after a
failure, the provider is not asked again for RETRY_INTERVAL. An ID token signed with a
key id the cached set does not have fetches the set again (key rotation), at most once
a minute. The ID token's signature is checked against the provider's JWKS (asymmetric
algorithms only, never ``none``), with its issuer, audience, expiry and nonce. The
protocol is Authlib's and joserfc's; OPUS writes no cryptography of its own.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import requests
from authlib.integrations.base_client import OAuthError
from authlib.integrations.requests_client import OAuth2Session
from authlib.oidc.core import CodeIDToken
from joserfc import jwt
from joserfc.errors import InvalidKeyIdError, JoseError
from joserfc.jwk import KeySet
from joserfc.jws import JWSRegistry

from opus.settings import OIDCProvider, provider_url_allowed

log = logging.getLogger("opus.auth")
HTTP_TIMEOUT = 10.0
# Discovery documents and key sets bigger than this are nobody's.
MAX_DOCUMENT_SIZE = 1024 * 1024
METADATA_LIFETIME = 3600.0
KEYS_REFETCH_INTERVAL = 60.0
# How long a provider whose discovery failed is not asked again, in seconds.
RETRY_INTERVAL = 10.0
# Clock skew allowed between OPUS and a provider for the ID token's times, in seconds.
CLOCK_LEEWAY = 60
SIGNING_ALGORITHMS = (
    *("RS256", "RS384", "RS512", "PS256", "PS384", "PS512"),
    *("ES256", "ES384", "ES512", "EdDSA"),
)

REASONS: Mapping[str, str] = {
    "expired": "The sign-in took too long, or was started in another window: try again.",
    "state": "The identity provider's answer does not belong to this sign-in: try again.",
    "denied": "The identity provider did not sign you in.",
    "provider": "The identity provider could not be reached or answered wrongly: try later.",
    "token": "The identity provider's answer could not be verified.",
    "name": "The identity provider gave no user name this server accepts.",
    "unknown": "You have no account on this server: ask its administrators for one.",
    "taken": (
        "The account of your name on this server does not sign in with this identity "
        "provider: ask its administrators."
    ),
    "linked": (
        "The account of your name on this server signs in with another account of this "
        "identity provider."
    ),
    "disabled": "Your account on this server is disabled.",
}


class SignInFailed(Exception):
    """A sign-in refused; ``reason`` is a key of REASONS, ``detail`` is for the log."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class Attempt:
    """One sign-in under way: what the callback must find again."""

    provider: str
    state: str
    nonce: str
    verifier: str
    next: str


@dataclass
class Metadata:
    """What a provider's discovery document says that a sign-in uses."""

    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    algorithms: tuple[str, ...]
    auth_method: str
    fetched: float
    keys: KeySet | None = None
    keys_fetched: float = 0.0


@dataclass
class ProviderClient:
    """One provider: its discovery document and keys, the authorization URL of an
    attempt, and the claims of the ID token its answer is exchanged for."""

    provider: OIDCProvider
    redirect_uri: str
    clock: Callable[[], float] = time.time
    _metadata: Metadata | None = None
    _failed: float = float("-inf")
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def metadata(self) -> Metadata:
        """The provider's metadata (cached for METADATA_LIFETIME); SignInFailed
        ("provider") when it cannot be had or is not usable, at once for
        RETRY_INTERVAL after a failure (sign-ins do not each wait for a provider down)."""
        with self._lock:
            now = self.clock()
            known = self._metadata
            if known is not None and now - known.fetched <= METADATA_LIFETIME:
                return known
            if now - self._failed < RETRY_INTERVAL:
                raise SignInFailed("provider", "its discovery document failed just before")
            try:
                known = self._metadata = self._discover()
            except SignInFailed:
                self._failed = now
                raise
            return known

    def authorization_url(self, attempt: Attempt) -> str:
        """Where the browser goes to sign in at the provider."""
        metadata = self.metadata()
        with self._session(metadata) as client:
            url, _state = client.create_authorization_url(
                metadata.authorization_endpoint,
                state=attempt.state,
                code_verifier=attempt.verifier,
                nonce=attempt.nonce,
            )
        return str(url)

    def identity(self, code: str, attempt: Attempt) -> dict[str, Any]:
        """The verified claims of the ID token that ``code`` is exchanged for.

        Raises SignInFailed: "provider" when the exchange fails, "token" when the ID
        token is missing, badly signed, expired, or not for this client and attempt.
        """
        metadata = self.metadata()
        try:
            with self._session(metadata) as client:
                token = client.fetch_token(
                    metadata.token_endpoint,
                    code=code,
                    code_verifier=attempt.verifier,
                    timeout=HTTP_TIMEOUT,
                )
        except (requests.RequestException, ValueError) as exc:
            raise SignInFailed("provider", f"token request failed: {exc}") from None
        except OAuthError as exc:  # the provider's error answer (invalid_grant…)
            raise SignInFailed("provider", f"token request refused: {exc}") from None
        id_token = token.get("id_token")
        if not isinstance(id_token, str):
            raise SignInFailed("token", "the token answer has no ID token")
        return self._verified_claims(metadata, id_token, token, attempt.nonce)

    def _verified_claims(
        self, metadata: Metadata, id_token: str, token: Mapping[str, Any], nonce: str
    ) -> dict[str, Any]:
        registry = JWSRegistry(algorithms=list(metadata.algorithms))
        try:
            try:
                decoded = jwt.decode(id_token, self._keys(metadata), registry=registry)
            except InvalidKeyIdError:
                decoded = jwt.decode(id_token, self._keys(metadata, True), registry=registry)
            options = {
                "iss": {"essential": True, "value": metadata.issuer},
                "aud": {"essential": True, "value": self.provider.client_id},
            }
            params = {"nonce": nonce, "client_id": self.provider.client_id}
            if isinstance(token.get("access_token"), str):
                params["access_token"] = token["access_token"]
            claims = CodeIDToken(decoded.claims, decoded.header, options, params)
            claims.validate(now=int(self.clock()), leeway=CLOCK_LEEWAY)
        except (JoseError, ValueError) as exc:
            raise SignInFailed("token", f"ID token refused: {exc}") from None
        return dict(claims)

    def _keys(self, metadata: Metadata, refetch: bool = False) -> KeySet:
        """The provider's key set: cached, fetched again on ``refetch`` (an unknown key
        id) at most every KEYS_REFETCH_INTERVAL."""
        with self._lock:
            now = self.clock()
            stale = refetch and now - metadata.keys_fetched > KEYS_REFETCH_INTERVAL
            if metadata.keys is None or stale:
                document = _get_json(metadata.jwks_uri)
                try:
                    metadata.keys = KeySet.import_key_set(document)  # type: ignore[arg-type]
                except (JoseError, ValueError, TypeError, KeyError) as exc:
                    raise SignInFailed("provider", f"unusable key set: {exc}") from None
                metadata.keys_fetched = now
            return metadata.keys

    def _discover(self) -> Metadata:
        document = _get_json(self.provider.discovery_url)
        issuer = document.get("issuer")
        # OpenID Connect Discovery 1.0, section 4.3: the issuer is the discovery URL's.
        expected = self.provider.discovery_url.removesuffix("/.well-known/openid-configuration")
        if not isinstance(issuer, str) or issuer.rstrip("/") != expected.rstrip("/"):
            raise SignInFailed("provider", f"issuer {issuer!r} is not {expected!r}")
        urls = {}
        for key in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
            url = document.get(key)
            if not isinstance(url, str) or not provider_url_allowed(url):
                raise SignInFailed("provider", f"{key} {url!r} is not an https URL")
            urls[key] = url
        offered = document.get("id_token_signing_alg_values_supported") or ["RS256"]
        algorithms = tuple(a for a in SIGNING_ALGORITHMS if a in offered)
        if not algorithms:
            raise SignInFailed("provider", f"no usable ID token algorithm in {offered!r}")
        return Metadata(
            issuer=issuer,
            authorization_endpoint=urls["authorization_endpoint"],
            token_endpoint=urls["token_endpoint"],
            jwks_uri=urls["jwks_uri"],
            algorithms=algorithms,
            auth_method=self._auth_method(document),
            fetched=self.clock(),
        )

    def _auth_method(self, document: Mapping[str, Any]) -> str:
        """How OPUS authenticates to the token endpoint: without a secret, it is a
        public client (PKCE alone); with one, Basic unless only a post is offered."""
        if not self.provider.client_secret:
            return "none"
        offered = document.get("token_endpoint_auth_methods_supported") or []
        if "client_secret_post" in offered and "client_secret_basic" not in offered:
            return "client_secret_post"
        return "client_secret_basic"

    def _session(self, metadata: Metadata) -> OAuth2Session:
        return OAuth2Session(
            client_id=self.provider.client_id,
            client_secret=self.provider.client_secret or None,
            token_endpoint_auth_method=metadata.auth_method,
            scope=" ".join(self.provider.scopes),
            redirect_uri=self.redirect_uri,
            code_challenge_method="S256",
            default_timeout=HTTP_TIMEOUT,
        )


def _get_json(url: str) -> dict[str, Any]:
    """The JSON object at ``url`` (SignInFailed "provider" when there is none)."""
    try:
        with requests.get(url, timeout=HTTP_TIMEOUT, stream=True) as answer:
            answer.raise_for_status()
            body = answer.raw.read(MAX_DOCUMENT_SIZE + 1, decode_content=True)
        if len(body) > MAX_DOCUMENT_SIZE:
            raise ValueError("document too large")
        document = json.loads(body)
    except (requests.RequestException, ValueError) as exc:
        raise SignInFailed("provider", f"GET {url}: {exc}") from None
    if not isinstance(document, dict):
        raise SignInFailed("provider", f"GET {url}: not a JSON object")
    return document
