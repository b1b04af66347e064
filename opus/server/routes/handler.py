"""The signal tree: /handler/job_event (phase reports) and /handler/job_progress
(progress reports), both posted by batch scripts.

The caller proves it is the job's own batch script with the job's secret token (its
hash is stored); no address or forwarded header is ever trusted.
"""

from __future__ import annotations

import bottle

from opus.core.errors import BadRequest
from opus.server.routes.common import form_values, plain_tree, single_values, text
from opus.server.service import JobService
from opus.server.service.progress import report_progress


def tree(service: JobService) -> bottle.Bottle:
    """The signal endpoints (errors as plain text)."""
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

    @app.post("/handler/job_progress")
    def job_progress() -> bottle.HTTPResponse:
        values = single_values(form_values(bottle.request))
        job_id = values.get("jobid", "").strip()
        percent = values.get("percent", "")
        if not job_id or not percent.strip():
            raise BadRequest("jobid and percent are required")
        token, message = values.get("token", ""), values.get("message", "")
        job = report_progress(service, job_id, token, percent, message)
        return text(f"{job.id} {job.progress:g}\n")

    return app
