"""An in-process OPUS seen by a browser, for the tests of the web pages.

``Browser`` signs in through POST /login and then sends what a browser sends from a
page of OPUS: the session cookie, an Accept that prefers HTML, Origin and
Sec-Fetch-Site of the site itself, and the session's CSRF token in every form.
"""

from __future__ import annotations

import base64
import time
from pathlib import Path
from typing import Any

import webtest
from lxml import html as lxml_html

from opus.core.access import Caller
from opus.core.layout import INTERNAL_DIR, STATUS_FILE
from opus.server.app import build_service, create_app
from opus.server.auth import UserManager
from opus.server.service import reconcile
from opus.server.sessions import SESSION_COOKIE, session_cookie
from opus.server.storage import UserStore
from tests.conftest import make_settings

PASSWORD = "correct horse battery staple"
HTML_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
# What a user or a definition may write, and a page must show as text.
XSS = "<script>alert('x')</script><img src=x onerror=alert(1)>\"'&"


class Browser:
    """alice, signed in with her password, on an OPUS without anonymous access."""

    def __init__(self, tmp_path: Path, database_url: str, **settings: Any) -> None:
        settings.setdefault("AUTH_FREE_FAILURES", 1000)
        settings.setdefault("ALLOW_ANONYMOUS", False)
        self.settings = make_settings(tmp_path, DATABASE_URL=database_url, **settings)
        self.jdl = self.settings.jdl_path
        self.service = build_service(self.settings)
        self.app = webtest.TestApp(create_app(self.settings, self.service))
        self.users = UserManager(UserStore(self.service.store.engine))
        self.token = self.users.add("alice", [], PASSWORD)[1]
        self.caller = Caller("alice")
        self.cookie = ""
        self.csrf = ""

    def sign_in(self, name: str = "alice", secret: str = PASSWORD) -> None:
        answer = self.app.post("/login", {"username": name, "secret": secret}, status=303)
        value = session_cookie(answer.headers["Set-Cookie"].split(";", 1)[0])
        assert value
        self.cookie = value
        self.csrf = self.app.get("/session", headers=self.headers()).json["csrf_token"]

    def headers(self, **more: str) -> dict[str, str]:
        headers = {"Accept": HTML_ACCEPT, "Origin": self.settings.BASE_URL}
        headers["Sec-Fetch-Site"] = "same-origin"
        if self.cookie:
            headers["Cookie"] = f"{SESSION_COOKIE}={self.cookie}"
        headers.update(more)
        return headers

    def get(self, path: str, status: int | str = 200, **more: str) -> webtest.TestResponse:
        return self.app.get(path, headers=self.headers(**more), status=status)

    def post(
        self,
        path: str,
        params: Any = (),
        status: int | str = 303,
        upload_files: Any = None,
        csrf: bool = True,
    ) -> webtest.TestResponse:
        fields = list(params.items()) if isinstance(params, dict) else list(params)
        if csrf:
            fields.append(("csrf_token", self.csrf))
        return self.app.post(
            path,
            fields,
            headers=self.headers(),
            status=status,
            upload_files=upload_files,
            content_type="multipart/form-data" if upload_files else None,
        )

    def basic(self) -> dict[str, str]:
        encoded = base64.b64encode(f"alice:{self.token}".encode()).decode()
        return {"Authorization": f"Basic {encoded}"}

    def write_definition(self, name: str, text: str) -> None:
        """Add a job definition (the registry sees it at its next look)."""
        (self.jdl / f"{name}.yml").write_text(text)
        self.service.registry.reload()

    def job(self, jobname: str = "sleep", run: bool = True, **values: str) -> str:
        control = {"PHASE": "RUN"} if run else {}
        job = self.service.create_job(self.caller, jobname, values, control=control)
        return job.id

    def finished(self, jobname: str = "sleep", **values: str) -> str:
        """A job run to its end, for real."""
        job_id = self.job(jobname, **values)
        status = self.service.files.directory(job_id) / INTERNAL_DIR / STATUS_FILE
        deadline = time.monotonic() + 30
        while not status.exists():
            assert time.monotonic() < deadline, "the job did not finish"
            time.sleep(0.05)
        reconcile(self.service)
        return job_id

    def with_results(self, files: dict[str, bytes]) -> str:
        """A finished sleep job that has ``files`` as results too."""
        job_id = self.finished(duration="0")
        results = self.service.files.directory(job_id) / "results"
        for name, content in files.items():
            (results / name).write_bytes(content)
        job = self.service.store.get_job(job_id)
        assert job is not None
        found = self.service.collect_results(job)
        self.service.store.change_phase(job_id, {job.phase}, job.phase, results=found)
        return job_id


def document(answer: webtest.TestResponse) -> Any:
    """The parsed HTML of an answer."""
    return lxml_html.fromstring(answer.body)


def field(answer: webtest.TestResponse, name: str) -> Any:
    """The block of the form field ``name`` of a new-job page."""
    found = document(answer).xpath(f'//div[@data-field="{name}"]')
    assert found, f"no field {name!r}"
    return found[0]


def label_of(page: Any, element: Any) -> str:
    """The text of the <label> of an input."""
    labels = page.xpath(f'//label[@for="{element.get("id")}"]')
    assert labels, f"input {element.get('name')!r} has no label"
    return " ".join(labels[0].text_content().split())


def assert_inert(answer: webtest.TestResponse) -> None:
    """No script runs in the page but the site's own files: no inline script, no event
    handler attribute, no javascript: URL, no inlined SVG."""
    page = document(answer)
    for script in page.iter("script"):
        assert (script.get("src") or "").startswith("/static/"), lxml_html.tostring(script)
        assert not (script.text or "").strip()
    for element in page.iter():
        if not isinstance(element.tag, str):
            continue
        for name, value in element.attrib.items():
            assert not name.lower().startswith("on"), (element.tag, name)
            assert not value.strip().lower().startswith("javascript:"), (element.tag, name)
        assert element.tag not in ("svg", "iframe", "object", "embed"), element.tag
