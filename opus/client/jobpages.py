"""The pages of jobs: home, the job list, a job, a result's preview, the results' zip,
and the buttons that run, abort and delete jobs.

Each route asks the JobService with the caller and renders what it answers; a job's
files (results, stdout, stderr) are read through the service, which opened them
without following links. The job list is one page of ``list_user_jobs`` (keyset
paging: the next page's cursor, never an OFFSET), newest first.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import parse_qsl, quote, urlencode

import bottle

from opus.client import previews
from opus.client.archive import zip_stream
from opus.client.batchform import NOTICE_FIELDS, batch_notice
from opus.client.context import Pages
from opus.client.rendering import Viewer, safe_next
from opus.client.views import job_url
from opus.core.errors import BadRequest, NotFound, OpusError
from opus.core.layout import STDERR_FILE, STDOUT_FILE
from opus.core.phases import parse_phase
from opus.core.records import JobDetails, Result
from opus.server.nofollow import OpenFile
from opus.server.routes.common import JOB_ID_PATTERN, JOBNAME_PATTERN

JOB = f"/jobs/<jobname:re:{JOBNAME_PATTERN}>/<job_id:re:{JOB_ID_PATTERN}>"
# What a job page shows of stdout and stderr: their end.
STREAM_TAIL = 1024 * 1024
PAGE_SIZES = (20, 50, 100, 200)
RECENT_JOBS = 10


@dataclass(frozen=True)
class Stream:
    """The end of a job's stdout or stderr, as its page shows it."""

    name: str
    text: str
    size: int
    shown: int

    @property
    def truncated(self) -> bool:
        return self.shown < self.size


@dataclass(frozen=True)
class ShownResult:
    """A result with its preview, as the job page shows it."""

    result: Result
    preview: previews.Preview

    @property
    def name(self) -> str:
        return file_name(self.result)


def file_name(result: Result) -> str:
    """The name of a result's file (in results/)."""
    return result.path.rsplit("/", 1)[-1]


def read_tail(opened: OpenFile | None, name: str, limit: int = STREAM_TAIL) -> Stream:
    """The last ``limit`` bytes of a stream (closed), from a line's start when cut."""
    if opened is None:
        return Stream(name, "", 0, 0)
    with opened:
        start = max(0, opened.size - limit)
        opened.handle.seek(start)
        data = opened.handle.read(opened.size - start)
    if start and b"\n" in data:
        data = data[data.index(b"\n") + 1 :]
    return Stream(name, previews.decode(data), opened.size, len(data))


def add_routes(app: bottle.Bottle, pages: Pages) -> None:
    service = pages.service
    request = bottle.request

    @app.get("/")
    def home() -> bottle.HTTPResponse:
        viewer = pages.viewer()
        types = [service.definition(name) for name in viewer.job_types]
        recent = service.list_user_jobs(viewer.caller, limit=RECENT_JOBS)
        return pages.page("home", viewer, title="OPUS", definitions=types, jobs=recent.jobs)

    @app.get("/jobs")
    def job_list() -> bottle.HTTPResponse:
        viewer = pages.viewer()
        query = request.query.decode()
        types = [name for name in query.getall("type") if name]
        try:
            phases = [parse_phase(value) for value in query.getall("phase") if value]
        except ValueError as exc:
            raise BadRequest(f"phase: {exc}") from None
        run_id = (query.get("run_id") or "").strip() or None
        cursor = query.get("cursor") or None
        newer = query.get("newer") or None
        limit = _page_size(query.get("limit"))
        page = service.list_user_jobs(
            viewer.caller,
            types=types,
            phases=phases,
            run_id=run_id,
            cursor=cursor,
            limit=limit,
            newer=newer,
        )
        title = f"{types[0]} jobs" if len(types) == 1 else "Jobs"
        return pages.page(
            "jobs",
            viewer,
            title=title,
            page=page,
            types=types,
            phases=phases,
            run_id=run_id or "",
            # Not the first page: the live list adds no new job at its top.
            cursor=(cursor or newer or "") if page.newer_cursor else "",
            limit=limit,
            list_url=request.path + _without_notice(request.query_string),
            # After "Run once per file": how many jobs were made, and started.
            notice=batch_notice(query.get("batch"), query.get("started"), pages.settings.NJOBS_MAX),
        )

    @app.post("/jobs/actions")
    def several_jobs() -> bottle.HTTPResponse:
        viewer = pages.viewer()
        pairs = pages.form()
        form = dict(pairs)
        action = form.get("action", "")
        if action not in ("abort", "delete"):
            raise BadRequest("action must be abort or delete")
        chosen = [value for name, value in pairs if name == "job"]
        if not chosen:
            raise BadRequest("no job selected: tick the jobs to act on")
        refused: list[tuple[str, str]] = []
        for value in chosen:
            jobname, _, job_id = value.partition("/")
            try:
                if action == "abort":
                    service.abort(viewer.caller, jobname, job_id)
                else:
                    service.delete(viewer.caller, jobname, job_id)
            except OpusError as exc:
                refused.append((value, str(exc)))
        if refused:
            return pages.page(
                "refused",
                viewer,
                status=403 if len(refused) == len(chosen) else 200,
                title=f"Some jobs could not be {'aborted' if action == 'abort' else 'deleted'}",
                refused=refused,
                done=len(chosen) - len(refused),
                back=safe_next(form.get("next")) or "/jobs",
            )
        return pages.back("/jobs", pairs)

    def act(
        jobname: str, job_id: str, action: Callable[..., object], default: str
    ) -> bottle.HTTPResponse:
        viewer = pages.viewer()
        pairs = pages.form()
        action(viewer.caller, jobname, job_id)
        return pages.back(default, pairs)

    @app.post(f"{JOB}/run")
    def run_job(jobname: str, job_id: str) -> bottle.HTTPResponse:
        return act(jobname, job_id, service.run, job_url(jobname, job_id))

    @app.post(f"{JOB}/abort")
    def abort_job(jobname: str, job_id: str) -> bottle.HTTPResponse:
        return act(jobname, job_id, service.abort, job_url(jobname, job_id))

    @app.post(f"{JOB}/delete")
    def delete_job(jobname: str, job_id: str) -> bottle.HTTPResponse:
        viewer = pages.viewer()
        pairs = pages.form()
        service.delete(viewer.caller, jobname, job_id)
        target = dict(pairs).get("next", "")
        # The job's own page is gone with it.
        if target.split("?", 1)[0] == job_url(jobname, job_id):
            pairs = []
        return pages.back(f"/jobs?type={jobname}", pairs)

    @app.get(JOB)
    def job_page(jobname: str, job_id: str) -> bottle.HTTPResponse:
        viewer = pages.viewer()
        details = service.get_job(viewer.caller, jobname, job_id)
        return show_job(viewer, details)

    def show_job(viewer: Viewer, details: JobDetails) -> bottle.HTTPResponse:
        job = details.job
        shown = [inline_result(viewer, details, result) for result in details.results]
        streams = [
            read_tail(service.stream(viewer.caller, job.jobname, job.id, which), which)
            for which in (STDOUT_FILE, STDERR_FILE)
        ]
        return pages.page(
            "job",
            viewer,
            title=f"{job.jobname} job {job.run_id or job.id}",
            details=details,
            job=job,
            # The definition the job was created with, whatever is active now.
            definition=service.kept.of_job(job),
            results=shown,
            streams=streams,
            option_names=service.manager.option_names,
            # The provenance graph's links must start with it (static/js/provenance.js).
            base_url=pages.settings.BASE_URL,
            entity_of=service.entities.result_entity,
        )

    def inline_result(viewer: Viewer, details: JobDetails, result: Result) -> ShownResult:
        if not previews.reads_file(result):
            return ShownResult(result, previews.preview(result, b"", result.size))
        try:
            _, opened = service.result_file(viewer.caller, details.job.id, result.result_id)
        except OpusError:
            return ShownResult(result, previews.Preview("gone", size=result.size))
        limit, rows = previews.INLINE_LIMIT, previews.INLINE_TABLE_ROWS
        return ShownResult(result, previews.preview_file(result, opened, limit, rows))

    @app.get(f"{JOB}/results/<result_id>")
    def result_page(jobname: str, job_id: str, result_id: str) -> bottle.HTTPResponse:
        viewer = pages.viewer()
        details = service.get_job(viewer.caller, jobname, job_id)
        result = details.result(result_id)
        if result is None:
            raise NotFound(f"job {job_id} has no result {result_id!r}")
        if previews.reads_file(result):
            _, opened = service.result_file(viewer.caller, job_id, result_id)
            shown = ShownResult(result, previews.preview_file(result, opened, previews.PAGE_LIMIT))
        else:
            shown = ShownResult(result, previews.preview(result, b"", result.size))
        return pages.page(
            "result",
            viewer,
            title=f"{shown.name} of {jobname} job {details.job.run_id or job_id}",
            job=details.job,
            shown=shown,
            entity_of=service.entities.result_entity,
        )

    @app.get(f"{JOB}/results.zip")
    def all_results(jobname: str, job_id: str) -> bottle.HTTPResponse:
        viewer = pages.viewer()
        details = service.get_job(viewer.caller, jobname, job_id)
        if not details.results:
            raise NotFound(f"job {job_id} has no results")

        def opener(result: Result) -> Callable[[], OpenFile]:
            return lambda: service.result_file(viewer.caller, job_id, result.result_id)[1]

        files = [(f"{job_id}/{file_name(r)}", opener(r)) for r in details.results]
        headers = {
            "Content-Type": "application/zip",
            "Content-Disposition": f"attachment; filename*=UTF-8''{quote(jobname)}-{job_id}.zip",
            "Cache-Control": "no-store",
        }
        return bottle.HTTPResponse(body=zip_stream(files), headers=headers)


def _without_notice(query_string: str) -> str:
    """The list's query string (with its "?") without the numbers of a batch's notice,
    which a return to the list after an action does not show again."""
    kept = [
        (name, value)
        for name, value in parse_qsl(query_string, keep_blank_values=True)
        if name not in NOTICE_FIELDS
    ]
    return f"?{urlencode(kept)}" if kept else ""


def _page_size(text: str | None) -> int:
    try:
        wanted = int(text or PAGE_SIZES[1])
    except ValueError:
        raise BadRequest(f"limit must be one of {', '.join(map(str, PAGE_SIZES))}") from None
    if wanted not in PAGE_SIZES:
        raise BadRequest(f"limit must be one of {', '.join(map(str, PAGE_SIZES))}")
    return wanted
