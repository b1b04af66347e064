"""/jdl: job definitions over HTTP, for the editor and for scripts (JSON errors).

The routes read the request (the definition's form from ``?format=``, the body's
Content-Type, a file part's type or name; its size bounded) and call the
DefinitionWorkflow with the caller, which decides who may do what. A definition is
answered in the form asked for by ``?format=`` or Accept (YAML when neither says).
docs/jdl.md describes every route.
"""

from __future__ import annotations

from typing import Any

import bottle

from opus.core.access import Caller
from opus.core.errors import BadRequest, OpusError, PayloadTooLarge
from opus.core.records import Job, StoredDraft, StoredVersion
from opus.core.times import format_time
from opus.server.auth import Authenticator
from opus.server.jdl import FORMATS, JobDefinition, dump_definition
from opus.server.jdl.files import EXTENSIONS, MAX_DEFINITION_BYTES
from opus.server.jsonapi import dumps
from opus.server.routes.common import (
    FORM_OVERHEAD,
    caller,
    form_values,
    plain_tree,
    single_values,
    without_csrf_field,
)
from opus.server.routes.negotiation import json_error, json_fault, json_response, quality
from opus.server.service import JobService
from opus.server.service.inputs import Upload
from opus.server.service.jdlworkflow import DefinitionEntry, DefinitionRefused, DefinitionWorkflow

NAME = "<name:re:[A-Za-z][A-Za-z0-9_-]{0,63}>"
NO_STORE = {"Cache-Control": "no-store"}
CONTENT_TYPES = {
    "yaml": "application/yaml; charset=utf-8",
    "json": "application/json; charset=utf-8",
    "votable": "application/x-votable+xml; charset=utf-8",
}
# Media types naming each form, in a request's Content-Type or Accept.
MEDIA_TYPES = {
    "yaml": ("application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml"),
    "json": ("application/json",),
    "votable": ("application/x-votable+xml", "application/xml", "text/xml"),
}
# A script given apart is bounded like a definition; multipart adds some room.
MAX_SCRIPT_BYTES = MAX_DEFINITION_BYTES
BODY_LIMIT = MAX_DEFINITION_BYTES + MAX_SCRIPT_BYTES + 64 * 1024


def tree(service: JobService, authn: Authenticator, workflow: DefinitionWorkflow) -> bottle.Bottle:
    """The /jdl tree (errors as JSON)."""
    base_url = service.settings.BASE_URL
    app = plain_tree(base_url, _json_error, json_fault)
    request = bottle.request

    def who() -> Caller:
        return caller(authn)

    @app.get("/jdl")
    def definitions() -> bottle.HTTPResponse:
        state = request.query.get("state", "")
        if state not in ("", "submitted"):
            raise BadRequest(f"state must be submitted, not {state!r}", "state")
        entries = workflow.entries(who(), submitted_only=state == "submitted")
        body = {"definitions": [_entry_json(entry) for entry in entries]}
        return json_response(dumps(body), headers=NO_STORE)

    @app.get(f"/jdl/{NAME}")
    def active(name: str) -> bottle.HTTPResponse:
        return _definition_answer(workflow.active(who(), name))

    @app.get(f"/jdl/{NAME}/script")
    def active_script(name: str) -> bottle.HTTPResponse:
        return _script_answer(workflow.active(who(), name))

    @app.delete(f"/jdl/{NAME}")
    def retire(name: str) -> bottle.HTTPResponse:
        workflow.retire(who(), name)
        return bottle.HTTPResponse(status=204)

    # -- drafts -------------------------------------------------------------------------

    @app.get(f"/jdl/{NAME}/draft")
    def draft(name: str) -> bottle.HTTPResponse:
        fmt = _answer_format()
        text = workflow.draft_text(who(), name, fmt)
        return bottle.HTTPResponse(
            body=text, headers={"Content-Type": CONTENT_TYPES[fmt], **NO_STORE}
        )

    @app.get(f"/jdl/{NAME}/draft/script")
    def draft_script(name: str) -> bottle.HTTPResponse:
        _, checked = workflow.draft(who(), name)
        if checked.definition is None:
            raise DefinitionRefused(f"the draft of {name} cannot be read", checked.problems)
        return _script_answer(checked.definition)

    @app.put(f"/jdl/{NAME}/draft")
    def save_draft(name: str) -> bottle.HTTPResponse:
        caller_now = who()
        text, fmt, script = _definition_body()
        stored, checked = workflow.save_draft(caller_now, name, text, fmt, script)
        body = {
            "name": name,
            "state": "draft",
            "draft": _draft_json(stored),
            "problems": [p.as_json() for p in checked.problems],
        }
        return json_response(dumps(body), headers=NO_STORE)

    @app.delete(f"/jdl/{NAME}/draft")
    def discard(name: str) -> bottle.HTTPResponse:
        workflow.discard(who(), name)
        return bottle.HTTPResponse(status=204)

    @app.post(f"/jdl/{NAME}/draft/validate")
    def validate(name: str) -> bottle.HTTPResponse:
        caller_now = who()
        if _has_body():
            text, fmt, script = _definition_body()
            checked = workflow.check(caller_now, name, text, fmt, script)
        else:
            checked = workflow.check_draft(caller_now, name)
        problems = [p.as_json() for p in checked.problems]
        body = {"valid": not problems, "problems": problems}
        return json_response(dumps(body), headers=NO_STORE)

    @app.post(f"/jdl/{NAME}/draft/submit")
    def submit(name: str) -> bottle.HTTPResponse:
        stored = workflow.submit(who(), name)
        return json_response(dumps({"name": name, "draft": _draft_json(stored)}))

    @app.post(f"/jdl/{NAME}/draft/approve")
    def approve(name: str) -> bottle.HTTPResponse:
        kept = workflow.approve(who(), name)
        return json_response(dumps({"name": name, "revision": kept.revision}))

    @app.post(f"/jdl/{NAME}/draft/try")
    def try_draft(name: str) -> bottle.HTTPResponse:
        caller_now = who()
        values, uploads = _job_form(service.settings.MAX_UPLOAD_SIZE)
        job = workflow.try_draft(caller_now, name, values, uploads)
        return json_response(dumps(_trial_json(job, base_url)), status=201)

    # -- versions -----------------------------------------------------------------------

    @app.get(f"/jdl/{NAME}/versions")
    def versions(name: str) -> bottle.HTTPResponse:
        found, current = workflow.versions(who(), name)
        body = {"versions": [_version_json(v, v.hash == current) for v in found]}
        return json_response(dumps(body), headers=NO_STORE)

    @app.get(f"/jdl/{NAME}/versions/<revision:int>")
    def version(name: str, revision: int) -> bottle.HTTPResponse:
        return _definition_answer(workflow.version(who(), name, revision))

    @app.post(f"/jdl/{NAME}/versions/<revision:int>/restore")
    def restore(name: str, revision: int) -> bottle.HTTPResponse:
        kept = workflow.restore(who(), name, revision)
        return json_response(dumps({"name": name, "revision": kept.revision}))

    @app.get(f"/jdl/{NAME}/diff")
    def diff(name: str) -> bottle.HTTPResponse:
        caller_now = who()
        before = request.query.get("from", "")
        after = request.query.get("to", "")
        if not before or not after:
            raise BadRequest("give the two versions to compare: from=N&to=M (or to=draft)")
        text = workflow.diff(caller_now, name, before, after)
        headers = {"Content-Type": "text/plain; charset=utf-8", **NO_STORE}
        return bottle.HTTPResponse(body=text, headers=headers)

    return app


# -- answers -------------------------------------------------------------------------------


def _json_error(exc: OpusError) -> bottle.HTTPResponse:
    """JSON errors; a refused definition lists all its problems."""
    answer = json_error(exc)
    if isinstance(exc, DefinitionRefused):
        body = {
            "error": {"status": exc.status, "message": str(exc), "field": exc.field},
            "problems": [p.as_json() for p in exc.problems],
        }
        answer.body = dumps(body)
    return answer


def _answer_format() -> str:
    """The form asked for: ``?format=``, else the Accept header's best, else YAML."""
    request = bottle.request
    asked = str(request.query.get("format", ""))
    if asked:
        if asked not in FORMATS:
            raise BadRequest(f"format must be one of {', '.join(FORMATS)}, not {asked!r}", "format")
        return asked
    accept = request.get_header("Accept")
    best, best_quality = "yaml", 0.0
    for fmt, types in MEDIA_TYPES.items():
        for media_type in types:
            found = quality(accept, media_type)
            # */* alone (curl, scripts) leaves YAML: every form ties there.
            if found > best_quality and _named(accept, media_type):
                best, best_quality = fmt, found
    return best


def _named(accept: str | None, media_type: str) -> bool:
    return bool(accept) and media_type in (accept or "").lower()


def _definition_answer(jd: JobDefinition) -> bottle.HTTPResponse:
    fmt = _answer_format()
    headers = {"Content-Type": CONTENT_TYPES[fmt], "Vary": "Accept", **NO_STORE}
    return bottle.HTTPResponse(body=dump_definition(jd, fmt), headers=headers)


def _script_answer(jd: JobDefinition) -> bottle.HTTPResponse:
    headers = {"Content-Type": "text/plain; charset=utf-8", **NO_STORE}
    return bottle.HTTPResponse(body=jd.script, headers=headers)


def _entry_json(entry: DefinitionEntry) -> dict[str, Any]:
    jd = entry.definition
    return {
        "name": entry.name,
        "state": entry.state,
        "annotation": jd.annotation if jd else "",
        "version": jd.version if jd else None,
        "revision": entry.revision,
        "contact_name": jd.contact_name if jd else "",
        "contact_email": jd.contact_email if jd else "",
        "type": jd.type if jd else "",
        "subtype": jd.subtype if jd else "",
        "draft": _draft_json(entry.draft) if entry.draft else None,
    }


def _draft_json(draft: StoredDraft) -> dict[str, Any]:
    return {
        "author": draft.author,
        "format": draft.format,
        "updated": format_time(draft.updated),
        "submitted": format_time(draft.submitted) if draft.submitted else None,
    }


def _version_json(version: StoredVersion, current: bool) -> dict[str, Any]:
    return {
        "revision": version.revision,
        "hash": version.hash,
        "version": version.version_label,
        "author": version.author,
        "approved_by": version.approved_by,
        "approved_at": format_time(version.approved_at) if version.approved_at else None,
        "created": format_time(version.created),
        "current": current,
    }


def _trial_json(job: Job, base_url: str) -> dict[str, Any]:
    return {
        "id": job.id,
        "jobname": job.jobname,
        "phase": job.phase.value,
        "url": f"{base_url}/rest/{job.jobname}/{job.id}",
        "page": f"{base_url}/jobs/{job.jobname}/{job.id}",
    }


# -- reading requests ----------------------------------------------------------------------


def _has_body() -> bool:
    request = bottle.request
    return (
        request.content_length > 0
        or "chunked" in (request.get_header("Transfer-Encoding") or "").lower()
    )


def _check_size() -> None:
    length = bottle.request.content_length
    if length > BODY_LIMIT:
        raise PayloadTooLarge(f"a definition's request is at most {BODY_LIMIT} bytes")


def _definition_body() -> tuple[bytes, str, str | None]:
    """(the definition's text, its form, the script given apart or None)."""
    _check_size()
    request = bottle.request
    content_type = request.content_type.split(";")[0].strip().lower()
    asked = request.query.get("format", "")
    if asked and asked not in FORMATS:
        raise BadRequest(f"format must be one of {', '.join(FORMATS)}, not {asked!r}", "format")
    if content_type == "multipart/form-data":
        return _multipart_definition(asked)
    fmt = asked or _format_of_type(content_type)
    if fmt is None:
        raise BadRequest(
            f"say the definition's form: ?format=yaml|json|votable, or a Content-Type "
            f"such as application/yaml (not {content_type or 'none'})"
        )
    data = request.body.read(MAX_DEFINITION_BYTES + 1)
    if len(data) > MAX_DEFINITION_BYTES:
        raise PayloadTooLarge(f"a definition is at most {MAX_DEFINITION_BYTES} bytes")
    if not data.strip():
        raise BadRequest("the request has no definition in its body")
    return data, fmt, None


def _multipart_definition(asked: str) -> tuple[bytes, str, str | None]:
    request = bottle.request
    try:
        upload = request.files.get("definition")
        script_upload = request.files.get("script")
        script_field = request.forms.decode().get("script")
    except (UnicodeError, ValueError) as exc:
        raise BadRequest(f"unreadable form data: {exc}") from None
    if upload is None:
        raise BadRequest("the form has no file part named definition", "definition")
    data = upload.file.read(MAX_DEFINITION_BYTES + 1)
    if len(data) > MAX_DEFINITION_BYTES:
        raise PayloadTooLarge(f"a definition is at most {MAX_DEFINITION_BYTES} bytes")
    fmt = asked or _format_of_type(upload.content_type) or _format_of_name(upload.raw_filename)
    if fmt is None:
        raise BadRequest(
            "say the definition's form: ?format=yaml|json|votable, or a file named "
            "*.yml, *.json or *.xml",
            "definition",
        )
    script: str | None = None
    if script_upload is not None:
        script = _utf8_text(script_upload.file.read(MAX_SCRIPT_BYTES + 1))
    elif isinstance(script_field, str) and script_field:
        script = script_field
    return data, fmt, script


def _utf8_text(data: bytes) -> str:
    if len(data) > MAX_SCRIPT_BYTES:
        raise PayloadTooLarge(f"a script is at most {MAX_SCRIPT_BYTES} bytes")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise BadRequest("the script is not UTF-8 text", "script") from None


def _format_of_type(content_type: str | None) -> str | None:
    media_type = (content_type or "").split(";")[0].strip().lower()
    for fmt, types in MEDIA_TYPES.items():
        if media_type in types:
            return fmt
    return None


def _format_of_name(file_name: str | None) -> str | None:
    name = (file_name or "").lower()
    return next((fmt for ext, fmt in EXTENSIONS.items() if name.endswith(ext)), None)


def _job_form(max_upload_size: int) -> tuple[dict[str, str], list[Upload]]:
    """A trial job's parameters and uploads (a body too large for them refused unread)."""
    request = bottle.request
    if request.content_length > max_upload_size + FORM_OVERHEAD:
        raise PayloadTooLarge(f"the request is larger than MAX_UPLOAD_SIZE ({max_upload_size})")
    pairs = without_csrf_field(form_values(request))
    file_fields = set(request.files.keys())
    values = single_values((k, v) for k, v in pairs if k not in file_fields)
    uploads = [
        Upload(field=name, filename=upload.raw_filename or name, stream=upload.file)
        for name, upload in request.files.allitems()
    ]
    return values, uploads
