"""The SLURM manager: batch scripts are submitted with ``sbatch`` to a SLURM cluster.

Only the standard client commands are used: ``sbatch --parsable`` to submit,
``scancel`` to abort, one ``squeue`` per reconciliation pass for all active jobs,
``scontrol show config`` to find out (once) whether the cluster keeps accounting,
``sacct`` for jobs ``squeue`` has forgotten when it does, and ``scontrol ping`` when
VOSI availability asks whether the controller answers. The external id of a job is
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

from opus.core.layout import JobLayout
from opus.core.phases import Phase
from opus.server.managers.base import (
    JobState,
    ManagedJob,
    Manager,
    ManagerError,
    job_environment,
    read_status_file,
)
from opus.server.managers.slurm_output import (
    ERROR_CHARS,
    SLURM_ID,
    accounting_enabled,
    parse_sbatch_id,
    parse_states,
    slurm_job_state,
)
from opus.settings import Settings, SettingsError

log = logging.getLogger("opus.manager.slurm")

# Seconds a SLURM command may take: slurmctld answers in milliseconds when healthy;
# a command stuck longer (controller down, ssh hanging) is abandoned.
COMMAND_TIMEOUT = 60.0
# Seconds the reachability check (``scontrol ping``) may take: a monitor asking
# whether the service is available wants its answer in seconds.
PING_TIMEOUT = 5.0
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

    def run(self, argv: Sequence[str], timeout: float | None = None) -> str:
        """Run a SLURM command (behind the prefix) within ``timeout`` seconds (default
        ``self.timeout``); its stdout, or SlurmCommandError."""
        command = prefixed(self.prefix, argv)
        limit = self.timeout if timeout is None else timeout
        try:
            done = self.runner(command, limit)
        except subprocess.TimeoutExpired:
            raise SlurmCommandError(
                f"{argv[0]} did not answer within {limit:g} s", timed_out=True
            ) from None
        except OSError as exc:
            raise SlurmCommandError(f"could not run {command[0]}: {exc}") from None
        if done.returncode != 0:
            said = one_line(done.stderr) or one_line(done.stdout) or "no message"
            raise SlurmCommandError(
                f"{argv[0]} failed (exit status {done.returncode}): {said}", done.stderr
            )
        return done.stdout

    def check_reachable(self) -> None:
        """``scontrol ping``: the controller must say it is UP (a failed command, or a
        controller it reports DOWN, raises SlurmCommandError)."""
        said = self.run(["scontrol", "ping"], PING_TIMEOUT)
        if "DOWN" in said or "UP" not in said:
            raise SlurmCommandError(f"scontrol ping: {one_line(said) or 'no answer'}")

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
        log_path = sbatch_path(JobLayout(job.job_dir).batch_log)
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
