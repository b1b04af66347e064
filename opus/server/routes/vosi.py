"""The VOSI tree: /availability and /capabilities (IVOA VOSI 1.0, XML from vosixml).

Both are public, as VOSI resources are meant to be (registries, validators and
monitors read them without credentials):

- /availability asks no credentials and looks at none: whether the database answers
  and the manager is reachable (service/availability.py), never a 500 for a failure
  of either, which is the document's ``available`` false and a note saying what failed.
- /capabilities lists the job types of the caller, never one the caller may not run:
  a request with credentials (Authorization, or a session cookie) is authenticated as
  on every tree (401 for wrong ones) and gets the types its roles grant
  (``JobService.job_types``); one without gets the anonymous caller's under
  ALLOW_ANONYMOUS, and no job type at all otherwise, only the VOSI and ProvSAP
  capabilities. The answer depends on the credentials: ``Vary`` says so, and nothing
  in between keeps it for others (``Cache-Control: private``).
"""

from __future__ import annotations

import bottle

from opus.core.access import ANONYMOUS, Caller
from opus.server.auth import Authenticator
from opus.server.routes.common import caller, plain_tree, xml
from opus.server.service import JobService
from opus.server.service.availability import AvailabilityCheck
from opus.server.sessions import session_cookie
from opus.server.vosixml import availability_document, capabilities_document, server_capabilities


def tree(service: JobService, authn: Authenticator) -> bottle.Bottle:
    """The VOSI tree (errors as plain text)."""
    settings = service.settings
    app = plain_tree(settings.BASE_URL)
    request = bottle.request
    check = AvailabilityCheck(service)

    def credited_caller() -> Caller | None:
        """The caller of a request with credentials; without: anonymous when it is
        allowed, else None (nobody whose job types may be listed)."""
        has_cookie = session_cookie(request.get_header("Cookie")) is not None
        if request.get_header("Authorization") or (authn.sessions is not None and has_cookie):
            return caller(authn)
        return Caller(ANONYMOUS) if settings.ALLOW_ANONYMOUS else None

    @app.get("/availability")
    def availability() -> bottle.HTTPResponse:
        state = check.check()
        answer = xml(availability_document(state.available, state.notes, state.up_since))
        answer.set_header("Cache-Control", "no-store")
        return answer

    @app.get("/capabilities")
    def capabilities() -> bottle.HTTPResponse:
        who = credited_caller()
        names = service.job_types(who) if who is not None else []
        types = [(name, service.definition(name).annotation) for name in names]
        listed = server_capabilities(settings.BASE_URL, types, settings.ALLOW_ANONYMOUS)
        answer = xml(capabilities_document(listed))
        answer.set_header("Vary", "Authorization, Cookie")
        answer.set_header("Cache-Control", "private, no-cache")
        return answer

    return app
