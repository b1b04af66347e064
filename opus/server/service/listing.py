"""What the caller may see listed: the job types, job lists, and the change feed.

A part of JobService (its base class, so that jobs.py keeps the life cycle): the same
access rules, applied here for lists. A job list holds the caller's jobs, every
owner's for an admin. The UWS list of one type streams (``list_jobs``); the pages and
JSON clients get a page at a time, newest first, of every type or some, with a cursor
(``list_user_jobs``: keyset paging, storage/listing.py); an admin may ask for one
owner's jobs, nobody else for another's (Forbidden, not an empty list: the request is
refused, never silently answered with the caller's own jobs). A live page follows the change
feed (``changes``, ``wait_changes``): the caller's jobs changed since a token, and a
new token, so that it never polls in a loop (storage/changes.py tells why a token never
misses a change and does not depend on any clock). Waiting for changes holds this
thread; under `opus serve` the request is parked instead (parking.py).
"""

from __future__ import annotations

import base64
import binascii
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime

from opus.core import access
from opus.core.access import Caller
from opus.core.errors import BadRequest, Forbidden, NotFound
from opus.core.phases import Phase
from opus.core.records import JobChanges, JobPage, JobSummary
from opus.core.times import parse_time
from opus.server.jdl import JDLRegistry, JobDefinition
from opus.server.notify import EVERYBODY, PhaseNotifier
from opus.server.service.definitions import KeptDefinitions
from opus.server.storage import JobStore
from opus.server.storage.listing import ListFilter, Position
from opus.server.waiting import CLIENT_CHECK_SECONDS, RECHECK_SECONDS
from opus.settings import Settings

# Jobs on a page: the default and the most asked for.
PAGE_SIZE = 50
PAGE_SIZE_MAX = 500
# Rows a page request reads at most (storage/listing.py): what bounds a search.
SCAN_BUDGET = 5000
# Changes one answer of the feed tells at most; past it, the answer says reload.
CHANGES_MAX = 500


def _position_of(job: JobSummary) -> Position:
    return Position(job.creation_time, job.job_id)


def encode_cursor(position: Position) -> str:
    """The opaque cursor of a list position."""
    when = position.creation_time.astimezone(UTC).isoformat(timespec="microseconds")
    text = f"{when}/{position.job_id}"
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> Position:
    """The position of a cursor; BadRequest (naming CURSOR) if it is not one."""
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        when, _, job_id = text.partition("/")
        if not job_id or len(cursor) > 200:
            raise ValueError(cursor)
        return Position(parse_time(when), job_id)
    except (ValueError, binascii.Error, UnicodeError):
        raise BadRequest(
            f"CURSOR {cursor[:40]!r} is not a cursor of a job list", "CURSOR"
        ) from None


class JobListing:
    """JobService's job types, lists and change feed (the attributes are JobService's)."""

    settings: Settings
    store: JobStore
    registry: JDLRegistry
    notifier: PhaseNotifier
    kept: KeptDefinitions

    # -- job types ----------------------------------------------------------------------

    def job_types(self, caller: Caller) -> list[str]:
        """The names of the job types the caller may use, sorted."""
        check = self.settings.CHECK_PERMISSIONS
        return [n for n in self.registry.names() if access.may_use(caller, n, check)]

    def definition(self, jobname: str) -> JobDefinition:
        """The definition of a job type; NotFound (naming the available ones) if none."""
        jdl = self.registry.get(jobname)
        if jdl is None:
            available = ", ".join(self.registry.names()) or "none"
            raise NotFound(f"no job type named {jobname!r} (available: {available})")
        return jdl

    def usable_definition(self, caller: Caller, jobname: str) -> JobDefinition:
        """The definition of a job type the caller may create jobs of.

        NotFound for an unknown type, Forbidden when no role of the caller grants it.
        """
        jdl = self.definition(jobname)
        if not access.may_use(caller, jobname, self.settings.CHECK_PERMISSIONS):
            raise Forbidden(f"{caller.name} may not create {jobname} jobs (no role grants it)")
        return jdl

    # -- lists --------------------------------------------------------------------------

    def list_jobs(
        self,
        caller: Caller,
        jobname: str,
        phases: Sequence[Phase] = (),
        after: datetime | None = None,
        last: int | None = None,
    ) -> Iterator[JobSummary]:
        """The caller's jobs of a type (every owner's for an admin), streamed.

        Oldest first, or the ``last`` newest, newest first; ``phases`` empty means
        every phase but ARCHIVED. NotFound for a type that never was (a retired
        type's jobs are still listed).
        """
        if not self.kept.known(jobname):
            self.definition(jobname)  # raises NotFound, naming the types there are
        owner = None if caller.is_admin else caller.name
        return self.store.list_jobs(jobname, phases, after, last, owner=owner)

    def list_user_jobs(
        self,
        caller: Caller,
        types: Sequence[str] = (),
        phases: Sequence[Phase] = (),
        run_id: str | None = None,
        cursor: str | None = None,
        limit: int = PAGE_SIZE,
        after: datetime | None = None,
        newer: str | None = None,
        owner: str | None = None,
    ) -> JobPage:
        """A page of the jobs the caller may see (its own; every owner's for an admin),
        newest first (by creation time, then id).

        ``types``: the job types listed (empty: every type of the server; NotFound for
        an unknown one). ``phases``: empty lists every phase but ARCHIVED. ``run_id``:
        only jobs whose run id contains it, in any case. ``after``: only jobs created
        strictly later. ``cursor``: the ``next_cursor`` of the page before (BadRequest
        naming CURSOR if it is not one). ``limit``: 1 to PAGE_SIZE_MAX jobs (BadRequest
        naming LAST otherwise). A page reads at most SCAN_BUDGET jobs: a search may
        return fewer jobs than ``limit`` with a ``next_cursor`` to go on from.
        ``newer``: the ``newer_cursor`` of the page after (the way back, instead of
        ``cursor``); past the newest jobs, the first page. ``owner``: only the jobs of
        this owner (Forbidden for another owner than the caller unless
        the caller is an admin).
        """
        if not 1 <= limit <= PAGE_SIZE_MAX:
            raise BadRequest(f"LAST must be from 1 to {PAGE_SIZE_MAX}, not {limit}", "LAST")
        for jobname in types:
            if not self.kept.known(jobname):
                self.definition(jobname)  # NotFound, naming the types there are
        before = decode_cursor(cursor) if cursor else None
        where = ListFilter(
            owner=self._listed_owner(caller, owner),
            # Retired types' jobs and trial jobs of drafts are listed too.
            jobnames=tuple(dict.fromkeys(types)) or tuple(self.kept.all_names()),
            phases=tuple(dict.fromkeys(phases)),
            run_id=run_id or None,
            after=after,
        )
        # The token first: a change between the two reads is reported again, not lost.
        token = self.store.changes.token()
        if not where.jobnames:
            return JobPage((), None, token)
        if newer:
            newer_than = decode_cursor(newer)
            jobs, top = self.store.lists.newer_page(where, newer_than, limit, SCAN_BUDGET)
            if top is not None:
                oldest = _position_of(jobs[-1]) if jobs else newer_than
                return JobPage(tuple(jobs), encode_cursor(oldest), token, encode_cursor(top))
            before = None  # the newest jobs are reached: the first page, full
        jobs, position = self.store.lists.page(where, before, limit, SCAN_BUDGET)
        next_cursor = None if position is None else encode_cursor(position)
        newer_cursor = None
        if before is not None:
            newer_cursor = encode_cursor(_position_of(jobs[0]) if jobs else before)
        return JobPage(tuple(jobs), next_cursor, token, newer_cursor)

    @staticmethod
    def _listed_owner(caller: Caller, owner: str | None) -> str | None:
        """The owner a list is limited to (None: every owner's, for an admin)."""
        if owner is None:
            return None if caller.is_admin else caller.name
        if owner != caller.name and not caller.is_admin:
            raise Forbidden(f"only admins may list the jobs of another owner ({owner!r})")
        return owner

    def job_counts(self, caller: Caller, phases: Sequence[Phase]) -> dict[Phase, int]:
        """How many jobs of every owner are in each of ``phases`` now (the server's
        status page); Forbidden unless the caller is an admin."""
        if not caller.is_admin:
            raise Forbidden("the server's job counts are for admins only")
        return self.store.lists.phase_counts(tuple(dict.fromkeys(phases)))

    # -- the change feed ----------------------------------------------------------------

    def changes_token(self) -> str:
        """A token of the change feed as it is now (GET /changes without ``since``)."""
        return self.store.changes.token()

    def changes(self, caller: Caller, since: str) -> JobChanges:
        """The caller's jobs (every owner's for an admin) changed since the token
        ``since``, deleted or not, and the token to ask from next; ``reset`` when the
        changes cannot be told (reload the list). BadRequest (naming since) for a token
        that is not one of this server's."""
        owner = None if caller.is_admin else caller.name
        try:
            found = self.store.changes.since(since, owner, CHANGES_MAX)
        except ValueError as exc:
            raise BadRequest(str(exc), "since") from None
        names = set(self.registry.names())
        if all(job.jobname in names for job in found.jobs):
            return found
        # Jobs of a type the server no longer has are in no list either.
        kept = tuple(job for job in found.jobs if job.jobname in names)
        return JobChanges(kept, found.deleted, found.token, found.reset)

    def wait_changes(
        self,
        caller: Caller,
        since: str,
        timeout: float,
        connected: Callable[[], bool] | None = None,
    ) -> JobChanges:
        """The changes since ``since`` as soon as there are some, or none after
        ``timeout`` seconds (with a token as fresh as the last look); holds the thread,
        less if ``connected`` says the client went. Raises like ``changes``. Past the
        notifier's cap on waiting threads, it answers at once."""
        deadline = time.monotonic() + timeout
        owner = EVERYBODY if caller.is_admin else caller.name
        token = since
        while True:
            with self.notifier.watch(owner) as watcher:
                # Watching before the read: a change between the two still wakes us.
                found = self.changes(caller, token)
                if not found.empty or watcher is None or time.monotonic() >= deadline:
                    return found
                token = found.token
                recheck = min(deadline, time.monotonic() + RECHECK_SECONDS)
                while time.monotonic() < recheck:
                    step = recheck - time.monotonic()
                    if connected is not None:
                        step = min(step, CLIENT_CHECK_SECONDS)
                    if watcher.wait(max(0.0, step)) is not None:
                        break
                    if connected is not None and not connected():
                        return found
