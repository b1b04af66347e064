"""The JSON tree of the pages and of scripts: every job of the caller, and its changes.

``GET /jobs`` lists the jobs the caller may see (its own; every owner's for an admin)
of every type or some, newest first, a page at a time with an opaque cursor (an admin
may ask for one owner's, ``?owner=``: 403 for anybody else asking for another's);
``GET /changes`` is the change feed a live page follows instead of polling: what
changed since a token at once, or, with WAIT, as soon as something does (parked under
`opus serve`: no thread per waiting page). Both answer JSON only, errors included
(``{"error": {"status", "message", "field"}}``), with ``Cache-Control: no-store``.
"""

from __future__ import annotations

import bottle

from opus.core.access import Caller
from opus.core.records import JobChanges
from opus.server.auth import Authenticator
from opus.server.jsonapi import changes_body, page_body
from opus.server.parking import CONNECTED_KEY, PARK_KEY, Parker
from opus.server.routes.common import caller, plain_tree
from opus.server.routes.lists import once, page_query, wait_seconds
from opus.server.routes.negotiation import json_error, json_fault, json_response
from opus.server.service import JobService

NO_STORE = {"Cache-Control": "no-store"}


def tree(service: JobService, authn: Authenticator, parker: Parker) -> bottle.Bottle:
    """The /jobs and /changes tree (errors as JSON). A browser asking for /jobs gets the
    web page instead (opus.client.web.negotiated)."""
    settings = service.settings
    base_url = settings.BASE_URL
    app = plain_tree(base_url, json_error, json_fault)
    request = bottle.request

    def who() -> Caller:
        return caller(authn)

    def feed_answer(found: JobChanges) -> bottle.HTTPResponse:
        return json_response(changes_body(found, base_url), headers=NO_STORE)

    @app.get("/jobs")
    def user_jobs() -> bottle.HTTPResponse:
        pairs = list(request.query.decode().allitems())
        query = page_query(pairs)
        page = service.list_user_jobs(
            who(),
            types=query.types,
            phases=query.phases,
            run_id=query.run_id,
            cursor=query.cursor,
            limit=query.limit,
            after=query.after,
            owner=query.owner,
        )
        return json_response(page_body(page, base_url), headers=NO_STORE)

    @app.get("/changes")
    def changes() -> bottle.HTTPResponse:
        caller_now = who()
        pairs = list(request.query.decode().allitems())
        since = once(pairs, "SINCE", "since")
        timeout = wait_seconds(pairs, settings.WAIT_MAX)
        if not since:
            return feed_answer(JobChanges((), (), service.changes_token()))
        if timeout <= 0:
            return feed_answer(service.changes(caller_now, since))
        ticket = request.environ.get(PARK_KEY)
        if ticket is None:
            connected = request.environ.get(CONNECTED_KEY)
            return feed_answer(service.wait_changes(caller_now, since, timeout, connected))
        found = parker.park_changes(ticket, caller_now, since, timeout)
        if found is None:
            # Parked: the HTTP server sends nothing now, the Parker answers.
            return bottle.HTTPResponse(status=200, body=b"")
        return feed_answer(found)

    return app
