"""The shared-link tree: /shared/{token}, one result read without credentials.

The token is the authority (service/sharing.py): no cookie, no Authorization, so a SAMP
tool can load what a user sent it. The file is answered by routes/files.py exactly as
/store answers it: nosniff, ``Content-Security-Policy: sandbox``, active types as
attachments, Range and conditional requests. An unknown, ended or malformed token is a
plain 404, whatever the reason.
"""

from __future__ import annotations

import bottle

from opus.server.routes.common import plain_tree
from opus.server.routes.files import file_response
from opus.server.service.sharing import SharedLinks

LINK_PATTERN = r"[A-Za-z0-9_-]{16,128}"


def tree(links: SharedLinks) -> bottle.Bottle:
    """The shared links (errors as plain text)."""
    app = plain_tree(links.service.settings.BASE_URL)

    @app.get(f"/shared/<token:re:{LINK_PATTERN}>")
    def get_shared_file(token: str) -> bottle.HTTPResponse:
        result, opened = links.open(token)
        answer = file_response(opened, result.content_type, filename=opened.name)
        # A link is a secret: no proxy keeps the answer, no page sends it on.
        answer.set_header("Cache-Control", "private, no-store")
        answer.set_header("Referrer-Policy", "no-referrer")
        return answer

    return app
