"""The one error family of OPUS: a refused request, with the HTTP status it maps to.

The service and everything below it raise these; each HTTP tree renders them its own
way (one text line for UWS, a SCIM Error for SCIM), and anything that is not an
OpusError is a server fault (500, logged with its traceback). ``str(error)`` is the
one-line reason a client sees, so it never holds secrets or tracebacks.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

# What a 401 asks for: HTTP Basic ``name:token`` (as OPUS clients always sent) or a
# Bearer token.
AUTH_CHALLENGE = 'Basic realm="OPUS", Bearer realm="OPUS"'


class OpusError(Exception):
    """A request OPUS refuses; ``str(error)`` is the one-line reason sent to the client."""

    status = 400
    # Headers every rendering of this error carries (the challenge of a 401).
    headers: Mapping[str, str] = MappingProxyType({})
    # The request parameter refused, where one is to blame (BadRequest).
    field: str | None = None


class BadRequest(OpusError):
    """A malformed or invalid value (400); ``field`` names the parameter refused, where
    it is known (a JSON error answer carries it)."""

    status = 400

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class Unauthorized(OpusError):
    """No credentials, or credentials that identify nobody (401 with a challenge)."""

    status = 401
    headers: Mapping[str, str] = MappingProxyType({"WWW-Authenticate": AUTH_CHALLENGE})


class Forbidden(OpusError):
    """Not allowed now: illegal in the job's phase, or not the caller's job (403)."""

    status = 403


class NotFound(OpusError):
    """No such job, job type or resource (404)."""

    status = 404


class Conflict(OpusError):
    """A signal that breaks the phase table (409)."""

    status = 409


class PayloadTooLarge(OpusError):
    """An upload or fetched input larger than MAX_UPLOAD_SIZE, or past what its owner's
    jobs may store (STORAGE_PER_USER_MAX) (413)."""

    status = 413


class TooManyRequests(OpusError):
    """Refused for a while, after too many failed authentications (429 with Retry-After)."""

    status = 429

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = max(1, retry_after)
        self.headers = MappingProxyType({"Retry-After": str(self.retry_after)})
