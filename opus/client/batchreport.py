"""The report of a batch (`opus batch`, ``run_batch``): one line per dataset, kept on disk.

A batch runs one job per dataset; its report says, for each dataset, the job that ran
it (id and URL), the phase it reached, why it failed, its results' URLs and the files
downloaded. The report is written after every change that matters, atomically (a
temporary file beside it, renamed over it), so a batch interrupted by Ctrl-C or
killed leaves a report that is whole and at most one change behind; ``--resume``
reads it and goes on where it stopped (batch.py decides what to do with each line).

Two forms, by the file's suffix: JSON (the batch's settings and every line; what
``--resume`` needs) and CSV (``.csv``: the lines only, for spreadsheets; a batch
resumed from it takes its settings from the command line). Besides the server's
phases, a line's ``phase`` is one of the batch's own: ``NOT_SUBMITTED`` (no job yet),
``REFUSED`` (the server refused the job: ``error`` says why), ``UNREADABLE`` (the
local file could not be read).
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import tempfile
import threading
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from opus.client.downloads import safe_name
from opus.client.errors import OpusError
from opus.core.phases import TERMINAL, Phase
from opus.core.times import format_time, utcnow

NOT_SUBMITTED = "NOT_SUBMITTED"
REFUSED = "REFUSED"
UNREADABLE = "UNREADABLE"
# The batch's own states of a dataset, besides the server's phases.
OWN_STATES = (NOT_SUBMITTED, REFUSED, UNREADABLE)
# Lines a resumed batch submits again: never submitted, or failed.
TO_SUBMIT = frozenset({NOT_SUBMITTED, REFUSED, UNREADABLE, Phase.ERROR, Phase.ABORTED})
# Lines of a job that had not ended: a resumed batch follows the job.
ENDED = frozenset(p.value for p in TERMINAL)
FAILED = frozenset({REFUSED, UNREADABLE, Phase.ERROR.value, Phase.ABORTED.value})
FORMAT_VERSION = 1
CSV_FIELDS = ("dataset", "job_id", "job_url", "phase", "error", "results", "downloaded")
# An entity id of OPUS (docs/provenance.md): 32 hexadecimal digits.
_ENTITY_ID = re.compile(r"[0-9a-f]{32}")


class ReportError(Exception):
    """A report that cannot be read (or written): ``str()`` says which and why."""


class BatchError(ValueError):
    """A batch that cannot be run as asked: an input the job type does not have, a
    report of another batch (``str()`` says what)."""


@dataclass
class Entry:
    """One dataset of a batch and what became of it."""

    dataset: str
    job_id: str | None = None
    job_url: str | None = None
    phase: str = NOT_SUBMITTED
    error: str | None = None
    results: dict[str, str] = field(default_factory=dict)
    downloaded: list[str] = field(default_factory=list)
    submitted: str | None = None
    ended: str | None = None
    # Every assignment counts a change; the line's text is made again only after one
    # (a report of 500 lines is written after every change of any of them).
    _version: int = field(default=0, init=False, repr=False, compare=False)
    _texts: dict[str, tuple[int, str]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def __setattr__(self, name: str, value: object) -> None:
        object.__setattr__(self, name, value)
        if name not in ("_version", "_texts"):
            object.__setattr__(self, "_version", getattr(self, "_version", 0) + 1)

    def text(self, form: str) -> str:
        """The line in ``form`` (``json``: one JSON object, ``csv``: one CSV row),
        made again only when the entry changed since it was last made."""
        cached = self._texts.get(form)
        if cached is not None and cached[0] == self._version:
            return cached[1]
        made = json.dumps(self.as_json(), ensure_ascii=False) if form == "json" else _row(self)
        self._texts[form] = (self._version, made)
        return made

    @property
    def done(self) -> bool:
        """Whether the dataset needs nothing more: its job COMPLETED (results read, and
        downloaded if asked) or was ARCHIVED."""
        return self.phase == Phase.ARCHIVED or (self.phase == Phase.COMPLETED and not self.error)

    @property
    def failed(self) -> bool:
        """Whether the dataset failed: its job ended in ERROR or ABORTED, it could not be
        submitted, or its results could not be read or downloaded (``error``)."""
        return self.phase in FAILED or (self.phase == Phase.COMPLETED and bool(self.error))

    @property
    def active(self) -> bool:
        """Whether a job was submitted that has not ended (as far as the batch knows)."""
        return self.job_url is not None and self.phase not in ENDED | set(OWN_STATES)

    def reset(self) -> None:
        """Forget the job of an earlier attempt: the dataset is to be submitted again."""
        self.job_id = self.job_url = self.error = self.submitted = self.ended = None
        self.phase = NOT_SUBMITTED
        self.results = {}
        self.downloaded = []

    def as_json(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "job_id": self.job_id,
            "job_url": self.job_url,
            "phase": self.phase,
            "error": self.error,
            "results": dict(self.results),
            "downloaded": list(self.downloaded),
            "submitted": self.submitted,
            "ended": self.ended,
        }


@dataclass
class BatchReport:
    """A batch's settings and its lines, as ``run_batch`` returns and writes them.

    ``stopped`` says why the batch ended before every dataset had: ``interrupted``,
    ``timeout``, ``refused`` (the server refuses every job to come: a limit, the
    token), ``unreachable``; None when it ran to the end. ``stop_reason`` says it in a
    line, ``error`` is the refusal that stopped it (not written)."""

    server: str
    job_type: str
    as_input: str
    params: list[tuple[str, str]] = field(default_factory=list)
    files: list[tuple[str, str]] = field(default_factory=list)
    entries: list[Entry] = field(default_factory=list)
    run_id: str | None = None
    execution_duration: int | None = None
    download: str | None = None
    started: str = field(default_factory=lambda: format_time(utcnow()))
    updated: str | None = None
    stopped: str | None = None
    stop_reason: str | None = None
    retries: int = 0
    error: OpusError | None = field(default=None, compare=False, repr=False)

    def counts(self) -> dict[str, int]:
        """How many datasets are in each phase (or state), most frequent first."""
        return dict(Counter(e.phase for e in self.entries).most_common())

    @property
    def completed(self) -> bool:
        """Whether every dataset's job COMPLETED."""
        return all(e.phase == Phase.COMPLETED for e in self.entries)

    def failures(self) -> list[Entry]:
        return [e for e in self.entries if e.failed]

    def settings_json(self) -> dict[str, Any]:
        """The report without its lines, as JSON values."""
        return {
            "opus_batch": FORMAT_VERSION,
            "server": self.server,
            "type": self.job_type,
            "as": self.as_input,
            "params": [list(p) for p in self.params],
            "files": [list(f) for f in self.files],
            "run_id": self.run_id,
            "execution_duration": self.execution_duration,
            "download": self.download,
            "started": self.started,
            "updated": self.updated,
            "stopped": self.stopped,
            "stop_reason": self.stop_reason,
            "retries": self.retries,
            "counts": self.counts(),
        }

    def as_json(self) -> dict[str, Any]:
        """The report as JSON values (what ``--json`` prints)."""
        return {**self.settings_json(), "datasets": [e.as_json() for e in self.entries]}

    def write(self, path: str | Path) -> None:
        """Write the report to ``path`` (CSV if it ends in ``.csv``, else JSON), whole:
        the old report stays until the new one has been written."""
        write_text_atomically(Path(path), self.render(path))

    def render(self, path: str | Path) -> str:
        """The report's text now, in the form of ``path``'s suffix (``updated`` now)."""
        self.updated = format_time(utcnow())
        return to_csv(self.entries) if is_csv(path) else self.to_json()

    def to_json(self) -> str:
        """The report as JSON text: the settings one a line, then a line per dataset."""
        head = self.settings_json()
        settings = "".join(
            f" {json.dumps(k)}: {json.dumps(v, ensure_ascii=False)},\n" for k, v in head.items()
        )
        lines = ",\n".join(f"  {e.text('json')}" for e in self.entries)
        return f'{{\n{settings} "datasets": [\n{lines}\n ]\n}}\n'


@dataclass(frozen=True)
class BatchProgress:
    """What a batch's ``progress`` is called with, in the batch's thread, after each
    change: the report, the dataset that changed (None for a notice), and ``note``,
    something to tell (a limit of the server reached, the batch stopped)."""

    report: BatchReport
    entry: Entry | None = None
    note: str | None = None


class ReportWriter:
    """Writes the successive texts of a report to ``path`` in a thread of its own, the
    latest only when several came while it wrote: a rename takes milliseconds on some
    file systems, which the batch's thread does not wait for. ``flush()`` waits for the
    last text given, and raises the OSError a write met (as does ``put`` after one)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.changed = threading.Condition()
        self.text: str | None = None
        self.writing = self.closed = False
        self.failure: OSError | None = None
        self.thread = threading.Thread(target=self._write, name="opus-batch-report", daemon=True)
        self.thread.start()

    def put(self, text: str) -> None:
        with self.changed:
            self._raise()
            self.text = text
            self.changed.notify_all()

    def flush(self) -> None:
        with self.changed:
            self.changed.wait_for(lambda: self.text is None and not self.writing)
            self._raise()

    def close(self) -> None:
        """End the thread once the last text given is written."""
        with self.changed:
            self.closed = True
            self.changed.notify_all()

    def _raise(self) -> None:
        if self.failure is not None:
            failure, self.failure = self.failure, None
            raise failure

    def _write(self) -> None:
        while True:
            with self.changed:
                self.changed.wait_for(lambda: self.text is not None or self.closed)
                if self.text is None:
                    return
                text, self.text, self.writing = self.text, None, True
            try:
                write_text_atomically(self.path, text)
            except OSError as exc:
                with self.changed:
                    self.failure = exc
            finally:
                with self.changed:
                    self.writing = False
                    self.changed.notify_all()


def is_csv(path: str | Path) -> bool:
    return Path(path).suffix.lower() == ".csv"


def write_text_atomically(target: Path, text: str) -> None:
    """Replace ``target`` by ``text`` in one rename (no fsync: a report is rewritten
    often, and a killed process loses nothing the system has)."""
    handle, temporary = tempfile.mkstemp(
        dir=target.parent or Path("."), prefix=f".{target.name}.", suffix=".part"
    )
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="") as out:
            out.write(text)
        os.chmod(temporary, 0o666 & ~_umask())
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _umask() -> int:
    current = os.umask(0o022)
    os.umask(current)
    return current


def to_csv(entries: Iterable[Entry]) -> str:
    """The lines as CSV: results as ``id=url`` separated by spaces, downloaded files one
    a line within their cell."""
    return _csv_text(CSV_FIELDS) + "".join(e.text("csv") for e in entries)


def _row(e: Entry) -> str:
    results = " ".join(f"{k}={v}" for k, v in e.results.items())
    return _csv_text(
        [e.dataset, e.job_id, e.job_url, e.phase, e.error, results, "\n".join(e.downloaded)]
    )


def _csv_text(cells: Sequence[str | None]) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerow(["" if c is None else c for c in cells])
    return out.getvalue()


# -- reading ----------------------------------------------------------------------------


def read_report(path: str | Path) -> BatchReport | list[Entry]:
    """A report written by a batch: the whole BatchReport from JSON, the lines alone
    from CSV. ReportError if it cannot be read or is not a batch's report."""
    source = Path(path)
    try:
        text = source.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ReportError(f"cannot read the report {source}: {reason}") from None
    if is_csv(source):
        return _entries_from_csv(text, source)
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise ReportError(f"the report {source} is not JSON: {exc}") from None
    return report_from_json(value, source)


def _entries_from_csv(text: str, source: Path) -> list[Entry]:
    rows = list(csv.DictReader(io.StringIO(text)))
    if rows and "dataset" not in rows[0]:
        raise ReportError(f"{source} is not a batch's report: it has no dataset column")
    entries = []
    for row in rows:
        results = dict(
            part.split("=", 1) for part in (row.get("results") or "").split() if "=" in part
        )
        entries.append(
            Entry(
                dataset=row.get("dataset") or "",
                job_id=row.get("job_id") or None,
                job_url=row.get("job_url") or None,
                phase=row.get("phase") or NOT_SUBMITTED,
                error=row.get("error") or None,
                results=results,
                downloaded=[p for p in (row.get("downloaded") or "").split("\n") if p],
            )
        )
    return entries


def _pairs(value: object) -> list[tuple[str, str]]:
    if not isinstance(value, list):
        return []
    return [(str(p[0]), str(p[1])) for p in value if isinstance(p, list) and len(p) == 2]


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def report_from_json(value: object, source: Path | str = "the report") -> BatchReport:
    if not isinstance(value, dict) or "datasets" not in value or "type" not in value:
        raise ReportError(f"{source} is not a batch's report (no type or datasets)")
    entries = []
    for item in value.get("datasets") or []:
        if not isinstance(item, dict) or not isinstance(item.get("dataset"), str):
            raise ReportError(f"{source}: a line without a dataset")
        results = item.get("results") or {}
        entries.append(
            Entry(
                dataset=item["dataset"],
                job_id=item.get("job_id") or None,
                job_url=item.get("job_url") or None,
                phase=str(item.get("phase") or NOT_SUBMITTED),
                error=item.get("error") or None,
                results={str(k): str(v) for k, v in results.items()}
                if isinstance(results, dict)
                else {},
                downloaded=[str(p) for p in item.get("downloaded") or []],
                submitted=item.get("submitted") or None,
                ended=item.get("ended") or None,
            )
        )
    return BatchReport(
        server=str(value.get("server") or ""),
        job_type=str(value["type"]),
        as_input=str(value.get("as") or ""),
        params=_pairs(value.get("params")),
        files=_pairs(value.get("files")),
        entries=entries,
        run_id=value.get("run_id") or None,
        execution_duration=_int(value.get("execution_duration")),
        download=value.get("download") or None,
        started=str(value.get("started") or format_time(utcnow())),
        updated=value.get("updated") or None,
        stopped=value.get("stopped") or None,
        stop_reason=value.get("stop_reason") or None,
        retries=int(value.get("retries") or 0),
    )


# -- datasets ---------------------------------------------------------------------------


def is_reference(dataset: str) -> bool:
    """Whether a dataset is given by reference (an http(s) URL, or an entity id of the
    server that no local file is named after) rather than a local file to upload."""
    scheme = urlsplit(dataset).scheme.lower()
    if scheme in ("http", "https"):
        return True
    return bool(_ENTITY_ID.fullmatch(dataset)) and not Path(dataset).exists()


def read_list(lines: Iterable[str]) -> list[str]:
    """The datasets of a list (``--over-file``): one a line, spaces around dropped,
    blank lines and ``#`` comments skipped."""
    found = []
    for line in lines:
        text = line.strip()
        if text and not text.startswith("#"):
            found.append(text)
    return found


def download_folders(datasets: Sequence[str]) -> list[str]:
    """The folder (a name, within the download directory) of each dataset's results:
    its file name without suffix, made safe, ``-2``, ``-3``… after the first use."""
    taken: set[str] = set()
    names = []
    for dataset in datasets:
        path = unquote(urlsplit(dataset).path) if "://" in dataset else dataset
        base = safe_name(Path(path.rstrip("/")).name or dataset, "dataset")
        stem = Path(base).stem or base
        name, count = stem, 1
        while name in taken:
            count += 1
            name = f"{stem}-{count}"
        taken.add(name)
        names.append(name)
    return names
