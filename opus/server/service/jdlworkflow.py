"""The life of job definitions over HTTP: drafts, checks, approval, versions, retirement.

Who may do what is decided here and nowhere else: anyone who may use a job type reads
its active definition; admins do everything; a user with the ``jdl_author`` role writes
the draft of a new type, and of a type whose first numbered version they wrote, runs
trial jobs of it and submits it; admins approve, restore and retire.

The active definitions stay the files of JDL_PATH that the registry reads: approving
writes NAME.yml and NAME.sh there (atomically) and moves any other file of that name
into JDL_PATH/.retired, so every worker of the server, whose registry looks at the
directory twice a second, serves the new version within a second. Every text that was
approved or ran a job is kept in the database (storage/definitions.py), so a job keeps
its definition, and an earlier version can be read, compared and restored.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from opus.core import access
from opus.core.access import JDL_AUTHOR_ROLE, Caller
from opus.core.errors import BadRequest, Forbidden, NotFound
from opus.core.records import Job, StoredDraft, StoredVersion
from opus.core.times import utcnow
from opus.server.jdl import (
    CheckedText,
    JobDefinition,
    Problem,
    check_text,
    definition_hash,
    dump_definition,
    parse_definition,
    save_definition,
)
from opus.server.jdl.files import EXTENSIONS
from opus.server.mail import Mailer
from opus.server.service.inputs import Upload
from opus.server.service.jobs import JobService

# Names of job types written over HTTP: they name files in JDL_PATH and roles.
DEFINITION_NAME = re.compile(r"[a-z][a-z0-9_]{0,63}")
# Where the files of a retired or replaced definition go (hidden: the registry skips it).
RETIRED_DIRECTORY = ".retired"


class DefinitionRefused(BadRequest):
    """A definition's text has problems: a 400 that lists every one of them."""

    def __init__(self, message: str, problems: Sequence[Problem]) -> None:
        first = problems[0].field if problems else None
        super().__init__(message, first)
        self.problems = list(problems)


@dataclass(frozen=True)
class DefinitionEntry:
    """One job type as the definitions list shows it."""

    name: str
    state: str  # "active", "retired" or "new" (only a draft)
    definition: JobDefinition | None  # the active one (or the draft's, for a new type)
    revision: int | None
    draft: StoredDraft | None


class DefinitionWorkflow:
    """Drafts, approval and versions of job definitions, for a caller."""

    def __init__(self, service: JobService, mailer: Mailer | None = None) -> None:
        self.service = service
        self.kept = service.kept
        self.store = service.kept.store
        self.registry = service.registry
        self.settings = service.settings
        self.mailer = mailer or Mailer(service.settings)

    # -- who ----------------------------------------------------------------------------

    def may_write(self, caller: Caller, name: str) -> bool:
        """Whether the caller may write the draft of ``name`` (and try and submit it)."""
        if caller.is_admin:
            return True
        if JDL_AUTHOR_ROLE not in caller.roles:
            return False
        author = self.store.author_of(name)
        if author is not None:
            return author == caller.name
        if self.registry.get(name) is not None or self.store.versions(name):
            return False  # a type an admin put in place: theirs to change
        draft = self.store.draft(name)
        return draft is None or draft.author == caller.name

    def is_author(self, caller: Caller) -> bool:
        """Whether the caller writes definitions at all (sees drafts)."""
        return caller.is_admin or JDL_AUTHOR_ROLE in caller.roles

    def _check_name(self, name: str) -> None:
        if not DEFINITION_NAME.fullmatch(name):
            raise BadRequest(
                f"{name!r} is not a job type name for the editor (a lower-case letter, "
                "then lower-case letters, digits or _)",
                "name",
            )

    def _check_writer(self, caller: Caller, name: str) -> None:
        self._check_name(name)
        if not self.may_write(caller, name):
            raise Forbidden(f"{caller.name} may not write the definition of {name}")

    def _check_admin(self, caller: Caller, doing: str) -> None:
        if not caller.is_admin:
            raise Forbidden(f"only admins {doing}")

    # -- reading ------------------------------------------------------------------------

    def entries(self, caller: Caller, *, submitted_only: bool = False) -> list[DefinitionEntry]:
        """The types the caller may use (and, for authors and admins, drafts and retired
        types), by name; ``submitted_only``: the approval queue (admins)."""
        if submitted_only:
            self._check_admin(caller, "see the approval queue")
        author = self.is_author(caller)
        drafts = {d.name: d for d in self.store.drafts(submitted_only=submitted_only)}
        names = set(drafts)
        if not submitted_only:
            names |= set(self.service.job_types(caller))
            if author:
                names |= set(self.registry.names()) | set(self.store.names())
        found = []
        for name in sorted(names):
            draft = drafts.get(name)
            if draft is not None and not (caller.is_admin or draft.author == caller.name):
                draft = None
            active = self.registry.get(name)
            if active is not None:
                revision, _ = self.kept.pin(active)
                found.append(DefinitionEntry(name, "active", active, revision, draft))
            elif author and self.store.versions(name):
                found.append(DefinitionEntry(name, "retired", None, None, draft))
            elif draft is not None:
                checked = check_text(draft.text, draft.format, script=draft.script)
                found.append(DefinitionEntry(name, "new", checked.definition, None, draft))
        return found

    def active(self, caller: Caller, name: str) -> JobDefinition:
        """The active definition of ``name`` (NotFound; Forbidden unless the caller may
        use it or writes definitions)."""
        jd = self.service.definition(name)
        check = self.settings.CHECK_PERMISSIONS
        if not (access.may_use(caller, name, check) or self.may_write(caller, name)):
            raise Forbidden(f"{caller.name} may not use {name} jobs (no role grants it)")
        return jd

    def draft(self, caller: Caller, name: str) -> tuple[StoredDraft, CheckedText]:
        """The draft of ``name`` and what its text holds (NotFound if none)."""
        self._check_writer(caller, name)
        draft = self.store.draft(name)
        if draft is None:
            raise NotFound(f"no draft of {name}")
        return draft, check_text(draft.text, draft.format, script=draft.script)

    def draft_text(self, caller: Caller, name: str, fmt: str) -> str:
        """The draft in ``fmt``: as its author wrote it when that is its form."""
        draft, checked = self.draft(caller, name)
        if fmt == draft.format and draft.script is None:
            return draft.text
        if checked.definition is None:
            raise DefinitionRefused(f"the draft of {name} cannot be read", checked.problems)
        return dump_definition(checked.definition, fmt)

    # -- drafts -------------------------------------------------------------------------

    def check(
        self, caller: Caller, name: str, text: str | bytes, fmt: str, script: str | None = None
    ) -> CheckedText:
        """Every problem of a text of ``name``'s definition (nothing stored)."""
        self._check_writer(caller, name)
        checked = check_text(text, fmt, script=script)
        jd = checked.definition
        if jd is not None and jd.name != name:
            problem = Problem("name", f"{jd.name!r} differs from {name!r}, the type edited")
            problems = [problem, *checked.problems]
            return CheckedText(jd, None, sorted(problems, key=lambda p: p.field != "name"))
        return checked

    def check_draft(self, caller: Caller, name: str) -> CheckedText:
        """Every problem of the stored draft of ``name``."""
        draft, _ = self.draft(caller, name)
        return self.check(caller, name, draft.text, draft.format, draft.script)

    def save_draft(
        self, caller: Caller, name: str, text: str | bytes, fmt: str, script: str | None = None
    ) -> tuple[StoredDraft, CheckedText]:
        """Store the draft of ``name`` (a text with problems too, which check lists; one
        that cannot be read at all is refused with DefinitionRefused)."""
        checked = self.check(caller, name, text, fmt, script)
        if checked.definition is None:
            raise DefinitionRefused("the definition cannot be read", checked.problems)
        stored = text if isinstance(text, str) else text.decode("utf-8-sig", "replace")
        earlier = self.store.draft(name)
        author = earlier.author if earlier is not None and caller.is_admin else caller.name
        draft = StoredDraft(name, author, fmt, stored, script, utcnow(), None)
        self.store.save_draft(draft)
        return draft, checked

    def discard(self, caller: Caller, name: str) -> None:
        """Remove the draft of ``name`` (NotFound if none)."""
        self._check_writer(caller, name)
        if not self.store.delete_draft(name):
            raise NotFound(f"no draft of {name}")

    def _valid_draft(self, caller: Caller, name: str) -> tuple[StoredDraft, JobDefinition]:
        draft, _ = self.draft(caller, name)
        checked = self.check(caller, name, draft.text, draft.format, draft.script)
        if checked.checked is None:
            raise DefinitionRefused(f"the draft of {name} has problems", checked.problems)
        return draft, checked.checked

    def submit(self, caller: Caller, name: str) -> StoredDraft:
        """Ask admins to approve the draft (refused while it has problems); they are told
        by e-mail when MAIL_* is set."""
        draft, jd = self._valid_draft(caller, name)
        when = utcnow()
        self.store.mark_submitted(name, when)
        link = f"{self.settings.BASE_URL}/admin/jdl/{name}"
        self.mailer.tell_admins(
            f"OPUS: job definition {name} submitted for approval",
            f"{caller.name} asks for the approval of the job definition {name} "
            f"(version {jd.version}).\n\nReview it at {link}\n",
        )
        return StoredDraft(
            draft.name, draft.author, draft.format, draft.text, draft.script, draft.updated, when
        )

    def try_draft(
        self,
        caller: Caller,
        name: str,
        values: Mapping[str, str],
        uploads: Sequence[Upload] = (),
    ) -> Job:
        """Run a job of the draft, owned by the caller (only they and admins see it)."""
        _, jd = self._valid_draft(caller, name)
        return self.service.create_job(caller, name, values, uploads, {"PHASE": "RUN"}, trial_of=jd)

    # -- approval and versions ----------------------------------------------------------

    def approve(self, caller: Caller, name: str) -> StoredVersion:
        """Make the draft the active definition of ``name``, as its next revision."""
        self._check_admin(caller, "approve definitions")
        draft, jd = self._valid_draft(caller, name)
        self._keep_active(name)
        kept = self.kept.keep(
            jd, author=draft.author, approved_by=caller.name, approved_at=utcnow()
        )
        self._activate(jd)
        self.store.delete_draft(name, updated=draft.updated)
        return kept

    def versions(self, caller: Caller, name: str) -> tuple[list[StoredVersion], str | None]:
        """The numbered versions of ``name``, newest first, and the active one's hash."""
        self._check_reader(caller, name)
        active = self.registry.get(name)
        if active is not None:
            self.kept.pin(active)  # a text put in JDL_PATH by hand is numbered too
        current = definition_hash(active) if active is not None else None
        found = self.store.versions(name)
        if not found:
            raise NotFound(f"no versions of {name}")
        return found, current

    def version(self, caller: Caller, name: str, revision: int) -> JobDefinition:
        """Revision ``revision`` of ``name`` (NotFound if there is none)."""
        self._check_reader(caller, name)
        kept = self.store.version(name, revision)
        if kept is None:
            raise NotFound(f"no revision {revision} of {name}")
        return parse_definition(kept.text, "yaml", f"{name} revision {revision}")

    def diff(self, caller: Caller, name: str, before: str, after: str) -> str:
        """A unified diff of two versions' YAML texts (a revision number, or "draft")."""
        texts = [self._text_of(caller, name, which) for which in (before, after)]
        lines = difflib.unified_diff(
            texts[0].splitlines(keepends=True),
            texts[1].splitlines(keepends=True),
            fromfile=f"{name} {before}",
            tofile=f"{name} {after}",
        )
        return "".join(lines)

    def restore(self, caller: Caller, name: str, revision: int) -> StoredVersion:
        """Make revision ``revision`` of ``name`` active again (it stays that revision)."""
        self._check_admin(caller, "restore definitions")
        jd = self.version(caller, name, revision)
        self._keep_active(name)
        self._activate(jd)
        kept = self.store.version(name, revision)
        if kept is None:  # read just before, and versions are never removed
            raise NotFound(f"no revision {revision} of {name}")
        return kept

    def retire(self, caller: Caller, name: str) -> None:
        """No new jobs of ``name``; its jobs stay readable (their definitions are kept)."""
        self._check_admin(caller, "retire definitions")
        self.service.definition(name)  # NotFound unless active
        self._keep_active(name)
        self._move_aside(name, keep=())
        self.registry.reload()

    # -- helpers ------------------------------------------------------------------------

    def _check_reader(self, caller: Caller, name: str) -> None:
        if not (caller.is_admin or self.may_write(caller, name)):
            raise Forbidden(f"{caller.name} may not read the versions of {name}")

    def _text_of(self, caller: Caller, name: str, which: str) -> str:
        if which == "draft":
            _, checked = self.draft(caller, name)
            if checked.definition is None:
                raise DefinitionRefused(f"the draft of {name} cannot be read", checked.problems)
            return dump_definition(checked.definition, "yaml")
        if not which.isdigit():
            raise BadRequest(f"{which!r} is not a revision number or draft", "from")
        return dump_definition(self.version(caller, name, int(which)), "yaml")

    def _keep_active(self, name: str) -> None:
        # The active text is kept (numbered) before it is replaced, whoever put it there.
        active = self.registry.get(name)
        if active is not None:
            self.kept.pin(active)

    def _activate(self, jd: JobDefinition) -> None:
        directory = self.settings.jdl_path
        written = save_definition(jd, directory, "yaml")
        self._move_aside(jd.name, keep=(written.name, f"{jd.name}.sh"))
        # This process serves it at once; the others see the files within a second.
        self.registry.reload()

    def _move_aside(self, name: str, keep: Sequence[str]) -> None:
        """Move the files of definition ``name`` but those in ``keep`` to .retired."""
        directory = self.settings.jdl_path
        candidates = [f"{name}{ext}" for ext in (*EXTENSIONS, ".sh")] + [f"{name}_vot.xml"]
        retired = directory / RETIRED_DIRECTORY
        stamp = utcnow().strftime("%Y%m%dT%H%M%S%fZ")
        for file_name in candidates:
            path = directory / file_name
            if file_name in keep or not path.is_file():
                continue
            retired.mkdir(mode=0o700, exist_ok=True)
            os.replace(path, retired / f"{file_name}.{stamp}")
