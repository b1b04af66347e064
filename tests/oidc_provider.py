"""A real OpenID Connect provider for the tests, on a loopback port.

Authlib's authorization server (the authorization code grant, with its OpenID Connect
and PKCE extensions) behind a small Flask application, served by werkzeug in a thread:
OPUS speaks the whole protocol to it over HTTP, discovery, keys, the browser's
redirects and the code exchange, as it would to any provider. Its one user signs in
without being asked (whoever opens the authorization URL is them), and the tests turn
its knobs between sign-ins: the user name it gives (``user_name``, None for none),
``expired`` ID tokens, ID tokens signed with a key not in its JWKS (``foreign_key``),
refusals (``deny``), ``extra_claims`` that override any claim, and an ``id_token``
given instead of the one it made (a malformed answer). ``codes`` keeps
every authorization request it granted (nonce, PKCE challenge and method), so that a
test can see what OPUS asked for.
"""

from __future__ import annotations

import html
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from authlib.common.urls import add_params_to_uri
from authlib.integrations.flask_oauth2 import AuthorizationServer
from authlib.oauth2.rfc6749 import ClientMixin, OAuth2Error
from authlib.oauth2.rfc6749.grants import AuthorizationCodeGrant
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oidc.core import AuthorizationCodeMixin, OpenIDCode, UserInfo
from flask import Flask, jsonify, redirect, request
from joserfc.jwk import RSAKey
from werkzeug.serving import make_server

CLIENT_ID = "opus-tests"
CLIENT_SECRET = "the secret of the opus tests"
KEY_ID = "provider-key-1"
SUBJECT = "248289761001"


@dataclass
class Client(ClientMixin):
    """The one registered client (OPUS), confidential, with its redirect URIs."""

    redirect_uris: list[str]
    client_id: str = CLIENT_ID
    client_secret: str = CLIENT_SECRET

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> str:
        return self.redirect_uris[0]

    def get_allowed_scope(self, scope: Any) -> str:
        allowed = {"openid", "profile", "email"}
        return " ".join(s for s in str(scope).split() if s in allowed)

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return redirect_uri in self.redirect_uris

    def check_client_secret(self, client_secret: str) -> bool:
        return client_secret == self.client_secret

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return method in ("client_secret_basic", "client_secret_post")

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code"

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type == "authorization_code"


@dataclass
class Code(AuthorizationCodeMixin):
    """An authorization code granted, and what its request asked for."""

    code: str
    client_id: str
    redirect_uri: str
    scope: str
    user: dict[str, Any]
    nonce: str | None
    code_challenge: str | None
    code_challenge_method: str | None
    auth_time: int = field(default_factory=lambda: int(time.time()))

    def get_redirect_uri(self) -> str:
        return self.redirect_uri

    def get_scope(self) -> str:
        return self.scope

    def get_nonce(self) -> str | None:
        return self.nonce

    def get_auth_time(self) -> int:
        return self.auth_time

    def get_acr(self) -> str:
        return ""

    def get_amr(self) -> list[str]:
        return []


class Provider:
    """The provider: start it, point OPUS at ``discovery_url``, turn the knobs."""

    def __init__(self, host: str = "127.0.0.1", sign_in_page: bool = False) -> None:
        # The name the browser and OPUS use (127.0.0.1, or localhost: another site).
        self.host = host
        # A page of the provider's first, as a real one has (its sign-in form), that
        # goes on by itself: the way back to OPUS is then a navigation from this site.
        self.sign_in_page = sign_in_page
        self.key = RSAKey.generate_key(2048, parameters={"kid": KEY_ID})
        # The same key id, another key: a signature the published key does not verify.
        self.other_key = RSAKey.generate_key(2048, parameters={"kid": KEY_ID})
        self.client = Client(redirect_uris=[])
        self.user_name: str | None = "carol"
        self.expired = False
        self.foreign_key = False
        self.deny = False
        self.extra_claims: dict[str, Any] = {}
        # What the token answer gives instead of the ID token it made (None: that one).
        self.id_token: Any = None
        self.codes: dict[str, Code] = {}
        self.granted: list[Code] = []
        self.token_requests = 0
        self.port = 0
        self.app = self._flask_app()

    @property
    def issuer(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def discovery_url(self) -> str:
        return f"{self.issuer}/.well-known/openid-configuration"

    def setting(self, name: str = "test", **values: Any) -> dict[str, Any]:
        """An OIDC_PROVIDERS entry for this provider (``values`` added or overriding)."""
        entry: dict[str, Any] = {
            "name": name,
            "label": "Test Provider",
            "discovery_url": self.discovery_url,
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
        }
        entry.update(values)
        return entry

    def reset(self) -> None:
        """Every knob back to a sign-in that works, as carol."""
        self.user_name = "carol"
        self.expired = self.foreign_key = self.deny = False
        self.extra_claims = {}
        self.id_token = None

    @contextmanager
    def running(self) -> Iterator[Provider]:
        """Serve on a free loopback port for the block."""
        server = make_server("127.0.0.1", 0, self.app, threaded=True)
        self.port = server.server_port
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            server.shutdown()
            thread.join(10)

    def _user(self) -> dict[str, Any]:
        user: dict[str, Any] = {"sub": SUBJECT}
        if self.user_name is not None:
            user["preferred_username"] = self.user_name
        return user

    def _flask_app(self) -> Flask:
        app = Flask("opus-test-provider")
        server = AuthorizationServer(app, query_client=self._query_client, save_token=_ignore)
        server.register_grant(
            self._grant_class(), [self._openid_extension(), CodeChallenge(required=True)]
        )

        @app.get("/.well-known/openid-configuration")
        def discovery() -> Any:
            return jsonify(
                issuer=self.issuer,
                authorization_endpoint=f"{self.issuer}/authorize",
                token_endpoint=f"{self.issuer}/token",
                jwks_uri=f"{self.issuer}/jwks",
                response_types_supported=["code"],
                subject_types_supported=["public"],
                id_token_signing_alg_values_supported=["RS256"],
                code_challenge_methods_supported=["S256"],
                token_endpoint_auth_methods_supported=["client_secret_basic"],
            )

        @app.get("/favicon.ico")
        def favicon() -> Any:
            return "", 204

        @app.get("/jwks")
        def jwks() -> Any:
            return jsonify(keys=[self.key.as_dict(private=False)])

        @app.get("/authorize")
        def authorize() -> Any:
            if self.sign_in_page and request.args.get("signed_in") != "yes":
                # The navigation back to OPUS then starts on a page of this site.
                target = html.escape(f"{request.full_path}&signed_in=yes")
                page = f'<meta http-equiv="refresh" content="0; url={target}">Signing in…'
                return page, 200, {"Content-Type": "text/html; charset=utf-8"}
            if self.deny:
                target = request.args.get("redirect_uri", "")
                answer = {"error": "access_denied", "state": request.args.get("state", "")}
                return redirect(add_params_to_uri(target, answer))
            user = self._user()
            try:
                grant = server.get_consent_grant(end_user=user)  # type: ignore[no-untyped-call]
            except OAuth2Error as error:
                return server.handle_error_response(None, error)  # type: ignore[arg-type]
            return server.create_authorization_response(grant_user=user, grant=grant)

        @app.post("/token")
        def token() -> Any:
            self.token_requests += 1
            answer = server.create_token_response()
            if self.id_token is not None and answer.status_code == 200:
                body = answer.get_json()
                body["id_token"] = self.id_token
                answer.set_data(json.dumps(body))
            return answer

        return app

    def _query_client(self, client_id: str) -> Client | None:
        return self.client if client_id == self.client.client_id else None

    def _grant_class(self) -> type[AuthorizationCodeGrant]:
        provider = self

        class CodeGrant(AuthorizationCodeGrant):
            TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]

            def save_authorization_code(self, code: str, oauth_request: Any) -> None:
                data = oauth_request.payload.data
                granted = Code(
                    code=code,
                    client_id=oauth_request.client.client_id,
                    redirect_uri=oauth_request.payload.redirect_uri,
                    scope=oauth_request.scope,
                    user=oauth_request.user,
                    nonce=data.get("nonce"),
                    code_challenge=data.get("code_challenge"),
                    code_challenge_method=data.get("code_challenge_method"),
                )
                provider.codes[code] = granted
                provider.granted.append(granted)

            def query_authorization_code(self, code: str, client: Any) -> Code | None:
                found = provider.codes.get(code)
                return found if found and found.client_id == client.client_id else None

            def delete_authorization_code(self, authorization_code: Code) -> None:
                provider.codes.pop(authorization_code.code, None)

            def authenticate_user(self, authorization_code: Code) -> dict[str, Any]:
                return authorization_code.user

        return CodeGrant

    def _openid_extension(self) -> OpenIDCode:
        provider = self

        class ProviderOpenIDCode(OpenIDCode):
            def exists_nonce(self, nonce: str, oauth_request: Any) -> bool:
                return any(code.nonce == nonce for code in provider.codes.values())

            def resolve_client_private_key(self, client: Client) -> RSAKey:
                return provider.other_key if provider.foreign_key else provider.key

            def get_encode_header(self, client: Client) -> dict[str, str]:
                return {"alg": "RS256", "kid": KEY_ID}

            def get_client_claims(self, client: Client) -> dict[str, Any]:
                claims: dict[str, Any] = {"iss": provider.issuer, "aud": [client.client_id]}
                if provider.expired:
                    now = int(time.time())
                    claims.update(iat=now - 7200, exp=now - 3600, auth_time=now - 7200)
                return claims

            def generate_user_info(self, user: dict[str, Any], scope: str) -> UserInfo:
                return UserInfo({**user, **provider.extra_claims})

        return ProviderOpenIDCode(require_nonce=True)


def _ignore(token: dict[str, Any], oauth_request: Any) -> None:
    """Access tokens are not kept: OPUS uses the ID token only."""
