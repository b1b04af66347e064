"""Time in OPUS: timezone-aware UTC everywhere, written ISO 8601 with a ``Z``.

The database, the XML documents, the JSON answers and the job directory all use
these three helpers, so a time reads and writes the same everywhere.
"""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    """The current time, UTC, truncated to milliseconds (the precision OPUS stores)."""
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def format_time(value: datetime | None) -> str:
    """ISO 8601 UTC with milliseconds and a ``Z``; empty string for None."""
    if value is None:
        return ""
    value = value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
    # Not strftime: its %Y does not pad years before 1000, which xs:dateTime requires.
    return value.isoformat(timespec="milliseconds").removesuffix("+00:00") + "Z"


def parse_time(text: str) -> datetime:
    """Parse an ISO 8601 time; a time without zone is UTC. ValueError if malformed."""
    cleaned = text.strip()
    if cleaned.endswith(("Z", "z")):
        cleaned = cleaned[:-1] + "+00:00"
    try:
        value = datetime.fromisoformat(cleaned)
    except ValueError:
        raise ValueError(f"not an ISO 8601 time: {text!r}") from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    try:
        return value.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00+01:00 is before the first datetime
        raise ValueError(f"time out of range: {text!r}") from None
