"""The page of an entity: a file of provenance (a job's input or result) for a browser.

``/entities/{id}`` is the same rule as the JSON route of routes/provenance.py, so
``web.negotiated`` gives browsers this page and scripts the JSON. The entity is
read through the service with the caller (NotFound for another user's, whose existence
is not told); the jobs that used it are only those the caller may read.
"""

from __future__ import annotations

from dataclasses import dataclass

import bottle

from opus.client.context import Pages
from opus.core.access import Caller
from opus.core.records import Entity, Job
from opus.server.service import JobService

ENTITY = "/entities/<entity_id:re:[0-9a-f]{32}>"


@dataclass(frozen=True)
class Use:
    """A job that used the entity, as its input ``role``."""

    job: Job
    role: str


def add_routes(app: bottle.Bottle, pages: Pages) -> None:
    service = pages.service

    @app.get(ENTITY)
    def entity_page(entity_id: str) -> bottle.HTTPResponse:
        viewer = pages.viewer()
        entity = service.entities.get(viewer.caller, entity_id)
        return pages.page(
            "entity",
            viewer,
            title=f"{entity.name} ({entity.kind})",
            entity=entity,
            job=service.entities.maker(entity),
            uses=uses_of(service, viewer.caller, entity),
            location=service.entities.location(entity.id) if entity.present else "",
        )


def uses_of(service: JobService, caller: Caller, entity: Entity) -> list[Use]:
    """The jobs that used ``entity``, among those ``caller`` may read."""
    return [Use(job, role) for role, job in service.entities.users(caller, entity)]
