"""Result files: /store/{job_id}/{result_id}, served with their registered type."""

from __future__ import annotations

from urllib.parse import quote

import bottle

from opus.server import auth
from opus.server.errors import Forbidden, NotFound
from opus.server.routes.common import JOB_ID_PATTERN
from opus.server.service import JobService


def install(app: bottle.Bottle, service: JobService, authn: auth.Authenticator) -> None:
    """Register the result-file route on ``app``."""

    @app.get(f"/store/<job_id:re:{JOB_ID_PATTERN}>/<result_id>")
    def get_result_file(job_id: str, result_id: str):
        who = authn.caller(bottle.request)
        job = service.store.get_job(job_id)
        if job is None:
            raise NotFound(f"no job {job_id!r}")
        if not auth.can_access(who, job.owner):
            raise Forbidden(f"job {job_id} belongs to another user")
        for result in service.store.get_results(job_id):
            if result.result_id == result_id:
                path = service.file_path(job, result.path)
                if not path.is_file():
                    raise NotFound(f"the file of result {result_id!r} is gone")
                response = bottle.static_file(
                    path.name, root=str(path.parent), mimetype=result.content_type
                )
                if isinstance(response, bottle.HTTPResponse) and response.status_code < 300:
                    # RFC 6266/5987 form: any file name, quoted, cannot break the header.
                    disposition = f"inline; filename*=UTF-8''{quote(path.name)}"
                    response.set_header("Content-Disposition", disposition)
                return response
        raise NotFound(f"job {job_id} has no result {result_id!r}")
