"""The exit statuses of the `opus` client commands: one table, for scripts to test.

| Status | Meaning |
|---|---|
| 0 | Done; for a command that waits for a job (``wait``, ``submit --wait``), the job COMPLETED |
| 1 | The job ended in ERROR; ``batch``: a dataset failed |
| 2 | Usage: bad arguments, no saved login, a local file that cannot be read or written |
| 3 | The job was ABORTED |
| 4 | The job ended otherwise without completing (ARCHIVED: its results are gone) |
| 5 | Timeout: the job was still running when ``--timeout`` ran out |
| 6 | The server refused the request (a 4xx: bad parameter, unknown job, wrong token…) |
| 7 | Server fault (a 5xx, an unreadable answer) or the server is unreachable |
| 130 | Interrupted (Ctrl-C) |

``batch`` (batchcmd.py) is 0 when every dataset's job COMPLETED, 1 when a dataset
failed (its job ended in ERROR or ABORTED, it was refused or could not be read, its
results could not be downloaded), 5 when ``--timeout`` ran out, 6 when the server
refused every job to come (JOBS_PER_USER_MAX, STORAGE_PER_USER_MAX), 7 when it could
not be reached, 130 when interrupted (Ctrl-C, SIGTERM).
"""

from __future__ import annotations

from opus.client.errors import (
    JobFailed,
    LoginError,
    OpusError,
    RequestRefused,
    WaitTimeout,
)
from opus.core.phases import Phase

OK = 0
JOB_ERROR = 1
USAGE = 2
JOB_ABORTED = 3
JOB_NOT_COMPLETED = 4
TIMEOUT = 5
REFUSED = 6
SERVER = 7
INTERRUPTED = 130

# What `opus --help` and the docs print of the table.
SUMMARY = (
    "exit status: 0 done (the job COMPLETED), 1 job ERROR (batch: a dataset failed),"
    " 2 usage, 3 job ABORTED,"
    " 4 job ended otherwise (ARCHIVED), 5 timeout, 6 refused by the server (4xx),"
    " 7 server fault or unreachable"
)


def for_phase(phase: Phase) -> int:
    """The status of a command that waited for a job to end in ``phase``."""
    if phase == Phase.COMPLETED:
        return OK
    if phase == Phase.ERROR:
        return JOB_ERROR
    if phase == Phase.ABORTED:
        return JOB_ABORTED
    return JOB_NOT_COMPLETED


def for_error(error: OpusError) -> int:
    """The status of a command that failed with ``error``."""
    if isinstance(error, WaitTimeout):
        return TIMEOUT
    if isinstance(error, JobFailed):
        return for_phase(error.phase)
    if isinstance(error, LoginError):
        return USAGE
    if isinstance(error, RequestRefused):
        return REFUSED
    return SERVER
