"""Progress reports of job scripts: how far a running job got, in its own words.

A job's script calls ``opus_progress PERCENT [MESSAGE]`` (scripts.py), which posts
to /handler/job_progress with the job's own token, at most once a second. The report
is checked here like a phase signal (JobService.signal: the job's token, no user),
then kept as the job's latest (storage/progress.py; the job shows it in its XML, its
JSON and its page):

- the percentage is a number from 0 to 100 (an integer or a decimal, kept to two
  decimals); the message is the script's text, cut to MESSAGE_MAX characters, without
  control characters (it is shown in XML, JSON and a page, on one line);
- a report is taken while the job is QUEUED or EXECUTING: the batch script reports
  EXECUTING in the background, so a first report may arrive before it does; a job
  that has ended takes no more (Conflict), and keeps its last one;
- at most one report per MIN_INTERVAL (TooManyRequests, retried by the script's
  sender a second later): the sender keeps a second between two posts, so only a
  script posting by itself, faster, meets this limit, and the database is not written
  at its pace.

A report wakes nobody: UWS's WAIT waits for a phase change, and the job page reads
the job every few seconds while it executes (static/js/job.js).
"""

from __future__ import annotations

import hmac
import re
import unicodedata
from datetime import timedelta

from opus.core.errors import BadRequest, Conflict, Forbidden, NotFound, TooManyRequests
from opus.core.phases import Phase
from opus.core.records import Job
from opus.core.times import utcnow
from opus.server.auth import hash_token
from opus.server.service.jobs import JobService

REPORTING = frozenset({Phase.QUEUED, Phase.EXECUTING})
MESSAGE_MAX = 200
MIN_INTERVAL = timedelta(seconds=0.5)
_PERCENT = re.compile(r"\s*([0-9]{1,3}(?:\.[0-9]*)?|\.[0-9]+)\s*")
_LINE_BREAKS = re.compile(r"[\t\n\r]+")


def parse_percent(text: str) -> float:
    """The percentage ``text`` writes (0 to 100, two decimals kept); BadRequest naming
    ``percent`` for anything else (a sign, an exponent, a unit, NaN)."""
    found = _PERCENT.fullmatch(text)
    value = float(found.group(1)) if found else -1.0
    if not 0 <= value <= 100:
        raise BadRequest(f"percent {text[:40]!r} is not a number from 0 to 100", "percent")
    return round(value, 2)


def clean_message(text: str) -> str | None:
    """The message as a job's progress shows it (None for none): on one line, without
    the characters XML cannot carry nor other control characters, at most MESSAGE_MAX
    characters."""
    line = _LINE_BREAKS.sub(" ", text)
    kept = "".join(
        char
        for char in line
        if unicodedata.category(char) not in ("Cc", "Cs") and char not in "\ufffe\uffff"
    )
    return kept.strip()[:MESSAGE_MAX].strip() or None


def report_progress(
    service: JobService, job_id: str, token: str, percent_text: str, message: str = ""
) -> Job:
    """Keep a progress report of a job's script as the job's latest; the job with it.

    NotFound for an unknown job, Forbidden for a wrong token, BadRequest for a
    percentage that is not one, Conflict for a job that is not running (any more),
    TooManyRequests for a report less than MIN_INTERVAL after the last one.
    """
    store = service.store
    job = store.get_job(job_id)
    if job is None:
        raise NotFound(f"no job {job_id!r}")
    if not token or not hmac.compare_digest(hash_token(token), job.token_hash):
        raise Forbidden("wrong or missing job token")
    percent = parse_percent(percent_text)
    now = utcnow()
    stored = store.progress.record(
        job.id, percent, clean_message(message), now, REPORTING, now - MIN_INTERVAL
    )
    current = store.get_job(job.id)
    if current is None:
        raise NotFound(f"job {job.id} was deleted")
    if stored:
        return current
    if current.phase not in REPORTING:
        raise Conflict(f"job {job.id} is {current.phase}: it takes no progress report")
    seconds = MIN_INTERVAL.total_seconds()
    raise TooManyRequests(f"job {job.id} reported its progress less than {seconds} s ago", 1)
