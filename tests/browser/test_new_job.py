"""Every shipped example job, created from its form and watched to its end on its page,
which changes in place (no reload): sleep, fail, append_text (an upload, and a URL),
plot (its image preview), fits_image (its FITS quick look and VOTable rows). A refusal
of the server draws the form again at its field."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import PageWatch, Site, screenshot
from tests.browser.support import (
    ACTIVE,
    LONG_MS,
    Api,
    assert_not_reloaded,
    expect_phase,
    field,
    file_server,
    job_id_of,
    mark,
    phase_badge,
    wait_image,
)

JOB_PAGE = re.compile(r"/jobs/(?!new/)\w+/[\w-]+$")


@pytest.fixture
def api(site: Site) -> Api:
    return Api(site, site.alice)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    """A directory served over HTTP on loopback (the site allows private URLs)."""
    directory = tmp_path_factory.mktemp("served")
    with file_server(directory) as url:
        yield directory, url


def open_form(page: Page, jobname: str) -> None:
    page.goto("/")
    page.get_by_role("link", name=f"New {jobname} job").click()
    expect(page.get_by_role("heading", name=f"New {jobname} job")).to_be_visible()


def show_optional(page: Page) -> None:
    page.locator("summary", has_text="Show optional parameters").click()


def save_and_run(page: Page, api: Api, jobname: str) -> str:
    """Save the form's job as pending, then run it from outside (a script of the
    user's): the page, marked, must follow it in place. Returns the job's id."""
    page.get_by_role("button", name="Save as pending").click()
    expect(page).to_have_url(JOB_PAGE)
    expect_phase(page, "PENDING")
    mark(page)
    job_id = job_id_of(page)
    api.phase(jobname, job_id, "RUN")
    return job_id


def test_sleep_runs_from_its_form(alice_page: Page, api: Api) -> None:
    page = alice_page
    open_form(page, "sleep")
    screenshot(page, "new-sleep")
    show_optional(page)
    field(page, "duration").fill("5")
    page.locator("summary", has_text="Advanced").click()
    field(page, "RUNID").fill("nap of five seconds")
    page.get_by_role("button", name="Run", exact=True).click()
    expect(page).to_have_url(JOB_PAGE)
    mark(page)
    # The page was made while the job had not ended, and follows it to its end.
    assert phase_badge(page).inner_text() in ACTIVE
    expect_phase(page, "COMPLETED")
    assert_not_reloaded(page)
    expect(page.get_by_role("heading", name="sleep job nap of five seconds")).to_be_visible()
    # The buttons changed with the phase.
    expect(page.get_by_role("link", name="Download all")).to_be_visible()
    expect(page.get_by_role("button", name="Abort")).to_have_count(0)
    result = page.get_by_role("article").filter(has_text="output")
    expect(result.locator("pre.preview")).to_contain_text(
        f"OPUS job {job_id_of(page)} slept for 5 seconds.", timeout=LONG_MS
    )
    expect(page.locator("dd", has_text=re.compile(r"^\d+\.\d s$"))).to_be_visible()
    parameters = page.get_by_role("table").filter(has_text="duration")
    expect(parameters.get_by_role("row", name=re.compile("duration"))).to_contain_text("5 s")
    screenshot(page, "job-sleep")
    job = api.job("sleep", job_id_of(page))
    assert job["phase"] == "COMPLETED" and job["runId"] == "nap of five seconds"


def test_fail_ends_in_error_with_its_summary(alice_page: Page, api: Api) -> None:
    page = alice_page
    open_form(page, "fail")
    show_optional(page)
    field(page, "message").fill("the disk is full, on purpose")
    save_and_run(page, api, "fail")
    expect_phase(page, "ERROR")
    assert_not_reloaded(page)
    alert = page.get_by_role("alert").filter(has_text="Error:")
    expect(alert).to_contain_text("the job script exited with status 1")
    expect(alert).to_contain_text("the disk is full, on purpose")
    expect(page.locator('[data-stream="stderr"]')).to_contain_text("the disk is full, on purpose")
    expect(page.get_by_role("button", name="Abort")).to_have_count(0)
    screenshot(page, "job-fail")


def test_append_text_with_an_upload(alice_page: Page, api: Api, tmp_path: Path) -> None:
    page = alice_page
    upload = tmp_path / "notes.txt"
    upload.write_text("first line\nsecond line", encoding="utf-8")
    open_form(page, "append_text")
    page.get_by_label("input: file to upload").set_input_files(upload)
    show_optional(page)
    field(page, "text").fill("third line, from the form")
    job_id = save_and_run(page, api, "append_text")
    expect_phase(page, "COMPLETED")
    assert_not_reloaded(page)
    expect(page.locator("article pre.preview")).to_have_text(
        "first line\nsecond line\nthird line, from the form\n"
    )
    expect(page.get_by_role("row", name=re.compile(r"^input"))).to_contain_text("notes.txt")
    screenshot(page, "job-append-upload")
    assert api.job("append_text", job_id)["phase"] == "COMPLETED"


def test_append_text_with_a_url(alice_page: Page, api: Api, served: tuple[Path, str]) -> None:
    page = alice_page
    directory, base = served
    (directory / "remote.txt").write_text("fetched by the server\n", encoding="utf-8")
    open_form(page, "append_text")
    url_input = page.get_by_label("input: URL of the file")
    expect(url_input).to_be_hidden()
    page.get_by_label("Give a URL").check()
    expect(url_input).to_be_visible()
    expect(page.get_by_label("input: file to upload")).to_be_hidden()
    url_input.fill(f"{base}/remote.txt")
    save_and_run(page, api, "append_text")
    expect_phase(page, "COMPLETED")
    assert_not_reloaded(page)
    expect(page.locator("article pre.preview")).to_have_text(
        "fetched by the server\nappended by OPUS\n"
    )
    expect(page.get_by_role("row", name=re.compile(r"^input"))).to_contain_text(
        "(fetched from this URL)"
    )


def test_plot_shows_its_image(alice_page: Page, api: Api) -> None:
    page = alice_page
    open_form(page, "plot")
    show_optional(page)
    field(page, "function").select_option("square")
    field(page, "cycles").fill("3")
    field(page, "color").select_option("crimson")
    save_and_run(page, api, "plot")
    expect_phase(page, "COMPLETED")
    assert_not_reloaded(page)
    image = page.get_by_role("img", name="plot.svg, a result of the job")
    expect(image).to_be_visible()
    assert wait_image(page, image) > 0, "the plot did not load"
    screenshot(page, "job-plot")


def test_fits_image_shows_its_quick_look_and_catalogue(alice_page: Page, api: Api) -> None:
    page = alice_page
    open_form(page, "fits_image")
    show_optional(page)
    field(page, "stars").fill("12")
    field(page, "size").fill("128")
    save_and_run(page, api, "fits_image")
    expect_phase(page, "COMPLETED")
    assert_not_reloaded(page)
    image = page.get_by_role("img", name="Quick look of the image of field.fits")
    expect(image).to_be_visible()
    assert wait_image(page, image) > 0, "the quick look did not load"
    expect(page.get_by_text("NAXIS1").first).to_be_visible()
    # The catalogue's first rows: 12 stars, of which the job page shows 10.
    flux = page.get_by_role("columnheader", name=re.compile(r"^flux"))
    expect(page.locator("table", has=flux).locator("tbody tr")).to_have_count(10)
    screenshot(page, "job-fits")


def test_a_refusal_is_shown_at_its_field(alice_page: Page, watch: PageWatch) -> None:
    page = alice_page
    watch.expected.append("status of 400")
    open_form(page, "plot")
    show_optional(page)
    # The browser's own checks let nothing wrong through: skip them to see the server's.
    page.locator("[data-job-form]").evaluate("form => { form.noValidate = true; }")
    field(page, "cycles").fill("50")
    page.get_by_role("button", name="Run", exact=True).click()
    expect(page.locator("#form-error")).to_contain_text("The job was not created")
    cycles = field(page, "cycles")
    expect(cycles).to_have_value("50")
    expect(cycles).to_be_focused()
    expect(page.locator('[data-field="cycles"] .invalid-feedback')).to_contain_text("cycles")
    screenshot(page, "new-plot-refused")
