"""JobFiles: a job's directory — its inputs, its scripts and token, its results.

Everything the service writes into or reads from a job's directory goes through here:
uploads and URL inputs (sanitised names, paths checked to stay inside the directory,
size and time limits), the record of which input became which file, the batch script
and the job's signal token (mode 0600, only its hash is stored), and the result files,
registered with their size, content type and SHA-256. The layout itself is the core's
(opus.core.layout), shared with the batch script and the managers.

What a job wrote is read through opus.server.nofollow: no file is opened by a path a
job could have turned into a link, and a result that is a link, a hard link or not a
regular file is not registered. What OPUS writes there is private to the server
(directories 0700, files 0600, the batch script 0700) whatever the process's umask.
"""

from __future__ import annotations

import base64
import json
import logging
import mimetypes
import os
import secrets
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path

from opus.core.errors import BadRequest, Forbidden, NotFound
from opus.core.layout import (
    INPUTS_FILE,
    INTERNAL_DIR,
    RESULTS_DIR,
    SOURCE_COMMIT_FILE,
    STDERR_FILE,
    JobLayout,
)
from opus.core.records import Parameter, Result
from opus.core.text import printable
from opus.server import nofollow
from opus.server.gitsource import COMMIT_HASH, GitSource
from opus.server.jdl import GeneratedEntity, JobDefinition, job_source
from opus.server.scripts import BatchJob, render_batch_script
from opus.server.service import inputs
from opus.server.service.inputs import Upload
from opus.server.service.limits import Allowance
from opus.settings import Settings

log = logging.getLogger("opus.jobfiles")

ERROR_TAIL_BYTES = 4096
ERROR_TAIL_CHARS = 500
INPUTS_FILE_MAX = 1024 * 1024


def new_job_id() -> str:
    """An unguessable, URL-safe job id: 120 random bits in lowercase base32."""
    return base64.b32encode(secrets.token_bytes(15)).decode().lower()


@dataclass(frozen=True)
class ScriptRequest:
    """What the batch script of one job is made from."""

    job_id: str
    script: str
    values: Mapping[str, str]
    result_patterns: Sequence[str]
    signal_url: str
    signal_retry_seconds: int
    python: str = "python3"
    source: GitSource | None = None  # the repository cloned before the script runs

    @classmethod
    def for_job(
        cls, job_id: str, jdl: JobDefinition, values: Mapping[str, str], settings: Settings
    ) -> ScriptRequest:
        """The request of a job of ``jdl`` run with ``values`` (its script's variables)."""
        return cls(
            job_id=job_id,
            script=jdl.script,
            values=values,
            result_patterns=[g.default for g in jdl.generated if g.default],
            signal_url=f"{settings.SIGNAL_BASE_URL}/handler/job_event",
            signal_retry_seconds=settings.SIGNAL_RETRY_SECONDS,
            python=settings.JOB_PYTHON or sys.executable,
            source=job_source(jdl, values),
        )


class JobFiles:
    """The job directories under one JOBS_PATH."""

    def __init__(
        self,
        jobs_path: Path,
        max_upload_size: int,
        url_fetch_timeout: float,
        allow_private_urls: bool,
    ) -> None:
        self.jobs_path = jobs_path
        self.max_upload_size = max_upload_size
        self.url_fetch_timeout = url_fetch_timeout
        self.allow_private_urls = allow_private_urls

    def directory(self, job_id: str) -> Path:
        """The job's working directory (JOB_DIR)."""
        return self.jobs_path / job_id

    def layout(self, job_id: str) -> JobLayout:
        return JobLayout(self.directory(job_id))

    def open_result(self, job_id: str, result: Result) -> nofollow.OpenFile:
        """The file of a result, open (close it). NotFound if it is gone, Forbidden if
        it is a link or has other names (nofollow)."""
        try:
            return nofollow.open_file(self.directory(job_id), result.path)
        except nofollow.UnsafeFile:
            raise Forbidden(
                f"the file of result {result.result_id!r} is not a plain file"
            ) from None
        except OSError:
            raise NotFound(f"the file of result {result.result_id!r} is gone") from None

    def open_stream(self, job_id: str, which: str) -> nofollow.OpenFile | None:
        """The job's captured ``stdout`` or ``stderr``, open (close it); None if the job
        has written none yet. Forbidden if the job made it a link."""
        try:
            return nofollow.open_file(self.directory(job_id), f"{INTERNAL_DIR}/{which}")
        except nofollow.UnsafeFile:
            raise Forbidden(f"the job's {which} is not a plain file (a link?)") from None
        except FileNotFoundError:
            return None

    def open_input(self, job_id: str, name: str) -> nofollow.OpenFile | None:
        """The saved file of input ``name`` (an upload, or a URL's download), open
        (close it); None if the job has none. Forbidden if it became a link."""
        local = self.input_files(job_id).get(name)
        if not isinstance(local, str) or not local:
            return None
        try:
            return nofollow.open_file(self.directory(job_id), local)
        except nofollow.UnsafeFile:
            raise Forbidden(f"the file of input {name!r} is not a plain file") from None
        except OSError:
            return None

    def create(self) -> str:
        """A new job id whose directory now exists (and was not there before)."""
        for _ in range(5):
            job_id = new_job_id()
            try:
                self.directory(job_id).mkdir(mode=0o700, parents=True)
            except FileExistsError:
                continue
            return job_id
        raise RuntimeError("could not allocate a job id")  # 120 random bits never collide

    def remove(self, job_id: str) -> None:
        """Delete the job's directory (nothing if it is already gone)."""
        inputs.remove_tree(self.directory(job_id))

    # -- inputs -----------------------------------------------------------------------

    def save_inputs(
        self,
        job_id: str,
        urls: Mapping[str, str],
        uploads: Mapping[str, Upload],
        allowance: Allowance | None = None,
    ) -> list[Parameter]:
        """Save uploads and fetch URLs into the job's directory, each within what
        ``allowance`` leaves (MAX_UPLOAD_SIZE a file, and the owner's storage left); the
        parameters that record them (an upload's local name; a URL, by reference)."""
        if not urls and not uploads:
            return []
        budget = allowance or Allowance(self.max_upload_size)
        job_dir = self.directory(job_id)
        local_names: dict[str, str] = {}
        stored: list[Parameter] = []
        for name, upload in uploads.items():
            with budget.saving() as limit:
                local_names[name] = inputs.save_upload(upload, job_dir, limit)
            budget.spend(job_dir / local_names[name])
            stored.append(Parameter(name, local_names[name]))
        for name, url in urls.items():
            if name in uploads:
                raise BadRequest(f"input {name!r} given both as a file and as a URL")
            with budget.saving() as limit:
                local_names[name] = inputs.fetch_url(
                    name,
                    url.strip(),
                    job_dir,
                    limit,
                    self.url_fetch_timeout,
                    allow_private=self.allow_private_urls,
                )
            budget.spend(job_dir / local_names[name])
            stored.append(Parameter(name, url.strip(), by_reference=True))
        layout = self.layout(job_id)
        layout.internal.mkdir(mode=0o700, exist_ok=True)
        known = self.input_files(job_id)
        known.update(local_names)
        write_private(layout.inputs, json.dumps(known))
        return stored

    def input_files(self, job_id: str) -> dict[str, str]:
        """Input name → local file name, as recorded when the inputs were saved."""
        relative = f"{INTERNAL_DIR}/{INPUTS_FILE}"
        data = nofollow.read_file(self.directory(job_id), relative, INPUTS_FILE_MAX)
        try:
            return dict(json.loads(data or b"{}"))
        except (TypeError, ValueError):
            return {}

    # -- scripts ------------------------------------------------------------------------

    def write_scripts(self, request: ScriptRequest, token: str) -> Path:
        """Write the job's token, its script and its batch script; the batch script's path.

        The script sees every value as a shell variable, and each input file under its
        input's name.
        """
        layout = self.layout(request.job_id)
        layout.internal.mkdir(mode=0o700, exist_ok=True)
        # Created 0600 before the token is written: never readable by others.
        write_private(layout.token, token)
        variables = dict(request.values)
        variables.update(self.input_files(request.job_id))
        batch = render_batch_script(
            BatchJob(
                job_id=request.job_id,
                job_dir=layout.root,
                signal_url=request.signal_url,
                parameters=variables,
                result_patterns=request.result_patterns,
                signal_retry_seconds=request.signal_retry_seconds,
                python=request.python,
                source=request.source,
            )
        )
        write_private(layout.job_script, request.script)
        write_private(layout.batch_script, batch, mode=0o700)
        return layout.batch_script

    def source_commit(self, job_id: str) -> str | None:
        """The commit the job's batch script checked out (``.opus/source_commit``), or
        None when there is none yet, or the file holds anything but a commit hash."""
        relative = f"{INTERNAL_DIR}/{SOURCE_COMMIT_FILE}"
        data = nofollow.read_file(self.directory(job_id), relative, 128)
        text = (data or b"").decode("ascii", "replace").strip()
        return text if COMMIT_HASH.fullmatch(text) else None

    def error_message(self, job_id: str, message: str | None) -> str:
        """``message`` (or a generic one) with the last line the job wrote to stderr.

        The message goes into XML, which cannot carry most control characters (a
        script's colour codes, say): they would make every document of the job fail.
        """
        text = message or "the job failed"
        relative = f"{INTERNAL_DIR}/{STDERR_FILE}"
        tail = nofollow.read_tail(self.directory(job_id), relative, ERROR_TAIL_BYTES)
        lines = [ln for ln in tail.decode("utf-8", "replace").splitlines() if ln.strip()]
        if lines:
            text = f"{text}: {lines[-1].strip()[:ERROR_TAIL_CHARS]}"
        return printable(text)

    # -- results ------------------------------------------------------------------------

    def collect_results(self, job_id: str, generated: Sequence[GeneratedEntity]) -> list[Result]:
        """The files in the job's output directory, named after the generated entities.

        A file matching an entity's pattern is that entity's result (``name``, or
        ``name_1``, ``name_2``… when several match); any other file is a result under
        its own name. Only regular files with a single link count: a link, a hard link,
        a directory, or a name that is not UTF-8 (which neither the database, nor XML,
        nor a URL can carry) is skipped and logged, so that nothing outside the job's
        directory is read and no name can stop the job from ending. A ``results/``
        that is a link has no results.
        """
        try:
            with nofollow.directory(self.directory(job_id), RESULTS_DIR) as output:
                return self._collect(job_id, output, generated)
        except nofollow.UnsafeFile:
            log.warning("job %s: %s/ is not a directory (a link?): no results", job_id, RESULTS_DIR)
        except OSError:
            pass
        return []

    def _collect(
        self, job_id: str, output: int, generated: Sequence[GeneratedEntity]
    ) -> list[Result]:
        names = sorted(self._result_names(job_id, output))
        results: list[Result] = []
        taken: set[str] = set()

        def add(result_id: str, name: str, content_type: str | None) -> None:
            result = self._result(job_id, output, result_id, name, content_type)
            if result is not None:
                results.append(result)
            taken.add(name)

        for entity in generated:
            matches = [name for name in names if fnmatchcase(name, entity.default or "")]
            for index, name in enumerate(matches, start=1):
                add(
                    entity.name if len(matches) == 1 else f"{entity.name}_{index}",
                    name,
                    entity.content_type,
                )
        ids = {r.result_id for r in results}
        for name in names:
            # A file name may hold anything a script wrote; its id must fit XML and URLs.
            result_id = "".join(c if c.isprintable() else "_" for c in name)
            if name not in taken and result_id not in ids:
                ids.add(result_id)
                add(result_id, name, None)
        return results

    @staticmethod
    def _result_names(job_id: str, output: int) -> list[str]:
        names: list[str] = []
        with os.scandir(output) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    continue
                try:
                    entry.name.encode("utf-8")
                except UnicodeEncodeError:
                    log.warning(
                        "job %s: result file %r is not named in UTF-8: not registered",
                        job_id,
                        entry.name,
                    )
                    continue
                names.append(entry.name)
        return names

    @staticmethod
    def _result(
        job_id: str, output: int, result_id: str, name: str, content_type: str | None
    ) -> Result | None:
        try:
            with nofollow.open_at(output, name) as opened:
                size, digest = nofollow.size_and_sha256(opened)
        except nofollow.UnsafeFile as exc:
            log.warning("job %s: result file %r not registered: %s", job_id, name, exc.strerror)
            return None
        except OSError as exc:
            log.warning("job %s: result file %r unreadable: %s", job_id, name, exc)
            return None
        guessed = mimetypes.guess_type(name)[0]
        return Result(
            result_id=result_id,
            path=f"{RESULTS_DIR}/{name}",
            content_type=content_type or guessed or "application/octet-stream",
            size=size,
            sha256=digest,
        )


def write_private(path: Path, text: str, mode: int = 0o600) -> None:
    """Write a file of OPUS's in a job directory: created with ``mode`` whatever the
    umask, never through a link."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(path, flags, mode)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        os.fchmod(fd, mode)
        handle.write(text)
