"""The run of one batch: a queue of datasets, the jobs under way, and the report.

One thread, the caller's, owns the report and takes every decision: what to submit
next, what a refusal means, when a job has ended. Submissions, the reading of ended
jobs and downloads run in two small pools of daemon threads, and the change feed (or a
WAIT per job, batchwatch.py) in threads of its own; each hands its outcome back as an
event on one queue, which the batch's thread carries out in turn. So the report needs
no lock, and an interruption (KeyboardInterrupt, in the caller's thread) lands where
the report is: it is written, naming every job made, before the interruption goes on.
What a refusal of the server means is batchwatch.refusal_kind's to say; batch.py has
the rules.
"""

from __future__ import annotations

import queue
import re
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from functools import partial
from pathlib import Path
from urllib.parse import urljoin

from opus.client.api import Client, FileSpec
from opus.client.batchreport import (
    REFUSED,
    UNREADABLE,
    BatchError,
    BatchProgress,
    BatchReport,
    Entry,
    ReportWriter,
    download_folders,
    is_reference,
)
from opus.client.batchwatch import (
    ChangeFeed,
    Pool,
    follow_with_wait,
    refusal_kind,
    start_thread,
    widen_pool,
)
from opus.client.errors import (
    NotFound,
    OpusError,
    TooManyRequests,
)
from opus.client.jobs_api import Job
from opus.client.models import JobInfo
from opus.core.phases import TERMINAL, Phase
from opus.core.times import format_time, utcnow

DEFAULT_PARALLEL = 4
# Threads that submit, and threads that read ended jobs and download their results.
SUBMITTERS = 4
FINISHERS = 4
# A creation refused by NJOBS_MAX is tried again when a job of the caller ends, or
# after this long at the latest (the jobs that hold the slots may not be seen to end).
BUSY_RETRY = 5.0
# Attempts of one dataset the server failed (5xx) before it counts as refused.
SERVER_FAULT_ATTEMPTS = 3
# Seconds without reaching the server before the batch stops.
UNREACHABLE_FOR = 120.0
# A change of phase alone is written within this long; a submission or an end at once.
SAVE_INTERVAL = 1.0
# Seconds a stopped batch waits for the submissions under way to be answered.
SETTLE = 5.0
# Changes of jobs not known yet that are kept (their creation still unanswered).
EARLY_KEPT = 10_000
_NJOBS = re.compile(r"NJOBS_MAX is (\d+)")
ProgressCallback = Callable[[BatchProgress], None]


class Batch:
    """One batch: ``report`` (its settings and lines, changed in place) carried out on
    ``client``'s server, at most ``parallel`` jobs at a time."""

    def __init__(
        self,
        client: Client,
        report: BatchReport,
        *,
        parallel: int = DEFAULT_PARALLEL,
        report_path: str | Path | None = None,
        timeout: float | None = None,
        progress: ProgressCallback | None = None,
    ) -> None:
        if parallel < 1:
            raise BatchError("parallel takes a number of jobs, 1 or more")
        self.client = client
        self.report = report
        self.parallel = self.cap = parallel
        self.report_path = None if report_path is None else Path(report_path)
        self.writer = ReportWriter(self.report_path or Path("."))
        self.timeout = timeout
        self.progress = progress
        self.events: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self.pending: deque[int] = deque()
        self.following: dict[int, Job] = {}
        self.finishing: set[int] = set()
        self.by_id: dict[str, int] = {}
        self.in_flight = 0
        self.early: OrderedDict[str, Phase] = OrderedDict()
        self.faults: dict[int, int] = {}
        self.busy_until = 0.0
        self.down_since: float | None = None
        self.halted = False  # no more submissions; the jobs under way are followed
        self.abort_at: float | None = None  # stopping now: when to give up on answers
        self.by_value = False
        self.feed: ChangeFeed | None = None
        self.stopping = threading.Event()
        self.folders = download_folders([e.dataset for e in report.entries])
        self.submitters = Pool(min(SUBMITTERS, parallel), "opus-batch-submit", self._post)
        self.finishers = Pool(min(FINISHERS, parallel), "opus-batch-finish", self._post)
        self._dirty = self._urgent = False
        self._saved = 0.0
        self._interrupted = False

    # -- the loop ---------------------------------------------------------------------

    def run(self) -> BatchReport:
        """Carry out the batch; its report (``stopped`` says why it ended early).
        KeyboardInterrupt propagates once the report records it and is written."""
        self._check_input()
        workers = min(SUBMITTERS, self.parallel) + min(FINISHERS, self.parallel)
        widen_pool(self.client, workers + self.parallel + 2)
        # The feed's token comes before any submission: no change of a job is missed.
        self.feed = ChangeFeed.open(self.client)
        self.submitters.start()
        self.finishers.start()
        deadline = None if self.timeout is None else time.monotonic() + self.timeout
        try:
            self._queue_entries()
            self._save(now=True)  # a report that cannot be written fails before any job
            if self.feed is not None:
                self.feed.start(self.stopping, self._post, self)
            while not self._finished():
                if self._interrupted:
                    self._stop("interrupted", "interrupted", abort=True)
                if deadline is not None and time.monotonic() >= deadline:
                    self._stop("timeout", f"{self.timeout:g} s passed", abort=True)
                self._fill()
                self._handle(self._next_wait(deadline))
                self._save_if_due()
        except KeyboardInterrupt:
            self._stop("interrupted", "interrupted", abort=True)
            try:
                while not self._finished():
                    self._handle(0.2)
            except KeyboardInterrupt:
                pass
            raise
        finally:
            self.stopping.set()
            self.submitters.stop()
            self.finishers.stop()
            try:
                self._save(now=True)
            finally:
                self.writer.close()
        return self.report

    def interrupt(self) -> None:
        """Stop the batch soon, as KeyboardInterrupt would but between two events (a
        signal handler may call it): ``run()`` returns, ``stopped: interrupted``."""
        self._interrupted = True
        self.events.put(_nothing)  # SimpleQueue.put may be called from a signal handler

    def _check_input(self) -> None:
        """BatchError unless ``as_input`` is an input or a parameter of the job type
        (a plain parameter: every dataset is given as its value)."""
        job_type = self.report.job_type
        if "://" in job_type:
            return  # another UWS server's job list: no definition to check against
        definition = self.client.definition(job_type)
        files = definition.file_inputs()
        plain = [p.name for p in definition.parameters if p.name not in files]
        name = self.report.as_input
        if name not in files and name not in plain:
            known = ", ".join(files + plain) or "none"
            raise BatchError(f"{job_type} has no input or parameter {name!r} (it has: {known})")
        self.by_value = name not in files

    def _queue_entries(self) -> None:
        """Follow the jobs of a resumed report that had not ended (or whose results
        could not be fetched), queue what did not complete."""
        for index, entry in enumerate(self.report.entries):
            unfinished = entry.phase == Phase.COMPLETED and entry.error
            if entry.job_url and (entry.active or unfinished):
                self._follow(index, Job(self.client, entry.job_url), probe=True)
            elif not entry.done:
                entry.reset()
                self.pending.append(index)

    def _finished(self) -> bool:
        if self.abort_at is not None:
            return self.in_flight == 0 or time.monotonic() >= self.abort_at
        waiting = bool(self.pending) and not self.halted
        return not (waiting or self.in_flight or self.following or self.finishing)

    def _next_wait(self, deadline: float | None) -> float:
        now = time.monotonic()
        wait = 0.5
        if self.busy_until > now:
            wait = min(wait, self.busy_until - now)
        if deadline is not None:
            wait = min(wait, deadline - now)
        return max(0.01, wait)

    def _handle(self, wait: float) -> None:
        """Carry out the next event (waiting up to ``wait`` s), then all those there."""
        try:
            self.events.get(timeout=wait)()
            while True:
                self.events.get_nowait()()
        except queue.Empty:
            return

    def _post(self, event: Callable[[], None]) -> None:
        """Hand ``event`` to the batch's thread (from any thread)."""
        self.events.put(event)

    # -- submitting -------------------------------------------------------------------

    def _fill(self) -> None:
        while (
            self.pending
            and not self.halted
            and time.monotonic() >= self.busy_until
            and self.in_flight + len(self.following) < self.cap
        ):
            index = self.pending.popleft()
            self.in_flight += 1
            self.submitters.put(partial(self._submit, index))

    def _submit(self, index: int) -> None:
        """In a submitter: create and run the dataset's job; the outcome to the batch."""
        entry = self.report.entries[index]
        params = list(self.report.params)
        files: list[tuple[str, FileSpec]] = [(n, Path(p)) for n, p in self.report.files]
        if self.by_value or is_reference(entry.dataset):
            params.append((self.report.as_input, entry.dataset))
        else:
            files.append((self.report.as_input, Path(entry.dataset).expanduser()))
        try:
            job = self.client.submit(
                self.report.job_type,
                params,
                files,
                run_id=self.report.run_id,
                execution_duration=self.report.execution_duration,
            )
        except OpusError as exc:
            self._post(partial(self._refused, index, exc))
        except OSError as exc:
            self._post(partial(self._unreadable, index, exc))
        else:
            self._post(partial(self._submitted, index, job))

    def _submitted(self, index: int, job: Job) -> None:
        self.in_flight -= 1
        self.down_since = None
        entry = self.report.entries[index]
        entry.job_id, entry.job_url = job.id, job.url
        entry.submitted = format_time(utcnow())
        seen = self.early.pop(job.id, None)
        entry.phase = (seen or Phase.QUEUED).value
        self._changed(entry, urgent=True)
        self._follow(index, job, probe=False)
        if seen in TERMINAL:
            self._ended(index)

    def _unreadable(self, index: int, exc: OSError) -> None:
        self.in_flight -= 1
        entry = self.report.entries[index]
        where = f": {exc.filename}" if exc.filename else ""
        entry.phase, entry.error = UNREADABLE, f"{exc.strerror or exc}{where}"
        self._changed(entry, urgent=True)

    def _refused(self, index: int, exc: OpusError) -> None:
        self.in_flight -= 1
        entry = self.report.entries[index]
        kind = refusal_kind(exc)
        if kind == "fault":
            self.faults[index] = self.faults.get(index, 0) + 1
            kind = "retry" if self.faults[index] < SERVER_FAULT_ATTEMPTS else "dataset"
        if kind == "dataset":
            entry.phase, entry.error = REFUSED, str(exc)
            self._changed(entry, urgent=True)
            return
        self.pending.appendleft(index)
        now = time.monotonic()
        if kind == "busy":
            self._busy(exc)
        elif kind == "retry":
            self.busy_until = now + 1.0
        elif kind == "down":
            self.down_since = self.down_since or now
            if now - self.down_since > UNREACHABLE_FOR:
                self._stop("unreachable", str(exc), abort=True, error=exc)
            self.busy_until = now + min(10.0, 1.0 + now - self.down_since)
        else:  # full, fatal: no more creations will be accepted
            self._stop("refused", str(exc), error=exc)

    def _busy(self, exc: OpusError) -> None:
        """A creation refused for now: wait for a job to end (or for Retry-After)."""
        self.report.retries += 1
        if isinstance(exc, TooManyRequests):
            self.busy_until = time.monotonic() + max(1, exc.retry_after)
            return
        self.busy_until = time.monotonic() + BUSY_RETRY
        found = _NJOBS.search(str(exc))
        limit = max(1, int(found.group(1))) if found else None
        if limit is not None and limit < self.cap:
            self.cap = limit
            self._note(
                f"the server runs at most {limit} of your jobs at a time (NJOBS_MAX):"
                f" {limit} at a time from now on"
            )

    def _stop(
        self, kind: str, why: str, *, abort: bool = False, error: OpusError | None = None
    ) -> None:
        """No more submissions (``abort``: and stop following, after the answers of the
        submissions under way, SETTLE s at most)."""
        if self.report.stopped is None:
            self.report.stopped, self.report.stop_reason = kind, why
            self.report.error = error
            self._note(f"stopped: {why}" if abort else f"no more jobs submitted: {why}")
        self.halted = self._urgent = True
        if abort and self.abort_at is None:
            self.abort_at = time.monotonic() + SETTLE

    # -- following --------------------------------------------------------------------

    def _follow(self, index: int, job: Job, *, probe: bool) -> None:
        """Follow a job until it ends: by the feed (``probe``: read it now, it may have
        changed before the feed's token), or by a thread waiting with WAIT."""
        self.following[index] = job
        self.by_id[job.id] = index
        if self.feed is None:

            def seen(phase: Phase) -> None:
                self._post(partial(self._seen, index, phase))

            follow = partial(follow_with_wait, job, self.stopping, seen)
            start_thread(f"opus-batch-wait-{index}", follow, self._post)
        elif probe:
            self.finishers.put(partial(self._probe, index, job))

    def _probe(self, index: int, job: Job) -> None:
        """In a finisher: the phase of a followed job, read now."""
        try:
            info = job.refresh()
        except NotFound:
            self._post(partial(self._gone, index))
        except OpusError as exc:
            self._post(partial(self._note, f"{job.id}: {exc}"))
        else:
            self._post(partial(self._seen, index, info.phase))

    def changes(self, lines: list[tuple[str, Phase]], deleted: list[str]) -> None:
        """The feed's news: jobs and their phase now, ids of deleted jobs."""
        for job_id, phase in lines:
            if phase in TERMINAL:
                self.busy_until = 0.0  # a slot of the caller's is free: try again
            index = self.by_id.get(job_id)
            if index is not None:
                self._seen(index, phase)
                continue
            self.early[job_id] = phase
            if len(self.early) > EARLY_KEPT:
                self.early.popitem(last=False)
        for job_id in deleted:
            index = self.by_id.get(job_id)
            if index is not None:
                self._gone(index)

    def reread(self) -> None:
        """The feed could not tell the changes: read every followed job again."""
        for index, job in list(self.following.items()):
            self.finishers.put(partial(self._probe, index, job))

    def note(self, text: str) -> None:
        self._note(text)

    def stop(self, why: str, error: OpusError) -> None:
        self._stop("unreachable", why, abort=True, error=error)

    def _seen(self, index: int, phase: Phase) -> None:
        if index not in self.following:
            return  # ended already: a late answer
        entry = self.report.entries[index]
        if phase in TERMINAL:
            entry.phase = phase.value
            self._ended(index)
        elif entry.phase != phase.value:
            entry.phase = phase.value
            self._changed(entry)

    def _gone(self, index: int) -> None:
        """A followed job deleted (by someone else) before it ended."""
        if self.following.pop(index, None) is None:
            return
        entry = self.report.entries[index]
        entry.phase, entry.error = Phase.ABORTED.value, "the job was deleted before it ended"
        entry.ended = format_time(utcnow())
        self._changed(entry, urgent=True)

    def _ended(self, index: int) -> None:
        job = self.following.pop(index)
        self.busy_until = 0.0
        self.finishing.add(index)
        self.finishers.put(partial(self._finish, index, job))

    def _finish(self, index: int, job: Job) -> None:
        """In a finisher: read the ended job (error, results), download its results."""
        info: JobInfo | None = None
        downloaded: list[str] = []
        problem = None
        try:
            info = job.refresh()
            if self.report.download and info.phase == Phase.COMPLETED:
                folder = Path(self.report.download) / self.folders[index]
                downloaded = [str(p) for p in job.download(folder)]
        except OpusError as exc:
            problem = f"{'downloading' if info else 'reading'} the results failed: {exc}"
        except OSError as exc:
            where = f": {exc.filename}" if exc.filename else ""
            problem = f"downloading the results failed: {exc.strerror or exc}{where}"
        self._post(partial(self._finished_job, index, info, downloaded, problem))

    def _finished_job(
        self, index: int, info: JobInfo | None, downloaded: list[str], problem: str | None
    ) -> None:
        self.finishing.discard(index)
        entry = self.report.entries[index]
        if info is not None:
            entry.phase = info.phase.value
            entry.results = {r.id: urljoin(entry.job_url or "", r.href) for r in info.results}
            entry.ended = format_time(info.end_time or utcnow())
            entry.error = info.error.message if info.error and info.error.message else None
            if info.phase in (Phase.ERROR, Phase.ABORTED) and not entry.error:
                entry.error = f"the job ended {info.phase}"
        entry.downloaded = downloaded
        if problem:
            entry.error = problem
        self._changed(entry, urgent=True)

    # -- telling ----------------------------------------------------------------------

    def _changed(self, entry: Entry, urgent: bool = False) -> None:
        self._dirty = True
        self._urgent = self._urgent or urgent
        if self.progress is not None:
            self.progress(BatchProgress(self.report, entry))

    def _note(self, text: str) -> None:
        if self.progress is not None:
            self.progress(BatchProgress(self.report, None, text))

    def _save_if_due(self) -> None:
        if self._urgent or (self._dirty and time.monotonic() - self._saved >= SAVE_INTERVAL):
            self._save()

    def _save(self, now: bool = False) -> None:
        """Write the report: in the writer's thread, or ``now``, waited for."""
        self._dirty = self._urgent = False
        self._saved = time.monotonic()
        if self.report_path is None:
            return
        if now:
            self.writer.flush()
            self.report.write(self.report_path)
        else:
            self.writer.put(self.report.render(self.report_path))


def _nothing() -> None:
    pass
