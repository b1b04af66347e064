"""The sign-in page and the user's profile: a new API token, a new password.

``GET /login`` draws the form that posts to the sign-in tree's ``POST /login``
(routes/session.py), which answers with the session cookie and a redirect to ``next``,
and a "Sign in with …" button per OpenID Connect provider (routes/oidc.py), whose
refusals come back here as a reason's key (``oidc_error``) that the page puts in words.
``/profile`` shows who is signed in; its forms give the user a new API token (shown
once) and a new web password (the current one asked for when there is one). Both
end the user's sessions, as UserManager does for any new credentials: the page says
so and the next page asks to sign in again.
"""

from __future__ import annotations

from urllib.parse import urlencode

import bottle

from opus.client.context import Pages
from opus.client.rendering import Viewer, safe_next
from opus.core.errors import Forbidden, NotFound, Unauthorized
from opus.server.auth import UserError, UserManager, verify_password
from opus.server.oidcprovider import REASONS
from opus.settings import OIDCProvider

# The fields of the password form (names, not secrets).
CURRENT, NEW, CONFIRM = "current_password", "new_password", "confirm_password"
PASSWORD_MIN_LENGTH = 8
PASSWORD_MAX_LENGTH = 1024


def provider_links(providers: tuple[OIDCProvider, ...], target: str) -> list[tuple[str, str]]:
    """(label, URL) of the "Sign in with …" button of each OpenID Connect provider."""
    query = "" if target == "/" else "?" + urlencode({"next": target})
    return [(p.label, f"/login/oidc/{p.name}{query}") for p in providers]


def add_routes(app: bottle.Bottle, pages: Pages) -> None:
    request = bottle.request

    def accounts() -> UserManager:
        if pages.users is None:
            raise NotFound("this server has no user accounts")
        return pages.users

    def signed_in_viewer() -> Viewer:
        viewer = pages.viewer()
        if not viewer.signed_in:
            raise Unauthorized("sign in to see your profile")
        return viewer

    @app.get("/login")
    def login_page() -> bottle.HTTPResponse:
        query = request.query.decode()
        target = safe_next(query.get("next")) or "/"
        try:
            viewer: Viewer | None = pages.viewer()
        except Unauthorized:
            viewer = None
        return pages.page(
            "login",
            viewer,
            title="Sign in",
            next=target,
            providers=provider_links(pages.settings.OIDC_PROVIDERS, target),
            # A key, never text of the request's: the page says only what OPUS says.
            oidc_error=REASONS.get(query.get("oidc_error") or ""),
        )

    def profile(viewer: Viewer, status: int = 200, **values: object) -> bottle.HTTPResponse:
        users = pages.users
        user = users.get(viewer.caller.name) if users is not None else None
        return pages.page(
            "profile",
            viewer,
            status=status,
            title="Your profile",
            user=user,
            has_password=bool(user and user.password_hash),
            **values,
        )

    @app.get("/profile")
    def profile_page() -> bottle.HTTPResponse:
        return profile(signed_in_viewer())

    @app.post("/profile/token")
    def new_token() -> bottle.HTTPResponse:
        viewer = signed_in_viewer()
        pages.form()
        try:
            token = accounts().rotate_token(viewer.caller.name)
        except UserError as exc:
            raise Forbidden(str(exc)) from None
        return pages.page("token", viewer, title="Your new API token", token=token)

    @app.post("/profile/password")
    def new_password() -> bottle.HTTPResponse:
        viewer = signed_in_viewer()
        form = dict(pages.form())
        users = accounts()
        user = users.get(viewer.caller.name)
        if user is None:
            raise Forbidden(f"{viewer.caller.name} is not a user of this server")
        current = form.get(CURRENT, "")
        new = form.get(NEW, "")
        errors: dict[str, str] = {}
        if user.password_hash and not verify_password(current, user.password_hash):
            errors[CURRENT] = "this is not your current password"
        elif not PASSWORD_MIN_LENGTH <= len(new) <= PASSWORD_MAX_LENGTH:
            errors[NEW] = (
                f"a password has {PASSWORD_MIN_LENGTH} to {PASSWORD_MAX_LENGTH} characters"
            )
        elif new != form.get(CONFIRM, ""):
            errors[CONFIRM] = "the two new passwords differ"
        if errors:
            return profile(viewer, status=400, errors=errors)
        try:
            users.set_password(user.name, new)
        except UserError as exc:
            raise Forbidden(str(exc)) from None
        return pages.page("password_changed", viewer, title="Password changed")
