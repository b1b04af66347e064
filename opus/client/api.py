"""The Python client of OPUS: job types, submitting jobs, listing them, finding one.

```python
from opus.client import Client

client = Client("https://opus.example.org", token="…", user="alice")  # or Client.from_login()
job = client.submit("sleep", {"duration": 2})
job.wait(timeout=60, raise_on_error=True)
job.download("results/")
```

``Client`` talks to one server (its base URL, the one ``opus login`` saves) with the
caller's credentials; it needs requests and the standard library only, never the
server's packages. A job type is named (``"sleep"``: the job list ``BASE/rest/sleep``)
or given as the URL of any UWS job list (``"https://other.example.org/tap/async"``),
so the UWS parts (submit, phase, wait, results, abort, delete, the job list) work on
any UWS 1.1 server; ``types()``, ``definition()``, the lists of every type (``GET
/jobs``) and the lookup of a job by its id alone are OPUS's.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any
from urllib.parse import quote, unquote, urlsplit

from opus.client.config import Logins
from opus.client.errors import NotFound, ServerError
from opus.client.jobs_api import Job, PhaseSpec
from opus.client.models import (
    Definition,
    JobType,
    definition_from_json,
    jobref_from_json,
    jobtype_from_json,
)
from opus.client.transport import DEFAULT_TIMEOUT, Transport, is_json, json_of
from opus.client.uwsdoc import jobrefs_from_xml
from opus.core.times import format_time

if TYPE_CHECKING:
    from opus.client.batchreport import BatchReport

# A file to upload: a path, its bytes, or a file opened in binary mode.
FileSpec = str | Path | bytes | IO[bytes]
Params = Mapping[str, Any] | Iterable[tuple[str, Any]]
# OPUS's largest page of a job list.
MAX_PAGE = 500


def _text(value: Any) -> str:
    """A parameter value as a form field: booleans as xs:boolean writes them."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return format_time(value)
    return str(value)


def form_fields(params: Params | None) -> list[tuple[str, str]]:
    """Form fields from a mapping or pairs; a list or tuple value repeats its name."""
    items = params.items() if isinstance(params, Mapping) else (params or [])
    fields = []
    for name, value in items:
        for one in value if isinstance(value, list | tuple) else [value]:
            fields.append((str(name), _text(one)))
    return fields


def _phases(phase: PhaseSpec | None) -> list[str]:
    if phase is None:
        return []
    listed = [phase] if isinstance(phase, str) else list(phase)
    # As given (uppercase): the server refuses a phase it does not know, with its reason.
    return [str(p).strip().upper() for p in listed]


class Client:
    """A client of the server at ``url`` (its base URL). ``token`` with ``user`` is
    sent as HTTP Basic ``user:token``, ``token`` alone as a Bearer token, nothing for
    anonymous access. ``json=False`` reads UWS XML only, as a plain UWS client does.
    ``timeout`` bounds each request (WAITs get their own time on top)."""

    def __init__(
        self,
        url: str,
        token: str | None = None,
        user: str | None = None,
        *,
        json: bool = True,
        timeout: float = DEFAULT_TIMEOUT,
        verify: bool | str = True,
    ) -> None:
        self.transport = Transport(url, token, user, json=json, timeout=timeout, verify=verify)

    @classmethod
    def from_login(cls, name: str | None = None, **options: Any) -> Client:
        """The client of a login saved by `opus login` (``name``; None: the default).
        LoginError when there is none."""
        login = Logins().get(name)
        return cls(login.url, login.token, login.user, **options)

    @property
    def url(self) -> str:
        """The server's base URL."""
        return self.transport.base

    def __repr__(self) -> str:
        return f"<Client {self.url}>"

    def list_url(self, job_type: str) -> str:
        """The URL of a job type's job list (a URL is already one)."""
        if "://" in job_type:
            return job_type.rstrip("/")
        return f"{self.url}/rest/{quote(job_type, safe='')}"

    # -- job types ----------------------------------------------------------------------

    def types(self) -> list[JobType]:
        """The job types the caller may run (OPUS's ``GET /jdl``; a server without it,
        the names of ``GET /rest``)."""
        try:
            response = self.transport.get("/jdl", accept="application/json")
        except NotFound:
            response = None
        if response is not None and is_json(response):
            value = json_of(response)
            entries = value.get("definitions") if isinstance(value, dict) else None
            if isinstance(entries, list):
                return [
                    jobtype_from_json(entry)
                    for entry in entries
                    if isinstance(entry, dict) and entry.get("state", "active") == "active"
                ]
        return [JobType(name) for name in self.type_names()]

    def type_names(self) -> list[str]:
        """The names of the job types the caller may run (``GET /rest``, one a line)."""
        response = self.transport.get("/rest", accept="text/plain")
        return [line.strip() for line in response.text.splitlines() if line.strip()]

    def definition(self, name: str) -> Definition:
        """A job type's definition: its parameters (datatypes, defaults, limits), input
        files and results. NotFound for a type the server does not have."""
        response = self.transport.get(
            f"/jdl/{quote(name, safe='')}", params={"format": "json"}, accept="application/json"
        )
        return definition_from_json(json_of(response))

    # -- jobs ---------------------------------------------------------------------------

    def submit(
        self,
        job_type: str,
        params: Params | None = None,
        files: Mapping[str, FileSpec] | Iterable[tuple[str, FileSpec]] | None = None,
        run: bool = True,
        *,
        run_id: str | None = None,
        execution_duration: int | None = None,
    ) -> Job:
        """Create a job of ``job_type`` (a name, or a job list's URL) with ``params``
        (values as text: numbers and booleans are written for you; a list repeats a
        name) and ``files`` (input name → a path, bytes or a binary file), and start it
        unless ``run`` is false. Returns the job; BadRequest with the server's reason
        for a refused value."""
        fields = form_fields(params)
        if run:
            fields.append(("PHASE", "RUN"))
        if run_id is not None:
            fields.append(("RUNID", run_id))
        if execution_duration is not None:
            fields.append(("EXECUTIONDURATION", str(execution_duration)))
        with contextlib.ExitStack() as stack:
            pairs = files.items() if isinstance(files, Mapping) else (files or [])
            uploads = [(name, _upload(name, spec, stack)) for name, spec in pairs]
            response = self.transport.request(
                "POST",
                self.list_url(job_type),
                data=fields,
                files=uploads or None,
                expect=(201, 302, 303),
            )
        return Job(self, self.transport.see_other(response))

    def batch(
        self,
        job_type: str,
        datasets: Iterable[str],
        as_input: str,
        params: Params | None = None,
        **options: Any,
    ) -> BatchReport:
        """One job of ``job_type`` per dataset (a local file, uploaded; an http(s) URL, an
        entity id or a result URL of this server, given by reference), each given as the
        input ``as_input``, at most ``parallel`` at a time (4) and within the server's
        limits; returns the report (a line per dataset: job, phase, error, results).
        ``options`` are ``run_batch``'s: ``parallel``, ``report_path``, ``download``,
        ``timeout``, ``progress``, ``files``, ``run_id``… (opus/client/batch.py)."""
        from opus.client.batch import run_batch  # batch.py imports this module

        return run_batch(self, job_type, datasets, as_input, params, **options)

    def job(self, job: str, job_id: str | None = None) -> Job:
        """A job by type and id (``job("sleep", ID)``), by ``TYPE/ID``, by URL (its
        UWS URL, or its page's, ``BASE/jobs/TYPE/ID``), or by its id alone (looked for
        among the job types, ``find``)."""
        if job_id is not None:
            return Job(self, f"{self.list_url(job)}/{quote(job_id, safe='')}")
        if "://" in job:
            return Job(self, self._rest_url(job))
        if "/" in job:
            job_type, _, ident = job.strip("/").rpartition("/")
            return Job(self, f"{self.list_url(job_type)}/{quote(ident, safe='')}")
        return self.find(job)

    def _rest_url(self, url: str) -> str:
        """A job's UWS URL from its URL, or from its web page's on this server."""
        base = self.url
        if url.startswith(f"{base}/jobs/"):
            rest = url[len(base) + len("/jobs/") :].strip("/").split("/")
            if len(rest) == 2:
                return f"{base}/rest/{rest[0]}/{rest[1]}"
        return url.split("?")[0].split("#")[0]

    def find(self, job_id: str) -> Job:
        """The job called ``job_id``, whatever its type: each job type of ``GET /rest``
        is asked for it (one small request each). NotFound if none has it;
        PermissionDenied if it is another user's."""
        names = self.type_names()
        for name in names:
            candidate = Job(self, f"{self.list_url(name)}/{quote(job_id, safe='')}")
            try:
                candidate.phase  # noqa: B018 - a 404 unless the job is of this type
            except NotFound:
                continue
            return candidate
        raise NotFound(
            f"no job {job_id!r} of the types {', '.join(names) or '(none)'}:"
            " name it as TYPE/ID or by its URL"
        )

    def jobs(
        self,
        job_type: str | None = None,
        phase: PhaseSpec | None = None,
        after: datetime | str | None = None,
        last: int | None = None,
        *,
        run_id: str | None = None,
        page_size: int = 100,
    ) -> Iterator[Job]:
        """The caller's jobs (every owner's for an admin), of one type or of all,
        optionally only in ``phase`` (one or several), created after ``after``, and
        at most the ``last`` most recent. OPUS answers a page at a time, newest first,
        read as the iteration goes (``job.listed`` is the line); a plain UWS server
        answers its job list (newest first with ``last``, else in its own order)."""
        phases = _phases(phase)
        after_text = format_time(after) if isinstance(after, datetime) else after
        if self.transport.json and (job_type is None or "://" not in job_type):
            yield from self._pages(job_type, phases, after_text, last, run_id, page_size)
        elif job_type is None:
            for name in self.type_names():
                yield from self._uws_list(name, phases, after_text, last)
        else:
            yield from self._uws_list(job_type, phases, after_text, last)

    def _pages(
        self,
        job_type: str | None,
        phases: list[str],
        after: str | None,
        last: int | None,
        run_id: str | None,
        page_size: int,
    ) -> Iterator[Job]:
        url = "/jobs" if job_type is None else self.list_url(job_type)
        cursor: str | None = None
        given = 0
        while last is None or given < last:
            size = min(
                MAX_PAGE, max(1, page_size if last is None else min(page_size, last - given))
            )
            query: list[tuple[str, str]] = [("LAST", str(size))]
            query += [("PHASE", p) for p in phases]
            if after:
                query.append(("AFTER", after))
            if run_id:
                query.append(("RUNID", run_id))
            if cursor:
                query.append(("CURSOR", cursor))
            response = self.transport.request("GET", url, params=query, accept="application/json")
            if not is_json(response):
                if job_type is None:
                    raise ServerError(f"{self.url} has no JSON job list: name a job type")
                # A UWS server's job list, whatever it was asked: read it whole.
                refs = jobrefs_from_xml(response.content, self.list_url(job_type), job_type)
                for ref in refs[: None if last is None else last - given]:
                    yield Job(self, ref.url, listed=ref)
                return
            page = json_of(response)
            if not isinstance(page, dict) or not isinstance(page.get("jobs"), list):
                raise ServerError(f"the server's answer to {url} is not a page of jobs")
            for line in page["jobs"]:
                ref = jobref_from_json(line)
                yield Job(self, ref.url, listed=ref)
                given += 1
            cursor = page.get("next")
            if not cursor or not page["jobs"]:
                return

    def _uws_list(
        self, job_type: str, phases: list[str], after: str | None, last: int | None
    ) -> Iterator[Job]:
        query: list[tuple[str, str]] = [("PHASE", p) for p in phases]
        if after:
            query.append(("AFTER", after))
        if last is not None:
            query.append(("LAST", str(last)))
        list_url = self.list_url(job_type)
        response = self.transport.request("GET", list_url, params=query, accept="text/xml")
        name = unquote(urlsplit(list_url).path.rstrip("/").rsplit("/", 1)[-1])
        for ref in jobrefs_from_xml(response.content, list_url, name):
            yield Job(self, ref.url, listed=ref)


def _upload(name: str, spec: FileSpec, stack: contextlib.ExitStack) -> tuple[str, Any]:
    """A multipart file part: its file name and content (files opened are closed when
    the request is done)."""
    if isinstance(spec, bytes):
        return name, spec
    if isinstance(spec, str | Path):
        path = Path(spec)
        return path.name, stack.enter_context(path.open("rb"))
    named = getattr(spec, "name", None)
    filename = Path(named).name if isinstance(named, str) and named else name
    return filename, spec
