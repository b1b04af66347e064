"""What SLURM's commands print, read as OPUS sees it: job ids and UWS phases.

The one table from SLURM job states (squeue ``%T``, sacct ``State``) to UWS phases
lives here, with the parsers of ``sbatch --parsable``, ``squeue``/``sacct`` lines and
``scontrol show config``. Pure functions of the text, tested without a cluster.
"""

from __future__ import annotations

import re

from opus.core.phases import Phase
from opus.server.managers.base import JobState, ManagerError

# Stderr characters kept in an error message.
ERROR_CHARS = 500

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
