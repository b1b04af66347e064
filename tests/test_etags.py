"""ETags on the job document and its sub-resources: If-None-Match answers 304 while the
job has not changed, and every change of the job gives it a new ETag."""

from __future__ import annotations

import base64
import time
from urllib.parse import urlsplit

import pytest

from opus.core.layout import INTERNAL_DIR, TOKEN_FILE
from opus.server.auth import UserManager
from opus.server.storage import UserStore

RESOURCES = (
    "",
    "/phase",
    "/executionduration",
    "/destruction",
    "/quote",
    "/error",
    "/owner",
    "/parameters",
    "/parameters/duration",
    "/results",
)


def create(app, **values: str) -> str:
    return urlsplit(app.post("/rest/sleep", values, status=303).location).path


@pytest.mark.parametrize("resource", RESOURCES)
def test_an_unchanged_job_answers_304(app, resource: str) -> None:
    path = create(app) + resource
    first = app.get(path)
    etag = first.headers["ETag"]
    assert etag.startswith('"') and etag.endswith('"')
    assert app.get(path).headers["ETag"] == etag, "the same job, the same ETag"
    again = app.get(path, headers={"If-None-Match": etag}, status=304)
    assert again.headers["ETag"] == etag
    assert again.body == b""
    # Weak comparison, lists and "*" (RFC 9110 §13.1.2).
    app.get(path, headers={"If-None-Match": f"W/{etag}"}, status=304)
    app.get(path, headers={"If-None-Match": f'"other", {etag}'}, status=304)
    app.get(path, headers={"If-None-Match": "*"}, status=304)
    app.get(path, headers={"If-None-Match": '"other"'}, status=200)


@pytest.mark.parametrize(
    ("change", "form"),
    [
        ("/parameters", {"duration": "2"}),
        ("/executionduration", {"EXECUTIONDURATION": "30"}),
        ("/destruction", {"DESTRUCTION": "2030-01-01T00:00:00Z"}),
        ("/phase", {"PHASE": "ABORT"}),
    ],
)
def test_every_change_gives_a_new_etag(app, validate, change: str, form: dict) -> None:
    path = create(app)
    etag = app.get(path).headers["ETag"]
    app.post(path + change, form, status=303)
    changed = app.get(path, headers={"If-None-Match": etag}, status=200)
    assert changed.headers["ETag"] != etag
    validate(changed.body)
    # The new document is what the change made (not a stale rendering).
    for resource in RESOURCES:
        answer = app.get(path + resource, headers={"If-None-Match": etag})
        assert answer.status_int == 200, resource


def test_signals_and_results_give_new_etags(app, service) -> None:
    path = create(app, duration="0")
    job_id = path.rsplit("/", 1)[1]
    before = app.get(path).headers["ETag"]
    app.post(f"{path}/phase", {"PHASE": "RUN"}, status=303)
    queued = app.get(path).headers["ETag"]
    assert queued != before
    token = (service.files.directory(job_id) / INTERNAL_DIR / TOKEN_FILE).read_text()
    results = service.files.directory(job_id) / "results"
    deadline = time.monotonic() + 30
    while not (results / "output.txt").exists():  # the job ran, its signals went nowhere
        assert time.monotonic() < deadline
        time.sleep(0.05)
    app.post("/handler/job_event", {"jobid": job_id, "phase": "COMPLETED", "token": token})
    done = app.get(path, headers={"If-None-Match": queued}, status=200)
    assert done.headers["ETag"] != queued
    assert b"output" in app.get(f"{path}/results").body


def test_wait_with_a_current_copy_answers_304_at_its_deadline(app) -> None:
    path = create(app)
    etag = app.get(path).headers["ETag"]
    started = time.monotonic()
    answer = app.get(f"{path}?WAIT=1", headers={"If-None-Match": etag}, status=304)
    assert time.monotonic() - started >= 0.9
    assert answer.headers["ETag"] == etag


def test_another_users_job_gives_no_etag(app, service) -> None:
    """The ETag check comes after the access check: a 304 would confirm the job."""
    path = create(app)
    etag = app.get(path).headers["ETag"]
    _user, token = UserManager(UserStore(service.store.engine)).add("mallory")
    credentials = base64.b64encode(f"mallory:{token}".encode()).decode()
    headers = {"Authorization": f"Basic {credentials}", "If-None-Match": etag}
    for resource in RESOURCES:
        refused = app.get(path + resource, headers=headers, status=403)
        assert "ETag" not in refused.headers
