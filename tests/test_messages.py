"""Errors that point at the fix: a client mistake says what to do instead."""

from __future__ import annotations

from urllib.parse import urlsplit

import webtest

from opus.server.app import create_app
from tests.conftest import make_settings
from tests.live_helpers import file_server


def test_an_unknown_job_type_lists_the_available_ones(app) -> None:
    for method, path in [("get", "/rest/nosuch"), ("post", "/rest/nosuch")]:
        refused = getattr(app, method)(path, status=404)
        assert "no job type named 'nosuch'" in refused.text
        available = "append_text, fail, fits_image, plot, progress_demo, provenance_demo, sleep"
        assert f"available: {available}" in refused.text
    job = urlsplit(app.post("/rest/sleep", status=303).location).path
    refused = app.get(job.replace("/sleep/", "/nosuch/"), status=404)
    assert "no job" in refused.text


def test_phase_posted_to_the_job_names_the_phase_resource(app) -> None:
    path = urlsplit(app.post("/rest/sleep", status=303).location).path
    refused = app.post(path, {"PHASE": "RUN"}, status=400)
    assert f"POST PHASE=RUN to {path}/phase" in refused.text
    assert app.get(f"{path}/phase").text == "PENDING", "nothing ran"
    assert "ACTION is missing" in app.post(path, {}, status=400).text
    assert "ACTION=DELETE" in app.post(path, {"ACTION": "ABORT"}, status=400).text


def test_a_private_url_input_names_the_setting_that_allows_it(tmp_path) -> None:
    settings = make_settings(tmp_path, ALLOW_PRIVATE_URLS=False)
    app = webtest.TestApp(create_app(settings))
    with file_server({"/x.txt": b"data"}) as base:
        form = {"input": f"{base}/x.txt", "text": "x"}
        refused = app.post("/rest/append_text", form, status=400)
    assert "non-public address" in refused.text
    assert "ALLOW_PRIVATE_URLS" in refused.text


def test_scim_answers_its_401_as_a_scim_error(app) -> None:
    refused = app.get("/scim/v2/Users", headers={"Authorization": "Bearer wrong"}, status=401)
    assert refused.content_type == "application/scim+json"
    assert refused.json["status"] == "401"
    assert "Basic" in refused.headers["WWW-Authenticate"]
    # The UWS tree answers the same refusal in its own way: one line of text.
    refused = app.get("/rest/sleep", headers={"Authorization": "Bearer wrong"}, status=401)
    assert refused.content_type == "text/plain"
    assert refused.text == "invalid credentials\n"
    assert "Basic" in refused.headers["WWW-Authenticate"]
