"""The OpenAPI 3 description of the REST API, served at /openapi.json."""

from __future__ import annotations

import bottle

from opus.settings import Settings


def install(app: bottle.Bottle, settings: Settings) -> None:
    """Register /openapi.json on ``app``."""
