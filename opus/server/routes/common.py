"""Helpers shared by the route modules: form reading, text and XML answers."""

from __future__ import annotations

from collections.abc import Iterable

import bottle

from opus.server.errors import BadRequest
from opus.server.uwsxml import XML_CONTENT_TYPE

TEXT_CONTENT_TYPE = "text/plain; charset=UTF-8"
JOB_ID_PATTERN = r"[a-z2-7]{1,64}"
JOBNAME_PATTERN = r"[A-Za-z][A-Za-z0-9_-]{0,63}"


def text(body: str, status: int = 200) -> bottle.HTTPResponse:
    return bottle.HTTPResponse(
        body=body, status=status, headers={"Content-Type": TEXT_CONTENT_TYPE}
    )


def xml(body: bytes | Iterable[bytes]) -> bottle.HTTPResponse:
    return bottle.HTTPResponse(body=body, headers={"Content-Type": XML_CONTENT_TYPE})


def see_other(location: str) -> bottle.HTTPResponse:
    """A 303 to ``location`` (absolute URL built from the request)."""
    absolute = bottle.urljoin(bottle.request.url, location)
    return bottle.HTTPResponse(status=303, headers={"Location": absolute})


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
