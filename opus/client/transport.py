"""The HTTP side of the client: one server, its credentials, negotiation and refusals.

``Transport`` holds a requests session for one server (its base URL) and sends every
request the library makes. Three rules live here and nowhere else:

- **Credentials go to the server's own origin only** (scheme, host and port of the
  base URL): a result or a job URL elsewhere is fetched without them, and requests
  drops them on a redirect to another host.
- **JSON when offered, UWS XML otherwise.** Documents are asked for with an Accept
  header preferring JSON (``json=True``, OPUS answers it) and read by the type the
  server actually answered: a server without JSON sends its XML, read by uwsdoc.py.
  ``json=False`` asks for XML only, as a plain UWS client does.
- **Every failure is an OpusError** (errors.py): a 4xx becomes the refusal of its
  status with the server's one-line reason (the JSON error's ``message`` and
  ``field``, or the first line of a text answer); a 5xx or an unreadable answer a
  ServerError; no answer at all Unreachable, with the operating system's reason.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urljoin, urlsplit

import requests
from requests.auth import AuthBase, HTTPBasicAuth

from opus import __version__
from opus.client.errors import (
    REFUSALS,
    OpusError,
    RequestRefused,
    ServerError,
    TooManyRequests,
    Unreachable,
)

JSON_ACCEPT = "application/json, text/xml;q=0.5, */*;q=0.1"
XML_ACCEPT = "text/xml, application/xml;q=0.9, */*;q=0.1"
# Error bodies longer than this are nobody's one-line reason: not read.
MAX_REASON_BODY = 64 * 1024
MAX_REASON = 500
DEFAULT_TIMEOUT = 60.0
_ERRNO = re.compile(r"\[Errno -?\d+\] ([^'\")]+)")


class BearerAuth(AuthBase):
    """``Authorization: Bearer token``."""

    def __init__(self, token: str) -> None:
        self.token = token

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"Bearer {self.token}"
        return request


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    port = parts.port or {"http": 80, "https": 443}.get(scheme)
    return scheme, (parts.hostname or "").lower(), port


def media_type(response: requests.Response) -> str:
    """The answer's media type, lowercase, without parameters."""
    return response.headers.get("Content-Type", "").split(";")[0].strip().lower()


def is_json(response: requests.Response) -> bool:
    kind = media_type(response)
    return kind == "application/json" or kind.endswith("+json")


def is_xml(response: requests.Response) -> bool:
    kind = media_type(response)
    return kind in ("text/xml", "application/xml") or kind.endswith("+xml")


def json_of(response: requests.Response) -> Any:
    """The answer's JSON value; ServerError when it is not JSON."""
    try:
        return response.json()
    except ValueError:
        raise ServerError(
            f"the server's answer to {response.url} is not JSON", status=response.status_code
        ) from None


class Transport:
    """Requests to one server: ``url`` is its base (``https://host/opus``), ``token``
    (with ``user``: HTTP Basic ``user:token``; alone: Bearer) its credentials, None for
    none (anonymous access)."""

    def __init__(
        self,
        url: str,
        token: str | None = None,
        user: str | None = None,
        *,
        json: bool = True,
        timeout: float = DEFAULT_TIMEOUT,
        session: requests.Session | None = None,
        verify: bool | str = True,
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http or https URL: {url!r}")
        self.base = url.rstrip("/")
        self.json = json
        self.timeout = timeout
        self.user = user
        self.session = session or requests.Session()
        self.session.headers["User-Agent"] = f"opus-client/{__version__}"
        self.session.verify = verify
        self._origin = _origin(self.base)
        self._auth: AuthBase | None = None
        if token:
            self._auth = HTTPBasicAuth(user, token) if user else BearerAuth(token)

    @property
    def has_credentials(self) -> bool:
        return self._auth is not None

    @property
    def accept(self) -> str:
        """The Accept header of documents: JSON preferred, or XML only."""
        return JSON_ACCEPT if self.json else XML_ACCEPT

    def absolute(self, path_or_url: str) -> str:
        """A URL of this server from a path (``/rest/sleep``), or a URL as it is."""
        if "://" in path_or_url:
            return path_or_url
        return self.base + "/" + path_or_url.lstrip("/")

    def same_origin(self, url: str) -> bool:
        """Whether ``url`` is on this server (the only place credentials are sent)."""
        return _origin(url) == self._origin

    def request(
        self,
        method: str,
        url: str,
        *,
        expect: Iterable[int] = (200,),
        accept: str | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
        **kwargs: Any,
    ) -> requests.Response:
        """Send a request (redirects are not followed unless ``allow_redirects``;
        Accept is the documents' unless given); the answer if its status is one of
        ``expect``, else the OpusError it means."""
        url = self.absolute(url)
        sent = dict(headers or {})
        # Documents as negotiated; refusals too (OPUS's JSON errors name the field).
        sent["Accept"] = self.accept if accept is None else accept
        kwargs.setdefault("allow_redirects", False)
        try:
            response = self.session.request(
                method,
                url,
                headers=sent,
                auth=self._auth if self.same_origin(url) else None,
                timeout=self.timeout if timeout is None else timeout,
                **kwargs,
            )
        except requests.Timeout:
            raise Unreachable(
                f"{self._shown(url)} did not answer within {timeout or self.timeout:g} s", url=url
            ) from None
        except requests.RequestException as exc:
            raise Unreachable(f"cannot reach {self._shown(url)}: {_cause(exc)}", url=url) from None
        if response.status_code in set(expect):
            return response
        error = refusal(response)
        response.close()
        raise error

    def get(self, url: str, **kwargs: Any) -> requests.Response:
        return self.request("GET", url, **kwargs)

    def document(
        self, url: str, params: Mapping[str, Any] | list[tuple[str, str]] | None = None, **kw: Any
    ) -> requests.Response:
        """GET a UWS document, negotiated (``is_json`` tells which form came)."""
        return self.request("GET", url, params=params, **kw)

    def see_other(self, response: requests.Response) -> str:
        """The absolute URL a 303 (or another redirect) points to."""
        location = response.headers.get("Location")
        if not location:
            raise ServerError(
                f"the server answered {response.status_code} without a Location",
                status=response.status_code,
                url=response.url,
            )
        return urljoin(response.url, location)

    def _shown(self, url: str) -> str:
        parts = urlsplit(url)
        return f"{parts.scheme}://{parts.netloc}"


def _cause(exc: requests.RequestException) -> str:
    """The operating system's reason inside a requests error (``Connection refused``),
    or its class when there is none."""
    text = str(exc)
    found = _ERRNO.search(text)
    if found:
        return found.group(1).strip()
    if isinstance(exc, requests.exceptions.SSLError):
        return "TLS failed (" + text.split("(Caused by ")[-1].rstrip(")")[:200] + ")"
    if "Name or service not known" in text or "nodename nor servname" in text:
        return "unknown host"
    return type(exc).__name__


def refusal(response: requests.Response) -> OpusError:
    """The error an answer of status ≥ 300 (other than an expected one) means."""
    status = response.status_code
    reason, field = _reason(response)
    url = response.url
    if status == 429:
        try:
            retry = int(response.headers.get("Retry-After", "1"))
        except ValueError:
            retry = 1
        return TooManyRequests(reason, status=status, url=url, retry_after=retry)
    if 400 <= status < 500:
        cls = REFUSALS.get(status, RequestRefused)
        return cls(reason, status=status, url=url, field=field)
    return ServerError(reason, status=status, url=url)


def _reason(response: requests.Response) -> tuple[str, str | None]:
    """The server's one-line reason, and the field it blamed (JSON errors)."""
    fallback = f"{response.status_code} {response.reason or ''}".strip()
    length = response.headers.get("Content-Length", "")
    if length.isdigit() and int(length) > MAX_REASON_BODY:
        return fallback, None
    body = response.content[:MAX_REASON_BODY]
    if is_json(response):
        try:
            value = response.json()
        except ValueError:
            return fallback, None
        error = value.get("error") if isinstance(value, dict) else None
        if isinstance(error, dict) and error.get("message"):
            field = error.get("field")
            return _line(str(error["message"])), field if isinstance(field, str) else None
        if isinstance(value, dict) and value.get("detail"):  # SCIM's errors
            return _line(str(value["detail"])), None
        return fallback, None
    if media_type(response) == "text/plain":
        text = body.decode("utf-8", "replace").strip()
        if text:
            return _line(text), None
    return fallback, None


def _line(text: str) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line[:MAX_REASON]
