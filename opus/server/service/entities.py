"""The entities of jobs: inputs and results as files of provenance, and results used
by reference as the inputs of later jobs.

Every input a job receives (an upload, a fetched URL) is recorded with its SHA-256 and
the ``used`` relation, in the role of its input's name; results are recorded when the
job ends (storage/entities.py derives their ids). An input may also name an entity
already on the server — its id, or its URL here (``/store/{entity}``,
``/entities/{entity}``, ``/store/{job}/{result}``) — when it belongs to the caller (or
the caller is an admin): the job then uses it where it is, without a copy. The batch
script gets the file's absolute path (it lies under JOBS_PATH, which execution hosts
share), the job's parameter is the entity's URL, by reference. Should the job holding
the file be deleted before the job using it runs, the run is refused.
"""

from __future__ import annotations

import json
import mimetypes
import re
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from urllib.parse import unquote, urlsplit

from opus.core import access
from opus.core.access import Caller
from opus.core.errors import BadRequest, Forbidden, NotFound
from opus.core.layout import INTERNAL_DIR
from opus.core.records import Entity, Job, Parameter, Result
from opus.core.times import utcnow
from opus.server import nofollow
from opus.server.jdl import JobDefinition
from opus.server.service.jobfiles import JobFiles, write_private
from opus.server.service.validation import Values
from opus.server.storage.entities import (
    EntityStore,
    is_entity_id,
    new_entity_id,
    result_entities,
    result_entity_id,
)
from opus.server.storage.jobs import JobStore

REFERENCES_FILE = "references.json"
_STORE_RESULT = re.compile(r"/store/([a-z2-7]{1,64})/([^/]+)")
_ENTITY_PATH = re.compile(r"/(?:store|entities)/([0-9a-f]{32})")


class JobEntities:
    """Entities of the jobs of one server: recorded, resolved, checked for a caller."""

    def __init__(self, store: EntityStore, jobs: JobStore, files: JobFiles, base_url: str) -> None:
        self.store = store
        self.jobs = jobs
        self.files = files
        self.base_url = base_url.rstrip("/")

    # -- reads --------------------------------------------------------------------------

    def get(self, caller: Caller, entity_id: str) -> Entity:
        """The entity, if the caller may read it. NotFound (also for another user's:
        an entity's existence is not revealed)."""
        entity = self.store.get(entity_id)
        if entity is None or not access.can_access(caller, entity.owner):
            raise NotFound(f"no entity {entity_id}")
        return entity

    def open(self, caller: Caller, entity_id: str) -> tuple[Entity, nofollow.OpenFile]:
        """The entity and its file, open (close it). NotFound when the file is gone."""
        entity = self.get(caller, entity_id)
        if not entity.present:
            raise NotFound(f"the file of entity {entity_id} was deleted with its job")
        try:
            return entity, nofollow.open_file(self.files.directory(entity.job_id), entity.path)
        except nofollow.UnsafeFile:
            raise Forbidden(f"the file of entity {entity_id} is not a plain file") from None
        except OSError:
            raise NotFound(f"the file of entity {entity_id} is gone") from None

    def owned(self, caller: Caller, kind: str | None, last: int) -> list[Entity]:
        """The caller's entities still on disk, the newest first (at most ``last``)."""
        return self.store.owned(caller.name, kind, last)

    def maker(self, entity: Entity) -> Job | None:
        """The job that holds the entity's file (that made a result), if it exists."""
        return self.jobs.get_job(entity.job_id)

    def users(self, caller: Caller, entity: Entity) -> list[tuple[str, Job]]:
        """(role, job) of the jobs that used the entity, among those the caller may read."""
        found = []
        for use in self.store.uses_of_entities([entity.id]):
            job = self.jobs.get_job(use.job_id)
            if job is not None and access.can_access(caller, job.owner):
                found.append((use.role, job))
        return found

    def result_entity(self, job_id: str, result_id: str) -> str:
        """The entity id of a job's result."""
        return result_entity_id(job_id, result_id)

    def url(self, entity_id: str) -> str:
        """Where the entity's metadata is served."""
        return f"{self.base_url}/entities/{entity_id}"

    def location(self, entity_id: str) -> str:
        """Where the entity's bytes are served."""
        return f"{self.base_url}/store/{entity_id}"

    # -- results ------------------------------------------------------------------------

    def record_results(self, job: Job, results: Sequence[Result]) -> list[Entity]:
        """The entities of a job's results, stored if they were not yet."""
        entities = result_entities(job, results)
        self.store.record(entities)
        return entities

    # -- inputs -------------------------------------------------------------------------

    def split_references(self, caller: Caller, values: Values) -> tuple[Values, dict[str, Entity]]:
        """The values with the URL inputs to fetch, and apart the inputs that name
        entities of this server (``references``)."""
        references = self.references(caller, values.urls)
        urls = {name: url for name, url in values.urls.items() if name not in references}
        return replace(values, urls=urls), references

    def references(self, caller: Caller, urls: Mapping[str, str]) -> dict[str, Entity]:
        """The inputs given as entities of this server (by id or URL), checked: present
        and the caller's (or the caller is an admin). BadRequest naming the input."""
        found: dict[str, Entity] = {}
        for name, value in urls.items():
            entity_id = self._entity_id_of(value.strip())
            if entity_id is None:
                continue
            entity = self.store.get(entity_id)
            if entity is None and (result := self._result_of(value.strip())) is not None:
                entity = result
            if entity is None or not access.can_access(caller, entity.owner):
                raise BadRequest(f"input {name!r}: no entity {entity_id} of yours", name)
            if not entity.present:
                raise BadRequest(f"input {name!r}: entity {entity_id} was deleted", name)
            found[name] = entity
        return found

    def _entity_id_of(self, value: str) -> str | None:
        """The entity id an input's value names, or None (a URL to fetch)."""
        if is_entity_id(value):
            return value
        if not value.startswith(self.base_url + "/"):
            return None
        path = urlsplit(value).path
        prefix = urlsplit(self.base_url).path.rstrip("/")
        path = path[len(prefix) :]
        if match := _ENTITY_PATH.fullmatch(path):
            return match.group(1)
        if match := _STORE_RESULT.fullmatch(path):
            return result_entity_id(match.group(1), unquote(match.group(2)))
        return None

    def _result_of(self, value: str) -> Entity | None:
        """A result named by its /store/{job}/{result} URL whose entity is not recorded
        yet (a job ended before entities were recorded): recorded now."""
        prefix = urlsplit(self.base_url).path.rstrip("/")
        match = _STORE_RESULT.fullmatch(urlsplit(value).path[len(prefix) :])
        if match is None:
            return None
        details = self.jobs.get_details(match.group(1))
        if details is None:
            return None
        result_id = unquote(match.group(2))
        results = [r for r in details.results if r.result_id == result_id]
        return self.record_results(details.job, results)[0] if results else None

    def link(self, job_id: str, references: Mapping[str, Entity]) -> list[Parameter]:
        """Make referenced entities inputs of the job (no copy: the script gets their
        path); the parameters that record them, by reference."""
        if not references:
            return []
        paths: dict[str, str] = {}
        for name, entity in references.items():
            source_dir = self.files.directory(entity.job_id)
            path = _checked_path(source_dir, entity.path)
            if path is None:
                raise BadRequest(f"input {name!r}: the file of entity {entity.id} is gone", name)
            paths[name] = str(path)
        layout = self.files.layout(job_id)
        layout.internal.mkdir(mode=0o700, exist_ok=True)
        known = self.referenced_paths(job_id)
        known.update(paths)
        write_private(layout.internal / REFERENCES_FILE, json.dumps(known))
        return [
            Parameter(name, self.location(entity.id), by_reference=True)
            for name, entity in references.items()
        ]

    def referenced_paths(self, job_id: str) -> dict[str, str]:
        """Input name → absolute path of the entities the job uses by reference."""
        relative = f"{INTERNAL_DIR}/{REFERENCES_FILE}"
        data = nofollow.read_file(self.files.directory(job_id), relative, 1024 * 1024)
        try:
            return {str(k): str(v) for k, v in json.loads(data or b"{}").items()}
        except (AttributeError, TypeError, ValueError):
            return {}

    def record_inputs(
        self,
        job: Job,
        stored: Sequence[Parameter],
        references: Mapping[str, Entity],
        jdl: JobDefinition,
        *,
        created: bool = False,
    ) -> None:
        """Record the files the job just received (uploads and fetched URLs) as
        entities, and its use of them and of the referenced entities (the job's
        results of earlier jobs, by reference: the script gets their path). A job
        ``created`` for them is deleted if they cannot be recorded: nothing is kept
        of it then."""
        try:
            self._record_inputs(job, stored, references, jdl)
        except BaseException:
            if created:
                self.jobs.delete_job(job.id)
            raise

    def _record_inputs(
        self,
        job: Job,
        stored: Sequence[Parameter],
        references: Mapping[str, Entity],
        jdl: JobDefinition,
    ) -> None:
        local_names = self.files.input_files(job.id)
        job_dir = self.files.directory(job.id)
        content_types = {u.name: u.content_type for u in jdl.used if u.content_type}
        now = utcnow()
        received: list[Entity] = []
        used: list[tuple[str, str]] = []
        for param in stored:
            if param.name in references or param.name not in local_names:
                continue
            local = local_names[param.name]
            facts = _file_facts(job_dir, local)
            if facts is None:
                continue
            size, digest = facts
            guessed = mimetypes.guess_type(local)[0]
            entity = Entity(
                id=new_entity_id(),
                kind="input",
                job_id=job.id,
                name=param.name,
                path=local,
                owner=job.owner,
                content_type=content_types.get(param.name) or guessed or "application/octet-stream",
                size=size,
                sha256=digest,
                creation_time=now,
                source=param.value if param.by_reference else None,
            )
            received.append(entity)
            used.append((param.name, entity.id))
        used += [(name, entity.id) for name, entity in references.items()]
        self.store.record(received)
        self.store.use(job.id, used)

    def missing_references(self, job_id: str) -> list[str]:
        """The inputs of the job whose referenced entity's file is gone."""
        uses = {u.role: u.entity_id for u in self.store.uses_by_jobs([job_id])}
        referenced = self.referenced_paths(job_id)
        entities = self.store.many([uses[n] for n in referenced if n in uses])
        return sorted(
            name
            for name in referenced
            if name not in uses or not (found := entities.get(uses[name])) or not found.present
        )

    # -- deletion -----------------------------------------------------------------------

    def job_deleted(self, job_id: str) -> None:
        """The job and its files are gone: its entities stay, without their files."""
        self.store.forget_files(job_id)
        self.store.forget_uses(job_id)

    def results_deleted(self, job_id: str) -> None:
        """The job's results are gone (ARCHIVED)."""
        self.store.forget_files(job_id)


def _checked_path(job_dir: Path, relative: str) -> Path | None:
    """The absolute path of a plain file of a job's directory (opened without following
    links, as every file OPUS reads there), or None."""
    try:
        with nofollow.open_file(job_dir, relative):
            return job_dir / relative
    except OSError:
        return None


def _file_facts(job_dir: Path, relative: str) -> tuple[int, str] | None:
    """Size and SHA-256 of a file of the job's directory (None if unreadable)."""
    try:
        with nofollow.open_file(job_dir, relative) as opened:
            return nofollow.size_and_sha256(opened)
    except OSError:
        return None
