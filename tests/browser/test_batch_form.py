"""“Run once per file” in the browser: three files uploaded at once, or two of the
user's results ticked, make one job each from one Run; the browser lands on the job
list of the batch, which follows the jobs to COMPLETED. The form in batch mode has no
serious axe-core violation and fits 375 px; without JavaScript, several files and the
box still work."""

from __future__ import annotations

import re
from pathlib import Path

from playwright.sync_api import Browser, Page, expect

from opus.server.storage.entities import result_entity_id
from tests.browser.conftest import Site, screenshot, sign_in
from tests.browser.support import LONG_MS, Api, assert_fits, axe_violations, field

LIST = re.compile(r"/jobs\?type=append_text&")


def text_files(directory: Path, count: int) -> list[Path]:
    made = []
    for index in range(1, count + 1):
        path = directory / f"part{index}.txt"
        path.write_text(f"part {index}\n")
        made.append(path)
    return made


def listed_jobs(page: Page) -> list[str]:
    """The ids of the jobs the list shows."""
    rows = page.locator("tbody tr[data-job]")
    return [
        (rows.nth(i).get_attribute("data-job") or "").split("/", 1)[1] for i in range(rows.count())
    ]


def expect_completed(page: Page, count: int) -> None:
    """The list, following the change feed, shows ``count`` jobs, all COMPLETED."""
    badges = page.locator("tbody tr[data-job] [data-phase]")
    expect(badges).to_have_text(["COMPLETED"] * count, timeout=LONG_MS)


def test_three_uploads_run_once_each(alice_page: Page, site: Site, tmp_path: Path) -> None:
    page = alice_page
    page.goto("/jobs/new/append_text")
    upload = page.get_by_label("input: file to upload")
    # With a script, the input takes several files once the box is ticked.
    expect(upload).not_to_have_attribute("multiple", "")
    page.get_by_label("Run once per file").check()
    expect(upload).to_have_attribute("multiple", "")
    upload.set_input_files(text_files(tmp_path, 3))
    page.get_by_role("button", name="Run", exact=True).click()
    expect(page).to_have_url(LIST)
    notice = page.locator("[data-batch-notice]")
    expect(notice).to_have_text("3 jobs created and running.")
    expect(page.get_by_label("Run ID contains")).to_have_value(re.compile(r"^batch 20"))
    expect_completed(page, 3)
    api = Api(site, site.alice)
    outputs = {api.http.get(f"{site.url}/store/{job}/output").text for job in listed_jobs(page)}
    assert outputs == {f"part {i}\nappended by OPUS\n" for i in (1, 2, 3)}


def results_of_two_jobs(site: Site) -> list[str]:
    """Two ended append_text jobs of alice's; the ids of their results."""
    api = Api(site, site.alice)
    made = []
    for text in ("one", "two"):
        job = api.create("append_text", {"text": text}, files={"input": ("in.txt", b"from\n")})
        assert api.wait_end("append_text", job)["phase"] == "COMPLETED"
        made.append(result_entity_id(job, "output"))
    return made


def test_two_results_run_once_each(alice_page: Page, site: Site) -> None:
    page = alice_page
    entities = results_of_two_jobs(site)
    page.goto("/jobs/new/append_text")
    single = page.get_by_label("input: or one of my results")
    expect(single).to_be_visible(timeout=LONG_MS)
    page.get_by_label("Run once per file").check()
    # In batch mode the single choice gives way to a list of checkboxes.
    expect(single).to_be_hidden()
    choices = page.get_by_role("group", name="input: my results, one job each")
    expect(choices).to_be_hidden()
    page.get_by_label("Choose among my results").check()
    for entity in entities:
        choices.locator(f"input[data-entity='{entity}']").check()
    expect(page.get_by_label("input: file to upload")).to_be_hidden()
    page.locator("summary", has_text="Advanced").click()
    field(page, "RUNID").fill("two results")
    # The form in batch mode: nothing serious for axe-core, and it fits a phone.
    assert axe_violations(page) == []
    screenshot(page, "new-job-batch")
    page.set_viewport_size({"width": 375, "height": 740})
    assert_fits(page)
    screenshot(page, "new-job-batch-375")
    assert axe_violations(page) == []
    page.set_viewport_size({"width": 1280, "height": 900})
    page.get_by_role("button", name="Run", exact=True).click()
    expect(page).to_have_url(LIST)
    expect(page.locator("[data-batch-notice]")).to_have_text("2 jobs created and running.")
    expect_completed(page, 2)
    api = Api(site, site.alice)
    outputs = {api.http.get(f"{site.url}/store/{job}/output").text for job in listed_jobs(page)}
    assert outputs == {f"from\n{text}\nappended by OPUS\n" for text in ("one", "two")}


def test_several_files_without_javascript(browser: Browser, site: Site, tmp_path: Path) -> None:
    context = browser.new_context(
        base_url=site.url, java_script_enabled=False, viewport={"width": 375, "height": 740}
    )
    try:
        page = context.new_page()
        sign_in(page, site.alice)
        page.goto("/jobs/new/append_text")
        page.get_by_label("input: file to upload").set_input_files(text_files(tmp_path, 2))
        page.get_by_label("Run once per file").check()
        assert_fits(page)
        page.get_by_role("button", name="Save as pending").click()
        expect(page).to_have_url(LIST)
        expect(page.locator("[data-batch-notice]")).to_have_text(
            "2 jobs created, pending: run them from the job list."
        )
        expect(page.locator("tbody tr[data-job] [data-phase]")).to_have_text(["PENDING"] * 2)
        # Unticked, several files are refused at the field, as before.
        page.goto("/jobs/new/append_text")
        page.get_by_label("input: file to upload").set_input_files(text_files(tmp_path, 2))
        page.get_by_role("button", name="Save as pending").click()
        expect(page.locator(".invalid-feedback")).to_contain_text("one file per input")
    finally:
        context.close()
