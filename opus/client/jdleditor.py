"""The job definition editor: ``/admin/jdl`` (the definitions, the approval queue) and
``/admin/jdl/NAME`` (one definition's editor).

Only admins and users with the ``jdl_author`` role see these pages; anybody else
signed in gets a 403 page, and a request without credentials goes to sign in. The
pages hold no definition data: their scripts (static/js/jdl_list.js, jdl_editor.js)
read and write definitions through the /jdl HTTP API with the session, so the API's
access rules (an author writes drafts of new types and of the types they authored;
admins approve) are the only ones, applied in one place. What the server renders is
the form's structure: every field of the JDL format, each labelled, and the row
templates of parameters and entities.

The editor's CodeMirror writes its styles in ``<style>`` elements: its page asks for a
style nonce (rendering.allow_style_elements), which its CSP names and its scripts give
to CodeMirror; no other page allows any inline style.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import bottle

from opus.client.context import Pages
from opus.client.rendering import Viewer, allow_style_elements
from opus.core.access import JDL_AUTHOR_ROLE
from opus.core.errors import Forbidden
from opus.server.jdl.model import DATATYPES
from opus.server.routes.common import see_other
from opus.server.service.jdlworkflow import DEFINITION_NAME as WRITTEN_NAME

# The names the /jdl API takes for job types (a subset of JOBNAME_PATTERN).
DEFINITION_NAME = WRITTEN_NAME.pattern
LIST = "/admin/jdl"
EDITOR = f"/admin/jdl/<name:re:{DEFINITION_NAME}>"
# How a used entity reaches the job, as the editor offers it (its url field).
USED_SOURCES = (
    ("file", "A file the client uploads (file://$ID)"),
    ("url", "A URL the client gives"),
    ("id", "An identifier, fetched from a URL template"),
)
MULTIPLICITIES = ("1", "*", "0..1", "1..*")


@dataclass(frozen=True)
class DescriptionField:
    """A field of the definition's description in the editor's form (``key``: its
    name in the YAML form, the problems' field path)."""

    key: str
    label: str
    help: str = ""
    kind: str = "text"
    numeric: bool = False
    readonly: bool = False
    multiline: bool = False


DESCRIPTION = (
    DescriptionField("name", "Name", "The job type: fixed by the page's address.", readonly=True),
    DescriptionField("version", "Version", "The definition's version label, e.g. 1.0."),
    DescriptionField(
        "annotation", "Annotation", "What the job does, shown to users.", multiline=True
    ),
    DescriptionField("doculink", "Documentation link", "An http: or https: URL.", kind="url"),
    DescriptionField("type", "Type", "A free classification, e.g. test."),
    DescriptionField("subtype", "Subtype", "A finer classification, e.g. image."),
    DescriptionField("contact_name", "Contact name"),
    DescriptionField("contact_email", "Contact e-mail", kind="email"),
    DescriptionField(
        "execution_duration",
        "Execution duration (s)",
        "The longest a job may run: 0 = no limit, empty = the server's default.",
        numeric=True,
    ),
    DescriptionField("quote", "Quote (s)", "The expected run time; empty = none.", numeric=True),
)


def may_edit_definitions(viewer: Viewer) -> bool:
    """Whether the viewer may open the editor (admins and job definition authors)."""
    return viewer.caller.is_admin or JDL_AUTHOR_ROLE in viewer.caller.roles


def add_routes(app: bottle.Bottle, pages: Pages) -> None:
    def author() -> Viewer:
        viewer = pages.viewer()
        if not may_edit_definitions(viewer):
            raise Forbidden(
                f"the job definition editor is for admins and users with the {JDL_AUTHOR_ROLE} role"
            )
        return viewer

    @app.get(LIST)
    def definitions() -> bottle.HTTPResponse:
        viewer = author()
        # The "New definition" form, sent without JavaScript: to the new one's editor.
        new = bottle.request.query.decode().get("new")
        error = ""
        if new is not None:
            if re.fullmatch(DEFINITION_NAME, new):
                return see_other(pages.settings.BASE_URL, f"{LIST}/{new}")
            error = (
                f"{new!r} is not a definition name: lower-case letters, digits and _, "
                "starting with a letter (at most 64)"
            )
        return pages.page(
            "jdl_list",
            viewer,
            status=400 if error else 200,
            title="Job definitions",
            is_admin=viewer.caller.is_admin,
            name_pattern=DEFINITION_NAME,
            error=error,
        )

    @app.get(EDITOR)
    def editor(name: str) -> bottle.HTTPResponse:
        viewer = author()
        return pages.page(
            "jdl_editor",
            viewer,
            title=f"Job definition {name}",
            definition_name=name,
            is_admin=viewer.caller.is_admin,
            description=DESCRIPTION,
            datatypes=DATATYPES,
            used_sources=USED_SOURCES,
            multiplicities=MULTIPLICITIES,
            style_nonce=allow_style_elements(),
        )
