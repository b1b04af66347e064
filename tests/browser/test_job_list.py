"""The job list over 500 jobs: paging with the cursor (older, back, newest), the
phase, run ID and type filters, actions on selected rows (abort, delete), and the
list following the change feed (a new job appears, a deleted one goes) in place."""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import pytest
from playwright.sync_api import Dialog, Page, expect

from tests.browser.conftest import PageWatch, Site, screenshot, sign_in
from tests.browser.support import LONG_MS, Api, assert_not_reloaded, mark

PENDING_SLEEPS = 440
PENDING_PLOTS = 40
DONE = 8  # sleep jobs COMPLETED, fail jobs ERROR, sleep jobs ABORTED: each
TOTAL = PENDING_SLEEPS + PENDING_PLOTS + 3 * DONE


@dataclass(frozen=True)
class Jobs:
    """bob's jobs: ids by what they are."""

    pending: dict[str, str]  # run ID → id
    plots: list[str]
    completed: list[str]
    errors: list[str]
    aborted: list[str]

    @property
    def all(self) -> set[str]:
        return {*self.pending.values(), *self.plots, *self.completed, *self.errors, *self.aborted}


@pytest.fixture(scope="module")
def jobs(site: Site) -> Jobs:
    """TOTAL jobs of bob's, most of them PENDING (made in a few seconds: never run)."""

    def make(args: tuple[str, dict[str, str], bool]) -> str:
        jobname, values, run = args
        return Api(site, site.bob).create(jobname, values, run=run)

    work = [("sleep", {"RUNID": f"batch-{i:04d}"}, False) for i in range(PENDING_SLEEPS)]
    work += [("plot", {"RUNID": f"plot-{i:03d}"}, False) for i in range(PENDING_PLOTS)]
    work += [("sleep", {"duration": "0", "RUNID": f"done-{i}"}, True) for i in range(DONE)]
    work += [("fail", {"RUNID": f"failed-{i}"}, True) for i in range(DONE)]
    work += [("sleep", {"RUNID": f"aborted-{i}"}, False) for i in range(DONE)]
    with ThreadPoolExecutor(6) as pool:
        ids = list(pool.map(make, work))
    api = Api(site, site.bob)
    first_done = PENDING_SLEEPS + PENDING_PLOTS
    made = Jobs(
        pending=dict(
            zip(
                [f"batch-{i:04d}" for i in range(PENDING_SLEEPS)], ids[:PENDING_SLEEPS], strict=True
            )
        ),
        plots=ids[PENDING_SLEEPS:first_done],
        completed=ids[first_done : first_done + DONE],
        errors=ids[first_done + DONE : first_done + 2 * DONE],
        aborted=ids[first_done + 2 * DONE :],
    )
    for job_id in made.aborted:
        api.phase("sleep", job_id, "ABORT")
    for job_id in made.completed:
        assert api.wait_end("sleep", job_id)["phase"] == "COMPLETED"
    for job_id in made.errors:
        assert api.wait_end("fail", job_id)["phase"] == "ERROR"
    return made


@pytest.fixture
def bob_page(page: Page, site: Site, jobs: Jobs) -> Page:
    sign_in(page, site.bob)
    return page


def listed(page: Page) -> list[str]:
    """The job ids of the rows shown."""
    values = page.locator("tbody tr[data-job]").evaluate_all(
        "rows => rows.map((row) => row.dataset.job.split('/')[1])"
    )
    return list(values)


def phases(page: Page) -> set[str]:
    return set(page.locator("tbody tr [data-cell='phase'] [data-phase]").all_inner_texts())


def test_paging_with_the_cursor(bob_page: Page, jobs: Jobs) -> None:
    page = bob_page
    page.goto("/jobs")
    expect(page.locator("tbody tr[data-job]")).to_have_count(50)
    page.get_by_label("Jobs a page").select_option("200")
    page.get_by_role("button", name="Filter").click()
    expect(page).to_have_url(re.compile(r"limit=200"))
    expect(page.locator("tbody tr[data-job]")).to_have_count(200)
    screenshot(page, "jobs", full_page=False)
    pages = [listed(page)]
    expect(page.get_by_role("link", name="Newest jobs")).to_have_count(0)
    while page.get_by_role("link", name="Older jobs").count():
        page.get_by_role("link", name="Older jobs").click()
        expect(page).to_have_url(re.compile(r"cursor="))
        expect(page.get_by_role("link", name="Newest jobs")).to_be_visible()
        pages.append(listed(page))
    assert [len(shown) for shown in pages] == [200, 200, TOTAL - 400]
    seen = [job_id for shown in pages for job_id in shown]
    assert len(seen) == len(set(seen)) == TOTAL
    assert set(seen) == jobs.all
    # "Newer jobs" is the page before, up to the first; "Newest jobs" the first.
    page.get_by_role("link", name="Newer jobs").click()
    expect(page).to_have_url(re.compile(r"newer="))
    expect(page.locator("tbody tr[data-job]").first).to_have_attribute(
        "data-job", re.compile(pages[1][0])
    )
    assert listed(page) == pages[1]
    page.get_by_role("link", name="Newer jobs").click()
    expect(page.get_by_role("link", name="Newer jobs")).to_have_count(0)
    assert listed(page) == pages[0]
    page.go_back()
    page.get_by_role("link", name="Newest jobs").click()
    expect(page.locator("tbody tr[data-job]")).to_have_count(200)
    assert listed(page) == pages[0]


def test_phase_filters(bob_page: Page, jobs: Jobs) -> None:
    page = bob_page
    page.goto("/jobs")
    page.get_by_label("ERROR", exact=True).check()
    page.get_by_label("ABORTED", exact=True).check()
    page.get_by_role("button", name="Filter").click()
    expect(page).to_have_url(re.compile(r"phase=ERROR&phase=ABORTED"))
    expect(page.locator("tbody tr[data-job]")).to_have_count(2 * DONE)
    assert phases(page) == {"ERROR", "ABORTED"}
    assert set(listed(page)) == {*jobs.errors, *jobs.aborted}
    expect(page.get_by_label("ERROR", exact=True)).to_be_checked()
    page.get_by_label("ERROR", exact=True).uncheck()
    page.get_by_label("COMPLETED", exact=True).check()
    page.get_by_role("button", name="Filter").click()
    expect(page.locator("tbody tr[data-job]")).to_have_count(2 * DONE)
    assert phases(page) == {"COMPLETED", "ABORTED"}
    page.goto("/jobs?phase=PENDING&limit=200")
    expect(page.locator("tbody tr[data-job]")).to_have_count(200)
    assert phases(page) == {"PENDING"}
    page.goto("/jobs?phase=EXECUTING")
    expect(page.get_by_text("No jobs match.")).to_be_visible()


def test_run_id_search(bob_page: Page, jobs: Jobs) -> None:
    page = bob_page
    page.goto("/jobs")
    page.get_by_label("Run ID contains").fill("batch-0042")
    page.get_by_role("button", name="Filter").click()
    expect(page.locator("tbody tr[data-job]")).to_have_count(1)
    assert listed(page) == [jobs.pending["batch-0042"]]
    # Any part, in any case.
    page.get_by_label("Run ID contains").fill("BATCH-004")
    page.get_by_role("button", name="Filter").click()
    expect(page.locator("tbody tr[data-job]")).to_have_count(10)
    assert set(listed(page)) == {jobs.pending[f"batch-{i:04d}"] for i in range(40, 50)}
    expect(page.get_by_label("Run ID contains")).to_have_value("BATCH-004")


def test_type_filter(bob_page: Page, jobs: Jobs) -> None:
    page = bob_page
    page.goto("/jobs")
    page.get_by_label("Job type").select_option("plot")
    page.get_by_role("button", name="Filter").click()
    expect(page.get_by_role("heading", name="plot jobs", level=1)).to_be_visible()
    expect(page.locator("tbody tr[data-job]")).to_have_count(PENDING_PLOTS)
    assert set(listed(page)) == set(jobs.plots)
    expect(page.get_by_role("link", name="Older jobs")).to_have_count(0)
    # Filters combine.
    page.goto("/jobs?type=fail&phase=ERROR&run_id=failed-3")
    expect(page.locator("tbody tr[data-job]")).to_have_count(1)
    assert listed(page) == [jobs.errors[3]]


def test_abort_and_delete_selected_rows(bob_page: Page, site: Site, jobs: Jobs) -> None:
    page = bob_page
    seen: list[str] = []

    def accept(dialog: Dialog) -> None:
        seen.append(dialog.message)
        dialog.accept()

    page.on("dialog", accept)
    page.goto("/jobs?run_id=batch-001")
    chosen = [f"batch-{i:04d}" for i in range(10, 20)]
    expect(page.locator("tbody tr[data-job]")).to_have_count(10)
    for run_id in chosen[:3]:
        page.get_by_label(f"Select job {run_id}", exact=True).check()
    page.get_by_role("button", name="Abort selected").click()
    expect(page).to_have_url(re.compile(r"/jobs\?run_id=batch-001$"))
    for run_id in chosen[:3]:
        row = page.locator(f'tr[data-job="sleep/{jobs.pending[run_id]}"]')
        expect(row.locator("[data-cell='phase']")).to_have_text("ABORTED")
    assert phases(page) == {"ABORTED", "PENDING"}
    for run_id in chosen[3:6]:
        page.get_by_label(f"Select job {run_id}", exact=True).check()
    page.get_by_role("button", name="Delete selected").click()
    expect(page.locator("tbody tr[data-job]")).to_have_count(7)
    assert seen == ["Delete the selected jobs and their files?"]
    api = Api(site, site.bob)
    for run_id in chosen[3:6]:
        assert not api.exists("sleep", jobs.pending[run_id])
    # "Select all", then a delete of every row shown.
    page.get_by_label("Select all jobs").check()
    for box in page.locator("tbody input[name='job']").all():
        expect(box).to_be_checked()
    page.get_by_role("button", name="Delete selected").click()
    expect(page.get_by_text("No jobs match.")).to_be_visible()
    assert not api.exists("sleep", jobs.pending[chosen[9]])


def test_the_list_follows_changes(bob_page: Page, site: Site, jobs: Jobs) -> None:
    page = bob_page
    page.goto("/jobs?type=sleep")
    mark(page)
    api = Api(site, site.bob)
    job_id = api.create("sleep", {"duration": "1", "RUNID": "live row"})
    row = page.locator(f'tr[data-job="sleep/{job_id}"]')
    expect(row).to_be_visible(timeout=LONG_MS)
    expect(page.locator("tbody tr").first).to_have_attribute("data-job", f"sleep/{job_id}")
    expect(row.get_by_role("link", name="live row")).to_have_attribute(
        "href", f"/jobs/sleep/{job_id}"
    )
    expect(row.locator("[data-cell='phase']")).to_have_text("COMPLETED", timeout=LONG_MS)
    expect(row.get_by_role("button", name="Abort job live row")).to_be_hidden()
    expect(row.locator("[data-cell='duration']")).to_have_text(re.compile(r"^\d+\.\d s$"))
    # A job of another type is not this list's.
    other = api.create("fail", {"RUNID": "not listed"})
    api.wait_end("fail", other)
    api.http.delete(api.url(f"/rest/sleep/{job_id}"), allow_redirects=False)
    expect(row).to_have_count(0, timeout=LONG_MS)
    expect(page.get_by_role("link", name="not listed")).to_have_count(0)
    assert_not_reloaded(page)


def test_the_buttons_of_a_row(bob_page: Page, site: Site, jobs: Jobs) -> None:
    page = bob_page
    seen: list[str] = []

    def accept(dialog: Dialog) -> None:
        seen.append(dialog.message)
        dialog.accept()

    page.on("dialog", accept)
    page.goto("/jobs?run_id=plot-00")
    expect(page.locator("tbody tr[data-job]")).to_have_count(10)
    page.get_by_role("button", name="Run job plot-000", exact=True).click()
    expect(page).to_have_url(re.compile(r"/jobs\?run_id=plot-00$"))
    mark(page)
    row = page.locator(f'tr[data-job="plot/{jobs.plots[0]}"]')
    # The row follows the job to its end, in place.
    expect(row.locator("[data-cell='phase']")).to_have_text("COMPLETED", timeout=LONG_MS)
    expect(row.get_by_role("button", name="Run job plot-000")).to_be_hidden()
    expect(row.get_by_role("button", name="Abort job plot-000")).to_be_hidden()
    assert_not_reloaded(page)
    page.get_by_role("button", name="Delete job plot-001", exact=True).click()
    expect(page.locator("tbody tr[data-job]")).to_have_count(9)
    assert seen == ["Delete job plot-001 and its files?"]
    assert not Api(site, site.bob).exists("plot", jobs.plots[1])


@pytest.mark.parametrize(
    "query", ["limit=7", "limit=many", "phase=SLEEPING", "cursor=not-a-cursor", "type=nosuch"]
)
def test_a_wrong_filter_is_an_error_page(bob_page: Page, watch: PageWatch, query: str) -> None:
    page = bob_page
    watch.expected += ["status of 400", "status of 404"]
    answer = page.goto(f"/jobs?{query}")
    assert answer is not None and answer.status in (400, 404), answer.status
    expect(page.get_by_role("alert")).to_be_visible()
    expect(page.get_by_role("link", name="Jobs").last).to_be_visible()
