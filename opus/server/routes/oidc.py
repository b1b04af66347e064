"""The OpenID Connect sign-in tree: GET /login/oidc/<name> and its callback.

``GET /login/oidc/<name>?next=/jobs`` begins an attempt at the provider ``name``
(oidc.py): 303 to the provider, with the sealed attempt in the ``opus_oidc`` cookie.
The provider sends the browser back to ``GET /login/oidc/<name>/callback``, which
checks the answer against the attempt and signs the user in: the session cookie of
sessions.py, the one signing in with a password gives. Its answer is a small page
that goes on to ``next`` itself rather than a redirect: the browser arrives from the
provider's site, and a redirect would carry on that cross-site navigation, with which
the SameSite=Strict session cookie does not go, so ``next`` would look signed out.
Every refusal is a 303 to the login page with the reason's key (``oidc_error``),
whose sentence the page shows; the attempt cookie is dropped either way, so an
attempt ends at its first answer. Unknown providers are 404.
"""

from __future__ import annotations

import logging
from urllib.parse import urlencode

import bottle

from opus.core.errors import NotFound
from opus.server.auth import Authenticator
from opus.server.oidc import ATTEMPT_COOKIE, OpenIDSignIn
from opus.server.oidcprovider import SignInFailed
from opus.server.routes.common import plain_tree, see_other
from opus.server.routes.session import DEFAULT_NEXT, local_path
from opus.server.sessions import MAX_COOKIE_LENGTH, session_cookie

log = logging.getLogger("opus.auth")

# The parameters of a provider's answer (RFC 6749 section 4.1.2).
ANSWER_PARAMETERS = ("state", "code", "error")
# Longer attempt cookies are not ours (they are about 400 characters).
MAX_ATTEMPT_LENGTH = 4096
# The page that goes on to ``next`` once signed in (auto-escaped: SimpleTemplate).
CONTINUE_PAGE = bottle.SimpleTemplate("""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="refresh" content="0; url={{target}}">
<title>Signed in</title>
</head>
<body>
<p>You are signed in as {{user}}. <a href="{{target}}">Go on</a>.</p>
</body>
</html>
""")
CONTINUE_HEADERS = {
    "Content-Type": "text/html; charset=UTF-8",
    "Cache-Control": "no-store",
    "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    # The callback's URL holds the provider's code: the next page must not see it.
    "Referrer-Policy": "no-referrer",
}


def attempt_cookie(header: str | None) -> str | None:
    """The value of the ``opus_oidc`` cookie of a Cookie header (the first), or None."""
    for part in (header or "").split(";"):
        name, separator, value = part.strip().partition("=")
        if separator and name == ATTEMPT_COOKIE:
            value = value.strip().strip('"')
            return value if 0 < len(value) <= MAX_ATTEMPT_LENGTH else None
    return None


def add_header(answer: bottle.HTTPResponse, name: str, value: str) -> None:
    """Add a header, keeping those of the name already there (two Set-Cookie)."""
    answer.add_header(name, value)  # type: ignore[attr-defined]  # not in typings/bottle.pyi


def tree(signin: OpenIDSignIn, authn: Authenticator) -> bottle.Bottle:
    """The OpenID Connect sign-in tree (errors as plain text)."""
    base_url = authn.settings.BASE_URL
    app = plain_tree(base_url)
    request = bottle.request

    def check_provider(name: str) -> None:
        if name not in signin.providers:
            raise NotFound(f"no identity provider {name!r}")

    def query() -> bottle.FormsDict:
        try:
            return request.query.decode()
        except (UnicodeError, ValueError):
            return bottle.FormsDict()

    def refused(name: str, failure: SignInFailed, target: str) -> bottle.HTTPResponse:
        """The login page, saying why (never a session)."""
        address = request.environ.get("REMOTE_ADDR") or "an unknown address"
        level = logging.WARNING if failure.reason == "provider" else logging.INFO
        log.log(level, "sign-in with %s from %s refused: %s", name, address, failure.detail)
        fields = {"oidc_error": failure.reason}
        if target != DEFAULT_NEXT:
            fields["next"] = target
        answer = see_other(base_url, "/login?" + urlencode(fields))
        answer.set_header("Set-Cookie", signin.expired_attempt_cookie_header())
        answer.set_header("Cache-Control", "no-store")
        return answer

    @app.get("/login/oidc/<name>")
    def start(name: str) -> bottle.HTTPResponse:
        check_provider(name)
        target = local_path(query().get("next"))
        try:
            location, cookie = signin.start(name, target)
        except SignInFailed as failure:
            return refused(name, failure, target)
        headers = {"Location": location, "Cache-Control": "no-store"}
        answer = bottle.HTTPResponse(status=303, headers=headers)
        answer.set_header("Set-Cookie", signin.attempt_cookie_header(cookie))
        return answer

    @app.get("/login/oidc/<name>/callback")
    def callback(name: str) -> bottle.HTTPResponse:
        check_provider(name)
        attempt = signin.attempt(attempt_cookie(request.get_header("Cookie")))
        target = local_path(attempt.next) if attempt else DEFAULT_NEXT
        parameters = query()
        answer = {key: parameters.get(key) or "" for key in ANSWER_PARAMETERS}
        address = authn.client_address(
            request.environ.get("REMOTE_ADDR") or "", request.get_header("X-Forwarded-For")
        )
        try:
            if any(len(parameters.getall(key)) > 1 for key in ANSWER_PARAMETERS):
                raise SignInFailed("state", "an answer parameter is repeated")
            session, cookie = signin.finish(name, attempt, answer, address)
        except SignInFailed as failure:
            return refused(name, failure, target)
        earlier = session_cookie(request.get_header("Cookie"))
        if earlier is not None and earlier != cookie and len(earlier) <= MAX_COOKIE_LENGTH:
            signin.sessions.sign_out(earlier)
        body = CONTINUE_PAGE.render(target=target, user=session.user_name)
        page = bottle.HTTPResponse(body=body, headers=CONTINUE_HEADERS)
        add_header(page, "Set-Cookie", signin.sessions.cookie_header(cookie, base_url))
        add_header(page, "Set-Cookie", signin.expired_attempt_cookie_header())
        return page

    return app
