"""The progress bar of a job's page (static/js/job.js): it follows the progress the
job's script reports while the job executes (``role=progressbar`` with its
aria-valuenow and a text naming the message, the message shown as text), without the
page being loaded again, and is hidden once the job has ended; a job that reports
nothing shows none. axe-core finds nothing serious on the page with the bar."""

from __future__ import annotations

import time

from playwright.sync_api import Locator, Page, expect

from tests.browser.conftest import Site, screenshot
from tests.browser.support import (
    LONG_MS,
    XSS,
    Api,
    assert_no_xss,
    assert_not_reloaded,
    axe_violations,
    expect_phase,
    mark,
)

STEPS = 5


def progress_bar(page: Page) -> Locator:
    return page.get_by_role("progressbar", name="Progress of the job")


def test_the_bar_follows_the_jobs_progress(alice_page: Page, site: Site) -> None:
    page = alice_page
    api = Api(site, site.alice)
    label = XSS[0]
    values = {"steps": str(STEPS), "step_duration": "1.5", "label": label}
    job_id = api.create("progress_demo", values)
    page.goto(f"/jobs/progress_demo/{job_id}")
    mark(page)
    bar = progress_bar(page)
    expect(bar).to_be_visible(timeout=LONG_MS)
    shown: dict[str, str] = {}
    deadline = time.monotonic() + LONG_MS / 1000
    while len(shown) < 2 and time.monotonic() < deadline:
        if bar.is_visible():
            now = bar.get_attribute("aria-valuenow") or ""
            message = page.locator("[data-progress-message]").inner_text()
            width = bar.locator("[data-progress-bar]").evaluate("bar => bar.style.width")
            # The bar's width, its value, its text and its message agree.
            if now not in shown and width == f"{now}%":
                shown[now] = message
                assert bar.get_attribute("aria-valuetext") == (
                    f"{now} %: {message}" if message else f"{now} %"
                )
                visible = page.locator("[data-progress-percent]").inner_text()
                assert visible == f"{now} %"
        page.wait_for_timeout(200)
    assert len(shown) >= 2, f"the bar did not move: {shown}"
    expected = {"0": "starting"} | {
        str(100 * i // STEPS): f"{label} {i}/{STEPS}" for i in range(1, STEPS + 1)
    }
    for percent, message in shown.items():
        assert expected[percent] == message, (percent, message)
    assert axe_violations(page) == []
    screenshot(page, "job-progress", full_page=False)
    expect_phase(page, "COMPLETED")
    expect(bar).to_be_hidden()
    assert_not_reloaded(page)
    assert_no_xss(page)


def test_a_job_that_reports_nothing_shows_no_bar(alice_page: Page, site: Site) -> None:
    page = alice_page
    api = Api(site, site.alice)
    job_id = api.create("sleep", {"duration": "4"})
    page.goto(f"/jobs/sleep/{job_id}")
    expect_phase(page, "EXECUTING")
    page.wait_for_timeout(1000)
    expect(progress_bar(page)).to_be_hidden()
    expect_phase(page, "COMPLETED")
    expect(progress_bar(page)).to_be_hidden()
