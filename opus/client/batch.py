"""Many datasets at once: one job per dataset, a few at a time, within the server's limits.

```python
from opus.client import Client
from opus.client.batch import run_batch

report = run_batch(Client.from_login(), "append_text", ["a.txt", "b.txt"], "input",
                   {"text": "one more line"}, parallel=4, report_path="report.json")
print(report.counts(), [e.results for e in report.entries])
```

Each dataset is given to its job as the input ``as_input``: a local file is uploaded,
an http(s) URL or an entity id of the server is passed as the value (the server reads
it, by reference when it is one of its own entities), and every dataset is a value when
``as_input`` is a plain parameter of the job type. Three rules keep a batch well behaved:

- **At most ``parallel`` jobs active at a time, never past the server's limit.** A
  creation refused with 403 naming NJOBS_MAX (or 429) is not a failure of the dataset:
  it goes back to the front of the queue, and is tried again once one of the caller's
  jobs has ended; the limit the refusal names becomes the batch's. A refusal naming
  JOBS_PER_USER_MAX or STORAGE_PER_USER_MAX stops the submissions (the running jobs
  are still followed) and says so: the report is there to ``--resume`` once jobs have
  been deleted.
- **The server does the waiting, in one request.** The batch follows OPUS's change feed
  (``GET /changes?since=T&WAIT=30``, docs/api.md): one parked request for all its jobs,
  answered when any of them changes, so 20 jobs in flight cost one request per change
  of any of them, not 20 waiting connections nor a poll per job; an ended job is read
  once more (its error and results). A server without the feed (any other UWS server,
  or ``json=False``) gets one thread per active job waiting with WAIT (``PHASE``), as
  ``Job.wait`` does: still no polling, ``parallel`` connections.
- **The report is on disk after every change that matters** (batchreport.py: the job of
  each dataset as soon as it is known, every end), so an interrupted batch can be
  resumed: COMPLETED datasets are skipped, jobs still active are followed rather than
  submitted again, the others are submitted again.

One thread (the caller's) owns the report and decides; submissions, the reading of
ended jobs and downloads run in small pools of daemon threads that hand their outcome
back to it through a queue, so an interruption (KeyboardInterrupt) lands where the
report is, which is written before it propagates.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from opus.client.api import Client, Params, form_fields
from opus.client.batchreport import (
    BatchError,
    BatchProgress,
    BatchReport,
    Entry,
    ReportError,
    read_report,
)
from opus.client.batchrun import DEFAULT_PARALLEL, Batch, ProgressCallback

__all__ = [
    "DEFAULT_PARALLEL",
    "Batch",
    "BatchError",
    "BatchProgress",
    "BatchReport",
    "Entry",
    "ProgressCallback",
    "ReportError",
    "plan",
    "resume_batch",
    "run_batch",
]

# The other uploads of every job of a batch: input name → a local path (paths, not open
# files or bytes as Client.submit takes, since the report records them to resume).
DatasetFiles = Mapping[str, str | Path] | Iterable[tuple[str, str | Path]]


# -- the library's entry points ---------------------------------------------------------


def plan(
    client: Client,
    job_type: str,
    datasets: Iterable[str],
    as_input: str,
    params: Params | None = None,
    files: DatasetFiles | None = None,
    *,
    run_id: str | None = None,
    execution_duration: int | None = None,
    download: str | Path | None = None,
    previous: BatchReport | None = None,
) -> BatchReport:
    """The report a batch starts from: a line per dataset (not submitted yet), or
    ``previous``'s lines (what they say is kept) followed by the datasets it lacks."""
    pairs = form_fields(params)
    uploads = [
        (str(n), str(p)) for n, p in (files.items() if isinstance(files, Mapping) else files or [])
    ]
    report = BatchReport(
        server=client.url,
        job_type=job_type,
        as_input=as_input,
        params=pairs,
        files=uploads,
        run_id=run_id,
        execution_duration=execution_duration,
        download=None if download is None else str(download),
    )
    if previous is not None:
        if previous.server and previous.server.rstrip("/") != client.url:
            raise BatchError(f"the report is of a batch on {previous.server}, not {client.url}")
        report.entries = previous.entries
        report.started = previous.started
        report.retries = previous.retries
    known = {e.dataset for e in report.entries}
    for dataset in datasets:
        if dataset not in known:
            report.entries.append(Entry(dataset))
            known.add(dataset)
    if any(name == as_input for name, _ in [*pairs, *uploads]):
        raise BatchError(f"{as_input} is given by each dataset: leave it out of the parameters")
    return report


def run_batch(
    client: Client,
    job_type: str,
    datasets: Iterable[str],
    as_input: str,
    params: Params | None = None,
    files: DatasetFiles | None = None,
    *,
    parallel: int = DEFAULT_PARALLEL,
    report_path: str | Path | None = None,
    download: str | Path | None = None,
    timeout: float | None = None,
    progress: ProgressCallback | None = None,
    run_id: str | None = None,
    execution_duration: int | None = None,
    previous: BatchReport | None = None,
) -> BatchReport:
    """Run a job of ``job_type`` for each of ``datasets`` (local paths, http(s) URLs,
    entity ids or result URLs of the server), each given as the input ``as_input``,
    with ``params`` (and ``files``, other uploads) as ``Client.submit`` takes them; at
    most ``parallel`` at a time. Returns the report (``report.counts()``, a line per
    dataset: job, phase, error, results, files downloaded into ``download``/NAME/),
    written to ``report_path`` after every change; ``previous`` is a report to resume.
    ``timeout`` bounds the whole batch (``report.stopped`` then says so; jobs under way
    go on running). BatchError for an input the job type lacks."""
    report = plan(
        client,
        job_type,
        datasets,
        as_input,
        params,
        files,
        run_id=run_id,
        execution_duration=execution_duration,
        download=download,
        previous=previous,
    )
    batch = Batch(
        client,
        report,
        parallel=parallel,
        report_path=report_path,
        timeout=timeout,
        progress=progress,
    )
    return batch.run()


def resume_batch(client: Client, report_path: str | Path, **options: Any) -> BatchReport:
    """Go on with the batch of the JSON report at ``report_path`` (its settings, its
    lines), writing the report there; ``options`` as ``run_batch`` takes them."""
    previous = read_report(report_path)
    if not isinstance(previous, BatchReport):
        raise BatchError(f"{report_path} is a CSV report: resume it with run_batch(previous=…)")
    options.setdefault("report_path", report_path)
    options.setdefault("download", previous.download)
    return run_batch(
        client,
        previous.job_type,
        [],
        previous.as_input,
        previous.params,
        previous.files,
        run_id=previous.run_id,
        execution_duration=previous.execution_duration,
        previous=previous,
        **options,
    )
