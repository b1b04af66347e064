"""Who is asking: the one place where requests are given an owner.

Until users exist, every caller is the shared owner ``anonymous`` (when
ALLOW_ANONYMOUS is true, the default); otherwise requests are refused with 401.
"""

from __future__ import annotations

import bottle

from opus.settings import Settings

ANONYMOUS = "anonymous"


def current_owner(request: bottle.BaseRequest, settings: Settings) -> str:
    """The owner name of the caller, or a 401 response."""
    if settings.ALLOW_ANONYMOUS:
        return ANONYMOUS
    raise bottle.HTTPResponse(
        status=401,
        body="authentication required\n",
        headers={
            "Content-Type": "text/plain; charset=UTF-8",
            "WWW-Authenticate": 'Basic realm="OPUS"',
        },
    )


def check_job_access(job_owner: str, caller: str) -> bool:
    """True when the caller may see and change a job of ``job_owner``."""
    return job_owner == caller
