"""How the web pages are answered: templates, the headers of every page, error pages.

Templates are bottle SimpleTemplate files of ``opus/templates`` (package data), looked
up there and nowhere else (not bottle's TEMPLATE_PATH, which is the working
directory). ``{{value}}`` escapes: everything a user or a definition supplies is
rendered as text, and no template writes ``{{!...}}`` of such a value.

Every answer of the page tree carries the headers of ``SECURITY_HEADERS``: a Content
Security Policy that runs scripts of the server's own files only (no inline script,
no ``eval``), connects to the server and to a SAMP hub on the user's machine only
("Send to SAMP"), lets no other site frame the pages, ``nosniff``, and ``no-store``
(pages show private data and carry the session's CSRF token). Styles are the server's
files only, except on a page that asks for a nonce (``allow_style_elements``: the job
definition editor, whose CodeMirror writes ``<style>`` elements): its CSP also allows
the style elements carrying that answer's nonce, and still no style attribute. A
refused request is an error page with its status and its one-line reason; a server
fault is logged with its traceback and answered 500 without details; a request without
credentials goes to the sign-in page, which brings the user back where they were going.
"""

from __future__ import annotations

import functools
import logging
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import bottle

from opus.core.access import ANONYMOUS, Caller
from opus.core.errors import OpusError, Unauthorized
from opus.server.routes.common import SESSION_KEY, Plugin
from opus.server.sessions import Session

log = logging.getLogger("opus.client")

TEMPLATE_DIR = Path(__file__).resolve().parents[1] / "templates"
HTML_CONTENT_TYPE = "text/html; charset=UTF-8"
# Where a SAMP Web Profile hub listens (the SAMP standard's port, on the user's machine).
SAMP_HUBS = ("http://localhost:21012", "http://127.0.0.1:21012")
# Where a page's nonce for <style> elements is kept during its request.
STYLE_NONCE_KEY = "opus.style_nonce"
CSP_START = ("default-src 'self'", "script-src 'self'")
CSP_END = (
    # Bootstrap draws its form controls with data: SVG images.
    "img-src 'self' data:",
    # The SAMP hub's Web Profile, for "Send to SAMP" (static/js/samp.js).
    f"connect-src 'self' {' '.join(SAMP_HUBS)}",
    "form-action 'self'",
    "frame-ancestors 'none'",
    "base-uri 'none'",
    "object-src 'none'",
)


def content_security_policy(style_nonce: str | None = None) -> str:
    """The pages' CSP; with ``style_nonce``, <style> elements carrying it are allowed."""
    styles = "style-src 'self'" + (f" 'nonce-{style_nonce}'" if style_nonce else "")
    return "; ".join((*CSP_START, styles, *CSP_END))


CSP = content_security_policy()
SECURITY_HEADERS: Mapping[str, str] = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
}
PAGE_CACHE = "no-store"


class Templates:
    """The SimpleTemplate files of one directory, compiled once each."""

    def __init__(self, directory: Path = TEMPLATE_DIR, **defaults: Any) -> None:
        self.lookup = [str(directory) + "/"]
        self.defaults = defaults
        self._compiled: dict[str, bottle.SimpleTemplate] = {}

    def render(self, name: str, **values: Any) -> str:
        """The template ``name`` (without .tpl) rendered with ``values``."""
        template = self._compiled.get(name)
        if template is None:
            template = bottle.SimpleTemplate(name=name, lookup=self.lookup)
            self._compiled[name] = template
        return template.render({**self.defaults, **values})


@dataclass(frozen=True)
class Viewer:
    """Who looks at a page: the caller, the session if signed in, and the job types
    of the navigation bar."""

    caller: Caller
    session: Session | None = None
    job_types: tuple[str, ...] = ()

    @property
    def signed_in(self) -> bool:
        return self.caller.name != ANONYMOUS

    @property
    def csrf_token(self) -> str:
        """The token every form of the page carries (empty without a session: Basic
        credentials and anonymous callers need none)."""
        return self.session.csrf_token if self.session else ""


def current_session() -> Session | None:
    """The session of the current request, once ``caller`` has read its cookie."""
    session = bottle.request.environ.get(SESSION_KEY)
    return session if isinstance(session, Session) else None


def page_headers() -> dict[str, str]:
    """The headers of an HTML page (SECURITY_HEADERS are added to every answer)."""
    return {"Content-Type": HTML_CONTENT_TYPE, "Cache-Control": PAGE_CACHE}


@dataclass
class Renderer:
    """Renders pages with the values every page has (static URLs, the viewer)."""

    templates: Templates
    static_url: Callable[[str], str]
    base_url: str

    def html(self, name: str, viewer: Viewer | None, **values: Any) -> str:
        """The page ``name`` (its path and query, ``here``, are the sign-in's ``next``)."""
        request = bottle.request
        query = request.query_string
        return self.templates.render(
            name,
            static=self.static_url,
            viewer=viewer,
            request_path=request.path,
            here=request.path + (f"?{query}" if query else ""),
            **values,
        )

    def page(
        self, name: str, viewer: Viewer | None, status: int = 200, **values: Any
    ) -> bottle.HTTPResponse:
        """The page ``name`` as an answer."""
        body = self.html(name, viewer, **values)
        return bottle.HTTPResponse(body=body, status=status, headers=page_headers())

    def error_page(self, status: int, reason: str) -> bottle.HTTPResponse:
        """An error page: the status and the one-line reason, as text."""
        title = bottle.HTTP_CODES.get(status, "Error")
        body = self.html("error", None, code=status, title=title, reason=reason)
        return bottle.HTTPResponse(body=body, status=status, headers=page_headers())

    def domain_error(self, exc: OpusError) -> bottle.HTTPResponse:
        """A refused request: sign in for a 401, else the error page with its headers."""
        if isinstance(exc, Unauthorized):
            return self.to_sign_in()
        answer = self.error_page(exc.status, str(exc))
        for name, value in exc.headers.items():
            if name.lower() != "www-authenticate":
                answer.set_header(name, value)
        return answer

    def fault(self) -> bottle.HTTPResponse:
        """Log the exception being handled; a 500 page that tells nothing more."""
        log.exception("%s %s failed", bottle.request.method, bottle.request.path)
        return self.error_page(500, "internal server error")

    def to_sign_in(self) -> bottle.HTTPResponse:
        """A 303 to the sign-in page, which then comes back here (or, after a POST,
        to the page the form was on)."""
        request = bottle.request
        target = request.path + (f"?{request.query_string}" if request.query_string else "")
        if request.method not in ("GET", "HEAD"):
            target = local_path(request.get_header("Referer"), self.base_url) or "/"
        location = f"{self.base_url}/login?next={quote(target, safe='/')}"
        return bottle.HTTPResponse(status=303, headers={"Location": location, **page_headers()})


def local_path(url: str | None, base_url: str) -> str | None:
    """The path (and query) of ``url`` if it is a page of this server, else None."""
    if not url:
        return None
    parts = urlsplit(url)
    own = urlsplit(base_url)
    if (parts.scheme, parts.netloc) not in ((own.scheme, own.netloc), ("", "")):
        return None
    return safe_next(parts.path + (f"?{parts.query}" if parts.query else ""))


def safe_next(target: str | None) -> str | None:
    """``target`` if it is a path of this site ("/jobs?type=x"), else None: never
    "//host" (another site), a scheme, or a backslash some browsers read as "/"."""
    if not target or not target.startswith("/") or target.startswith("//"):
        return None
    if "\\" in target or any(ord(c) < 0x20 for c in target):
        return None
    return target


def security_plugin(callback: Callable[..., Any]) -> Callable[..., Any]:
    """Adds SECURITY_HEADERS to every answer of the tree (returned or raised)."""

    @functools.wraps(callback)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            result = callback(*args, **kwargs)
        except bottle.HTTPResponse as answer:
            secure(answer)
            raise
        if isinstance(result, bottle.HTTPResponse):
            secure(result)
        else:
            secure(bottle.response)
        return result

    return wrapper


def secure(answer: bottle.BaseResponse) -> None:
    for name, value in SECURITY_HEADERS.items():
        answer.set_header(name, value)
    nonce = bottle.request.environ.get(STYLE_NONCE_KEY)
    if isinstance(nonce, str):
        answer.set_header("Content-Security-Policy", content_security_policy(nonce))


def allow_style_elements() -> str:
    """A fresh nonce that this request's answer allows <style> elements to carry (its
    CSP names it): for a page whose script library writes its styles that way."""
    nonce = secrets.token_urlsafe(18)
    bottle.request.environ[STYLE_NONCE_KEY] = nonce
    return nonce


def html_error_plugin(renderer: Renderer) -> Plugin:
    """The page tree's error rendering (routes/common.error_plugin's shape, in HTML)."""

    def plugin(callback: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(callback)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                return callback(*args, **kwargs)
            except bottle.HTTPResponse:
                raise
            except OpusError as exc:
                return renderer.domain_error(exc)
            except Exception:
                return renderer.fault()

        return wrapper

    return plugin
