"""The signal tree: /handler/job_event, phase reports from batch scripts.

The caller proves it is the job's own batch script with the job's secret token (its
hash is stored); no address or forwarded header is ever trusted.
"""

from __future__ import annotations

import bottle

from opus.core.errors import BadRequest
from opus.server.routes.common import form_values, plain_tree, single_values, text
from opus.server.service import JobService


def tree(service: JobService) -> bottle.Bottle:
    """The signal endpoint (errors as plain text)."""
    app = plain_tree(service.settings.BASE_URL)

    @app.post("/handler/job_event")
    def job_event() -> bottle.HTTPResponse:
        values = single_values(form_values(bottle.request))
        job_id = values.get("jobid", "").strip()
        phase = values.get("phase", "").strip()
        if not job_id or not phase:
            raise BadRequest("jobid and phase are required")
        job = service.signal(job_id, values.get("token", ""), phase, values.get("message", ""))
        return text(f"{job.id} {job.phase}\n")

    return app
