"""The result store tree: /store/{job_id}/{result_id}, served with the registered type.

The file is opened by the service without following links, and answered by
routes/files.py: nosniff, a sandboxing CSP, and the types a browser would run served as
attachments; Range, conditional requests and HEAD as static files have them.
"""

from __future__ import annotations

import bottle

from opus.server.auth import Authenticator
from opus.server.routes.common import JOB_ID_PATTERN, caller, plain_tree
from opus.server.routes.files import file_response
from opus.server.service import JobService


def tree(service: JobService, authn: Authenticator) -> bottle.Bottle:
    """The result store (errors as plain text)."""
    app = plain_tree(service.settings.BASE_URL)

    @app.get(f"/store/<job_id:re:{JOB_ID_PATTERN}>/<result_id>")
    def get_result_file(job_id: str, result_id: str) -> bottle.HTTPResponse:
        result, opened = service.result_file(caller(authn), job_id, result_id)
        return file_response(opened, result.content_type, filename=opened.name)

    return app
