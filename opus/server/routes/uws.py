"""The UWS 1.1 REST tree at /rest/{jobname}: job lists, jobs and their resources.

Thin: each route parses its request, calls the JobService with the caller, and renders
the answer (XML documents from uwsxml, text resources equal to their XML values). Job
documents and their sub-resources carry an ETag (the job's version): a client that
sends it back in If-None-Match gets 304 while the job has not changed.

A client that prefers ``application/json`` (routes/negotiation.py) gets the job list
(a page, newest first, with a cursor), the job, its phase, parameters and results as
JSON (jsonapi.py), WAIT included, and errors as JSON objects; XML stays the default.
"""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import quote

import bottle

from opus.core.access import Caller
from opus.core.errors import BadRequest, NotFound
from opus.core.layout import STDERR_FILE, STDOUT_FILE
from opus.core.phases import Phase, parse_phase
from opus.core.records import JobDetails
from opus.core.times import format_time, parse_time
from opus.server import jsonapi
from opus.server.auth import Authenticator
from opus.server.parking import CONNECTED_KEY, PARK_KEY, Parker
from opus.server.routes.common import (
    JOB_ID_PATTERN,
    JOBNAME_PATTERN,
    caller,
    control_value,
    form_values,
    job_form,
    plain_tree,
    see_other,
    single_values,
    text,
    unless_current,
    xml,
)
from opus.server.routes.files import empty_file, file_response
from opus.server.routes.lists import page_query
from opus.server.routes.negotiation import (
    TEXT_TYPE,
    VARY,
    XML_TYPE,
    json_response,
    negotiated_error,
    negotiated_fault,
    prefers_json,
)
from opus.server.service import JobService
from opus.server.service.inputs import Upload
from opus.server.uwsxml import JobDocuments, job_list_chunks, parameters_document

J = f"/rest/<jobname:re:{JOBNAME_PATTERN}>"
JOB = f"{J}/<job_id:re:{JOB_ID_PATTERN}>"


def tree(
    service: JobService, authn: Authenticator, documents: JobDocuments, parker: Parker
) -> bottle.Bottle:
    """The UWS tree (errors as plain text)."""
    settings = service.settings
    base_url = settings.BASE_URL
    app = plain_tree(base_url, negotiated_error, negotiated_fault)
    request = bottle.request

    def who() -> Caller:
        return caller(authn)

    def posted_control(name: str) -> str:
        """The value of one UWS control parameter of the request (400 if missing)."""
        values = {k.upper(): v for k, v in single_values(form_values(request)).items()}
        if name not in values:
            raise BadRequest(f"{name} is missing")
        return values[name]

    def split_form() -> tuple[dict[str, str], dict[str, str], list[Upload]]:
        """(job parameters, control parameters upper-cased, uploads) of the request."""
        return job_form(request, settings.MAX_UPLOAD_SIZE)

    def job_resource(details: JobDetails, body: str) -> bottle.HTTPResponse:
        """A text resource of a job, with the job's ETag."""
        etag = documents.etag(details.job)
        return unless_current(etag, lambda: text(body, etag=etag))

    def negotiated(
        details: JobDetails,
        default: Callable[[str], bottle.HTTPResponse],
        json_body: Callable[[], bytes],
        default_type: str = XML_TYPE,
    ) -> bottle.HTTPResponse:
        """A job's resource as JSON for a client that prefers it (its own ETag), else
        ``default(etag)``; 304 for a current copy of either."""
        etag = documents.etag(details.job)
        if prefers_json(default_type):
            tag = jsonapi.json_etag(etag)
            answer = unless_current(tag, lambda: json_response(json_body(), etag=tag))
        else:
            answer = unless_current(etag, lambda: default(etag))
        answer.set_header("Vary", "Accept")
        return answer

    def job_answer(details: JobDetails) -> bottle.HTTPResponse:
        return negotiated(
            details,
            lambda etag: xml(documents.job(details), etag=etag),
            lambda: jsonapi.job_body(details, base_url),
        )

    def job_of(jobname: str, job_id: str) -> JobDetails:
        return service.get_job(who(), jobname, job_id)

    # -- job list -----------------------------------------------------------------------

    @app.get(J)
    def job_list(jobname: str) -> bottle.HTTPResponse:
        pairs = list(request.query.decode().allitems())
        if prefers_json():
            query = page_query(pairs, types=[jobname])
            page = service.list_user_jobs(
                who(),
                query.types,
                query.phases,
                query.run_id,
                query.cursor,
                query.limit,
                query.after,
            )
            return json_response(jsonapi.page_body(page, base_url), headers=VARY)
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
        jobs = service.list_jobs(who(), jobname, phases, after, last)
        answer = xml(job_list_chunks(jobs, f"{settings.BASE_URL}/rest/{jobname}"))
        answer.set_header("Vary", "Accept")
        return answer

    @app.post(J)
    def create_job(jobname: str) -> bottle.HTTPResponse:
        caller_now = who()
        # 404 for an unknown type and 403 for a forbidden one, before the body is read.
        service.usable_definition(caller_now, jobname)
        params, control, uploads = split_form()
        job = service.create_job(caller_now, jobname, params, uploads, control)
        return see_other(settings.BASE_URL, f"/rest/{jobname}/{job.id}")

    # -- a job --------------------------------------------------------------------------

    @app.get(JOB)
    def get_job(jobname: str, job_id: str) -> bottle.HTTPResponse:
        caller_now = who()
        details = service.get_job(caller_now, jobname, job_id)
        pairs = list(request.query.decode().allitems())
        waits = control_value(pairs, "WAIT")
        if not waits:
            return job_answer(details)
        try:
            wait = int(waits[-1].strip())
        except ValueError:
            raise BadRequest(f"WAIT must be an integer, not {waits[-1]!r}") from None
        if wait < -1:
            raise BadRequest("WAIT must be -1 or more")
        phase: Phase | None = None
        phase_values = control_value(pairs, "PHASE")
        if phase_values:
            try:
                phase = parse_phase(phase_values[-1])
            except ValueError as exc:
                raise BadRequest(f"PHASE: {exc}") from None
        timeout = settings.WAIT_MAX if wait == -1 else min(wait, settings.WAIT_MAX)
        ticket = request.environ.get(PARK_KEY)
        if timeout <= 0:
            return job_answer(details)
        if ticket is None:
            # Waits in this thread, until the HTTP server (if it can tell) says the client went.
            connected = request.environ.get(CONNECTED_KEY)
            return job_answer(service.wait(caller_now, jobname, job_id, timeout, phase, connected))
        # Served by `opus serve`: the request waits without holding a thread.
        if_none_match = request.get_header("If-None-Match")
        unparked = parker.park(
            ticket, caller_now, jobname, job_id, timeout, phase, if_none_match, prefers_json()
        )
        if unparked is None:
            # Parked: the HTTP server sends nothing now, the Parker answers.
            return bottle.HTTPResponse(status=200, body=b"")
        return job_answer(unparked)

    @app.delete(JOB)
    def delete_job(jobname: str, job_id: str) -> bottle.HTTPResponse:
        service.delete(who(), jobname, job_id)
        return see_other(settings.BASE_URL, f"/rest/{jobname}")

    @app.post(JOB)
    def post_job(jobname: str, job_id: str) -> bottle.HTTPResponse:
        caller_now = who()
        service.get_job(caller_now, jobname, job_id)  # 404 or 403 before a 400
        values = {k.upper(): v for k, v in single_values(form_values(request)).items()}
        if "ACTION" not in values and "PHASE" in values:
            raise BadRequest(
                f"PHASE goes to the job's phase: POST PHASE={values['PHASE']} "
                f"to /rest/{jobname}/{job_id}/phase"
            )
        if values.get("ACTION", "").strip().upper() != "DELETE":
            if "ACTION" not in values:
                raise BadRequest("ACTION is missing")
            raise BadRequest("POST on a job takes ACTION=DELETE")
        service.delete(caller_now, jobname, job_id)
        return see_other(settings.BASE_URL, f"/rest/{jobname}")

    # -- job resources ------------------------------------------------------------------

    @app.get(f"{JOB}/phase")
    def get_phase(jobname: str, job_id: str) -> bottle.HTTPResponse:
        details = job_of(jobname, job_id)
        return negotiated(
            details,
            lambda etag: text(details.job.phase.value, etag=etag),
            lambda: jsonapi.phase_body(details),
            TEXT_TYPE,
        )

    @app.post(f"{JOB}/phase")
    def post_phase(jobname: str, job_id: str) -> bottle.HTTPResponse:
        caller_now = who()
        service.get_job(caller_now, jobname, job_id)  # 404 or 403 before a 400
        wanted = posted_control("PHASE").strip().upper()
        if wanted == "RUN":
            service.run(caller_now, jobname, job_id)
        elif wanted == "ABORT":
            service.abort(caller_now, jobname, job_id)
        else:
            raise BadRequest("PHASE must be RUN or ABORT")
        return see_other(settings.BASE_URL, f"/rest/{jobname}/{job_id}")

    @app.get(f"{JOB}/executionduration")
    def get_duration(jobname: str, job_id: str) -> bottle.HTTPResponse:
        details = job_of(jobname, job_id)
        return job_resource(details, str(details.job.execution_duration))

    @app.post(f"{JOB}/executionduration")
    def post_duration(jobname: str, job_id: str) -> bottle.HTTPResponse:
        caller_now = who()
        service.get_job(caller_now, jobname, job_id)  # 404 or 403 before a 400
        value = posted_control("EXECUTIONDURATION")
        service.set_execution_duration(caller_now, jobname, job_id, value)
        return see_other(settings.BASE_URL, f"/rest/{jobname}/{job_id}")

    @app.get(f"{JOB}/destruction")
    def get_destruction(jobname: str, job_id: str) -> bottle.HTTPResponse:
        details = job_of(jobname, job_id)
        return job_resource(details, format_time(details.job.destruction_time))

    @app.post(f"{JOB}/destruction")
    def post_destruction(jobname: str, job_id: str) -> bottle.HTTPResponse:
        caller_now = who()
        service.get_job(caller_now, jobname, job_id)  # 404 or 403 before a 400
        service.set_destruction(caller_now, jobname, job_id, posted_control("DESTRUCTION"))
        return see_other(settings.BASE_URL, f"/rest/{jobname}/{job_id}")

    @app.get(f"{JOB}/quote")
    def get_quote(jobname: str, job_id: str) -> bottle.HTTPResponse:
        details = job_of(jobname, job_id)
        return job_resource(details, format_time(details.job.quote))

    @app.get(f"{JOB}/error")
    def get_error(jobname: str, job_id: str) -> bottle.HTTPResponse:
        details = job_of(jobname, job_id)
        return job_resource(details, details.job.error_message or "")

    @app.get(f"{JOB}/owner")
    def get_owner(jobname: str, job_id: str) -> bottle.HTTPResponse:
        details = job_of(jobname, job_id)
        return job_resource(details, details.job.owner)

    @app.get(f"{JOB}/parameters")
    def get_parameters(jobname: str, job_id: str) -> bottle.HTTPResponse:
        details = job_of(jobname, job_id)
        return negotiated(
            details,
            lambda etag: xml(parameters_document(details.parameters), etag=etag),
            lambda: jsonapi.parameters_body(details.parameters),
        )

    @app.post(f"{JOB}/parameters")
    def post_parameters(jobname: str, job_id: str) -> bottle.HTTPResponse:
        caller_now = who()
        service.get_job(caller_now, jobname, job_id)  # 404 or 403 before a 400
        params, control, uploads = split_form()
        if control:
            raise BadRequest(f"{sorted(control)[0]} cannot be set through parameters")
        service.update_parameters(caller_now, jobname, job_id, params, uploads)
        return see_other(settings.BASE_URL, f"/rest/{jobname}/{job_id}")

    @app.get(f"{JOB}/parameters/<name>")
    def get_parameter(jobname: str, job_id: str, name: str) -> bottle.HTTPResponse:
        details = job_of(jobname, job_id)
        param = details.parameter(name)
        if param is None:
            raise NotFound(f"job {job_id} has no parameter {name!r}")
        return job_resource(details, param.value)

    @app.get(f"{JOB}/results")
    def get_results(jobname: str, job_id: str) -> bottle.HTTPResponse:
        details = job_of(jobname, job_id)
        return negotiated(
            details,
            lambda etag: xml(documents.results(details), etag=etag),
            lambda: jsonapi.results_body(details, base_url),
        )

    @app.get(f"{JOB}/results/<result_id>")
    def get_result(jobname: str, job_id: str, result_id: str) -> bottle.HTTPResponse:
        details = job_of(jobname, job_id)
        if details.result(result_id) is None:
            raise NotFound(f"job {job_id} has no result {result_id!r}")
        return see_other(settings.BASE_URL, f"/store/{job_id}/{quote(result_id)}")

    def stream_file(jobname: str, job_id: str, which: str) -> bottle.HTTPResponse:
        opened = service.stream(who(), jobname, job_id, which)
        if opened is None:
            return empty_file()
        return file_response(opened, "text/plain")

    @app.get(f"{JOB}/stdout")
    def get_stdout(jobname: str, job_id: str) -> bottle.HTTPResponse:
        return stream_file(jobname, job_id, STDOUT_FILE)

    @app.get(f"{JOB}/stderr")
    def get_stderr(jobname: str, job_id: str) -> bottle.HTTPResponse:
        return stream_file(jobname, job_id, STDERR_FILE)

    # -- the job types ------------------------------------------------------------------

    @app.get("/rest")
    def job_types() -> bottle.HTTPResponse:
        return text("".join(f"{name}\n" for name in service.job_types(who())))

    return app
