"""The errors of the Python client: what the server refused, and why, in one family.

Every call of the library that fails raises an ``OpusError``: a refusal of the server
(a 4xx, ``RequestRefused`` and its subclasses, one per status a script may want to
catch), a fault of the server or of the way to it (``ServerError``: a 5xx, an answer
that is not what UWS says, or no answer at all, ``Unreachable``), a job that ended
badly (``JobFailed``, raised by ``Job.wait(raise_on_error=True)`` and
``Job.raise_if_error()``), a wait that ran out of time (``WaitTimeout``), or a saved
login that is missing or unreadable (``LoginError``). ``str(error)`` is the server's
own one-line reason when it gave one (OPUS always does), and ``error.status`` the HTTP
status (None when there was no answer).

These are the client's errors, not the server's (``opus.core.errors``, which the
service raises to make a 4xx): the names match where they mean the same refusal.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from opus.core.phases import Phase

if TYPE_CHECKING:
    from opus.client.models import ErrorSummary, JobInfo


class OpusError(Exception):
    """A call of the client that failed; ``str(error)`` says why in one line."""

    status: int | None = None

    def __init__(self, reason: str, *, status: int | None = None, url: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        if status is not None:
            self.status = status
        self.url = url


class RequestRefused(OpusError):
    """The server refused the request (a 4xx): ``field`` names the parameter it blamed,
    when it said (OPUS's JSON errors do)."""

    def __init__(
        self,
        reason: str,
        *,
        status: int | None = None,
        url: str | None = None,
        field: str | None = None,
    ) -> None:
        super().__init__(reason, status=status, url=url)
        self.field = field


class BadRequest(RequestRefused):
    """A malformed or invalid value (400): a parameter the job type refuses, say."""

    status = 400


class PayloadTooLarge(BadRequest):
    """An upload larger than the server takes, or past the owner's storage (413)."""

    status = 413


class AuthenticationFailed(RequestRefused):
    """No credentials where they are needed, or credentials the server refuses (401)."""

    status = 401


class PermissionDenied(RequestRefused):
    """Not allowed: another user's job, a job type the caller may not use, or an action
    illegal in the job's phase (403)."""

    status = 403


# The server's name for the same refusal (opus.core.errors.Forbidden).
Forbidden = PermissionDenied


class NotFound(RequestRefused):
    """No such job, job type, result or resource (404)."""

    status = 404


class Conflict(RequestRefused):
    """Not possible in the resource's state: the provenance of a job still running (409)."""

    status = 409


class TooManyRequests(RequestRefused):
    """Refused for ``retry_after`` seconds, after too many failed authentications (429)."""

    status = 429

    def __init__(
        self, reason: str, *, status: int | None = None, url: str | None = None, retry_after: int
    ) -> None:
        super().__init__(reason, status=status, url=url)
        self.retry_after = retry_after


class ServerError(OpusError):
    """A fault of the server (a 5xx), or an answer the client cannot read."""


class Unreachable(ServerError):
    """No answer: the server is down, unknown, or too slow."""


class JobFailed(OpusError):
    """A job that ended in ERROR or ABORTED; ``job`` is its last document, ``summary``
    its error summary (None when the server gave none)."""

    def __init__(self, reason: str, job: JobInfo, url: str | None = None) -> None:
        super().__init__(reason, url=url)
        self.job = job
        self.phase: Phase = job.phase
        self.summary: ErrorSummary | None = job.error


class WaitTimeout(OpusError, TimeoutError):
    """The job was still in ``phase`` when the wait's time ran out."""

    def __init__(self, reason: str, phase: Phase, url: str | None = None) -> None:
        super().__init__(reason, url=url)
        self.phase = phase


class LoginError(OpusError):
    """No saved login of that name, or a logins file that cannot be read or written."""


# The refusal of each 4xx status a script may want to catch on its own.
REFUSALS: dict[int, type[RequestRefused]] = {
    cls.status: cls
    for cls in (
        BadRequest,
        PayloadTooLarge,
        AuthenticationFailed,
        PermissionDenied,
        NotFound,
        Conflict,
    )
    if cls.status is not None
}
