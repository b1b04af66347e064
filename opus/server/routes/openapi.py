"""The OpenAPI 3 description of the REST API, served at /openapi.json.

The description is hand-written in ``opus/server/openapi.yaml`` (next to the route
modules' package) and read once, at install time; only the server URL (BASE_URL) and
the version (the OPUS version) are filled in. It needs no credentials: a client reads it
before it authenticates.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import bottle
import yaml

from opus import __version__
from opus.server.routes.common import plain_tree
from opus.settings import Settings

DESCRIPTION_FILE = Path(__file__).resolve().parents[1] / "openapi.yaml"
JSON_CONTENT_TYPE = "application/json"


def load_description(settings: Settings) -> dict[str, Any]:
    """The description as a dict, for the server configured by ``settings``."""
    with open(DESCRIPTION_FILE, encoding="utf-8") as handle:
        document: dict[str, Any] = yaml.safe_load(handle)
    document["servers"] = [{"url": settings.BASE_URL}]
    document["info"]["version"] = __version__
    return document


def tree(settings: Settings) -> bottle.Bottle:
    """The /openapi.json tree (errors as plain text)."""
    app = plain_tree(settings.BASE_URL)
    # Rendered once: a broken description stops the server at start, not at a request.
    body = json.dumps(load_description(settings), ensure_ascii=False, indent=1).encode()

    @app.get("/openapi.json")
    def openapi_json() -> bottle.HTTPResponse:
        return bottle.HTTPResponse(body=body, headers={"Content-Type": JSON_CONTENT_TYPE})

    return app
