"""The routes of a result beside its page: its quick-look image and its shared links.

- ``GET /jobs/T/ID/results/R/quicklook.png``: the quick-look PNG of a FITS image
  (quicklook.py), for whoever may read the result (the service's rule, with the caller,
  as the result's page); 404 when the result holds no image to quick-look, or astropy
  is missing. Its ETag is the file's version: a browser revalidates and gets 304. At
  most ``QUICKLOOK_AT_ONCE`` are drawn at a time, so that images do not take every
  core of the server.
- ``POST /jobs/T/ID/results/R/share``: a new shared link of the result (service/
  sharing.py) for the "Send to SAMP" button, answered as JSON (``url``, ``expires``,
  ``name``). A POST of the page tree: the session's CSRF token is required.
"""

from __future__ import annotations

import json
import threading

import bottle

from opus.client import astro
from opus.client.context import Pages
from opus.core.errors import NotFound
from opus.core.times import format_time
from opus.server.routes.common import JOB_ID_PATTERN, JOBNAME_PATTERN, etag_matches
from opus.server.service.sharing import SharedLinks

RESULT = f"/jobs/<jobname:re:{JOBNAME_PATTERN}>/<job_id:re:{JOB_ID_PATTERN}>/results/<result_id>"
QUICKLOOK_AT_ONCE = 2
QUICKLOOK_CACHE = "private, no-cache"


def add_routes(app: bottle.Bottle, pages: Pages, links: SharedLinks) -> None:
    service = pages.service
    drawing = threading.BoundedSemaphore(QUICKLOOK_AT_ONCE)

    @app.get(f"{RESULT}/quicklook.png")
    def quicklook(jobname: str, job_id: str, result_id: str) -> bottle.HTTPResponse:
        viewer = pages.viewer()
        service.get_job(viewer.caller, jobname, job_id)
        _, opened = service.result_file(viewer.caller, job_id, result_id)
        with opened:
            if not astro.available():
                raise NotFound("quick-look images need astropy: pip install opus[fits]")
            etag = f'"quicklook-{opened.version}"'
            headers = {"ETag": etag, "Cache-Control": QUICKLOOK_CACHE}
            if etag_matches(bottle.request.get_header("If-None-Match"), etag):
                return bottle.HTTPResponse(status=304, headers=headers)
            from opus.client import quicklook  # numpy: only with the fits extra

            try:
                stream, image = astro.fits_image(opened.handle, opened.size)
                with drawing:
                    png = quicklook.quicklook_png(stream, image)
            except astro.NotPreviewable as exc:
                raise NotFound(f"no quick-look image of {result_id!r}: {exc}") from None
        headers["Content-Type"] = "image/png"
        headers["Content-Length"] = str(len(png))
        body = b"" if bottle.request.method == "HEAD" else png
        return bottle.HTTPResponse(body=body, headers=headers)

    @app.post(f"{RESULT}/share")
    def share(jobname: str, job_id: str, result_id: str) -> bottle.HTTPResponse:
        viewer = pages.viewer()
        link = links.create(viewer.caller, jobname, job_id, result_id)
        body = {
            "url": link.url,
            "expires": format_time(link.expires),
            "name": link.result.path.rsplit("/", 1)[-1],
        }
        headers = {"Content-Type": "application/json", "Cache-Control": "no-store"}
        return bottle.HTTPResponse(body=json.dumps(body), status=201, headers=headers)
