"""Per-owner limits, in process: jobs kept (JOBS_PER_USER_MAX), bytes stored
(STORAGE_PER_USER_MAX) and active jobs (NJOBS_MAX), each refused with the status and the
name of its setting, nothing stored when refused, and none passed by concurrent
requests (direct concurrent calls to the service, on SQLite and PostgreSQL)."""

from __future__ import annotations

import http.server
import logging
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
import webtest

from opus.core.access import Caller
from opus.core.errors import Forbidden, OpusError
from opus.core.phases import Phase
from opus.server.app import build_service, create_app
from opus.server.managers import ManagedJob, Manager
from opus.server.managers.base import JobState
from opus.server.service import JobService
from opus.server.service.limits import directory_bytes
from opus.server.storage.limits import Usage
from tests.conftest import make_settings
from tests.test_rest import finish_for_real, job_id_of, path_of

ANONYMOUS = Caller("anonymous")


class Site:
    """An in-process OPUS whose settings a test chooses."""

    def __init__(self, tmp_path: Path, database_url: str, **settings) -> None:
        self.settings = make_settings(tmp_path, DATABASE_URL=database_url, **settings)
        self.service = build_service(self.settings)
        self.app = webtest.TestApp(create_app(self.settings, self.service))

    def directories(self) -> list[str]:
        return sorted(p.name for p in self.settings.jobs_path.iterdir())

    def usage(self, owner: str = "anonymous"):
        return self.service.store.usage(owner)


def upload(site: Site, size: int, status: int = 303, **form: str) -> webtest.TestResponse:
    return site.app.post(
        "/rest/append_text",
        form,
        upload_files=[("input", "in.txt", b"x" * size)],
        status=status,
    )


# -- jobs kept --------------------------------------------------------------------------


def test_jobs_kept_per_owner_pending_included(tmp_path: Path, database_url: str) -> None:
    site = Site(tmp_path, database_url, JOBS_PER_USER_MAX=3)
    paths = [path_of(site.app.post("/rest/sleep", {})) for _ in range(3)]
    before = site.directories()
    refused = site.app.post("/rest/sleep", {}, status=403)
    assert "JOBS_PER_USER_MAX" in refused.text and "3" in refused.text
    assert len(refused.text.strip().splitlines()) == 1
    # Nothing stored: no row, no directory; with an upload or PHASE=RUN too.
    upload(site, 10, status=403)
    site.app.post("/rest/sleep", {"PHASE": "RUN"}, status=403)
    assert site.directories() == before
    assert site.usage().jobs == 3
    # ARCHIVED jobs are not kept jobs.
    job = site.service.store.get_job(job_id_of(paths[0]))
    assert site.service.archive(job, job.creation_time)
    site.app.post("/rest/sleep", {}, status=303)
    site.app.post("/rest/sleep", {}, status=403)


def test_concurrent_creations_keep_to_the_limit(tmp_path: Path, database_url: str) -> None:
    site = Site(tmp_path, database_url, JOBS_PER_USER_MAX=10)
    outcomes = concurrently(90, lambda: site.service.create_job(ANONYMOUS, "sleep", {}))
    assert outcomes.count("ok") == 10, outcomes
    assert all(o == "ok" or "JOBS_PER_USER_MAX" in o for o in outcomes)
    assert site.usage().jobs == 10
    assert len(site.directories()) == 10


# -- bytes stored -----------------------------------------------------------------------


def test_uploads_count_and_refusals_name_the_limit(tmp_path: Path, database_url: str) -> None:
    site = Site(tmp_path, database_url, STORAGE_PER_USER_MAX=10_000)
    first = job_id_of(path_of(upload(site, 6000)))
    assert site.service.store.get_job(first).stored_bytes == 6000
    assert site.usage().stored_bytes == 6000
    before = site.directories()
    refused = upload(site, 6000, status=413)
    assert "STORAGE_PER_USER_MAX" in refused.text
    assert site.directories() == before
    upload(site, 3000)
    assert site.usage().stored_bytes == 9000
    site.app.post("/rest/sleep", {}, status=303)  # no inputs: nothing more stored
    upload(site, 1001, status=413)
    # A PENDING job's new input counts too (it replaces none here: a new file name).
    path = f"/rest/append_text/{first}"
    site.app.post(
        f"{path}/parameters", {}, upload_files=[("input", "more.txt", b"y" * 1001)], status=413
    )
    site.app.post(f"{path}/parameters", {}, upload_files=[("input", "more.txt", b"y" * 1000)])
    assert site.usage().stored_bytes == 10_000
    # At the limit, nothing more is created, not even a job without inputs.
    refused = site.app.post("/rest/sleep", {}, status=413)
    assert "STORAGE_PER_USER_MAX" in refused.text
    site.app.delete(path)
    assert site.usage().stored_bytes == 3000
    site.app.post("/rest/sleep", {}, status=303)


def test_results_count_once_registered(tmp_path: Path, database_url: str) -> None:
    """A job is not refused its results; they count against the next creations."""
    site = Site(tmp_path, database_url, STORAGE_PER_USER_MAX=100)
    path = path_of(upload(site, 60, text="z" * 50, PHASE="RUN"))
    finish_for_real(site.service, job_id_of(path))
    assert site.app.get(f"{path}/phase").text == "COMPLETED"
    job = site.service.store.get_job(job_id_of(path))
    directory = site.service.files.directory(job.id)
    assert job.stored_bytes == directory_bytes(directory) > 100  # inputs, results, logs
    site.app.get(f"{path}/results/output", status=303)
    refused = site.app.post("/rest/sleep", {}, status=413)
    assert "STORAGE_PER_USER_MAX" in refused.text


class Served:
    """An HTTP server on loopback serving ``size`` bytes (without Content-Length when
    ``chunked``), counting its requests and what it could send."""

    def __init__(self, size: int, chunked: bool = False) -> None:
        self.requests = 0
        self.sent = 0
        served = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                served.requests += 1
                self.send_response(200)
                if not chunked:
                    self.send_header("Content-Length", str(size))
                self.end_headers()
                block = b"u" * 65536
                try:
                    while served.sent < size:
                        self.wfile.write(block)
                        served.sent += len(block)
                except OSError:
                    pass
                self.close_connection = True

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/data.txt"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def served() -> Iterator[list[Served]]:
    made: list[Served] = []
    yield made
    for server in made:
        server.close()


def test_url_inputs_stop_at_what_is_left(
    tmp_path: Path, database_url: str, served: list[Served]
) -> None:
    site = Site(tmp_path, database_url, STORAGE_PER_USER_MAX=200_000, ALLOW_PRIVATE_URLS=True)
    upload(site, 150_000)
    # Announced larger than what is left: refused before the body is read.
    announced = Served(100_000)
    served.append(announced)
    refused = site.app.post("/rest/append_text", {"input": announced.url}, status=413)
    assert "STORAGE_PER_USER_MAX" in refused.text
    # Not announced: the download stops past what is left (64 MiB were on offer).
    endless = Served(64 * 1024 * 1024, chunked=True)
    served.append(endless)
    refused = site.app.post("/rest/append_text", {"input": endless.url}, status=413)
    assert "STORAGE_PER_USER_MAX" in refused.text
    assert endless.requests == 1 and endless.sent < 16 * 1024 * 1024
    assert len(site.directories()) == 1
    # At the limit, a URL input is not fetched at all.
    upload(site, 50_000)
    untouched = Served(10)
    served.append(untouched)
    site.app.post("/rest/append_text", {"input": untouched.url}, status=413)
    assert untouched.requests == 0
    assert len(site.directories()) == 2


# -- active jobs (NJOBS_MAX) under concurrent RUNs ---------------------------------------


class StubManager(Manager):
    """Submits nothing: RUN goes through the service's writes only."""

    name = "stub"

    def submit(self, job: ManagedJob, batch_script: Path) -> str:
        return f"stub:{job.job_id}"

    def abort(self, job: ManagedJob) -> None:
        pass

    def states(self, jobs: Sequence[ManagedJob]) -> dict[str, JobState]:
        return {}


def concurrently(count: int, call) -> list[str]:
    """Run ``call`` in ``count`` threads released together; "ok" or each refusal."""
    barrier = threading.Barrier(count)
    outcomes: list[str] = [""] * count

    def run(index: int) -> None:
        barrier.wait()
        try:
            call()
            outcomes[index] = "ok"
        except OpusError as exc:
            outcomes[index] = f"{exc.status} {exc}"

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    return outcomes


def test_concurrent_runs_stay_within_njobs_max(tmp_path: Path, database_url: str) -> None:
    site = Site(tmp_path, database_url, NJOBS_MAX=10)
    service: JobService = site.service
    service.manager = StubManager()
    jobs = [service.create_job(ANONYMOUS, "sleep", {}) for _ in range(90)]
    pending = iter(jobs)
    lock = threading.Lock()

    def run_one() -> None:
        with lock:
            job = next(pending)
        service.run(ANONYMOUS, "sleep", job.id)

    outcomes = concurrently(90, run_one)
    assert outcomes.count("ok") == 10, outcomes
    assert all(o == "ok" or ("403" in o and "NJOBS_MAX" in o) for o in outcomes)
    assert site.usage().active == 10
    assert len(list(service.store.list_jobs("sleep", [Phase.QUEUED]))) == 10


def test_run_at_creation_refused_keeps_nothing(tmp_path: Path, database_url: str) -> None:
    site = Site(tmp_path, database_url, NJOBS_MAX=2)
    site.service.manager = StubManager()
    outcomes = concurrently(
        30, lambda: site.service.create_job(ANONYMOUS, "sleep", {}, control={"PHASE": "RUN"})
    )
    assert outcomes.count("ok") == 2, outcomes
    assert site.usage() == Usage(jobs=2, stored_bytes=0, active=2)
    assert len(site.directories()) == 2


def test_limits_apply_to_admins(tmp_path: Path, database_url: str) -> None:
    site = Site(tmp_path, database_url, JOBS_PER_USER_MAX=1)
    root = Caller("root", frozenset({"admin"}))
    site.service.create_job(root, "sleep", {})
    with pytest.raises(Forbidden, match="JOBS_PER_USER_MAX"):
        site.service.create_job(root, "sleep", {})
    # Another owner's count is their own.
    site.service.create_job(ANONYMOUS, "sleep", {})


# -- a job destroyed while it is being submitted ---------------------------------------


class DestroyingManager(StubManager):
    """Destroys the job during its submission, as the reconciler does when the job's
    DESTRUCTION time is already past, then fails as the missing directory makes Popen fail."""

    def __init__(self, service: JobService) -> None:
        self.service = service
        self.destroy = True

    def submit(self, job: ManagedJob, batch_script: Path) -> str:
        if self.destroy:
            record = self.service.store.get_job(job.job_id)
            assert record is not None
            self.service.destroy(record)
        raise OSError(f"[Errno 2] No such file or directory: {job.job_dir}")


def test_a_job_destroyed_while_submitted_is_no_fault(
    tmp_path: Path, database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "opus.service")
    site = Site(tmp_path, database_url)
    manager = DestroyingManager(site.service)
    site.service.manager = manager
    job = site.service.create_job(ANONYMOUS, "sleep", {}, control={"PHASE": "RUN"})
    assert site.service.store.get_job(job.id) is None and site.directories() == []
    assert [r.levelname for r in caplog.records if "not submitted" in r.getMessage()] == ["INFO"]
    # A job still there when its submission fails is an ERROR, logged as a fault.
    caplog.clear()
    manager.destroy = False
    kept = site.service.create_job(ANONYMOUS, "sleep", {}, control={"PHASE": "RUN"})
    stored = site.service.store.get_job(kept.id)
    assert stored is not None and stored.phase == Phase.ERROR
    assert "No such file" in (stored.error_message or "")
    assert [r.levelname for r in caplog.records if "not submitted" in r.getMessage()] == ["ERROR"]
