"""“Run once per file” of the new-job form: one job per file of an input, from one post,
and the job list it lands on.

The form's submission (forms.py) holds the files given for the input the box names:
uploads, or URLs of the user's results (used by reference, nothing copied). The service
makes the batch all or nothing (service/batches.py: every job checked first, then
created, the ones made removed if one is refused), so a refusal draws the form again
as for one job. The jobs share a run ID, the user's or ``batch <UTC time>``, and the
answer is a 303 to the job list filtered to the type and that run ID, whose notice
(``batch_notice``) says how many jobs were made and started: what NJOBS_MAX did not
let run stays PENDING.

The notice is written from numbers of the query string alone (``batch``, ``started``)
and the server's NJOBS_MAX, never from text the URL carries.
"""

from __future__ import annotations

from collections.abc import Sequence

from opus.client.forms import Submission
from opus.client.views import query
from opus.core.access import Caller
from opus.core.times import utcnow
from opus.server.service.batches import Batch, BatchJob, create_batch
from opus.server.service.inputs import Upload
from opus.server.service.jobs import JobService

# The job list's page sizes (jobpages.PAGE_SIZES) that may hold a whole batch.
PAGE_SIZES = (50, 100, 200)
LABEL_MAX = 80
# The query's numbers of the notice.
NOTICE_FIELDS = ("batch", "started")


def run_batch(
    service: JobService,
    caller: Caller,
    jobname: str,
    submission: Submission,
    shared: Sequence[Upload] = (),
) -> str:
    """Create the jobs of a submission's "Run once per file" (``shared``: uploads every
    job has too), run them as the service allows, and return the path of the job list
    that shows them. Raises what create_batch raises, before anything is kept."""
    control = dict(submission.control)
    run_id = control.get("RUNID", "").strip() or default_run_id()
    control["RUNID"] = run_id
    made = submission.batch_jobs(shared)
    jobs = [
        BatchJob(values, uploads, label(index, len(made), given))
        for index, (given, values, uploads) in enumerate(made, 1)
    ]
    batch = create_batch(service, caller, jobname, jobs, control)
    return landing(jobname, run_id, batch, run="PHASE" in control)


def default_run_id() -> str:
    """The run ID of a batch whose user gave none: when it was made (UTC, to the second)."""
    return f"batch {utcnow():%Y-%m-%d %H:%M:%S}"


def label(index: int, count: int, given: Upload | str) -> str:
    """What names one job of a batch in a refusal: "file 2 of 5 (b.txt)"."""
    name = given.filename if isinstance(given, Upload) else given
    if len(name) > LABEL_MAX:
        name = "…" + name[-LABEL_MAX:]
    return f"file {index} of {count} ({name})"


def landing(jobname: str, run_id: str, batch: Batch, run: bool) -> str:
    """The job list of the batch: its type and run ID, a page that holds it if one can,
    and the numbers of the notice."""
    count = len(batch.jobs)
    size = next((size for size in PAGE_SIZES if size >= count), PAGE_SIZES[-1])
    return "/jobs" + query(
        type=jobname,
        run_id=run_id,
        limit=size if size != PAGE_SIZES[0] else None,
        batch=count,
        started=batch.started if run else None,
    )


def batch_notice(batch: str | None, started_text: str | None, njobs_max: int) -> str:
    """The job list's notice after a batch, from the query's ``batch`` (jobs made) and
    ``started`` (jobs run; None: saved as pending); empty without a batch."""
    count = _number(batch)
    if count is None or count < 1:
        return ""
    jobs = f"{count} job{'s' if count != 1 else ''} created"
    started = _number(started_text)
    if started is None:
        return f"{jobs}, pending: run them from the job list."
    started = min(started, count)
    if started == count:
        return f"{jobs} and running."
    return (
        f"{jobs}: {started} running, {count - started} pending — the server runs at most "
        f"{njobs_max} of yours at once; run them from the job list."
    )


def _number(text: str | None) -> int | None:
    if text is None or not text.isdecimal() or len(text) > 9:
        return None
    return int(text)
