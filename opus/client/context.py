"""What every page route has at hand: the service, the caller, the renderer.

``Pages.viewer()`` authenticates the request (``routes.common.caller``: API
credentials, or the session cookie, whose CSRF token a change must carry) and tells
the templates who is looking; a request without credentials raises Unauthorized,
which the page tree answers with a redirect to the sign-in page.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import bottle

from opus.client.rendering import Renderer, Viewer, current_session, safe_next
from opus.core.errors import PayloadTooLarge
from opus.server.auth import Authenticator, UserManager
from opus.server.routes.common import FORM_OVERHEAD, caller, see_other, without_csrf_field
from opus.server.service import JobService
from opus.settings import Settings


@dataclass
class Pages:
    """The parts the page routes share."""

    service: JobService
    authn: Authenticator
    users: UserManager | None
    renderer: Renderer
    settings: Settings

    def viewer(self) -> Viewer:
        """Who asks (Unauthorized, TooManyRequests, or Forbidden for a change without
        the session's CSRF token)."""
        who = caller(self.authn)
        return Viewer(who, current_session(), tuple(self.service.job_types(who)))

    def page(
        self, name: str, viewer: Viewer | None, status: int = 200, **values: Any
    ) -> bottle.HTTPResponse:
        return self.renderer.page(name, viewer, status, **values)

    def form(self) -> list[tuple[str, str]]:
        """The posted form's (name, value) pairs, without the CSRF token (never the
        query string's: a form says what it sends)."""
        self.check_body_size()
        try:
            pairs = list(bottle.request.forms.decode().allitems())
        except (UnicodeError, ValueError):
            pairs = []
        return without_csrf_field(pairs)

    def check_body_size(self) -> None:
        length = bottle.request.content_length
        limit = self.settings.MAX_UPLOAD_SIZE
        if length > limit + FORM_OVERHEAD:
            raise PayloadTooLarge(
                f"request body of {length} bytes exceeds MAX_UPLOAD_SIZE ({limit} bytes)"
            )

    def back(self, default: str, pairs: list[tuple[str, str]] | None = None) -> bottle.HTTPResponse:
        """A 303 to the form's ``next`` (a path of this site), else to ``default``."""
        target = dict(pairs or []).get("next")
        return see_other(self.settings.BASE_URL, safe_next(target) or default)
