"""JobService: the only code that changes a job's phase.

It creates, runs, aborts and deletes jobs, applies the signals batch scripts send,
and reconciles what signals missed (processes that died, execution durations
exceeded, destruction times passed). Routes call it; it calls the JobStore (SQL) and
a Manager (execution). Every phase change is a compare-and-set against the phase table,
followed by a notification that wakes WAITing requests.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import logging
import mimetypes
import secrets
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from fnmatch import fnmatchcase
from pathlib import Path

from opus.server import inputs
from opus.server.auth import hash_token
from opus.server.errors import BadRequest, Conflict, Forbidden, NotFound
from opus.server.inputs import Upload
from opus.server.jdl import JDLRegistry, JobDefinition, ParameterError, coerce_parameters
from opus.server.jdl.validation import text_problem
from opus.server.managers import JobState, ManagedJob, Manager, ManagerError
from opus.server.notify import PhaseNotifier, Wake
from opus.server.phases import (
    ACTIVE,
    RUNNING,
    TERMINAL,
    Phase,
    allowed_predecessors,
    parse_phase,
)
from opus.server.scripts import (
    BATCH_SCRIPT,
    INTERNAL_DIR,
    JOB_SCRIPT,
    RESULTS_DIR,
    STDERR_FILE,
    TOKEN_FILE,
    BatchJob,
    render_batch_script,
)
from opus.server.storage import Job, JobStore, Parameter, Result
from opus.server.uwsxml import parse_time, utcnow
from opus.settings import Settings

log = logging.getLogger("opus.service")

INPUTS_FILE = "inputs.json"
# A job left QUEUED without an external id this long was lost during submission.
SUBMIT_GRACE = timedelta(seconds=60)
RUN_ID_MAX_LENGTH = 1024
# Seconds: what a 32-bit SQL integer column holds (68 years).
DURATION_LIMIT = 2**31 - 1
ERROR_TAIL_CHARS = 500
HASH_CHUNK = 1024 * 1024
# Job parameters with this prefix are options of the execution manager (slurm_mem…),
# not values for the job's script. The JDL loader reserves the prefix.
MANAGER_OPTION_PREFIX = "slurm_"


def new_job_id() -> str:
    """An unguessable, URL-safe job id: 120 random bits in lowercase base32."""
    return base64.b32encode(secrets.token_bytes(15)).decode().lower()


@dataclass
class ReconcileReport:
    """What one reconciliation pass did (printed by ``opus maintenance``)."""

    checked: int = 0
    changed: list[str] = field(default_factory=list)
    timed_out: list[str] = field(default_factory=list)
    destroyed: list[str] = field(default_factory=list)
    archived: list[str] = field(default_factory=list)


class JobService:
    """Job life cycle on top of a JobStore, a Manager and the job definitions."""

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
        self.manager = manager
        self.registry = registry
        self.notifier = notifier or PhaseNotifier(max(1, settings.SERVER_THREADS - 8))

    # -- look-ups -----------------------------------------------------------------

    def definition(self, jobname: str) -> JobDefinition:
        jdl = self.registry.get(jobname)
        if jdl is None:
            raise NotFound(f"no job type named {jobname!r}")
        return jdl

    def get_job(self, jobname: str, job_id: str) -> Job:
        job = self.store.get_job(job_id)
        if job is None or job.jobname != jobname:
            raise NotFound(f"no job {job_id!r} of type {jobname!r}")
        return job

    def job_dir(self, job_id: str) -> Path:
        return self.settings.jobs_path / job_id

    def file_path(self, job: Job, relative: str) -> Path:
        """A file of a job, checked to stay inside its directory."""
        return inputs.inside(self.job_dir(job.id), relative)

    def stream_path(self, job: Job, which: str) -> Path:
        """The captured stdout or stderr of a job."""
        return self.job_dir(job.id) / INTERNAL_DIR / which

    # -- creation -----------------------------------------------------------------

    def create_job(
        self,
        jobname: str,
        owner: str,
        values: Mapping[str, str],
        uploads: Sequence[Upload] = (),
        control: Mapping[str, str] | None = None,
    ) -> Job:
        """Validate everything, then store a PENDING job (and run it if PHASE=RUN).

        ``values`` are the job's parameters (UWS control parameters already split off
        into ``control``: PHASE, RUNID, EXECUTIONDURATION, DESTRUCTION). Nothing is
        stored when a value is refused.
        """
        jdl = self.definition(jobname)
        control = dict(control or {})
        start = False
        if "PHASE" in control:
            if control.pop("PHASE").strip().upper() != "RUN":
                raise BadRequest("PHASE at creation may only be RUN")
            start = True
        run_id = control.pop("RUNID", None)
        if run_id is not None and len(run_id) > RUN_ID_MAX_LENGTH:
            raise BadRequest(f"RUNID longer than {RUN_ID_MAX_LENGTH} characters")
        if run_id is not None and (problem := text_problem(run_id)):
            raise BadRequest(f"RUNID {problem}")
        duration_text = control.pop("EXECUTIONDURATION", None)
        destruction_text = control.pop("DESTRUCTION", None)
        if control:
            raise BadRequest(f"unexpected control parameter {sorted(control)[0]!r}")

        if start:
            self._check_active_limit(owner)
        file_names = {name.lower(): name for name in jdl.file_inputs()}
        plain, file_values, options = self._split_values(jdl, values, file_names)
        try:
            parameters = coerce_parameters(jdl, plain)
        except ParameterError as exc:
            raise BadRequest(str(exc)) from None
        parameters.update(self._check_options(options))
        uploads_by_name = self._uploads_by_input(jdl, uploads, file_names)
        for name in file_names.values():
            entity = jdl.used_entity(name)
            required = entity is None or entity.default is None
            param = jdl.parameter(name)
            if param is not None:
                required = param.required and param.default is None
            given = name in file_values or name in uploads_by_name
            if required and not given:
                raise BadRequest(f"input {name!r} is required (upload a file or give a URL)")

        now = utcnow()
        execution_duration = self._duration(jdl, duration_text)
        destruction = self._destruction(now, destruction_text)
        for _ in range(5):
            job_id = new_job_id()
            job_dir = self.job_dir(job_id)
            try:
                job_dir.mkdir(parents=True)
            except FileExistsError:
                continue
            break
        else:  # pragma: no cover - 120 random bits do not collide five times
            raise RuntimeError("could not allocate a job id")

        try:
            stored = [Parameter(name, value) for name, value in parameters.items()]
            stored += self._save_inputs(job_dir, file_values, uploads_by_name)
            job = Job(
                id=job_id,
                jobname=jobname,
                run_id=run_id,
                owner=owner,
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
            )
            self.store.insert_job(job, stored)
        except BaseException:
            # Nothing is kept of a job that could not be stored.
            inputs.remove_tree(job_dir)
            raise
        if start:
            return self.run(job)
        return job

    def _split_values(
        self, jdl: JobDefinition, values: Mapping[str, str], file_names: Mapping[str, str]
    ) -> tuple[dict[str, str], dict[str, str], dict[str, str]]:
        """Split values into plain parameters, file inputs given as URLs and manager
        options (``slurm_*``, lower-cased).

        UWS parameter names are case-insensitive: a name matching no parameter
        exactly is matched ignoring case.
        """
        known = {p.name.lower(): p.name for p in jdl.parameters}
        plain: dict[str, str] = {}
        file_values: dict[str, str] = {}
        options: dict[str, str] = {}
        for raw_name, value in values.items():
            lowered = raw_name.lower()
            if lowered in file_names:
                file_values[file_names[lowered]] = value
            elif lowered.startswith(MANAGER_OPTION_PREFIX):
                options[lowered] = value
            else:
                plain[known.get(lowered, raw_name)] = value
        return plain, file_values, options

    def _check_options(self, options: Mapping[str, str]) -> dict[str, str]:
        """Manager options as the manager accepts them (400 naming a bad one)."""
        if not options:
            return {}
        try:
            return self.manager.check_options(options)
        except ValueError as exc:
            raise BadRequest(str(exc)) from None

    @staticmethod
    def _split_options(parameters: Sequence[Parameter]) -> tuple[dict[str, str], dict[str, str]]:
        """Stored parameters → (values for the script, manager options)."""
        values: dict[str, str] = {}
        options: dict[str, str] = {}
        for param in parameters:
            if param.name.startswith(MANAGER_OPTION_PREFIX):
                options[param.name] = param.value
            else:
                values[param.name] = param.value
        return values, options

    def _uploads_by_input(
        self, jdl: JobDefinition, uploads: Sequence[Upload], file_names: Mapping[str, str]
    ) -> dict[str, Upload]:
        result: dict[str, Upload] = {}
        for upload in uploads:
            name = file_names.get(upload.field.lower())
            if name is None:
                raise BadRequest(f"unknown file input {upload.field!r} for job type {jdl.name!r}")
            result[name] = upload
        return result

    def _save_inputs(
        self, job_dir: Path, urls: Mapping[str, str], uploads: Mapping[str, Upload]
    ) -> list[Parameter]:
        """Save uploads and fetch URLs; record which file each input became."""
        if not urls and not uploads:
            return []
        limit = self.settings.MAX_UPLOAD_SIZE
        local_names: dict[str, str] = {}
        stored: list[Parameter] = []
        for name, upload in uploads.items():
            local_names[name] = inputs.save_upload(upload, job_dir, limit)
            stored.append(Parameter(name, local_names[name]))
        for name, url in urls.items():
            if name in uploads:
                raise BadRequest(f"input {name!r} given both as a file and as a URL")
            local_names[name] = inputs.fetch_url(
                name,
                url.strip(),
                job_dir,
                limit,
                self.settings.URL_FETCH_TIMEOUT,
                allow_private=self.settings.ALLOW_PRIVATE_URLS,
            )
            stored.append(Parameter(name, url.strip(), by_reference=True))
        internal = job_dir / INTERNAL_DIR
        internal.mkdir(exist_ok=True)
        known = self._input_files(job_dir)
        known.update(local_names)
        (internal / INPUTS_FILE).write_text(json.dumps(known))
        return stored

    @staticmethod
    def _input_files(job_dir: Path) -> dict[str, str]:
        """Input name → local file name, as recorded when the inputs were saved."""
        try:
            return dict(json.loads((job_dir / INTERNAL_DIR / INPUTS_FILE).read_text()))
        except (OSError, ValueError):
            return {}

    def _duration(self, jdl: JobDefinition, text: str | None) -> int:
        maximum = self.settings.EXECUTION_DURATION_MAX
        if text is None:
            value = jdl.execution_duration
            if value is None:
                value = self.settings.EXECUTION_DURATION_DEFAULT
        else:
            try:
                value = int(text.strip())
            except ValueError:
                raise BadRequest(f"EXECUTIONDURATION {text!r} is not an integer") from None
            if value < 0:
                raise BadRequest("EXECUTIONDURATION must be >= 0 (0 means unlimited)")
        # The server may shorten what was asked for (UWS 1.1 §2.2.3.5); 0 is unlimited.
        if maximum > 0 and (value == 0 or value > maximum):
            value = maximum
        if value > DURATION_LIMIT:  # only without EXECUTION_DURATION_MAX
            raise BadRequest(f"EXECUTIONDURATION must be at most {DURATION_LIMIT} seconds")
        return value

    def _destruction(self, now: datetime, text: str | None) -> datetime:
        latest = now + timedelta(seconds=self.settings.DESTRUCTION_INTERVAL)
        if text is None:
            return latest
        try:
            value = parse_time(text)
        except ValueError as exc:
            raise BadRequest(f"DESTRUCTION: {exc}") from None
        value = value.replace(microsecond=value.microsecond // 1000 * 1000)
        return min(value, latest)

    # -- changes asked by clients -------------------------------------------------

    def run(self, job: Job) -> Job:
        """PENDING → QUEUED, then submit to the manager (QUEUED is stored first).

        The compare-and-set to QUEUED comes first, so that of two RUNs racing, only
        the winner writes the job's files and submits it.
        """
        if job.phase != Phase.PENDING:
            raise Forbidden(f"job {job.id} is {job.phase}: only a PENDING job can be run")
        self._check_active_limit(job.owner)
        jdl = self.definition(job.jobname)
        job_dir = self.job_dir(job.id)
        token = secrets.token_urlsafe(32)
        queued = {"token_hash": hash_token(token)}
        if not self._change(job.id, Phase.QUEUED, queued, allowed_from={Phase.PENDING}):
            raise Forbidden(f"job {job.id} is no longer PENDING")
        values, options = self._split_options(self.store.get_parameters(job.id))
        managed = ManagedJob(
            job.id, None, job_dir, job.execution_duration, jobname=job.jobname, options=options
        )
        try:
            batch = self._write_scripts(job, jdl, job_dir, token, values)
            external_id = self.manager.submit(managed, batch)
        except (ManagerError, OSError) as exc:
            log.error("job %s: submission failed: %s", job.id, exc)
            self._change(
                job.id,
                Phase.ERROR,
                {"end_time": utcnow(), "error_type": "transient", "error_message": str(exc)},
            )
        else:
            self.store.update_job(job.id, {"external_id": external_id})
        current = self.store.get_job(job.id) or job
        if current.phase in TERMINAL and current.external_id:
            # Aborted or deleted while being submitted: the abort found no process.
            self._manager_abort(current)
        return current

    def _check_active_limit(self, owner: str) -> None:
        active = self.store.count_jobs(owner, RUNNING)
        if active >= self.settings.NJOBS_MAX:
            raise Forbidden(
                f"{owner} already has {active} active jobs (NJOBS_MAX is "
                f"{self.settings.NJOBS_MAX}): wait for one to end"
            )

    def _write_scripts(
        self, job: Job, jdl: JobDefinition, job_dir: Path, token: str, values: Mapping[str, str]
    ) -> Path:
        internal = job_dir / INTERNAL_DIR
        internal.mkdir(parents=True, exist_ok=True)
        token_file = internal / TOKEN_FILE
        token_file.touch(mode=0o600)
        token_file.write_text(token)
        variables = dict(values)
        variables.update(self._input_files(job_dir))
        batch = render_batch_script(
            BatchJob(
                job_id=job.id,
                job_dir=job_dir,
                signal_url=f"{self.settings.BASE_URL}/handler/job_event",
                parameters=variables,
                result_patterns=[g.default for g in jdl.generated if g.default],
                signal_retry_seconds=self.settings.SIGNAL_RETRY_SECONDS,
            )
        )
        (internal / JOB_SCRIPT).write_text(jdl.script)
        path = internal / BATCH_SCRIPT
        path.write_text(batch)
        path.chmod(0o700)
        return path

    def abort(self, job: Job) -> Job:
        """Stop a job that has not ended (403 for a job that has)."""
        if job.phase in TERMINAL:
            raise Forbidden(f"job {job.id} is {job.phase}: it cannot be aborted")
        # ABORTED is stored before the process is killed: the other way round, the
        # reconciler could see the dead process first and call the job an ERROR.
        if not self._change(job.id, Phase.ABORTED, {"end_time": utcnow()}):
            current = self.store.get_job(job.id)
            now = current.phase if current else "deleted"
            raise Forbidden(f"job {job.id} is {now}: it cannot be aborted")
        current = self.store.get_job(job.id) or job
        if current.external_id is not None:
            self._manager_abort(current)
        return current

    def _manager_abort(self, job: Job) -> None:
        try:
            self.manager.abort(ManagedJob(job.id, job.external_id, self.job_dir(job.id)))
        except ManagerError as exc:
            log.error("job %s: abort failed: %s", job.id, exc)

    def delete(self, job: Job) -> None:
        """Abort if running, then remove the job, its records and its files."""
        if job.phase in RUNNING:
            self._manager_abort(job)
        self.manager.cleanup(ManagedJob(job.id, job.external_id, self.job_dir(job.id)))
        self.store.delete_job(job.id)
        inputs.remove_tree(self.job_dir(job.id))
        self.notifier.notify(job.id)

    def set_execution_duration(self, job: Job, text: str) -> None:
        if job.phase != Phase.PENDING:
            raise Forbidden(f"job {job.id} is {job.phase}: executionDuration is fixed")
        jdl = self.definition(job.jobname)
        value = self._duration(jdl, text)
        if not self.store.update_job(job.id, {"execution_duration": value}, {Phase.PENDING}):
            raise Forbidden(f"job {job.id} is no longer PENDING")

    def set_destruction(self, job: Job, text: str) -> None:
        if job.phase == Phase.ARCHIVED:
            raise Forbidden(f"job {job.id} is ARCHIVED")
        value = self._destruction(job.creation_time, text)
        self.store.update_job(job.id, {"destruction_time": value})

    def update_parameters(
        self, job: Job, values: Mapping[str, str], uploads: Sequence[Upload] = ()
    ) -> None:
        """Change parameters of a PENDING job (403 afterwards)."""
        if job.phase != Phase.PENDING:
            raise Forbidden(f"job {job.id} is {job.phase}: parameters can no longer change")
        jdl = self.definition(job.jobname)
        file_names = {name.lower(): name for name in jdl.file_inputs()}
        plain, file_values, options = self._split_values(jdl, values, file_names)
        try:
            parameters = coerce_parameters(jdl, plain, partial=True)
        except ParameterError as exc:
            raise BadRequest(str(exc)) from None
        parameters.update(self._check_options(options))
        uploads_by_name = self._uploads_by_input(jdl, uploads, file_names)
        stored = [Parameter(name, value) for name, value in parameters.items()]
        job_dir = self.job_dir(job.id)
        stored += self._save_inputs(job_dir, file_values, uploads_by_name)
        if not self.store.set_parameters(job.id, stored, {Phase.PENDING}):
            raise Forbidden(f"job {job.id} is no longer PENDING")

    # -- signals from batch scripts -----------------------------------------------

    def signal(self, job_id: str, token: str, phase_text: str, message: str = "") -> Job:
        """Apply a phase reported by a job's batch script, authenticated by its token."""
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
            changed = self._change(job.id, Phase.EXECUTING, {"start_time": utcnow()})
        else:
            changed = self._finish(job, phase, message or None)
        if not changed:
            current = self.store.get_job(job.id)
            if current is not None and current.phase == phase:
                return current  # a retried signal whose first answer was lost
            now = current.phase if current else "deleted"
            raise Conflict(f"job {job.id} is {now}: it cannot become {phase}")
        return self.store.get_job(job.id) or job

    def _finish(self, job: Job, phase: Phase, message: str | None) -> bool:
        """Move a job to COMPLETED or ERROR, registering its results at the same time."""
        now = utcnow()
        fields: dict[str, object] = {"end_time": now}
        if job.start_time is None:
            fields["start_time"] = now
        if phase == Phase.ERROR:
            fields["error_type"] = "fatal"
            fields["error_message"] = self._error_message(job, message)
        results = self.collect_results(job)
        return self._change(job.id, phase, fields, results=results)

    def _error_message(self, job: Job, message: str | None) -> str:
        text = message or "the job failed"
        try:
            stderr = self.stream_path(job, STDERR_FILE).read_bytes()[-4096:]
        except OSError:
            stderr = b""
        lines = [ln for ln in stderr.decode("utf-8", "replace").splitlines() if ln.strip()]
        if lines:
            text = f"{text}: {lines[-1].strip()[:ERROR_TAIL_CHARS]}"
        # The message goes into XML, which cannot carry most control characters (a
        # script's colour codes, say): they would make every document of the job fail.
        return "".join("\ufffd" if text_problem(char) else char for char in text)

    def collect_results(self, job: Job) -> list[Result]:
        """Register the files in the job's output directory, named after the JDL."""
        output_dir = self.job_dir(job.id) / RESULTS_DIR
        try:
            files = sorted(p for p in output_dir.iterdir() if p.is_file() and not p.is_symlink())
        except OSError:
            return []
        jdl = self.registry.get(job.jobname)
        generated = jdl.generated if jdl else []
        results: list[Result] = []
        taken: set[str] = set()
        for entity in generated:
            matches = [f for f in files if fnmatchcase(f.name, entity.default or "")]
            for index, path in enumerate(matches, start=1):
                result_id = entity.name if len(matches) == 1 else f"{entity.name}_{index}"
                results.append(self._result(job, result_id, path, entity.content_type))
                taken.add(path.name)
        ids = {r.result_id for r in results}
        for path in files:
            # A file name may hold anything a script wrote; its id must fit XML and URLs.
            result_id = "".join(c if c.isprintable() else "_" for c in path.name)
            if path.name not in taken and result_id not in ids:
                ids.add(result_id)
                results.append(self._result(job, result_id, path, None))
        return results

    def _result(self, job: Job, result_id: str, path: Path, content_type: str | None) -> Result:
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            while chunk := handle.read(HASH_CHUNK):
                digest.update(chunk)
        guessed = mimetypes.guess_type(path.name)[0]
        return Result(
            result_id=result_id,
            path=str(path.relative_to(self.job_dir(job.id))),
            content_type=content_type or guessed or "application/octet-stream",
            size=path.stat().st_size,
            sha256=digest.hexdigest(),
        )

    def _change(
        self,
        job_id: str,
        phase: Phase,
        fields: Mapping[str, object] | None = None,
        allowed_from: frozenset[Phase] | set[Phase] | None = None,
        results: Sequence[Result] = (),
    ) -> bool:
        """Compare-and-set the phase, then wake waiters. The one phase writer."""
        sources = allowed_predecessors(phase) if allowed_from is None else allowed_from
        changed = self.store.change_phase(job_id, sources, phase, fields, results)
        if changed:
            log.info("job %s → %s", job_id, phase)
            self.notifier.notify(job_id)
        return changed

    # -- WAIT ---------------------------------------------------------------------

    def wait(
        self, jobname: str, job_id: str, timeout: float, phase: Phase | None
    ) -> tuple[Job, Wake | None]:
        """Block while the job is active (and in ``phase`` if given), up to ``timeout``.

        Returns the job and, when a change woke the request, the Wake it shares with
        the other requests that change woke (to render the answer once for all).
        """
        deadline = time.monotonic() + timeout
        with self.notifier.subscribe(job_id) as waiter:
            job = self.get_job(jobname, job_id)
            if waiter is None:
                return job, None
            while True:
                if job.phase not in ACTIVE or (phase is not None and job.phase != phase):
                    return job, None
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return job, None
                # A change made by another process (``opus maintenance``) does not
                # notify us: look again at least every few seconds.
                wake = waiter.wait(min(remaining, 5.0))
                if wake is not None:
                    return wake.once("job", lambda: self.get_job(jobname, job_id)), wake
                job = self.get_job(jobname, job_id)

    # -- reconciliation -----------------------------------------------------------

    def reconcile(self) -> ReconcileReport:
        """One pass: ask the manager about running jobs, enforce limits, destroy."""
        report = ReconcileReport()
        now = utcnow()
        # In batches, so that memory stays flat however many jobs run; each batch is
        # one call to the manager (one squeue for SLURM).
        for jobs in self.store.running_jobs(RUNNING):
            report.checked += len(jobs)
            managed = [
                ManagedJob(j.id, j.external_id, self.job_dir(j.id), j.execution_duration)
                for j in jobs
                if j.external_id
            ]
            states = self.manager.states(managed) if managed else {}
            for job in jobs:
                try:
                    self._reconcile_job(job, states.get(job.id), now, report)
                except Exception:
                    log.exception("reconciling job %s failed", job.id)
        self._destroy_expired(now, report)
        return report

    def _reconcile_job(
        self, job: Job, state: JobState | None, now: datetime, report: ReconcileReport
    ) -> None:
        if job.external_id is None:
            if job.phase == Phase.QUEUED and now - job.phase_time > SUBMIT_GRACE:
                message = "the job was never submitted (server stopped during submission)"
                if self._change(
                    job.id,
                    Phase.ERROR,
                    {"end_time": now, "error_message": message, "error_type": "transient"},
                ):
                    report.changed.append(job.id)
            return
        started = job.start_time or (job.phase_time if job.phase == Phase.EXECUTING else None)
        limit = job.execution_duration
        # A backend that enforces the limit itself (SLURM's --time) gets a grace time
        # to do so, and its own verdict (TIMEOUT) reaches the job.
        grace = self.manager.time_limit_grace
        if (
            limit > 0
            and started is not None
            and (state is None or state.phase not in TERMINAL)
            and now > started + timedelta(seconds=limit + grace)
        ):
            self._manager_abort(job)
            message = f"the job exceeded its execution duration of {limit} s and was stopped"
            fields = {"end_time": now, "error_type": "fatal", "error_message": message}
            if self._change(job.id, Phase.ABORTED, fields):
                report.timed_out.append(job.id)
            return
        if state is None or state.phase == job.phase:
            return
        if state.phase in (Phase.COMPLETED, Phase.ERROR):
            changed = self._finish(job, state.phase, state.message)
        elif state.phase == Phase.ABORTED:
            fields = {"end_time": now}
            if state.message:
                fields.update(error_type="fatal", error_message=state.message)
            changed = self._change(job.id, Phase.ABORTED, fields)
        elif state.phase == Phase.EXECUTING and job.start_time is None:
            changed = self._change(job.id, Phase.EXECUTING, {"start_time": now})
        else:
            changed = self._change(job.id, state.phase)
        if changed:
            report.changed.append(job.id)

    def _destroy_expired(self, now: datetime, report: ReconcileReport) -> None:
        for job_id in self.store.expired_job_ids(now):
            job = self.store.get_job(job_id)
            if job is None:
                continue
            if not self.settings.ARCHIVE_ON_DESTRUCTION:
                self.delete(job)
                report.destroyed.append(job_id)
                continue
            if job.phase in RUNNING:
                self._manager_abort(job)
            fields = {"end_time": job.end_time or now}
            if self._change(
                job_id, Phase.ARCHIVED, fields, allowed_from=set(Phase) - {Phase.ARCHIVED}
            ):
                self.store.delete_results(job_id)
                inputs.remove_tree(self.job_dir(job_id))
                report.archived.append(job_id)


class Reconciler(threading.Thread):
    """Background thread running ``JobService.reconcile`` every RECONCILE_INTERVAL."""

    def __init__(self, service: JobService) -> None:
        super().__init__(name="opus-reconciler", daemon=True)
        self.service = service
        self.stopping = threading.Event()
        self.leading = False

    def run(self) -> None:
        interval = self.service.settings.RECONCILE_INTERVAL
        # Of the processes of a server (and `opus maintenance`), only the holder of
        # the lock reconciles; the others keep trying, to take over if it goes.
        lock = self.service.store.reconciler_lock()
        try:
            while not self.stopping.wait(interval):
                try:
                    holder = lock.acquire()
                except Exception as exc:
                    log.warning("reconciler lock unavailable: %s", exc)
                    holder = False
                if holder != self.leading:
                    self.leading = holder
                    verb = "runs" if holder else "no longer runs"
                    log.info("this process %s the reconciler", verb)
                if not holder:
                    continue
                try:
                    self.service.reconcile()
                except Exception:
                    log.exception("reconciliation pass failed")
        finally:
            with contextlib.suppress(Exception):
                lock.release()

    def stop(self) -> None:
        self.stopping.set()
