"""JobFiles: a job's directory — its inputs, its scripts and token, its results.

Everything the service writes into or reads from a job's directory goes through here:
uploads and URL inputs (sanitised names, paths checked to stay inside the directory,
size and time limits), the record of which input became which file, the batch script
and the job's signal token (mode 0600, only its hash is stored), and the result files,
registered with their size, content type and SHA-256. The layout itself is the core's
(opus.core.layout), shared with the batch script and the managers.
"""

from __future__ import annotations

import base64
import hashlib
import json
import mimetypes
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path

from opus.core.errors import BadRequest
from opus.core.layout import JobLayout
from opus.core.records import Parameter, Result
from opus.core.text import printable
from opus.server.jdl import GeneratedEntity
from opus.server.scripts import BatchJob, render_batch_script
from opus.server.service import inputs
from opus.server.service.inputs import Upload

HASH_CHUNK = 1024 * 1024
ERROR_TAIL_BYTES = 4096
ERROR_TAIL_CHARS = 500


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

    def file(self, job_id: str, relative: str) -> Path:
        """A file of a job, resolved and checked to stay inside its directory."""
        return inputs.inside(self.directory(job_id), relative)

    def create(self) -> str:
        """A new job id whose directory now exists (and was not there before)."""
        for _ in range(5):
            job_id = new_job_id()
            try:
                self.directory(job_id).mkdir(parents=True)
            except FileExistsError:
                continue
            return job_id
        raise RuntimeError("could not allocate a job id")  # 120 random bits never collide

    def remove(self, job_id: str) -> None:
        """Delete the job's directory (nothing if it is already gone)."""
        inputs.remove_tree(self.directory(job_id))

    # -- inputs -----------------------------------------------------------------------

    def save_inputs(
        self, job_id: str, urls: Mapping[str, str], uploads: Mapping[str, Upload]
    ) -> list[Parameter]:
        """Save uploads and fetch URLs into the job's directory; the parameters that
        record them (an upload's local name; a URL, by reference)."""
        if not urls and not uploads:
            return []
        job_dir = self.directory(job_id)
        local_names: dict[str, str] = {}
        stored: list[Parameter] = []
        for name, upload in uploads.items():
            local_names[name] = inputs.save_upload(upload, job_dir, self.max_upload_size)
            stored.append(Parameter(name, local_names[name]))
        for name, url in urls.items():
            if name in uploads:
                raise BadRequest(f"input {name!r} given both as a file and as a URL")
            local_names[name] = inputs.fetch_url(
                name,
                url.strip(),
                job_dir,
                self.max_upload_size,
                self.url_fetch_timeout,
                allow_private=self.allow_private_urls,
            )
            stored.append(Parameter(name, url.strip(), by_reference=True))
        layout = self.layout(job_id)
        layout.internal.mkdir(exist_ok=True)
        known = self.input_files(job_id)
        known.update(local_names)
        layout.inputs.write_text(json.dumps(known))
        return stored

    def input_files(self, job_id: str) -> dict[str, str]:
        """Input name → local file name, as recorded when the inputs were saved."""
        try:
            return dict(json.loads(self.layout(job_id).inputs.read_text()))
        except (OSError, ValueError):
            return {}

    # -- scripts ------------------------------------------------------------------------

    def write_scripts(self, request: ScriptRequest, token: str) -> Path:
        """Write the job's token, its script and its batch script; the batch script's path.

        The script sees every value as a shell variable, and each input file under its
        input's name.
        """
        layout = self.layout(request.job_id)
        layout.internal.mkdir(parents=True, exist_ok=True)
        # Created 0600 before the token is written: never readable by others.
        layout.token.touch(mode=0o600)
        layout.token.write_text(token)
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
            )
        )
        layout.job_script.write_text(request.script)
        layout.batch_script.write_text(batch)
        layout.batch_script.chmod(0o700)
        return layout.batch_script

    def error_message(self, job_id: str, message: str | None) -> str:
        """``message`` (or a generic one) with the last line the job wrote to stderr.

        The message goes into XML, which cannot carry most control characters (a
        script's colour codes, say): they would make every document of the job fail.
        """
        text = message or "the job failed"
        try:
            with open(self.layout(job_id).stderr, "rb") as handle:
                size = handle.seek(0, 2)
                handle.seek(max(0, size - ERROR_TAIL_BYTES))
                tail = handle.read()
        except OSError:
            tail = b""
        lines = [ln for ln in tail.decode("utf-8", "replace").splitlines() if ln.strip()]
        if lines:
            text = f"{text}: {lines[-1].strip()[:ERROR_TAIL_CHARS]}"
        return printable(text)

    # -- results ------------------------------------------------------------------------

    def collect_results(self, job_id: str, generated: Sequence[GeneratedEntity]) -> list[Result]:
        """The files in the job's output directory, named after the generated entities.

        A file matching an entity's pattern is that entity's result (``name``, or
        ``name_1``, ``name_2``… when several match); any other file is a result under
        its own name.
        """
        output_dir = self.layout(job_id).results
        try:
            files = sorted(p for p in output_dir.iterdir() if p.is_file() and not p.is_symlink())
        except OSError:
            return []
        results: list[Result] = []
        taken: set[str] = set()
        for entity in generated:
            matches = [f for f in files if fnmatchcase(f.name, entity.default or "")]
            for index, path in enumerate(matches, start=1):
                result_id = entity.name if len(matches) == 1 else f"{entity.name}_{index}"
                results.append(self._result(job_id, result_id, path, entity.content_type))
                taken.add(path.name)
        ids = {r.result_id for r in results}
        for path in files:
            # A file name may hold anything a script wrote; its id must fit XML and URLs.
            result_id = "".join(c if c.isprintable() else "_" for c in path.name)
            if path.name not in taken and result_id not in ids:
                ids.add(result_id)
                results.append(self._result(job_id, result_id, path, None))
        return results

    def _result(self, job_id: str, result_id: str, path: Path, content_type: str | None) -> Result:
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            while chunk := handle.read(HASH_CHUNK):
                digest.update(chunk)
        guessed = mimetypes.guess_type(path.name)[0]
        return Result(
            result_id=result_id,
            path=str(path.relative_to(self.directory(job_id))),
            content_type=content_type or guessed or "application/octet-stream",
            size=path.stat().st_size,
            sha256=digest.hexdigest(),
        )
