"""The synchronous tree, /sync/{jobname}: run a job and get its answer in one request.

A GET (the parameters in the query string, as DALI services take them) or a POST (a
form, urlencoded or multipart with uploads, as ``POST /rest/{jobname}`` takes it)
creates a job of the caller exactly as the UWS tree does, runs it, and waits for its
end, at most SYNC_TIMEOUT seconds (service/synchronous.py). The answer follows the
recipe of UWS 1.1 §5, the job's one result being the "main result":

- COMPLETED with one result: 303 to the result's file, /store/{id}/{result} (the URL
  of the result in the job document): a client that follows redirects gets the bytes.
- COMPLETED with no result or several, ERROR, ABORTED: 200 with the job's uws:job
  document, which lists the results or carries the errorSummary, and
  ``Content-Location`` naming the job (the document is a representation of it). A
  job that failed is the job's outcome, not a refusal of the request nor a server
  fault: it is answered the way the async job would show it, not with a 4xx or 5xx.
- Not ended at SYNC_TIMEOUT (or past the cap on waiting threads): 303 to the job,
  /rest/{jobname}/{id}, which goes on running: the client follows it as any UWS job
  (WAIT, results).
- A refused request (unknown type 404, a type not the caller's 403, a bad value 400,
  too large 413, NJOBS_MAX 403): the UWS tree's one-line text/plain answer, and nothing
  is kept.

Creating a job is a change: a GET whose Origin or Sec-Fetch-Site says another site made
it is refused (403), as every POST is on every tree, so that a link or an image on
another site cannot run a job with a browser's credentials; and a HEAD, which bottle
would give to the GET route, is answered 405 without running anything.
"""

from __future__ import annotations

from urllib.parse import quote

import bottle

from opus.core.phases import TERMINAL, Phase
from opus.core.records import JobDetails
from opus.server.auth import Authenticator
from opus.server.parking import CONNECTED_KEY
from opus.server.routes.common import (
    JOBNAME_PATTERN,
    TEXT_CONTENT_TYPE,
    caller,
    job_form,
    origin_of,
    plain_tree,
    refuse_cross_site,
    see_other,
    xml,
)
from opus.server.service import JobService
from opus.server.service.synchronous import run_synchronously
from opus.server.uwsxml import JobDocuments

S = f"/sync/<jobname:re:{JOBNAME_PATTERN}>"


def tree(service: JobService, authn: Authenticator, documents: JobDocuments) -> bottle.Bottle:
    """The synchronous tree (errors as plain text)."""
    settings = service.settings
    base_url = settings.BASE_URL
    own_origin = origin_of(base_url)
    app = plain_tree(base_url)
    request = bottle.request

    def answer(details: JobDetails) -> bottle.HTTPResponse:
        job = details.job
        if job.phase not in TERMINAL:
            # Running longer than SYNC_TIMEOUT (or HELD…): the client follows the job.
            return see_other(base_url, f"/rest/{job.jobname}/{job.id}")
        if job.phase == Phase.COMPLETED and len(details.results) == 1:
            return see_other(base_url, f"/store/{job.id}/{quote(details.results[0].result_id)}")
        document = xml(documents.job(details))
        document.set_header("Content-Location", f"{base_url}/rest/{job.jobname}/{job.id}")
        return document

    def run(jobname: str) -> bottle.HTTPResponse:
        caller_now = caller(authn)
        # 404 for an unknown type and 403 for a forbidden one, before the body is read.
        service.usable_definition(caller_now, jobname)
        params, control, uploads = job_form(request, settings.MAX_UPLOAD_SIZE)
        connected = request.environ.get(CONNECTED_KEY)
        details = run_synchronously(
            service, caller_now, jobname, params, uploads, control, connected
        )
        return answer(details)

    @app.get(S)
    def sync_get(jobname: str) -> bottle.HTTPResponse:
        if request.method == "HEAD":
            # bottle answers HEAD with the GET route: a link checker must not run jobs.
            headers = {"Allow": "GET, POST", "Content-Type": TEXT_CONTENT_TYPE}
            return bottle.HTTPResponse(status=405, headers=headers)
        refuse_cross_site(own_origin)
        return run(jobname)

    @app.post(S)
    def sync_post(jobname: str) -> bottle.HTTPResponse:
        return run(jobname)

    return app
