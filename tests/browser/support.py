"""What the browser tests share besides fixtures: the REST API as an account's script
sees it (Basic auth with the token), a small file server for URL inputs, axe-core, and
the checks every page gets (no horizontal scrolling, no script run from user data).

Jobs a test only needs to exist are made through the API (quicker, and the pages then
show what any client made); the tests of the forms fill the forms themselves.
"""

from __future__ import annotations

import functools
import http.server
import re
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
from playwright.sync_api import Locator, Page, expect

from tests.browser.conftest import Account, Site

AXE = Path(__file__).resolve().parents[1] / "vendor" / "axe-core" / "axe.min.js"
# Generous: the two cores are shared with other test runs.
LONG_MS = 60_000
ACTIVE = ("PENDING", "QUEUED", "EXECUTING")
ENDED = ("COMPLETED", "ERROR", "ABORTED")
# Payloads that run a script if a page ever puts user data in as markup.
XSS = (
    "<img src=x onerror=window.__xss=1>",
    '"><script>window.__xss=1</script>',
    "'><svg onload=window.__xss=1>",
)


@dataclass
class Api:
    """The REST API as one account's script uses it (Basic name:token)."""

    site: Site
    account: Account

    @functools.cached_property
    def http(self) -> requests.Session:
        made = requests.Session()
        made.auth = (self.account.name, self.account.token)
        return made

    def url(self, path: str) -> str:
        return self.site.url + path

    def create(
        self,
        jobname: str,
        values: Mapping[str, str] | None = None,
        files: Mapping[str, tuple[str, bytes]] | None = None,
        run: bool = True,
    ) -> str:
        """A new job's id (PHASE=RUN unless ``run`` is false)."""
        data = dict(values or {})
        if run:
            data["PHASE"] = "RUN"
        answer = self.http.post(
            self.url(f"/rest/{jobname}"), data=data, files=files, allow_redirects=False
        )
        assert answer.status_code == 303, answer.text
        return answer.headers["Location"].rstrip("/").rsplit("/", 1)[-1]

    def job(self, jobname: str, job_id: str, wait: int = 0, phase: str = "") -> dict[str, Any]:
        params: dict[str, str | int] = {"WAIT": wait} if wait else {}
        if phase:
            params["PHASE"] = phase
        answer = self.http.get(
            self.url(f"/rest/{jobname}/{job_id}"),
            params=params,
            headers={"Accept": "application/json"},
        )
        answer.raise_for_status()
        body: dict[str, Any] = answer.json()
        job: dict[str, Any] = body.get("job", body)
        return job

    def wait_end(self, jobname: str, job_id: str, timeout: float = 60) -> dict[str, Any]:
        """The job once it has ended (WAIT, parked on the server)."""
        deadline = time.monotonic() + timeout
        job = self.job(jobname, job_id)
        while job["phase"] in ACTIVE and time.monotonic() < deadline:
            job = self.job(jobname, job_id, wait=10, phase=job["phase"])
        assert job["phase"] not in ACTIVE, f"{jobname} {job_id} still {job['phase']}"
        return job

    def phase(self, jobname: str, job_id: str, action: str) -> None:
        """POST PHASE=RUN or PHASE=ABORT."""
        answer = self.http.post(
            self.url(f"/rest/{jobname}/{job_id}/phase"),
            data={"PHASE": action},
            allow_redirects=False,
        )
        assert answer.status_code == 303, answer.text

    def exists(self, jobname: str, job_id: str) -> bool:
        answer = self.http.get(self.url(f"/rest/{jobname}/{job_id}"))
        assert answer.status_code in (200, 404), answer.text
        return answer.status_code == 200


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def file_server(directory: Path) -> Iterator[str]:
    """The files of ``directory`` over HTTP on loopback; yields the base URL."""
    handler = functools.partial(_QuietHandler, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def mark(page: Page) -> None:
    """Set a marker in the page's window: it survives only if the page is not loaded
    again (``assert_not_reloaded``)."""
    page.evaluate("window.__marker = 1")


def assert_not_reloaded(page: Page) -> None:
    assert page.evaluate("window.__marker") == 1, "the page was loaded again"


def field(page: Page, name: str) -> Locator:
    """The input of a form field by its label, the parameter's name (with its unit and
    required mark after it: "duration (s)")."""
    return page.get_by_label(re.compile(rf"^{re.escape(name)}(\s|$)"))


def phase_badge(page: Page) -> Locator:
    return page.locator("[data-live-phase] [data-phase]")


def expect_phase(page: Page, phase: str, timeout: float = LONG_MS) -> None:
    expect(phase_badge(page)).to_have_text(phase, timeout=timeout)


def job_id_of(page: Page) -> str:
    return page.url.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1]


def assert_no_xss(page: Page) -> None:
    assert page.evaluate("typeof window.__xss") == "undefined", f"a payload ran on {page.url}"


def axe_violations(page: Page) -> list[dict[str, Any]]:
    """The serious and critical violations axe-core finds in the page (injected by
    evaluate, which the page's CSP does not stop)."""
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.evaluate(AXE.read_text(encoding="utf-8"))
    found: list[dict[str, Any]] = page.evaluate(
        """async () => {
            const results = await axe.run(document, {resultTypes: ['violations']});
            return results.violations.map((v) => ({
                id: v.id, impact: v.impact, help: v.help,
                nodes: v.nodes.slice(0, 5).map((n) => `${n.target.join(' ')}: ${n.failureSummary}`),
            }));
        }"""
    )
    return [v for v in found if v["impact"] in ("serious", "critical")]


def assert_fits(page: Page, width: int = 375) -> None:
    """No horizontal scrolling at ``width`` px."""
    scroll = page.evaluate("document.documentElement.scrollWidth")
    assert scroll <= width, f"{page.url} is {scroll} px wide at {width} px"


def wait_image(page: Page, image: Locator) -> int:
    """An image's natural width once it has loaded (0 if it failed)."""
    image.scroll_into_view_if_needed()
    handle = image.element_handle()
    page.wait_for_function("img => img.complete", arg=handle, timeout=LONG_MS)
    width: int = page.evaluate("img => img.naturalWidth", handle)
    return width
