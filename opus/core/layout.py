"""The layout of a job's directory, shared by the service, the batch script and managers.

::

    JOBS_PATH/<job id>/          the job's working directory (JOB_DIR); uploads and
                                 fetched inputs land here under sanitised names
        results/                 JOB_OUTPUT_DIR: the files registered as results
        source/                  JOB_SOURCE_DIR: the clone of the definition's source
        .opus/                   what OPUS keeps for the job, never a result
            batch.sh             the generated batch script (scripts.py)
            script.sh            the job definition's script
            token                the job's signal token (mode 0600)
            inputs.json          input name → local file name
            stdout, stderr       the script's output streams
            status               the final phase the batch script recorded
            batch.log            the batch script's own output
            signal.log           what the callbacks printed
            progress             the latest progress the script reported (opus_progress)
            progress.lock/       its sender's: pid, stop (asked to end), done (ended)
            source_commit        the commit of the source cloned (read at EXECUTING and
                                 at the end)

The batch script runs on the execution host (a SLURM node), so these names are the
contract between the server and the script: one definition, here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

INTERNAL_DIR = ".opus"
RESULTS_DIR = "results"
BATCH_SCRIPT = "batch.sh"
JOB_SCRIPT = "script.sh"
TOKEN_FILE = "token"  # noqa: S105 - a file name, not a secret
INPUTS_FILE = "inputs.json"
STDOUT_FILE = "stdout"
STDERR_FILE = "stderr"
STATUS_FILE = "status"
BATCH_LOG = "batch.log"
SIGNAL_LOG = "signal.log"
PROGRESS_FILE = "progress"
PROGRESS_LOCK = "progress.lock"
SOURCE_DIR = "source"
SOURCE_COMMIT_FILE = "source_commit"
# Names an input file may not take: they are the layout's own.
RESERVED_NAMES = frozenset({INTERNAL_DIR, RESULTS_DIR, SOURCE_DIR})


@dataclass(frozen=True)
class JobLayout:
    """The paths of one job's directory (nothing is created or checked here)."""

    root: Path

    @property
    def internal(self) -> Path:
        return self.root / INTERNAL_DIR

    @property
    def results(self) -> Path:
        return self.root / RESULTS_DIR

    @property
    def batch_script(self) -> Path:
        return self.internal / BATCH_SCRIPT

    @property
    def job_script(self) -> Path:
        return self.internal / JOB_SCRIPT

    @property
    def token(self) -> Path:
        return self.internal / TOKEN_FILE

    @property
    def inputs(self) -> Path:
        return self.internal / INPUTS_FILE

    @property
    def stdout(self) -> Path:
        return self.internal / STDOUT_FILE

    @property
    def stderr(self) -> Path:
        return self.internal / STDERR_FILE

    @property
    def status(self) -> Path:
        return self.internal / STATUS_FILE

    @property
    def batch_log(self) -> Path:
        return self.internal / BATCH_LOG

    def stream(self, which: str) -> Path:
        """The captured ``stdout`` or ``stderr``; ValueError for anything else."""
        if which not in (STDOUT_FILE, STDERR_FILE):
            raise ValueError(f"{which!r} is not a stream of a job")
        return self.internal / which
