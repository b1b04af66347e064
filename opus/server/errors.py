"""Domain errors, each carrying the HTTP status the REST layer answers with."""

from __future__ import annotations


class OpusError(Exception):
    """A request OPUS refuses; ``str(error)`` is the one-line reason sent to the client."""

    status = 400


class BadRequest(OpusError):
    """A malformed or invalid value (400)."""

    status = 400


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
    """An upload or fetched input larger than MAX_UPLOAD_SIZE (413)."""

    status = 413
