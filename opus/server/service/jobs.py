"""JobService: the one way to a job, for every interface, knowing who asks.

Routes, pages and the command line call it with the caller of the request; it applies
the access rules (a job is its owner's, and admins'; with CHECK_PERMISSIONS a job type is
for the roles that name it), validates every value against the job definition, and is the
only code that changes a job's phase: a compare-and-set against the phase table, then a
notification waking WAITing requests. It calls the JobStore (SQL), JobFiles (the job's
directory) and a Manager (execution).

The signal endpoint and the reconciler act for no caller: ``signal`` is authenticated by
the job's own token; the last section's phase writers serve the reconciler (reconciler.py).
"""

from __future__ import annotations

import hmac
import logging
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timedelta

from opus.core import access
from opus.core.access import Caller
from opus.core.errors import BadRequest, Conflict, Forbidden, NotFound
from opus.core.layout import STDERR_FILE, STDOUT_FILE
from opus.core.phases import RUNNING, TERMINAL, Phase, allowed_predecessors, parse_phase
from opus.core.records import Job, JobDetails, Parameter, Result
from opus.core.times import utcnow
from opus.server.auth import hash_token
from opus.server.jdl import JDLRegistry, JobDefinition
from opus.server.managers import ManagedJob, Manager, ManagerError
from opus.server.nofollow import OpenFile
from opus.server.notify import PhaseNotifier
from opus.server.service.definitions import KeptDefinitions
from opus.server.service.entities import JobEntities
from opus.server.service.inputs import Upload
from opus.server.service.jobfiles import JobFiles, ScriptRequest
from opus.server.service.limits import ENDED, OwnerLimits, Quota, directory_bytes
from opus.server.service.listing import JobListing
from opus.server.service.sources import record_commit, refresh_ref, source_columns
from opus.server.service.validation import JobValidator
from opus.server.storage import Coordination, JobStore
from opus.server.storage.definitions import DefinitionStore
from opus.server.storage.entities import EntityStore
from opus.server.waiting import Wait
from opus.settings import Settings

log = logging.getLogger("opus.service")


class JobService(JobListing):
    """Job life cycle over a JobStore, a Manager and the job definitions (lists: listing.py)."""

    def __init__(
        self,
        settings: Settings,
        store: JobStore,
        manager: Manager,
        registry: JDLRegistry,
        notifier: PhaseNotifier | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.registry = registry
        self.notifier = notifier or PhaseNotifier(max(1, settings.SERVER_THREADS - 8))
        self.validator = JobValidator(settings, manager)
        self.limits = OwnerLimits(settings, store)
        self.kept = KeptDefinitions(DefinitionStore(store.engine), registry)
        self.files = JobFiles(
            settings.jobs_path,
            settings.MAX_UPLOAD_SIZE,
            settings.URL_FETCH_TIMEOUT,
            settings.ALLOW_PRIVATE_URLS,
        )
        self.entities = JobEntities(EntityStore(store.engine), store, self.files, settings.BASE_URL)

    @property
    def manager(self) -> Manager:
        """Where jobs run (the validator checks options against the same manager)."""
        return self.validator.manager

    @manager.setter
    def manager(self, manager: Manager) -> None:
        self.validator.manager = manager

    @property
    def coordination(self) -> Coordination:
        """What this process shares with the other processes of the server."""
        return self.store.coordination

    # -- reads --------------------------------------------------------------------------

    def get_job(self, caller: Caller, jobname: str, job_id: str) -> JobDetails:
        """The job with its parameters and results.

        NotFound if there is no such job of this type, Forbidden if it is not the
        caller's (nor the caller an admin).
        """
        details = self.store.get_details(job_id)
        if details is None or details.job.jobname != jobname:
            raise NotFound(f"no job {job_id!r} of type {jobname!r}")
        self._check_access(caller, details.job)
        return details

    def result_file(self, caller: Caller, job_id: str, result_id: str) -> tuple[Result, OpenFile]:
        """A result of a job and its file, open without following links (close it).

        NotFound for an unknown job or result, or a file that is gone; Forbidden for
        another user's job, or a file the job made a link (JobFiles.open_result).
        """
        details = self.store.get_details(job_id)
        if details is None:
            raise NotFound(f"no job {job_id!r}")
        self._check_access(caller, details.job)
        result = details.result(result_id)
        if result is None:
            raise NotFound(f"job {job_id} has no result {result_id!r}")
        return result, self.files.open_result(job_id, result)

    def stream(self, caller: Caller, jobname: str, job_id: str, which: str) -> OpenFile | None:
        """A job's captured ``stdout`` or ``stderr``, open (close it); None before the
        job wrote it. Forbidden for a link (JobFiles.open_stream)."""
        if which not in (STDOUT_FILE, STDERR_FILE):
            raise NotFound(f"a job has no stream {which!r}")
        job = self._load(caller, jobname, job_id)
        return self.files.open_stream(job.id, which)

    def wait(
        self,
        caller: Caller,
        jobname: str,
        job_id: str,
        timeout: float,
        phase: Phase | None,
        connected: Callable[[], bool] | None = None,
    ) -> JobDetails:
        """The job once ``Wait``'s rule says so: at its first change while it is active
        (and in ``phase`` if given), or after ``timeout`` seconds. Holds the thread, less
        if ``connected`` (the HTTP server's) says the client went or the server stops.

        Raises like get_job. Past the notifier's cap on waiting threads, it answers at
        once (UWS allows it).
        """
        wait = Wait.starting_now(timeout, phase)
        with self.notifier.subscribe(job_id) as waiter:
            # Subscribed before the read: a change between the two still wakes us.
            details = self.get_job(caller, jobname, job_id)
            if waiter is None:
                return details
            read = lambda: self.get_job(caller, jobname, job_id)  # noqa: E731
            return wait.in_thread(waiter, details, read, connected)

    def job_definition(self, job: Job) -> JobDefinition:
        """The definition ``job`` was created with (NotFound if it is kept nowhere)."""
        jdl = self.kept.of_job(job)
        if jdl is None:
            raise NotFound(f"the definition of job {job.id} ({job.jobname}) is not kept")
        return jdl

    def _load(self, caller: Caller, jobname: str, job_id: str) -> Job:
        job = self.store.get_job(job_id)
        if job is None or job.jobname != jobname:
            raise NotFound(f"no job {job_id!r} of type {jobname!r}")
        self._check_access(caller, job)
        return job

    @staticmethod
    def _check_access(caller: Caller, job: Job) -> None:
        if not access.can_access(caller, job.owner):
            raise Forbidden(f"job {job.id} belongs to another user")

    # -- creation -----------------------------------------------------------------------

    def create_job(
        self,
        caller: Caller,
        jobname: str,
        values: Mapping[str, str],
        uploads: Sequence[Upload] = (),
        control: Mapping[str, str] | None = None,
        *,
        trial_of: JobDefinition | None = None,
    ) -> Job:
        """Validate everything, then store a PENDING job of the caller (run it if PHASE=RUN).

        ``values`` are the job's parameters, UWS control parameters (PHASE, RUNID,
        EXECUTIONDURATION, DESTRUCTION, upper-case) split off into ``control``. Nothing
        is stored when a value is refused (BadRequest, PayloadTooLarge), the type is
        unknown (NotFound) or not the caller's to use (Forbidden).
        """
        if trial_of is None:
            jdl = self.usable_definition(caller, jobname)
            revision, digest = self.kept.pin(jdl)
        else:  # a draft's trial job: the definition workflow checked who may run it
            jdl = trial_of
            revision, digest = self.kept.pin(jdl, author=caller.name, trial=True)
        checked_control = self.validator.control(control or {})
        checked = self.validator.values(jdl, values, uploads)
        checked, references = self.entities.split_references(caller, checked)
        allowance = self.limits.before_creation(caller.name, checked, checked_control.run)
        now = utcnow()
        execution_duration = self.validator.execution_duration(
            jdl, checked_control.execution_duration
        )
        destruction = self.validator.destruction(now, checked_control.destruction)
        job_id = self.files.create()
        try:
            stored = [Parameter(name, value) for name, value in checked.parameters.items()]
            stored += self.files.save_inputs(job_id, checked.urls, checked.uploads, allowance)
            stored += self.entities.link(job_id, references)
            job = Job(
                id=job_id,
                jobname=jobname,
                run_id=checked_control.run_id,
                owner=caller.name,
                phase=Phase.PENDING,
                creation_time=now,
                start_time=None,
                end_time=None,
                destruction_time=destruction,
                quote=now + timedelta(seconds=jdl.quote) if jdl.quote else None,
                phase_time=now,
                execution_duration=execution_duration,
                error_type=None,
                error_message=None,
                external_id=None,
                # The signal token is made at RUN: a PENDING job accepts no signal.
                token_hash="",
                definition_revision=revision,
                definition_hash=digest,
                **source_columns(jdl, checked.parameters),
            )
            job = self.limits.insert_job(job, stored, self.files.directory(job_id))
            self.entities.record_inputs(job, stored, references, jdl, created=True)
        except BaseException:
            # Nothing is kept of a job that could not be stored.
            self.files.remove(job_id)
            raise
        self.notifier.notify_owner(job.owner)
        if checked_control.run:
            return self._run(job, created=True)
        return job

    # -- changes asked by clients -------------------------------------------------------

    def run(self, caller: Caller, jobname: str, job_id: str) -> Job:
        """PENDING → QUEUED, then submit to the manager (Forbidden in any other phase)."""
        return self._run(self._load(caller, jobname, job_id))

    def _run(self, job: Job, created: bool = False) -> Job:
        """The compare-and-set to QUEUED (within NJOBS_MAX) comes first, so that of two RUNs
        racing only the winner writes the job's files and submits it; QUEUED and the external
        id are stored before the answer. A job ``created`` to run at once is dropped if refused."""
        if job.phase != Phase.PENDING:
            raise Forbidden(f"job {job.id} is {job.phase}: only a PENDING job can be run")
        jdl = self.job_definition(job)
        token = secrets.token_urlsafe(32)
        queued = self.change_phase(
            job.id,
            Phase.QUEUED,
            allowed_from={Phase.PENDING},
            token_hash=hash_token(token),
            quota=self.limits.run_quota(job.owner),
        )
        if not queued:
            refusal = self.limits.refusal(job, "run")
            if created:
                self.destroy(job)
            raise refusal
        values, options = self.validator.script_values(self.store.get_details(job.id))
        values.update(self.entities.referenced_paths(job.id))
        managed = ManagedJob(
            job.id,
            None,
            self.files.directory(job.id),
            job.execution_duration,
            jobname=job.jobname,
            options=options,
        )
        request = ScriptRequest.for_job(job.id, jdl, values, self.settings)
        try:
            if missing := self.entities.missing_references(job.id):
                raise ManagerError(f"input {missing[0]!r} was deleted with the job that made it")
            batch = self.files.write_scripts(request, token)
            external_id = self.manager.submit(managed, batch)
        except (ManagerError, OSError) as exc:
            # Destroyed meanwhile (DESTRUCTION already past, a DELETE): not a fault.
            level = logging.ERROR if self.store.get_job(job.id) else logging.INFO
            log.log(level, "job %s: not submitted: %s", job.id, exc)
            self.change_phase(
                job.id,
                Phase.ERROR,
                end_time=utcnow(),
                error_type="transient",
                error_message=str(exc),
            )
        else:
            self.store.set_external_id(job.id, external_id)
        current = self.store.get_job(job.id) or job
        if current.phase in TERMINAL and current.external_id:
            # Aborted or deleted while being submitted: the abort found no process.
            self.stop(current)
        return current

    def abort(self, caller: Caller, jobname: str, job_id: str) -> Job:
        """Stop a job that has not ended (Forbidden for a job that has)."""
        job = self._load(caller, jobname, job_id)
        if job.phase in TERMINAL:
            raise Forbidden(f"job {job.id} is {job.phase}: it cannot be aborted")
        # ABORTED is stored before the process is killed: the other way round, the
        # reconciler could see the dead process first and call the job an ERROR.
        if not self.change_phase(job.id, Phase.ABORTED, end_time=utcnow()):
            current = self.store.get_job(job.id)
            now = current.phase if current else "deleted"
            raise Forbidden(f"job {job.id} is {now}: it cannot be aborted")
        current = self.store.get_job(job.id) or job
        if current.external_id is not None:
            self.stop(current)
        return current

    def delete(self, caller: Caller, jobname: str, job_id: str) -> None:
        """Abort the job if it runs, then remove it, its records and its files."""
        self.destroy(self._load(caller, jobname, job_id))

    def set_execution_duration(self, caller: Caller, jobname: str, job_id: str, text: str) -> None:
        """Change the execution duration of a PENDING job (Forbidden afterwards)."""
        job = self._load(caller, jobname, job_id)
        if job.phase != Phase.PENDING:
            raise Forbidden(f"job {job.id} is {job.phase}: executionDuration is fixed")
        value = self.validator.execution_duration(self.job_definition(job), text)
        if not self.store.set_execution_duration(job.id, value, {Phase.PENDING}):
            raise Forbidden(f"job {job.id} is no longer PENDING")
        self.notifier.notify_owner(job.owner)

    def set_destruction(self, caller: Caller, jobname: str, job_id: str, text: str) -> None:
        """Change the destruction time (no later than DESTRUCTION_INTERVAL after creation)."""
        job = self._load(caller, jobname, job_id)
        if job.phase == Phase.ARCHIVED:
            raise Forbidden(f"job {job.id} is ARCHIVED")
        self.store.set_destruction(job.id, self.validator.destruction(job.creation_time, text))
        self.notifier.notify_owner(job.owner)

    def update_parameters(
        self,
        caller: Caller,
        jobname: str,
        job_id: str,
        values: Mapping[str, str],
        uploads: Sequence[Upload] = (),
    ) -> None:
        """Change parameters of a PENDING job (Forbidden afterwards)."""
        job = self._load(caller, jobname, job_id)
        if job.phase != Phase.PENDING:
            raise Forbidden(f"job {job.id} is {job.phase}: parameters can no longer change")
        jdl = self.job_definition(job)
        checked = self.validator.values(jdl, values, uploads, partial=True)
        checked, references = self.entities.split_references(caller, checked)
        stored = [Parameter(name, value) for name, value in checked.parameters.items()]
        allowance = self.limits.before_update(job, checked)
        stored += self.files.save_inputs(job.id, checked.urls, checked.uploads, allowance)
        stored += self.entities.link(job.id, references)
        self.limits.set_parameters(job, stored, self.files.directory(job.id))
        refresh_ref(self.store, job, jdl, checked.parameters)
        self.entities.record_inputs(job, stored, references, jdl)
        self.notifier.notify_owner(job.owner)

    # -- signals from batch scripts -----------------------------------------------------

    def signal(self, job_id: str, token: str, phase_text: str, message: str = "") -> Job:
        """Apply a phase reported by a job's batch script, authenticated by its token.

        Forbidden for a wrong token, BadRequest for a phase a job cannot report,
        Conflict for one the phase table refuses (a repeated signal is accepted).
        """
        job = self.store.get_job(job_id)
        if job is None:
            raise NotFound(f"no job {job_id!r}")
        if not token or not hmac.compare_digest(hash_token(token), job.token_hash):
            raise Forbidden("wrong or missing job token")
        try:
            phase = parse_phase(phase_text)
        except ValueError as exc:
            raise BadRequest(str(exc)) from None
        if phase not in (Phase.EXECUTING, Phase.COMPLETED, Phase.ERROR):
            raise BadRequest(f"a job cannot report {phase}")
        if phase == Phase.EXECUTING:
            record_commit(self.store, self.files, job)  # once the clone is done
            changed = self.change_phase(job.id, Phase.EXECUTING, start_time=utcnow())
        else:
            changed = self.finish(job, phase, message or None)
        if not changed:
            current = self.store.get_job(job.id)
            if current is not None and current.phase == phase:
                return current  # a retried signal whose first answer was lost
            now = current.phase if current else "deleted"
            raise Conflict(f"job {job.id} is {now}: it cannot become {phase}")
        return self.store.get_job(job.id) or job

    # -- phase writers (signals and the reconciler) -------------------------------------

    def change_phase(
        self,
        job_id: str,
        phase: Phase,
        *,
        allowed_from: frozenset[Phase] | set[Phase] | None = None,
        start_time: datetime | None = None,
        end_time: datetime | None = None,
        error_type: str | None = None,
        error_message: str | None = None,
        token_hash: str | None = None,
        results: Sequence[Result] = (),
        quota: Quota | None = None,
    ) -> bool:
        """Compare-and-set the phase (from what the table allows, or ``allowed_from``, within
        ``quota``; an ended job's files measured again), then wake the job's waiters; True
        if it changed. The one phase writer."""
        sources = allowed_predecessors(phase) if allowed_from is None else allowed_from
        owner = self.store.change_phase(
            job_id,
            sources,
            phase,
            start_time=start_time,
            end_time=end_time,
            error_type=error_type,
            error_message=error_message,
            token_hash=token_hash,
            results=results,
            stored_bytes=directory_bytes(self.files.directory(job_id)) if phase in ENDED else None,
            quota=quota,
        )
        if owner is not None:
            log.info("job %s → %s", job_id, phase)
            self.notifier.notify(job_id, owner)
        return owner is not None

    def finish(self, job: Job, phase: Phase, message: str | None) -> bool:
        """Move a job to COMPLETED or ERROR, registering its results at the same time
        (once the manager stopped what the job left running: nothing changes them after)."""
        self.manager.job_ended(ManagedJob(job.id, job.external_id, self.files.directory(job.id)))
        now = utcnow()
        error_message = None
        if phase == Phase.ERROR:
            error_message = self.files.error_message(job.id, message)
        results = self.collect_results(job)
        record_commit(self.store, self.files, job)
        if finished := self.change_phase(
            job.id,
            phase,
            start_time=now if job.start_time is None else None,
            end_time=now,
            error_type="fatal" if phase == Phase.ERROR else None,
            error_message=error_message,
            results=results,
        ):
            self.entities.record_results(replace(job, phase=phase, end_time=now), results)
        return finished

    def collect_results(self, job: Job) -> list[Result]:
        """The result files of a job, named after its definition's generated entities."""
        jdl = self.kept.of_job(job)
        return self.files.collect_results(job.id, jdl.generated if jdl else [])

    def stop(self, job: Job) -> None:
        """Ask the manager to stop the job's processes (failures are logged)."""
        try:
            self.manager.abort(ManagedJob(job.id, job.external_id, self.files.directory(job.id)))
        except ManagerError as exc:
            log.error("job %s: abort failed: %s", job.id, exc)

    def destroy(self, job: Job) -> None:
        """Stop the job if it runs, then remove it, its records and its files."""
        if job.phase in RUNNING:
            self.stop(job)
        self.manager.cleanup(ManagedJob(job.id, job.external_id, self.files.directory(job.id)))
        self.store.delete_job(job.id)
        self.files.remove(job.id)
        self.entities.job_deleted(job.id)
        self.notifier.notify(job.id, job.owner)

    def archive(self, job: Job, now: datetime) -> bool:
        """ARCHIVED: the job's record stays, its results and files go; True if done."""
        if job.phase in RUNNING:
            self.stop(job)
        archived = self.change_phase(
            job.id,
            Phase.ARCHIVED,
            allowed_from=set(Phase) - {Phase.ARCHIVED},
            end_time=job.end_time or now,
        )
        if archived:
            self.store.delete_results(job.id)
            self.entities.results_deleted(job.id)
            self.files.remove(job.id)
        return archived
