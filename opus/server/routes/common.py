"""What the HTTP trees share: their error rendering, the caller, forms, answers, ETags.

Each tree (UWS, result store, signal handler, SCIM, OpenAPI, and the web pages and JSON
API to come) is a bottle application of its own with its own error rendering, merged
into the root application by app.py. The plain-text rendering here is the UWS one: a
domain error is its status and a one-line reason (with its headers: the challenge of a
401); anything else is a server fault, logged with its traceback and answered 500
without details.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import urlsplit

import bottle

from opus.core.access import ANONYMOUS, Caller
from opus.core.errors import BadRequest, Forbidden, OpusError, PayloadTooLarge
from opus.server.auth import Authenticator
from opus.server.service.inputs import Upload
from opus.server.service.validation import CONTROL_PARAMETERS
from opus.server.sessions import (
    CSRF_FIELD,
    CSRF_HEADER,
    Session,
    SessionManager,
    SessionRefused,
    session_cookie,
)
from opus.server.uwsxml import XML_CONTENT_TYPE

log = logging.getLogger("opus.routes")

TEXT_CONTENT_TYPE = "text/plain; charset=UTF-8"
JOB_ID_PATTERN = r"[a-z2-7]{1,64}"
JOBNAME_PATTERN = r"[A-Za-z][A-Za-z0-9_-]{0,63}"


def plain_error(exc: OpusError) -> bottle.HTTPResponse:
    """A domain error as a one-line text/plain answer."""
    headers = {"Content-Type": TEXT_CONTENT_TYPE, **exc.headers}
    return bottle.HTTPResponse(status=exc.status, body=f"{exc}\n", headers=headers)


def server_fault() -> bottle.HTTPResponse:
    """Log the exception being handled; a 500 that tells the client nothing more."""
    log.exception("%s %s failed", bottle.request.method, bottle.request.path)
    return bottle.HTTPResponse(
        status=500, body="internal server error\n", headers={"Content-Type": TEXT_CONTENT_TYPE}
    )


Plugin = Callable[[Callable[..., Any]], Callable[..., Any]]


def error_plugin(
    render: Callable[[OpusError], bottle.HTTPResponse],
    fault: Callable[[], bottle.HTTPResponse] = server_fault,
) -> Plugin:
    """A tree's bottle plugin: domain errors answered by ``render``, anything else (a
    server fault, logged) by ``fault``."""

    def plugin(callback: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(callback)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                return callback(*args, **kwargs)
            except bottle.HTTPResponse:
                raise
            except OpusError as exc:
                return render(exc)
            except Exception:
                return fault()

        return wrapper

    return plugin


# Methods that change something: refused when a browser sends them from another site.
CHANGING_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# Sec-Fetch-Site values of a request the user made on OPUS itself, or typed in.
OWN_SITE = frozenset({"same-origin", "none"})


def origin_of(url: str) -> str:
    """The origin (scheme://host[:port]) of a URL, as browsers write it in Origin."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def same_origin_plugin(base_url: str) -> Plugin:
    """A tree's bottle plugin refusing cross-site requests that change something.

    A browser sends cached Basic credentials with a form posted from any site: a POST,
    PUT, PATCH or DELETE whose Origin is not BASE_URL's, or whose Sec-Fetch-Site says
    another site made it, is refused (403) whatever its credentials. API clients (curl,
    pyvo, batch scripts) send neither header and are not affected.
    """
    own = origin_of(base_url)

    def plugin(callback: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(callback)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if bottle.request.method in CHANGING_METHODS:
                refuse_cross_site(own)
            return callback(*args, **kwargs)

        return wrapper

    return plugin


def refuse_cross_site(own: str) -> None:
    """Forbidden if a browser says another site made the current request: an Origin
    other than ``own`` (origin_of BASE_URL), or a Sec-Fetch-Site of another site."""
    request = bottle.request
    origin = request.get_header("Origin")
    fetch_site = request.get_header("Sec-Fetch-Site")
    if origin is not None and origin.strip().lower() != own:
        raise Forbidden(f"cross-site request refused (Origin {origin.strip()!r})")
    if fetch_site is not None and fetch_site.strip().lower() not in OWN_SITE:
        raise Forbidden(f"cross-site request refused (Sec-Fetch-Site {fetch_site!r})")


def plain_tree(
    base_url: str,
    render: Callable[[OpusError], bottle.HTTPResponse] = plain_error,
    fault: Callable[[], bottle.HTTPResponse] = server_fault,
) -> bottle.Bottle:
    """A new tree whose errors are rendered as plain text (or by ``render`` and
    ``fault``: routes/negotiation.py), refusing cross-site changes."""
    tree = bottle.Bottle()
    # The first plugin installed wraps the others: it renders their refusals too.
    tree.install(error_plugin(render, fault))
    tree.install(same_origin_plugin(base_url))
    return tree


def caller(authn: Authenticator) -> Caller:
    """The caller of the current request (Unauthorized without valid credentials,
    TooManyRequests after too many failures). Failures count by the connection's own
    address, REMOTE_ADDR, or the client's a trusted proxy names (bottle's remote_addr
    would believe any X-Forwarded-For). Without an Authorization header, a session
    cookie stands for its user (session_caller)."""
    request = bottle.request
    if authn.sessions is not None and not request.get_header("Authorization"):
        cookie = session_cookie(request.get_header("Cookie"))
        if cookie is not None:
            return session_caller(authn, authn.sessions, cookie)
    address = authn.client_address(
        request.environ.get("REMOTE_ADDR") or "", request.get_header("X-Forwarded-For")
    )
    return authn.caller(request.get_header("Authorization", ""), address)


# Where the session of a cookie-authenticated request is kept for its route.
SESSION_KEY = "opus.session"
# Room for multipart boundaries and form fields around the uploaded files (as uws.py).
FORM_OVERHEAD = 1024 * 1024
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


def session_caller(authn: Authenticator, sessions: SessionManager, cookie: str) -> Caller:
    """The user of the session of ``cookie``, after the CSRF check of a request that
    changes something (check_csrf). A cookie that is no session's counts as none: the
    caller is ``anonymous`` under ALLOW_ANONYMOUS, else SessionRefused (401)."""
    session = sessions.session_of(cookie)
    if session is None:
        if authn.settings.ALLOW_ANONYMOUS:
            return Caller(ANONYMOUS)
        raise SessionRefused("session ended: sign in again")
    check_csrf(session, authn.settings.MAX_UPLOAD_SIZE)
    bottle.request.environ[SESSION_KEY] = session
    return Caller(session.user_name, frozenset(session.roles))


def check_csrf(session: Session, max_upload_size: int) -> None:
    """Forbidden unless a request that changes something (POST, PUT, PATCH, DELETE)
    carries ``session``'s CSRF token: header X-CSRF-Token, or form field csrf_token of
    a form body (read through bottle's cached form, so an upload is parsed once; a body
    larger than ``max_upload_size`` plus the form overhead is refused unread, 413)."""
    request = bottle.request
    if request.method not in CHANGING_METHODS:
        return
    token = request.get_header(CSRF_HEADER)
    if token is None and request.content_type.lower().startswith(FORM_TYPES):
        if request.content_length > max_upload_size + FORM_OVERHEAD:
            raise PayloadTooLarge(
                f"request body of {request.content_length} bytes exceeds MAX_UPLOAD_SIZE "
                f"({max_upload_size} bytes)"
            )
        try:
            value = request.forms.get(CSRF_FIELD)
        except (UnicodeError, ValueError) as exc:
            raise BadRequest(f"unreadable form data: {exc}") from None
        token = value if isinstance(value, str) else None
    if not session.csrf_matches(token):
        raise Forbidden("missing or wrong CSRF token")


def request_session() -> Session | None:
    """The session the current request was authenticated by (once ``caller`` has run),
    or None: a page renders its forms with the session's ``csrf_token``."""
    session = bottle.request.environ.get(SESSION_KEY)
    return session if isinstance(session, Session) else None


def without_csrf_field(pairs: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """The form's (name, value) pairs without the csrf_token field of a request made
    with a session (a reserved name: no job parameter is called that)."""
    if SESSION_KEY not in bottle.request.environ:
        return list(pairs)
    return [(name, value) for name, value in pairs if name != CSRF_FIELD]


def job_form(
    request: bottle.BaseRequest, max_upload_size: int
) -> tuple[dict[str, str], dict[str, str], list[Upload]]:
    """(job parameters, UWS control parameters upper-cased, uploads) of a request that
    creates a job or changes its parameters: the query string and the body form
    together, a name given twice refused. A body larger than ``max_upload_size`` plus
    the form overhead is refused unread (413)."""
    length = request.content_length
    if length > max_upload_size + FORM_OVERHEAD:
        raise PayloadTooLarge(
            f"request body of {length} bytes exceeds MAX_UPLOAD_SIZE ({max_upload_size} bytes)"
        )
    pairs = without_csrf_field(form_values(request))
    file_fields = set(request.files.keys())
    values = single_values((k, v) for k, v in pairs if k not in file_fields)
    control = {k.upper(): v for k, v in values.items() if k.upper() in CONTROL_PARAMETERS}
    params = {k: v for k, v in values.items() if k.upper() not in CONTROL_PARAMETERS}
    uploads = [
        Upload(field=name, filename=upload.raw_filename or name, stream=upload.file)
        for name, upload in request.files.allitems()
    ]
    return params, control, uploads


def text(body: str, status: int = 200, etag: str | None = None) -> bottle.HTTPResponse:
    headers = {"Content-Type": TEXT_CONTENT_TYPE}
    if etag is not None:
        headers["ETag"] = etag
    return bottle.HTTPResponse(body=body, status=status, headers=headers)


def xml(body: bytes | Iterable[bytes], etag: str | None = None) -> bottle.HTTPResponse:
    headers = {"Content-Type": XML_CONTENT_TYPE}
    if etag is not None:
        headers["ETag"] = etag
    return bottle.HTTPResponse(body=body, headers=headers)


def see_other(base_url: str, path: str) -> bottle.HTTPResponse:
    """A 303 to ``path`` under the server's BASE_URL.

    Never built from the request: its Host and X-Forwarded-* headers are the client's
    to choose, and a redirect must not send anybody elsewhere.
    """
    return bottle.HTTPResponse(status=303, headers={"Location": base_url + path})


def etag_matches(header: str | None, etag: str) -> bool:
    """Whether an If-None-Match header names ``etag`` (weak comparison, RFC 9110)."""
    if not header:
        return False
    if header.strip() == "*":
        return True
    return any(tag.strip().removeprefix("W/") == etag for tag in header.split(","))


def not_modified(etag: str) -> bottle.HTTPResponse:
    """A 304 for a client whose copy is current."""
    return bottle.HTTPResponse(status=304, headers={"ETag": etag})


def unless_current(etag: str, answer: Callable[[], bottle.HTTPResponse]) -> bottle.HTTPResponse:
    """304 if the request's If-None-Match names ``etag``, else ``answer()``."""
    if etag_matches(bottle.request.get_header("If-None-Match"), etag):
        return not_modified(etag)
    return answer()


def form_values(request: bottle.BaseRequest) -> list[tuple[str, str]]:
    """Every (name, value) of the query string and the body form, decoded as UTF-8."""
    # Query and body are decoded separately: bottle leaves url-encoded values as
    # latin-1 (recoded by decode()) but multipart fields already decoded, and
    # request.params would recode those a second time (garbling or refusing non-ASCII).
    try:
        pairs = list(request.query.decode().allitems())
        pairs += request.forms.decode().allitems()
    except (UnicodeError, ValueError) as exc:
        raise BadRequest(f"unreadable form data: {exc}") from None
    return pairs


def single_values(pairs: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Name → value; a name given twice (any case) is refused."""
    result: dict[str, str] = {}
    seen: set[str] = set()
    for name, value in pairs:
        if name.lower() in seen:
            raise BadRequest(f"parameter {name!r} given more than once")
        seen.add(name.lower())
        result[name] = value
    return result


def control_value(pairs: Iterable[tuple[str, str]], name: str) -> list[str]:
    """All values of a UWS control parameter (names are case-insensitive)."""
    return [value for key, value in pairs if key.upper() == name]
