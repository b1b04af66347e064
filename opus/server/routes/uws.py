"""The UWS 1.1 REST tree at /rest/{jobname}: job lists, jobs and their resources."""

from __future__ import annotations

from urllib.parse import quote

import bottle

from opus.server import auth
from opus.server.errors import BadRequest, Forbidden, NotFound, PayloadTooLarge
from opus.server.inputs import Upload
from opus.server.parking import PARK_KEY, Parker
from opus.server.phases import parse_phase
from opus.server.routes.common import (
    JOB_ID_PATTERN,
    JOBNAME_PATTERN,
    XML_CONTENT_TYPE,
    control_value,
    form_values,
    see_other,
    single_values,
    text,
    xml,
)
from opus.server.scripts import STDERR_FILE, STDOUT_FILE
from opus.server.service import JobService
from opus.server.storage import Job
from opus.server.uwsxml import (
    JobRef,
    JobView,
    ParameterView,
    ResultView,
    format_time,
    job_document,
    job_list_chunks,
    parameters_document,
    parse_time,
    results_document,
)

CONTROL_PARAMETERS = {"PHASE", "RUNID", "EXECUTIONDURATION", "DESTRUCTION"}
# Room for multipart boundaries and form fields around the uploaded files.
FORM_OVERHEAD = 1024 * 1024
STREAM_CHUNK = 256 * 1024

J = f"/rest/<jobname:re:{JOBNAME_PATTERN}>"
JOB = f"{J}/<job_id:re:{JOB_ID_PATTERN}>"


def install(app: bottle.Bottle, service: JobService, authn: auth.Authenticator) -> None:
    """Register the UWS routes on ``app``."""
    settings = service.settings
    request = bottle.request

    def caller() -> auth.Caller:
        return authn.caller(request)

    def load_job(jobname: str, job_id: str) -> Job:
        who = caller()
        job = service.get_job(jobname, job_id)
        if not auth.can_access(who, job.owner):
            raise Forbidden(f"job {job_id} belongs to another user")
        return job

    def posted_control(name: str) -> str:
        """The value of one UWS control parameter of the request (400 if missing)."""
        values = {k.upper(): v for k, v in single_values(form_values(request)).items()}
        if name not in values:
            raise BadRequest(f"{name} is missing")
        return values[name]

    def list_url(jobname: str) -> str:
        return f"{settings.BASE_URL}/rest/{jobname}"

    def check_body_size() -> None:
        length = request.content_length
        if length > settings.MAX_UPLOAD_SIZE + FORM_OVERHEAD:
            raise PayloadTooLarge(
                f"request body of {length} bytes exceeds MAX_UPLOAD_SIZE "
                f"({settings.MAX_UPLOAD_SIZE} bytes)"
            )

    def split_form() -> tuple[dict[str, str], dict[str, str], list[Upload]]:
        """(job parameters, control parameters upper-cased, uploads) of the request."""
        check_body_size()
        pairs = form_values(request)
        file_fields = set(request.files.keys())
        values = single_values((k, v) for k, v in pairs if k not in file_fields)
        control = {k.upper(): v for k, v in values.items() if k.upper() in CONTROL_PARAMETERS}
        params = {k: v for k, v in values.items() if k.upper() not in CONTROL_PARAMETERS}
        uploads = [
            Upload(field=name, filename=upload.raw_filename or name, stream=upload.file)
            for name, upload in request.files.allitems()
        ]
        return params, control, uploads

    def render_job(job: Job) -> bytes:
        return job_document(job_view(job))

    parker = Parker(service, render_job, XML_CONTENT_TYPE)
    app.config["opus.parker"] = parker

    def job_view(job: Job) -> JobView:
        prefix = f"{settings.BASE_URL}/store/{job.id}"
        return JobView(
            job_id=job.id,
            run_id=job.run_id,
            owner=job.owner,
            phase=job.phase.value,
            quote=job.quote,
            creation_time=job.creation_time,
            start_time=job.start_time,
            end_time=job.end_time,
            execution_duration=job.execution_duration,
            destruction=job.destruction_time,
            parameters=[
                ParameterView(p.name, p.value, p.by_reference)
                for p in service.store.get_parameters(job.id)
            ],
            results=[
                ResultView(r.result_id, f"{prefix}/{quote(r.result_id)}", r.size, r.content_type)
                for r in service.store.get_results(job.id)
            ],
            error_type=job.error_type,
            error_message=job.error_message,
        )

    # -- job list -------------------------------------------------------------------

    @app.get(J)
    def job_list(jobname: str):
        who = caller()
        service.definition(jobname)
        pairs = list(request.query.decode().allitems())
        try:
            phases = [parse_phase(v) for v in control_value(pairs, "PHASE")]
        except ValueError as exc:
            raise BadRequest(f"PHASE: {exc}") from None
        after_values = control_value(pairs, "AFTER")
        last_values = control_value(pairs, "LAST")
        if len(after_values) > 1 or len(last_values) > 1:
            raise BadRequest("AFTER and LAST may be given once each")
        try:
            after = parse_time(after_values[0]) if after_values else None
        except ValueError as exc:
            raise BadRequest(f"AFTER: {exc}") from None
        last = None
        if last_values:
            raw = last_values[0].strip()
            # isdecimal, not isdigit ('²' is a digit int() refuses); 18 digits fit SQL.
            if not raw.isdecimal() or len(raw) > 18 or int(raw) < 1:
                raise BadRequest(f"LAST must be a positive integer, not {last_values[0]!r}")
            last = int(raw)
        # Admins see every job; everybody else only their own.
        owner = None if who.is_admin else who.name
        entries = service.store.list_jobs(jobname, phases, after, last, owner=owner)
        refs = (JobRef(e.job_id, e.phase, e.run_id, e.owner, e.creation_time) for e in entries)
        return xml(job_list_chunks(refs, list_url(jobname)))

    @app.post(J)
    def create_job(jobname: str):
        who = caller()
        service.definition(jobname)  # 404 for an unknown type, before anything else
        if not auth.may_use(who, jobname, settings):
            raise Forbidden(f"{who.name} may not create {jobname} jobs (no role grants it)")
        params, control, uploads = split_form()
        job = service.create_job(jobname, who.name, params, uploads, control)
        return see_other(f"/rest/{jobname}/{job.id}")

    # -- a job --------------------------------------------------------------------

    @app.get(JOB)
    def get_job(jobname: str, job_id: str):
        job = load_job(jobname, job_id)
        pairs = list(request.query.decode().allitems())
        waits = control_value(pairs, "WAIT")
        if waits:
            try:
                wait = int(waits[-1].strip())
            except ValueError:
                raise BadRequest(f"WAIT must be an integer, not {waits[-1]!r}") from None
            if wait < -1:
                raise BadRequest("WAIT must be -1 or more")
            phase = None
            phase_values = control_value(pairs, "PHASE")
            if phase_values:
                try:
                    phase = parse_phase(phase_values[-1])
                except ValueError as exc:
                    raise BadRequest(f"PHASE: {exc}") from None
            timeout = settings.WAIT_MAX if wait == -1 else min(wait, settings.WAIT_MAX)
            ticket = request.environ.get(PARK_KEY)
            if timeout > 0 and ticket is not None:
                # Served by `opus serve`: the request waits without holding a thread.
                unparked = parker.park(ticket, jobname, job_id, timeout, phase)
                if unparked is None:
                    # Parked: the HTTP server sends nothing now, the Parker answers.
                    return bottle.HTTPResponse(status=200, body=b"")
                job = unparked
            elif timeout > 0:
                job, wake = service.wait(jobname, job_id, timeout, phase)
                if wake is not None:
                    woken = job
                    return xml(wake.once("document", lambda: job_document(job_view(woken))))
        return xml(job_document(job_view(job)))

    @app.delete(JOB)
    def delete_job(jobname: str, job_id: str):
        service.delete(load_job(jobname, job_id))
        return see_other(f"/rest/{jobname}")

    @app.post(JOB)
    def post_job(jobname: str, job_id: str):
        job = load_job(jobname, job_id)
        if posted_control("ACTION").strip().upper() != "DELETE":
            raise BadRequest("POST on a job takes ACTION=DELETE")
        service.delete(job)
        return see_other(f"/rest/{jobname}")

    # -- job resources --------------------------------------------------------------

    @app.get(f"{JOB}/phase")
    def get_phase(jobname: str, job_id: str):
        return text(load_job(jobname, job_id).phase.value)

    @app.post(f"{JOB}/phase")
    def post_phase(jobname: str, job_id: str):
        job = load_job(jobname, job_id)
        wanted = posted_control("PHASE").strip().upper()
        if wanted == "RUN":
            service.run(job)
        elif wanted == "ABORT":
            service.abort(job)
        else:
            raise BadRequest("PHASE must be RUN or ABORT")
        return see_other(f"/rest/{jobname}/{job_id}")

    @app.get(f"{JOB}/executionduration")
    def get_duration(jobname: str, job_id: str):
        return text(str(load_job(jobname, job_id).execution_duration))

    @app.post(f"{JOB}/executionduration")
    def post_duration(jobname: str, job_id: str):
        job = load_job(jobname, job_id)
        service.set_execution_duration(job, posted_control("EXECUTIONDURATION"))
        return see_other(f"/rest/{jobname}/{job_id}")

    @app.get(f"{JOB}/destruction")
    def get_destruction(jobname: str, job_id: str):
        return text(format_time(load_job(jobname, job_id).destruction_time))

    @app.post(f"{JOB}/destruction")
    def post_destruction(jobname: str, job_id: str):
        job = load_job(jobname, job_id)
        service.set_destruction(job, posted_control("DESTRUCTION"))
        return see_other(f"/rest/{jobname}/{job_id}")

    @app.get(f"{JOB}/quote")
    def get_quote(jobname: str, job_id: str):
        return text(format_time(load_job(jobname, job_id).quote))

    @app.get(f"{JOB}/error")
    def get_error(jobname: str, job_id: str):
        return text(load_job(jobname, job_id).error_message or "")

    @app.get(f"{JOB}/owner")
    def get_owner(jobname: str, job_id: str):
        return text(load_job(jobname, job_id).owner)

    @app.get(f"{JOB}/parameters")
    def get_parameters(jobname: str, job_id: str):
        job = load_job(jobname, job_id)
        params = service.store.get_parameters(job.id)
        return xml(
            parameters_document(ParameterView(p.name, p.value, p.by_reference) for p in params)
        )

    @app.post(f"{JOB}/parameters")
    def post_parameters(jobname: str, job_id: str):
        job = load_job(jobname, job_id)
        params, control, uploads = split_form()
        if control:
            raise BadRequest(f"{sorted(control)[0]} cannot be set through parameters")
        service.update_parameters(job, params, uploads)
        return see_other(f"/rest/{jobname}/{job_id}")

    @app.get(f"{JOB}/parameters/<name>")
    def get_parameter(jobname: str, job_id: str, name: str):
        job = load_job(jobname, job_id)
        for param in service.store.get_parameters(job.id):
            if param.name == name:
                return text(param.value)
        raise NotFound(f"job {job_id} has no parameter {name!r}")

    @app.get(f"{JOB}/results")
    def get_results(jobname: str, job_id: str):
        return xml(results_document(job_view(load_job(jobname, job_id)).results))

    @app.get(f"{JOB}/results/<result_id>")
    def get_result(jobname: str, job_id: str, result_id: str):
        job = load_job(jobname, job_id)
        for result in service.store.get_results(job.id):
            if result.result_id == result_id:
                return see_other(f"/store/{job.id}/{quote(result_id)}")
        raise NotFound(f"job {job_id} has no result {result_id!r}")

    def stream_file(job: Job, which: str):
        path = service.stream_path(job, which)
        if not path.is_file():
            return text("")
        return bottle.static_file(
            path.name, root=str(path.parent), mimetype="text/plain", charset="UTF-8"
        )

    @app.get(f"{JOB}/stdout")
    def get_stdout(jobname: str, job_id: str):
        return stream_file(load_job(jobname, job_id), STDOUT_FILE)

    @app.get(f"{JOB}/stderr")
    def get_stderr(jobname: str, job_id: str):
        return stream_file(load_job(jobname, job_id), STDERR_FILE)

    # -- the job types --------------------------------------------------------------

    @app.get("/rest")
    def job_types():
        who = caller()
        names = [n for n in service.registry.names() if auth.may_use(who, n, settings)]
        return text("".join(f"{name}\n" for name in names))
