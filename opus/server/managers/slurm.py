"""The SLURM manager: batch scripts are submitted with ``sbatch`` to a SLURM cluster.

Only the standard client commands are used: ``sbatch --parsable`` to submit,
``scancel`` to abort, one ``squeue`` per reconciliation pass for all active jobs,
``scontrol show config`` to find out (once) whether the cluster keeps accounting, and
``sacct`` for jobs ``squeue`` has forgotten when it does. The external id of a job is
its SLURM job id.

The job directory (JOBS_PATH) must be on a filesystem shared by the server and the
compute nodes: the batch script runs there and writes ``.opus/status`` when it is done.
That file records what the job's script really did and wins over the SLURM state (a
job may still be RUNNING for SLURM while its batch script retries a callback to a
server that is down); a SLURM-side end (TIMEOUT, CANCELLED, NODE_FAIL…) decides when
the script could not write it.

The commands may run elsewhere through SLURM_COMMAND_PREFIX (``ssh opus@login``,
``sudo -u opus``). Every command runs with ``job_environment()``: sbatch hands its
environment to the job, which must not see the server's OPUS_* settings.
"""

from __future__ import annotations

import logging
import math
import os
import re
import shlex
import subprocess
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from opus.server.managers.base import (
    JobState,
    ManagedJob,
    Manager,
    ManagerError,
    job_environment,
)
from opus.server.managers.local import read_status_file
from opus.server.phases import Phase
from opus.server.scripts import BATCH_LOG, INTERNAL_DIR
from opus.settings import Settings, SettingsError

log = logging.getLogger("opus.manager.slurm")

# Seconds a SLURM command may take: slurmctld answers in milliseconds when healthy;
# a command stuck longer (controller down, ssh hanging) is abandoned.
COMMAND_TIMEOUT = 60.0
# Stderr characters kept in an error message.
ERROR_CHARS = 500
# The squeue fields read: job id, full state name, reason ("|" never appears in them).
SQUEUE_FORMAT = "%i|%T|%r"
SACCT_FORMAT = "JobIDRaw,State,ExitCode,Reason"
# What squeue and scancel say about a job id slurmctld no longer knows (MinJobAge).
INVALID_JOB_ID = "invalid job id"
# What scancel says about a job that is already ending.
ALREADY_DONE = ("already completing or completed", "job/step already")

# sbatch options settable per job (lower-case job parameter → sbatch option), with the
# setting that gives the default and the strict pattern of an acceptable value. The
# patterns admit nothing a shell or sbatch could read as syntax: no whitespace, no
# quotes, no "=", no "$", no leading "-".
NAME = r"[A-Za-z0-9_.][A-Za-z0-9_.-]{0,63}"
COUNT = r"[1-9][0-9]{0,5}"


@dataclass(frozen=True)
class SbatchOption:
    """One per-job sbatch option: its job parameter, setting, flag and value rule."""

    parameter: str
    setting: str
    flag: str
    pattern: re.Pattern[str]
    rule: str


SBATCH_OPTIONS: tuple[SbatchOption, ...] = (
    SbatchOption(
        "slurm_partition",
        "SLURM_PARTITION",
        "--partition",
        re.compile(rf"{NAME}(,{NAME}){{0,15}}"),
        "a partition name or a comma-separated list of them",
    ),
    SbatchOption(
        "slurm_account", "SLURM_ACCOUNT", "--account", re.compile(NAME), "an account name"
    ),
    SbatchOption(
        "slurm_nodes",
        "SLURM_NODES",
        "--nodes",
        re.compile(rf"{COUNT}(-{COUNT})?"),
        "a node count N or a range N-M",
    ),
    SbatchOption(
        "slurm_ntasks", "SLURM_NTASKS", "--ntasks", re.compile(COUNT), "a positive integer"
    ),
    SbatchOption(
        "slurm_cpus_per_task",
        "SLURM_CPUS_PER_TASK",
        "--cpus-per-task",
        re.compile(COUNT),
        "a positive integer",
    ),
    SbatchOption(
        "slurm_mem",
        "SLURM_MEM",
        "--mem",
        re.compile(r"[0-9]{1,12}[KMGTkmgt]?"),
        "an integer amount of memory with an optional K, M, G or T suffix (default M)",
    ),
)
OPTIONS_BY_PARAMETER = {option.parameter: option for option in SBATCH_OPTIONS}


def check_option(option: SbatchOption, value: str, label: str) -> str:
    """``value`` normalised if it is acceptable for ``option``, else ValueError."""
    if not isinstance(value, str) or not option.pattern.fullmatch(value):
        raise ValueError(f"{label} must be {option.rule}, not {value!r}")
    if option.parameter == "slurm_nodes" and "-" in value:
        low, high = (int(part) for part in value.split("-"))
        if low > high:
            raise ValueError(f"{label} range {value!r} has its minimum above its maximum")
    if option.parameter == "slurm_mem":
        return value.upper()
    return value


# -- SLURM states → UWS phases ---------------------------------------------------------

# The one table from SLURM job states (squeue %T, sacct State) to UWS phases, with the
# message given to the job when it ends there ({job}: SLURM job id, {detail}: the
# reason or exit code SLURM gives, prefixed by ": " when there is one).
SLURM_PHASES: dict[str, tuple[Phase, str | None]] = {
    "PENDING": (Phase.QUEUED, None),
    "CONFIGURING": (Phase.QUEUED, None),
    # Requeued (by an administrator; OPUS submits with --no-requeue): waiting again.
    "REQUEUED": (Phase.QUEUED, None),
    "REQUEUE_FED": (Phase.QUEUED, None),
    "RUNNING": (Phase.EXECUTING, None),
    # The script ended and SLURM is cleaning up: still running until the state is final.
    "COMPLETING": (Phase.EXECUTING, None),
    # Still running while SLURM resizes or signals it, or stages its output out.
    "RESIZING": (Phase.EXECUTING, None),
    "SIGNALING": (Phase.EXECUTING, None),
    "STAGE_OUT": (Phase.EXECUTING, None),
    "SUSPENDED": (Phase.SUSPENDED, None),
    # SIGSTOPped with its resources kept: paused, as a suspended job is.
    "STOPPED": (Phase.SUSPENDED, None),
    # Waiting for someone to release it: the job cannot run until then.
    "REQUEUE_HOLD": (Phase.HELD, None),
    "SPECIAL_EXIT": (Phase.HELD, None),
    "RESV_DEL_HOLD": (Phase.HELD, None),
    "COMPLETED": (Phase.COMPLETED, None),
    "CANCELLED": (Phase.ABORTED, "the SLURM job {job} was cancelled{detail}"),
    "TIMEOUT": (Phase.ABORTED, "the job exceeded its time limit and SLURM stopped it"),
    # The system took the resources back for another job: UWS calls a job the system
    # stopped for want of resources ABORTED (and --no-requeue keeps it from coming back).
    "PREEMPTED": (Phase.ABORTED, "the SLURM job {job} was preempted{detail}"),
    "DEADLINE": (Phase.ERROR, "the SLURM job {job} missed its deadline{detail}"),
    "FAILED": (Phase.ERROR, "the SLURM job {job} failed{detail}"),
    "NODE_FAIL": (Phase.ERROR, "the SLURM job {job} ended because its node failed{detail}"),
    "OUT_OF_MEMORY": (Phase.ERROR, "the SLURM job {job} ran out of memory{detail}"),
    "BOOT_FAIL": (Phase.ERROR, "the SLURM job {job} could not boot its node{detail}"),
    # A federation sibling that will never run here: the job as OPUS knows it is gone.
    "REVOKED": (Phase.ERROR, "the SLURM job {job} was revoked{detail}"),
}
# Reasons of a PENDING job that waits for a release (scontrol hold, sbatch --hold).
HELD_REASON_PREFIX = "JobHeld"
# Reasons that explain nothing.
EMPTY_REASONS = {"", "None", "(null)", "0:0"}


def slurm_job_state(slurm_id: str, state: str, reason: str = "") -> JobState | None:
    """The UWS view of a SLURM state (None for a state this table does not know)."""
    # sacct writes "CANCELLED by 1234"; squeue and sacct may add "+" to some states.
    words = state.split()
    name = words[0].rstrip("+").upper() if words else ""
    if name == "PENDING" and reason.startswith(HELD_REASON_PREFIX):
        return JobState(Phase.HELD)
    entry = SLURM_PHASES.get(name)
    if entry is None:
        return None
    phase, template = entry
    if template is None:
        return JobState(phase)
    details = [part for part in (reason.strip(),) if part not in EMPTY_REASONS]
    if name == "CANCELLED" and len(words) > 2 and words[1] == "by":
        details.append(f"by user id {words[2]}")
    detail = f" ({', '.join(details)})" if details else ""
    return JobState(phase, template.format(job=slurm_id, detail=detail))


# -- SLURM command output --------------------------------------------------------------

SBATCH_ID = re.compile(r"([0-9]+)(;\S+)?")
SLURM_ID = re.compile(r"[0-9]+")


def parse_sbatch_id(stdout: str) -> str:
    """The job id printed by ``sbatch --parsable`` ("id" or "id;cluster").

    The last matching line counts: a login shell behind ssh may print before it.
    """
    for line in reversed(stdout.splitlines()):
        match = SBATCH_ID.fullmatch(line.strip())
        if match:
            return match.group(1)
    raise ManagerError(f"sbatch printed no job id: {stdout.strip()[:ERROR_CHARS]!r}")


def parse_states(stdout: str, wanted: set[str] | None = None) -> dict[str, tuple[str, str]]:
    """``id|state|reason`` lines (squeue) or ``id|state|exitcode|reason`` lines
    (sacct) → {id: (state, detail)}; lines of other ids are skipped."""
    found: dict[str, tuple[str, str]] = {}
    for line in stdout.splitlines():
        parts = line.strip().split("|")
        if len(parts) < 3 or not SLURM_ID.fullmatch(parts[0]):
            continue
        if wanted is not None and parts[0] not in wanted:
            continue
        if len(parts) == 3:
            detail = parts[2].strip()
        else:
            # sacct: the reason, and the exit code when the job did not end well.
            reason, exit_code = parts[3].strip(), parts[2].strip()
            details = [d for d in (reason,) if d not in EMPTY_REASONS]
            if exit_code not in EMPTY_REASONS:
                details.append(f"exit code {exit_code}")
            detail = ", ".join(details)
        found[parts[0]] = (parts[1].strip(), detail)
    return found


def accounting_enabled(config: str) -> bool:
    """Whether ``scontrol show config`` output names an accounting storage."""
    for line in config.splitlines():
        key, _, value = line.partition("=")
        if key.strip() == "AccountingStorageType":
            return value.strip() not in ("", "accounting_storage/none", "(null)")
    return False


# -- running commands --------------------------------------------------------------------


@dataclass(frozen=True)
class CommandResult:
    returncode: int
    stdout: str
    stderr: str


class SlurmCommandError(ManagerError):
    """A SLURM command failed; ``stderr`` is what it said."""

    def __init__(self, message: str, stderr: str = "", timed_out: bool = False) -> None:
        super().__init__(message)
        self.stderr = stderr
        self.timed_out = timed_out


Runner = Callable[[Sequence[str], float], CommandResult]


def run_command(command: Sequence[str], timeout: float) -> CommandResult:
    """Run one command without a shell; its environment is the jobs' environment."""
    done = subprocess.run(
        list(command),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        errors="replace",
        timeout=timeout,
        env=job_environment(),
        check=False,
    )
    return CommandResult(done.returncode, done.stdout, done.stderr)


def one_line(text: str) -> str:
    """A command's output as one line (error messages and logs are one line)."""
    return "; ".join(line.strip() for line in text.splitlines() if line.strip())[:ERROR_CHARS]


def split_prefix(prefix: str) -> list[str]:
    """The SLURM_COMMAND_PREFIX setting as an argv (SettingsError if it cannot be)."""
    try:
        return shlex.split(prefix)
    except ValueError as exc:
        raise SettingsError(f"setting SLURM_COMMAND_PREFIX: {exc}") from None


def prefixed(prefix: Sequence[str], argv: Sequence[str]) -> list[str]:
    """The command to run for ``argv`` behind ``prefix``.

    ssh hands its command line to a shell on the remote host: the SLURM command goes
    as one shell-quoted string, so that no value is read as shell syntax there. Other
    prefixes (sudo, env…) run the argv as given, without a shell.
    """
    if not prefix:
        return list(argv)
    if os.path.basename(prefix[0]) == "ssh":
        return [*prefix, shlex.join(argv)]
    return [*prefix, *argv]


def sbatch_path(path: Path) -> str:
    """A path as sbatch reads --output and --error: "%" starts a pattern there."""
    return str(path).replace("%", "%%")


class SlurmManager(Manager):
    """Submits batch scripts with sbatch and follows them with squeue (and sacct)."""

    name = "slurm"
    option_names = frozenset(OPTIONS_BY_PARAMETER)
    # SLURM ends a job past its --time itself, and its TIMEOUT is the better answer:
    # --time is executionDuration rounded up to the minute (up to 60 s later),
    # slurmctld looks at time limits about every 30 s, then sends SIGTERM and SIGKILL
    # KillWait (default 30 s) later, and the reconciler sees the end at its next pass.
    # OPUS stops the job itself only if all that has not happened 120 s after the
    # rounding.
    time_limit_grace = 60.0 + 120.0

    def __init__(self, settings: Settings, runner: Runner | None = None) -> None:
        self.prefix = split_prefix(settings.SLURM_COMMAND_PREFIX)
        self.defaults: dict[str, str] = {}
        for option in SBATCH_OPTIONS:
            value = getattr(settings, option.setting)
            if value:
                try:
                    value = check_option(option, value, f"setting {option.setting}")
                except ValueError as exc:
                    raise SettingsError(str(exc)) from None
                self.defaults[option.parameter] = value
        self.accounting_setting = settings.SLURM_ACCOUNTING
        self.runner: Runner = runner or run_command
        self.timeout = COMMAND_TIMEOUT
        self._accounting: bool | None = None
        self._lock = threading.Lock()

    # -- commands ------------------------------------------------------------------------

    def run(self, argv: Sequence[str]) -> str:
        """Run a SLURM command (behind the prefix); its stdout, or SlurmCommandError."""
        command = prefixed(self.prefix, argv)
        try:
            done = self.runner(command, self.timeout)
        except subprocess.TimeoutExpired:
            raise SlurmCommandError(
                f"{argv[0]} did not answer within {self.timeout:g} s", timed_out=True
            ) from None
        except OSError as exc:
            raise SlurmCommandError(f"could not run {command[0]}: {exc}") from None
        if done.returncode != 0:
            said = one_line(done.stderr) or one_line(done.stdout) or "no message"
            raise SlurmCommandError(
                f"{argv[0]} failed (exit status {done.returncode}): {said}", done.stderr
            )
        return done.stdout

    # -- options -------------------------------------------------------------------------

    def check_options(self, options: Mapping[str, str]) -> dict[str, str]:
        checked: dict[str, str] = {}
        for raw_name, value in options.items():
            name = raw_name.lower()
            option = OPTIONS_BY_PARAMETER.get(name)
            if option is None:
                known = ", ".join(sorted(OPTIONS_BY_PARAMETER))
                raise ValueError(f"{raw_name} is not an option of the slurm manager ({known})")
            checked[name] = check_option(option, value, name)
        return checked

    # -- submission ----------------------------------------------------------------------

    def sbatch_command(self, job: ManagedJob, batch_script: Path) -> list[str]:
        """The sbatch argv that submits ``batch_script`` for ``job``."""
        for path in (job.job_dir, batch_script):
            text = str(path)
            # A backslash turns sbatch's filename patterns off; a newline cannot be
            # told apart from the next line of SLURM's own output.
            if "\\" in text or "\n" in text or "\r" in text:
                raise ManagerError(f"SLURM cannot be given the path {text!r}")
        label = re.sub(r"[^A-Za-z0-9_.-]", "_", job.jobname)
        log_path = sbatch_path(job.job_dir / INTERNAL_DIR / BATCH_LOG)
        argv = [
            "sbatch",
            "--parsable",
            f"--job-name=opus-{label}-{job.job_id}" if label else f"--job-name=opus-{job.job_id}",
            f"--chdir={job.job_dir}",
            f"--output={log_path}",
            f"--error={log_path}",
            "--no-requeue",
        ]
        if job.execution_duration > 0:
            argv.append(f"--time={math.ceil(job.execution_duration / 60)}")
        values = dict(self.defaults)
        try:
            # Checked when the job was created; checked again, as they go to sbatch.
            values.update(self.check_options(job.options))
        except ValueError as exc:
            raise ManagerError(str(exc)) from None
        for option in SBATCH_OPTIONS:
            if option.parameter in values:
                argv.append(f"{option.flag}={values[option.parameter]}")
        argv.append(str(batch_script))
        return argv

    def submit(self, job: ManagedJob, batch_script: Path) -> str:
        argv = self.sbatch_command(job, batch_script)
        try:
            stdout = self.run(argv)
        except SlurmCommandError as exc:
            if exc.timed_out:
                # sbatch may have submitted the job before it hung: the job is about
                # to be an ERROR, so no SLURM job of that name may run.
                name = argv[2].removeprefix("--job-name=")
                try:
                    self.run(["scancel", f"--name={name}"])
                except ManagerError as cancel_error:
                    log.warning("job %s: scancel after sbatch: %s", job.job_id, cancel_error)
            raise
        slurm_id = parse_sbatch_id(stdout)
        log.info("job %s: SLURM job %s", job.job_id, slurm_id)
        return slurm_id

    # -- abort ---------------------------------------------------------------------------

    def abort(self, job: ManagedJob) -> None:
        if not job.external_id or not SLURM_ID.fullmatch(job.external_id):
            return
        try:
            self.run(["scancel", job.external_id])
        except SlurmCommandError as exc:
            said = exc.stderr.lower()
            if INVALID_JOB_ID in said or any(text in said for text in ALREADY_DONE):
                return  # ended, and forgotten or about to be: nothing to stop
            raise

    # -- states --------------------------------------------------------------------------

    def accounting(self) -> bool:
        """Whether sacct can be asked (SLURM_ACCOUNTING, or the cluster's config)."""
        if self.accounting_setting != "auto":
            return self.accounting_setting == "yes"
        with self._lock:
            if self._accounting is None:
                # Cached once known; a failure is not cached, the next pass asks again.
                config = self.run(["scontrol", "show", "config"])
                self._accounting = accounting_enabled(config)
                log.info("SLURM accounting: %s", "on" if self._accounting else "off")
            return self._accounting

    def squeue(self, slurm_ids: Sequence[str]) -> dict[str, tuple[str, str]]:
        """{id: (state, reason)} of the jobs slurmctld still knows, in one call."""
        argv = [
            "squeue",
            "--noheader",
            "--states=all",
            f"--jobs={','.join(slurm_ids)}",
            f"--format={SQUEUE_FORMAT}",
        ]
        try:
            stdout = self.run(argv)
        except SlurmCommandError as exc:
            # squeue refuses a list of ids it has all forgotten: none is known.
            if INVALID_JOB_ID in exc.stderr.lower():
                return {}
            raise
        return parse_states(stdout, set(slurm_ids))

    def sacct(self, slurm_ids: Sequence[str]) -> dict[str, tuple[str, str]]:
        """{id: (state, detail)} from the accounting records, in one call."""
        argv = [
            "sacct",
            "--noheader",
            "--parsable2",
            "--allocations",
            f"--jobs={','.join(slurm_ids)}",
            f"--format={SACCT_FORMAT}",
        ]
        return parse_states(self.run(argv), set(slurm_ids))

    def states(self, jobs: Sequence[ManagedJob]) -> dict[str, JobState]:
        by_id = {
            job.external_id: job
            for job in jobs
            if job.external_id and SLURM_ID.fullmatch(job.external_id)
        }
        seen: dict[str, tuple[str, str]] = {}
        # Whether SLURM answered for every job: a job it does not list has ended.
        complete = True
        if by_id:
            try:
                seen = self.squeue(list(by_id))
                missing = [slurm_id for slurm_id in by_id if slurm_id not in seen]
                if missing and self.accounting():
                    seen.update(self.sacct(missing))
            except ManagerError as exc:
                # Only status files can be trusted this pass; the next one asks again.
                log.warning("cannot ask SLURM about %d jobs: %s", len(by_id), exc)
                complete = False
        states: dict[str, JobState] = {}
        for job in jobs:
            if job.external_id is None:
                continue
            state = self._state(job, seen, complete)
            if state is not None:
                states[job.job_id] = state
        return states

    def _state(
        self, job: ManagedJob, seen: Mapping[str, tuple[str, str]], complete: bool
    ) -> JobState | None:
        # Read after squeue: a job squeue no longer lists had written its status file.
        final = read_status_file(job.job_dir)
        if final is not None:
            return final
        slurm_id = job.external_id or ""
        if not SLURM_ID.fullmatch(slurm_id):
            return JobState(Phase.ERROR, f"{slurm_id!r} is not a SLURM job id")
        if slurm_id in seen:
            state, reason = seen[slurm_id]
            mapped = slurm_job_state(slurm_id, state, reason)
            if mapped is None:
                log.warning("job %s: unknown SLURM state %r", job.job_id, state)
            return mapped
        if not complete:
            return None
        return JobState(Phase.ERROR, f"the SLURM job {slurm_id} ended without reporting")
