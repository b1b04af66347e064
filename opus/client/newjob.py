"""The new-job page: the form of a job type, and creating the job it posts.

GET ``/jobs/new/T`` draws the form of T's definition (forms.py) holding the defaults,
or the values of the query string (``?duration=3``), or, with ``?rerun=ID``, the
values of job ID, whose input files the new job copies unless others are given. POST
creates the job through the service exactly as the UWS tree would ("Run" adds
PHASE=RUN, "Save as pending" does not) and goes to its page; a refusal draws the form
again, with what was entered and the reason at the field it is about (400). With "Run
once per file" ticked, the post makes one job per file of that input (batchform.py)
and goes to the job list of the batch.
"""

from __future__ import annotations

from collections.abc import Mapping

import bottle

from opus.client.batchform import run_batch
from opus.client.context import Pages
from opus.client.forms import (
    EACH_FIELD,
    Field,
    Submission,
    batch_inputs,
    control_fields,
    field_of_error,
    job_fields,
)
from opus.client.rendering import Viewer
from opus.client.views import job_url
from opus.core.errors import OpusError, Unauthorized
from opus.core.records import JobDetails
from opus.server.jdl import JobDefinition
from opus.server.managers.slurm import OPTIONS_BY_PARAMETER
from opus.server.nofollow import OpenFile
from opus.server.routes.common import JOBNAME_PATTERN, see_other
from opus.server.service.inputs import Upload
from opus.server.service.reruns import open_input

NEW = f"/jobs/new/<jobname:re:{JOBNAME_PATTERN}>"


def add_routes(app: bottle.Bottle, pages: Pages) -> None:
    service = pages.service
    settings = pages.settings
    request = bottle.request

    def option_rules() -> dict[str, str]:
        """The manager's options (slurm_* on SLURM) and what each takes."""
        return {
            name: OPTIONS_BY_PARAMETER[name].rule if name in OPTIONS_BY_PARAMETER else ""
            for name in service.manager.option_names
        }

    def duration_default(jdl: JobDefinition) -> int:
        chosen = jdl.execution_duration
        if chosen is None:
            chosen = settings.EXECUTION_DURATION_DEFAULT
        maximum = settings.EXECUTION_DURATION_MAX
        return maximum if maximum > 0 and (chosen == 0 or chosen > maximum) else chosen

    def draw(
        viewer: Viewer,
        jdl: JobDefinition,
        values: Mapping[str, str],
        *,
        errors: Mapping[str, str] | None = None,
        reuse: Mapping[str, str] | None = None,
        sources: Mapping[str, str] | None = None,
        rerun: str | None = None,
        message: str = "",
        status: int = 200,
        submission: Submission | None = None,
    ) -> bottle.HTTPResponse:
        errors = errors or {}
        chosen = submission.results if submission else {}
        fields = job_fields(jdl, values, errors, reuse or {}, sources or {}, chosen)
        advanced = control_fields(
            values,
            errors,
            duration_default(jdl),
            settings.EXECUTION_DURATION_MAX,
            option_rules(),
        )
        return pages.page(
            "new_job",
            viewer,
            status=status,
            title=f"New {jdl.name} job",
            definition=jdl,
            required=[f for f in fields if f.required],
            optional=[f for f in fields if not f.required],
            advanced=advanced,
            advanced_open=any(f.error or _changed(f) for f in advanced),
            optional_open=any(f.error for f in fields if not f.required),
            rerun=rerun,
            message=message,
            max_upload=settings.MAX_UPLOAD_SIZE,
            batch_inputs=batch_inputs(jdl),
            batch_max=settings.BATCH_FILES_MAX,
            each=submission.each if submission else None,
            each_error=errors.get(EACH_FIELD, ""),
            several_files=len(jdl.file_inputs()) > 1,
        )

    @app.get(NEW)
    def new_job(jobname: str) -> bottle.HTTPResponse:
        viewer = pages.viewer()
        jdl = service.usable_definition(viewer.caller, jobname)
        query = dict(request.query.decode().allitems())
        rerun = query.pop("rerun", None)
        if rerun:
            details = service.get_job(viewer.caller, jobname, rerun)
            values, reuse = rerun_values(jdl, details)
            return draw(viewer, jdl, {**values, **query}, reuse=reuse, rerun=rerun)
        return draw(viewer, jdl, query)

    @app.post(NEW)
    def create(jobname: str) -> bottle.HTTPResponse:
        viewer = pages.viewer()
        jdl = service.usable_definition(viewer.caller, jobname)
        pairs = pages.form()
        files = [
            (name, Upload(field=name, filename=upload.raw_filename or name, stream=upload.file))
            for name, upload in request.files.allitems()
        ]
        submission = Submission.parse(jdl, pairs, files, settings.BATCH_FILES_MAX)
        rerun = submission.reuse_from
        reuse = {name: name for name in submission.reused}
        shown = {**submission.values, **submission.control}
        if submission.errors:
            return draw(
                viewer,
                jdl,
                shown,
                errors=submission.errors,
                reuse=reuse,
                sources=submission.sources,
                rerun=rerun,
                status=400,
                submission=submission,
            )
        opened: list[OpenFile] = []
        try:
            reused: list[Upload] = []
            for name in submission.reused:
                if rerun is None:
                    continue
                found = open_input(service, viewer.caller, jobname, rerun, name)
                if found is not None:
                    opened.append(found)
                    reused.append(Upload(field=name, filename=found.name, stream=found.handle))
            if submission.each is not None:
                listed = run_batch(service, viewer.caller, jobname, submission, reused)
                return see_other(settings.BASE_URL, listed)
            job = service.create_job(
                viewer.caller,
                jobname,
                submission.values,
                [*submission.uploads, *reused],
                submission.control,
            )
        except Unauthorized:
            raise
        except OpusError as exc:
            names = [f.name for f in job_fields(jdl, {})]
            names += ["RUNID", "EXECUTIONDURATION", "DESTRUCTION", *option_rules()]
            at = exc.field if exc.field in names else field_of_error(str(exc), names)
            return draw(
                viewer,
                jdl,
                shown,
                errors={at: str(exc)} if at else {},
                reuse=reuse,
                sources=submission.sources,
                rerun=rerun,
                message="" if at else str(exc),
                status=exc.status,
                submission=submission,
            )
        finally:
            for found in opened:
                found.close()
        return see_other(settings.BASE_URL, job_url(jobname, job.id))


def rerun_values(jdl: JobDefinition, details: JobDetails) -> tuple[dict[str, str], dict[str, str]]:
    """A job's values as a new-job form takes them, and its input files to reuse
    (input name → the file's name, or the URL it was fetched from)."""
    job = details.job
    file_inputs = set(jdl.file_inputs())
    values: dict[str, str] = {}
    reuse: dict[str, str] = {}
    for param in details.parameters:
        if param.name in file_inputs:
            reuse[param.name] = param.value
            if param.by_reference:
                values[param.name] = param.value
        else:
            values[param.name] = param.value
    if job.run_id:
        values["RUNID"] = job.run_id
    values["EXECUTIONDURATION"] = str(job.execution_duration)
    return values, reuse


def _changed(field: Field) -> bool:
    """Whether an advanced field holds something other than its default."""
    return field.name != "EXECUTIONDURATION" and bool(field.value)
