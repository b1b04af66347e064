"""The result store tree: /store/{job_id}/{result_id}, served with the registered type."""

from __future__ import annotations

from urllib.parse import quote

import bottle

from opus.server.auth import Authenticator
from opus.server.routes.common import JOB_ID_PATTERN, caller, plain_tree
from opus.server.service import JobService


def tree(service: JobService, authn: Authenticator) -> bottle.Bottle:
    """The result store (errors as plain text)."""
    app = plain_tree(service.settings.BASE_URL)

    @app.get(f"/store/<job_id:re:{JOB_ID_PATTERN}>/<result_id>")
    def get_result_file(job_id: str, result_id: str) -> bottle.HTTPResponse:
        found = service.result_file(caller(authn), job_id, result_id)
        path = found.path
        response: bottle.HTTPResponse = bottle.static_file(
            path.name, root=str(path.parent), mimetype=found.result.content_type
        )
        if response.status_code < 300:
            # RFC 6266/5987 form: any file name, quoted, cannot break the header.
            disposition = f"inline; filename*=UTF-8''{quote(path.name)}"
            response.set_header("Content-Disposition", disposition)
        return response

    return app
