"""The live pages follow changes without polling loops (docs/client.md, Live updates).

An open job list shows a job's new phase without being loaded again, makes no request
while nothing changes (its change-feed request waits up to 30 s on the server), and
one change-feed request per change; a job page shows its job's new phase without a
reload. The phases change through the REST API, as a script would change them. Timing
figures are bench/bench_pages.py's; here only what must hold however slow the machine.
"""

from __future__ import annotations

import time

import pytest
from playwright.sync_api import Locator, Page, Request, expect

from tests.browser.conftest import Site
from tests.browser.support import Api, assert_not_reloaded, mark

# Generous: the two cores are shared; the server answers a change at once.
SHOWN_MS = 5_000
IDLE_SECONDS = 10.0
CHANGES = 3


@pytest.fixture
def api(site: Site) -> Api:
    return Api(site, site.alice)


class Sent:
    """The requests a page sends: (time.monotonic(), URL)."""

    def __init__(self, page: Page) -> None:
        self.requests: list[tuple[float, str]] = []
        page.on("request", self.record)

    def record(self, request: Request) -> None:
        self.requests.append((time.monotonic(), request.url))

    def since(self, start: float, part: str = "") -> list[str]:
        return [url for when, url in self.requests if when >= start and part in url]


def phase_cell(page: Page, job_id: str) -> Locator:
    return page.locator(f'tr[data-job="sleep/{job_id}"] [data-cell="phase"]')


def wait_for_request(page: Page, sent: Sent, start: float, part: str) -> None:
    """Return once ``page`` has sent a request holding ``part`` since ``start``."""
    deadline = time.monotonic() + SHOWN_MS / 1000
    while not sent.since(start, part) and time.monotonic() < deadline:
        # Playwright's events (requests) come in while it is called, not in time.sleep.
        page.wait_for_timeout(50)
    assert sent.since(start, part), f"no request holding {part!r} sent"


def test_the_list_shows_changes_with_one_request_each(alice_page: Page, api: Api) -> None:
    page = alice_page
    jobs = [api.create("sleep", {"duration": "30"}, run=False) for _ in range(CHANGES + 1)]
    sent = Sent(page)
    opened = time.monotonic()
    page.goto("/jobs")
    for job_id in jobs:
        expect(phase_cell(page, job_id)).to_have_text("PENDING")
    mark(page)
    wait_for_request(page, sent, opened, "/changes?")
    # Idle: the feed's request waits on the server; nothing else is asked.
    page.wait_for_timeout(1000)  # the favicon and the first feed request are sent
    idle = time.monotonic()
    page.wait_for_timeout(IDLE_SECONDS * 1000)
    assert len(sent.since(idle)) <= 1, sent.since(idle)

    # One change: the row shows it, the page is not loaded again.
    changed = time.monotonic()
    api.phase("sleep", jobs[0], "ABORT")
    expect(phase_cell(page, jobs[0])).to_have_text("ABORTED", timeout=SHOWN_MS)
    # N more changes, a little apart: at most one feed request each (+1 in flight).
    for job_id in jobs[1:]:
        api.phase("sleep", job_id, "ABORT")
        expect(phase_cell(page, job_id)).to_have_text("ABORTED", timeout=SHOWN_MS)
        page.wait_for_timeout(300)
    feed = sent.since(changed, "/changes?")
    assert len(feed) <= len(jobs) + 1, feed
    assert not [url for url in sent.since(idle) if url.endswith("/jobs")], "list loaded again"
    assert_not_reloaded(page)


def test_the_job_page_shows_a_change(alice_page: Page, api: Api) -> None:
    page = alice_page
    job_id = api.create("sleep", {"duration": "30"}, run=False)
    sent = Sent(page)
    opened = time.monotonic()
    page.goto(f"/jobs/sleep/{job_id}")
    badge = page.locator("[data-live-phase] [data-phase]")
    expect(badge).to_have_text("PENDING")
    mark(page)
    wait_for_request(page, sent, opened, "WAIT=")
    page.wait_for_timeout(300)  # the WAIT reaches the server
    api.phase("sleep", job_id, "RUN")
    expect(badge).not_to_have_text("PENDING", timeout=SHOWN_MS)
    assert_not_reloaded(page)
    api.phase("sleep", job_id, "ABORT")
    expect(badge).to_have_text("ABORTED", timeout=SHOWN_MS)
    assert_not_reloaded(page)
