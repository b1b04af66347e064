"""The sign-in tree: POST /login, POST /logout and GET /session (errors as plain text).

What a browser's login form posts to, and what scripts can use too (``curl -c jar -d
username=… -d secret=…``): signing in answers 303 with the session cookie
(sessions.py), to the form's ``next`` when it is a path of this server, never to
another site. GET /session tells a page who is signed in and the CSRF token its
changes must carry; it is never cached. Cross-site posts are refused by the tree's
Origin check (routes/common.py), signing out needs the session's CSRF token like any
change made with the cookie, and signing in is throttled like every authentication.
The web pages (opus/client) render the form itself at GET /login.
"""

from __future__ import annotations

import json
from urllib.parse import urlsplit

import bottle

from opus.core.times import format_time
from opus.server.auth import Authenticator
from opus.server.routes.common import check_csrf, plain_tree, see_other
from opus.server.sessions import SessionManager, SessionRefused, session_cookie

JSON_CONTENT_TYPE = "application/json"
# Where a sign-in goes when its form names no (acceptable) next page.
DEFAULT_NEXT = "/"


def local_path(target: str | None) -> str:
    """``target`` when it is a path on this server ("/rest/sleep?PHASE=COMPLETED"), else
    DEFAULT_NEXT: never a URL of another site ("//evil.example", "https://…", "/\\evil"),
    nor anything but printable ASCII."""
    if not target or not target.startswith("/") or target.startswith("//"):
        return DEFAULT_NEXT
    if "\\" in target or not all(0x21 <= ord(char) < 0x7F for char in target):
        return DEFAULT_NEXT
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return DEFAULT_NEXT
    return target


def tree(sessions: SessionManager, authn: Authenticator) -> bottle.Bottle:
    """The sign-in tree (errors as plain text)."""
    settings = authn.settings
    base_url = settings.BASE_URL
    app = plain_tree(base_url)
    request = bottle.request

    def field(name: str) -> str:
        """A field of the posted form (never of the URL: secrets stay out of logs)."""
        try:
            value = request.forms.decode().get(name)
        except (UnicodeError, ValueError):
            value = None
        return value if isinstance(value, str) else ""

    @app.post("/login")
    def login() -> bottle.HTTPResponse:
        address = authn.client_address(
            request.environ.get("REMOTE_ADDR") or "", request.get_header("X-Forwarded-For")
        )
        target = field("next") or request.query.decode().get("next")
        _session, cookie = sessions.sign_in(field("username"), field("secret"), address)
        earlier = session_cookie(request.get_header("Cookie"))
        if earlier is not None and earlier != cookie:
            sessions.sign_out(earlier)
        answer = see_other(base_url, local_path(target))
        answer.set_header("Set-Cookie", sessions.cookie_header(cookie, base_url))
        answer.set_header("Cache-Control", "no-store")
        return answer

    @app.post("/logout")
    def logout() -> bottle.HTTPResponse:
        cookie = session_cookie(request.get_header("Cookie"))
        session = sessions.session_of(cookie) if cookie is not None else None
        if cookie is not None and session is not None:
            check_csrf(session, settings.MAX_UPLOAD_SIZE)
            sessions.sign_out(cookie)
        answer = see_other(base_url, "/login")
        answer.set_header("Set-Cookie", sessions.expired_cookie_header(base_url))
        answer.set_header("Cache-Control", "no-store")
        return answer

    @app.get("/session")
    def current_session() -> bottle.HTTPResponse:
        cookie = session_cookie(request.get_header("Cookie"))
        session = sessions.session_of(cookie) if cookie is not None else None
        if session is None:
            raise SessionRefused("not signed in")
        body = {
            "user_name": session.user_name,
            "roles": list(session.roles),
            "csrf_token": session.csrf_token,
            "created": format_time(session.created),
            "expires": format_time(session.expires),
        }
        headers = {"Content-Type": JSON_CONTENT_TYPE, "Cache-Control": "no-store"}
        return bottle.HTTPResponse(body=json.dumps(body), headers=headers)

    return app
