"""A job on a UWS server, seen from a script: its phase, waiting, results, logs, actions.

A ``Job`` is its URL (``…/rest/TYPE/ID``) and the client that reaches it. ``job.phase``
asks the server each time (the small ``…/phase`` resource); everything else a job
document says (parameters, error, progress, times) is read from ``job.info``, the
document as last read, which ``refresh()`` and ``wait()`` bring up to date. The UWS
parts (phase, WAIT, results, abort, delete) work on any UWS 1.1 server; ``stdout``,
``stderr``, ``provenance()`` and ``rerun()`` are OPUS's.

``wait()`` lets the server do the waiting: it asks ``GET job?WAIT=n&PHASE=p`` (p the
phase last seen, so a change in between is never missed), which the server answers
as soon as the phase changes, and asks again until the job is where it was waited
for. The client polls on no clock of its own: the WAITs set the pace. Two things bound
a WAIT further: a watcher (``on_change``) of an EXECUTING job asks for a few seconds at
a time, since WAIT answers a change of phase and not of progress; and a server that
answers every WAIT at once without a change (a UWS 1.0 server, or one past its cap of
waiting requests) is asked again no more than once a second, the one pause the client
makes.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, overload
from urllib.parse import unquote, urljoin

import requests

from opus.client.downloads import served_name, target_in, write_atomically
from opus.client.errors import (
    Conflict,
    JobFailed,
    NotFound,
    OpusError,
    ServerError,
    WaitTimeout,
)
from opus.client.models import (
    ErrorSummary,
    JobInfo,
    JobRef,
    Progress,
    Result,
    job_from_json,
    phase_of,
    results_from_json,
)
from opus.client.transport import Transport, is_json, is_xml, json_of
from opus.client.uwsdoc import job_from_xml, results_from_xml
from opus.core.phases import TERMINAL, Phase

if TYPE_CHECKING:
    from opus.client.api import Client, FileSpec

# Seconds asked for in one WAIT: short enough for proxies that cut idle connections.
WAIT_CHUNK = 60
# While someone watches (on_change) an EXECUTING job, it is read again this often
# (WAIT answers at once on a change of phase, not of progress): every 2 s once it has
# reported progress, every 5 s until it does.
PROGRESS_INTERVAL = 2
PROGRESS_FIRST = 5
# An answer to WAIT sooner than this, without a change, is a server that does not wait.
EARLY_ANSWER = 1.0
# Seconds an HTTP request may take beyond the WAIT it asks for.
WAIT_SLACK = 30
# download(progress=…) is called with the result, its file, the bytes so far and the size.
DownloadProgress = Callable[[Result, Path, int, int | None], None]
PhaseSpec = Phase | str | Iterable[Phase | str]


class Job:
    """A job at ``url`` on ``client``'s server; ``listed`` is its line of a job list
    when it came from ``Client.jobs()`` (the phase then, its times)."""

    def __init__(
        self,
        client: Client,
        url: str,
        *,
        info: JobInfo | None = None,
        listed: JobRef | None = None,
    ) -> None:
        self.client = client
        self.url = url.rstrip("/")
        self.list_url, _, last = self.url.rpartition("/")
        self.id = unquote(last)
        named = (info.type if info else None) or (listed.type if listed else None)
        self.type = named or unquote(self.list_url.rsplit("/", 1)[-1])
        self.listed = listed
        self._info = info

    def __repr__(self) -> str:
        return f"<Job {self.type}/{self.id}>"

    @property
    def _http(self) -> Transport:
        return self.client.transport

    # -- the job's document -------------------------------------------------------------

    def refresh(self) -> JobInfo:
        """Read the job's document again; returns it (``info`` is now this one)."""
        self._info = self._read(self._http.document(self.url))
        return self._info

    @property
    def info(self) -> JobInfo:
        """The job's document as last read (read now if it never was)."""
        return self._info if self._info is not None else self.refresh()

    @property
    def phase(self) -> Phase:
        """The job's phase, asked of the server now."""
        response = self._http.request("GET", f"{self.url}/phase")
        if is_json(response):
            value = json_of(response)
            return phase_of(value.get("phase") if isinstance(value, dict) else None)
        return phase_of(response.text)

    @property
    def parameters(self) -> dict[str, str]:
        """The job's parameters, name → value (the last value of a repeated one)."""
        return {p.id: p.value for p in self.info.parameters}

    @property
    def error(self) -> ErrorSummary | None:
        """Why the job failed (its error summary), None when it did not."""
        return self.info.error

    @property
    def progress(self) -> Progress | None:
        """What the job last said of its progress (OPUS's ``progress``), or None."""
        return self.info.progress

    @property
    def run_id(self) -> str | None:
        return self.info.run_id

    def _read(self, response: requests.Response) -> JobInfo:
        if is_json(response):
            return job_from_json(json_of(response))
        if is_xml(response) or response.content.lstrip().startswith(b"<"):
            return job_from_xml(response.content)
        raise ServerError(f"the server's answer to {response.url} is not a job document")

    # -- actions ------------------------------------------------------------------------

    def run(self) -> Job:
        """Start a PENDING job (``PHASE=RUN``); returns the job."""
        self._post_phase("RUN")
        return self

    def abort(self) -> Job:
        """Abort the job (``PHASE=ABORT``); PermissionDenied once it has ended."""
        self._post_phase("ABORT")
        return self

    def _post_phase(self, phase: str) -> None:
        self._http.request(
            "POST", f"{self.url}/phase", data={"PHASE": phase}, expect=(200, 204, 303)
        )
        self._info = None

    def delete(self) -> None:
        """Delete the job and its files (aborting it if it runs)."""
        try:
            self._http.request("DELETE", self.url, expect=(200, 204, 303))
        except OpusError as exc:
            if exc.status not in (405, 501):
                raise
            # A server without DELETE takes UWS's other form.
            self._http.request("POST", self.url, data={"ACTION": "DELETE"}, expect=(200, 204, 303))

    # -- waiting ------------------------------------------------------------------------

    def wait(
        self,
        timeout: float | None = None,
        until: PhaseSpec | None = None,
        *,
        raise_on_error: bool = False,
        on_change: Callable[[Job], None] | None = None,
    ) -> Phase:
        """Wait until the job is in one of ``until``'s phases (default: ended) or has
        ended; returns the phase it is in. ``on_change(job)`` is called with the first
        document read and with every one showing another phase or progress.

        Raises WaitTimeout after ``timeout`` seconds (None: no limit; a PENDING job
        nobody runs waits until it is destroyed), and JobFailed with
        ``raise_on_error`` when the job ended in ERROR or ABORTED."""
        if until is None:
            targets: set[Phase] = set(TERMINAL)
        elif isinstance(until, str):
            targets = {phase_of(until)}
        else:
            targets = {phase_of(p) for p in until}
        deadline = None if timeout is None else time.monotonic() + timeout
        info = self.refresh()
        if on_change is not None:
            on_change(self)
        while info.phase not in targets and info.phase not in TERMINAL:
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                raise WaitTimeout(
                    f"job {self.type}/{self.id} is still {info.phase} after {timeout:g} s",
                    info.phase,
                    url=self.url,
                )
            seconds = WAIT_CHUNK if remaining is None else max(1, min(WAIT_CHUNK, int(remaining)))
            if on_change is not None and info.phase == Phase.EXECUTING:
                every = PROGRESS_FIRST if info.progress is None else PROGRESS_INTERVAL
                seconds = min(seconds, every)
            new = self.wait_once(seconds)
            if (new.phase, new.progress) != (info.phase, info.progress) and on_change:
                on_change(self)
            info = new
        if raise_on_error:
            self.raise_if_error()
        return info.phase

    def wait_once(self, seconds: int) -> JobInfo:
        """One WAIT: the job's document once its phase has changed from the one last
        read, or after ``seconds`` (at most; the server may cap it). Returns it."""
        before = self.info
        asked = time.monotonic()
        response = self._http.document(
            self.url,
            params={"WAIT": str(seconds), "PHASE": before.phase.value},
            timeout=seconds + WAIT_SLACK,
        )
        self._info = self._read(response)
        elapsed = time.monotonic() - asked
        pause = min(EARLY_ANSWER, seconds) - elapsed
        if pause > 0 and (self._info.phase, self._info.progress) == (before.phase, before.progress):
            time.sleep(pause)  # a server that did not wait: at most one request a second
        return self._info

    def raise_if_error(self) -> None:
        """JobFailed if the job (as last read) ended in ERROR or ABORTED."""
        info = self.info
        if info.phase in (Phase.ERROR, Phase.ABORTED):
            why = f": {info.error.message}" if info.error and info.error.message else ""
            raise JobFailed(f"job {self.type}/{self.id} ended {info.phase}{why}", info, self.url)

    # -- results ------------------------------------------------------------------------

    def results(self) -> list[Result]:
        """The job's results, read now (``…/results``)."""
        response = self._http.document(f"{self.url}/results")
        if is_json(response):
            found = results_from_json(json_of(response))
        else:
            found = results_from_xml(response.content)
        # A relative href is the job's server's (never the client's base URL's).
        return [replace(r, href=urljoin(self.url, r.href)) for r in found]

    def result(self, result_id: str) -> Result:
        """The result called ``result_id``; NotFound if the job has none of that name."""
        found = next((r for r in self.results() if r.id == result_id), None)
        if found is None:
            raise NotFound(f"job {self.type}/{self.id} has no result {result_id!r}", url=self.url)
        return found

    def open(self, result: Result | str) -> requests.Response:
        """The streamed answer of a result's file (close it, or read it to the end)."""
        chosen = result if isinstance(result, Result) else self.result(result)
        return self._http.request(
            "GET", chosen.href, stream=True, allow_redirects=True, accept="*/*"
        )

    def read(self, result: Result | str) -> bytes:
        """The content of a result's file (for small results: it is held in memory)."""
        with self.open(result) as response:
            return response.content

    def download(
        self,
        directory: str | Path = ".",
        progress: DownloadProgress | None = None,
        results: Iterable[str] | None = None,
    ) -> list[Path]:
        """Write the job's results (or those named in ``results``) into ``directory``
        (created if needed), under the names the server gives their files, made safe;
        each file appears only once complete (an existing file of that name is
        replaced). Returns the paths written."""
        folder = Path(directory)
        folder.mkdir(parents=True, exist_ok=True)
        wanted = None if results is None else set(results)
        chosen = [r for r in self.results() if wanted is None or r.id in wanted]
        if wanted is not None and wanted - {r.id for r in chosen}:
            missing = ", ".join(sorted(wanted - {r.id for r in chosen}))
            raise NotFound(f"job {self.type}/{self.id} has no result {missing}", url=self.url)
        taken: set[str] = set()
        written = []
        for result in chosen:
            response = self.open(result)
            try:
                target = target_in(folder, served_name(response, result.id), taken)
            except BaseException:
                response.close()
                raise

            def report(done: int, total: int | None, r: Result = result, t: Path = target) -> None:
                if progress is not None:
                    progress(r, t, done, total)

            write_atomically(response, target, report)
            written.append(target)
        return written

    # -- what the job printed, its provenance (OPUS) ---------------------------------------

    def log(self, stream: Literal["stdout", "stderr"] = "stdout", offset: int = 0) -> bytes:
        """What the job's script wrote on ``stream`` from byte ``offset`` on (so far)."""
        headers = {"Range": f"bytes={offset}-"} if offset > 0 else {}
        response = self._http.request(
            "GET", f"{self.url}/{stream}", headers=headers, expect=(200, 206, 416), accept="*/*"
        )
        if response.status_code == 416:
            return b""
        if response.status_code == 200 and offset:
            return response.content[offset:]
        return response.content

    @property
    def stdout(self) -> str:
        """The job's standard output so far (UTF-8, undecodable bytes replaced)."""
        return self.log("stdout").decode("utf-8", "replace")

    @property
    def stderr(self) -> str:
        """The job's standard error so far."""
        return self.log("stderr").decode("utf-8", "replace")

    @overload
    def provenance(self, format: Literal["json"] = "json", **options: str) -> dict[str, Any]: ...

    @overload
    def provenance(
        self, format: Literal["xml", "provn", "svg", "png"], **options: str
    ) -> bytes: ...

    def provenance(self, format: str = "json", **options: str) -> dict[str, Any] | bytes:
        """The provenance of the ended job (IVOA ProvDM): PROV-JSON as a dict, or the
        bytes of ``xml``, ``provn``, ``svg``, ``png``; ``options`` are the route's other
        parameters (``model="w3c"``…). Conflict while the job has not ended."""
        response = self._http.request(
            "GET", f"{self.url}/provenance", params={"format": format, **options}
        )
        if format != "json":
            return response.content
        value = json_of(response)
        if not isinstance(value, dict):
            raise ServerError("the server's provenance document is not a JSON object")
        return value

    def rerun(
        self,
        params: dict[str, Any] | None = None,
        run: bool = True,
        files: Mapping[str, FileSpec] | Iterable[tuple[str, FileSpec]] | None = None,
    ) -> Job:
        """A new job of the same type with this job's parameters (``params`` changed or
        added); input files this job was given by URL are given the same URL, uploaded
        ones by reference to the copy the server keeps (from the job's provenance: the
        job must have ended); ``files`` as ``Client.submit`` takes them replace inputs.
        Returns the new job."""
        info = self.refresh()
        try:
            inputs = set(self.client.definition(self.type).file_inputs())
        except NotFound:
            inputs = set()
        new_files = list(files.items() if isinstance(files, Mapping) else (files or []))
        replaced = set(params or {}) | {name for name, _ in new_files}
        kept_parameters = [p for p in info.parameters if p.id not in replaced]
        uploaded = [p for p in kept_parameters if p.id in inputs and not p.by_reference]
        locations = self._input_locations() if uploaded else {}
        fields: list[tuple[str, str]] = []
        for parameter in kept_parameters:
            if parameter in uploaded:
                kept = locations.get(parameter.id) or []
                if not kept:
                    raise NotFound(
                        f"the file {parameter.value!r} given as {parameter.id} is not kept"
                        f" by the server any more: give it again ({parameter.id}=@FILE)",
                        url=self.url,
                    )
                fields.append((parameter.id, kept.pop(0)))
            else:
                fields.append((parameter.id, parameter.value))
        changed = [*fields, *(params or {}).items()]
        return self.client.submit(self.list_url, changed, new_files, run=run)

    def _input_locations(self) -> dict[str, list[str]]:
        """Input name → the URLs of the files the server keeps of this job's inputs."""
        try:
            document = self.provenance("json")
        except Conflict:
            raise Conflict(
                f"job {self.type}/{self.id} has not ended: its uploaded inputs can be reused"
                " once it has (or give them again)",
                status=409,
                url=self.url,
            ) from None
        entities = document.get("entity") or {}
        found: dict[str, list[str]] = {}
        for use in (document.get("used") or {}).values():
            activity = str(use.get("prov:activity", ""))
            if not activity.endswith(f"job_{self.id}"):
                continue  # another job's use, in the same walk
            entity = entities.get(use.get("prov:entity")) or {}
            location = entity.get("voprov:location")
            if isinstance(location, str) and use.get("prov:role"):
                found.setdefault(str(use["prov:role"]), []).append(location)
        return found
