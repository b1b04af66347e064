"""SharedLinks: capability links that let a program read one result without credentials.

A SAMP tool (TOPCAT, Aladin) told to load a result's URL fetches it itself, without the
user's session cookie. So the job page asks for a shared link: a random token (256
bits, ``secrets``), of which the database keeps only the SHA-256, tied to one result of
one job, read-only, ending SHARED_LINK_LIFETIME seconds after it was made. Only who may
read the result may make one (``create`` takes the caller and applies the service's
access rules). ``open`` needs no caller: the token is the authority. A link ends when it
expires, when its job is deleted (the row goes with the job) or archived (no results),
and an unknown, ended or malformed token is NotFound, the same answer for every case.
Ended links are swept when a link is made.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from opus.core.access import Caller
from opus.core.errors import NotFound
from opus.core.records import Result
from opus.core.times import utcnow
from opus.server.auth import hash_token
from opus.server.nofollow import OpenFile
from opus.server.service.jobs import JobService
from opus.server.storage.shared import SharedLinkStore, StoredLink

TOKEN_BYTES = 32
GONE = "no such shared link: it is unknown, has ended, or its job is gone"


@dataclass(frozen=True)
class SharedLink:
    """A link just made: its token (shown once, never stored), URL and end."""

    token: str
    url: str
    expires: datetime
    result: Result


class SharedLinks:
    """Making and following shared links of results, on top of the JobService."""

    def __init__(
        self,
        service: JobService,
        store: SharedLinkStore,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.service = service
        self.store = store
        self.clock = clock

    def now(self) -> datetime:
        """The time links are made and checked at (``clock``'s, else the real one)."""
        return self.clock() if self.clock is not None else utcnow()

    @classmethod
    def on(cls, service: JobService) -> SharedLinks:
        """The shared links of ``service``'s database."""
        return cls(service, SharedLinkStore(service.store.engine))

    @property
    def lifetime(self) -> timedelta:
        return timedelta(seconds=self.service.settings.SHARED_LINK_LIFETIME)

    def create(self, caller: Caller, jobname: str, job_id: str, result_id: str) -> SharedLink:
        """A new link of result ``result_id`` of the job, for ``caller``.

        NotFound for an unknown job, result or a file that is gone; Forbidden for a job
        the caller may not read, or a result file that is a link (as ``result_file``).
        """
        self.service.get_job(caller, jobname, job_id)
        result, opened = self.service.result_file(caller, job_id, result_id)
        opened.close()
        now = self.now()
        token = secrets.token_urlsafe(TOKEN_BYTES)
        link = StoredLink(job_id, result.result_id, caller.name, now, now + self.lifetime)
        self.store.sweep(now)
        if not self.store.create(hash_token(token), link):
            raise NotFound(f"no job {job_id!r}")
        url = f"{self.service.settings.BASE_URL}/shared/{token}"
        return SharedLink(token, url, link.expires, result)

    def open(self, token: str) -> tuple[Result, OpenFile]:
        """The result a link reads and its file, open without following links (close
        it). NotFound for an unknown or ended token, a deleted job, a result gone."""
        link = self.store.find(hash_token(token), self.now())
        if link is None:
            raise NotFound(GONE)
        details = self.service.store.get_details(link.job_id)
        result = details.result(link.result_id) if details is not None else None
        if result is None:
            raise NotFound(GONE)
        return result, self.service.files.open_result(link.job_id, result)
