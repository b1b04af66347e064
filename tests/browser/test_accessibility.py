"""Accessibility and small screens, page by page: no serious or critical axe-core
violation, a label for every input (the parameter's name), a text name for every
button, the form usable with the keyboard alone, and no horizontal scrolling at
375 px. Each page is saved as a screenshot (test artefacts), at 1280 and 375 px."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from playwright.sync_api import Browser, Page, expect

from opus.server.jdl.files import load_definition
from opus.server.storage.entities import result_entity_id
from tests.browser.conftest import PageWatch, Site, page_on, screenshot, sign_in
from tests.browser.support import Api, assert_fits, axe_violations, field, wait_image
from tests.conftest import EXAMPLES

# Every shipped example (its form, its labels).
JOB_TYPES = tuple(sorted(path.stem for path in EXAMPLES.glob("*.yml")))


@dataclass(frozen=True)
class Made:
    sleep: str
    fail: str
    plot: str
    append: str


@pytest.fixture(scope="module")
def made(site: Site) -> Made:
    """alice's jobs, ended, and a few more for a list that looks used."""
    api = Api(site, site.alice)
    jobs = Made(
        sleep=api.create("sleep", {"duration": "0.5", "RUNID": "calibration"}),
        fail=api.create("fail", {"RUNID": "broken on purpose"}),
        plot=api.create("plot", {"function": "sin", "cycles": "3", "RUNID": "three waves"}),
        append=api.create(
            "append_text",
            {"RUNID": "notes", "text": "a line appended"},
            files={"input": ("notes.txt", b"first\nsecond\n")},
        ),
    )
    api.create("plot", {"function": "sawtooth", "RUNID": "draft plot"}, run=False)
    api.create("sleep", {"duration": "90", "RUNID": "long night"})
    for name, job_id in (
        ("sleep", jobs.sleep),
        ("fail", jobs.fail),
        ("plot", jobs.plot),
        ("append_text", jobs.append),
    ):
        api.wait_end(name, job_id)
    return jobs


def _constant(path: str) -> Callable[[Made], str]:
    return lambda _made: path


# Each page: its name and its path (given alice's jobs).
PAGES: dict[str, Callable[[Made], str]] = {
    "home": lambda m: "/",
    "jobs": lambda m: "/jobs",
    **{f"new-{name}": _constant(f"/jobs/new/{name}") for name in JOB_TYPES},
    "job-completed": lambda m: f"/jobs/sleep/{m.sleep}",
    "job-error": lambda m: f"/jobs/fail/{m.fail}",
    "job-image": lambda m: f"/jobs/plot/{m.plot}",
    "job-text": lambda m: f"/jobs/append_text/{m.append}",
    "result": lambda m: f"/jobs/append_text/{m.append}/results/output",
    "entity": lambda m: f"/entities/{result_entity_id(m.append, 'output')}",
    "rerun": lambda m: f"/jobs/new/append_text?rerun={m.append}",
    "profile": lambda m: "/profile",
    "not-found": lambda m: "/jobs/sleep/no-such-job",
    "login": lambda m: "/login",
}


def open_everything(page: Page) -> None:
    """Open every <details> (the optional and advanced fields), so every field counts."""
    page.evaluate("document.querySelectorAll('details').forEach((d) => { d.open = true; })")


def unnamed_controls(page: Page) -> list[str]:
    """Buttons and button-like links without a text name."""
    found: list[str] = page.evaluate(
        """() => [...document.querySelectorAll('button, a.btn, [role=button]')]
            .filter((b) => !(b.textContent.trim() || b.getAttribute('aria-label')))
            .map((b) => b.outerHTML)"""
    )
    return found


def unlabelled_inputs(page: Page) -> list[str]:
    found: list[str] = page.evaluate(
        """() => [...document.querySelectorAll('input, select, textarea')]
            .filter((e) => e.type !== 'hidden' && !e.hidden && !e.closest('template'))
            .filter((e) => !(e.labels && e.labels.length) && !e.getAttribute('aria-label'))
            .map((e) => e.outerHTML)"""
    )
    return found


@pytest.mark.parametrize("name", list(PAGES))
def test_page(browser: Browser, site: Site, made: Made, watch: PageWatch, name: str) -> None:
    if name == "not-found":
        watch.expected.append("status of 404")
    with page_on(browser, site, watch) as page:
        if name != "login":
            sign_in(page, site.alice)
        page.goto(PAGES[name](made))
        expect(page.locator("main h1")).to_be_visible()
        if name == "job-image":
            image = page.get_by_role("img", name="plot.svg, a result of the job")
            assert wait_image(page, image) > 0
        screenshot(page, f"page-{name}")
        open_everything(page)
        assert axe_violations(page) == []
        assert unnamed_controls(page) == []
        assert unlabelled_inputs(page) == []
        # The same page on a small phone: no horizontal scrolling.
        page.set_viewport_size({"width": 375, "height": 740})
        page.evaluate("document.querySelectorAll('details').forEach((d) => { d.open = false; })")
        screenshot(page, f"page-{name}-375")
        open_everything(page)
        assert_fits(page)
        assert axe_violations(page) == []


@pytest.mark.parametrize("jobname", JOB_TYPES)
def test_every_field_is_labelled_with_its_name(alice_page: Page, jobname: str) -> None:
    page = alice_page
    definition = load_definition(EXAMPLES / f"{jobname}.yml")
    page.goto(f"/jobs/new/{jobname}")
    open_everything(page)
    files = set(definition.file_inputs())
    for param in definition.parameters:
        if param.name not in files:
            expect(field(page, param.name)).to_have_count(1)
            expect(field(page, param.name)).to_be_visible()
    for name in files:
        expect(page.get_by_label(f"{name}: file to upload")).to_be_visible()
        expect(page.get_by_role("group", name=re.compile(rf"^{name}"))).to_be_visible()
    for name in ("RUNID", "EXECUTIONDURATION", "DESTRUCTION"):
        expect(field(page, name)).to_be_visible()
    expect(page.get_by_role("button", name="Run", exact=True)).to_be_visible()
    expect(page.get_by_role("button", name="Save as pending")).to_be_visible()


def test_the_keyboard_reaches_run_and_submits(alice_page: Page) -> None:
    page = alice_page
    page.goto("/jobs/new/sleep")
    page.keyboard.press("Tab")
    skip = page.get_by_role("link", name="Skip to the content")
    expect(skip).to_be_focused()
    run = page.get_by_role("button", name="Run", exact=True)
    for _ in range(60):
        page.keyboard.press("Tab")
        if run.evaluate("button => button === document.activeElement"):
            break
    else:
        pytest.fail("Tab never reached the Run button")
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"/jobs/sleep/[\w-]+$"))
    expect(page.locator("[data-live-phase]")).to_have_text(re.compile("QUEUED|EXECUTING|COMPLETED"))


def test_screenshots_for_the_readme(
    browser: Browser, site: Site, made: Made, watch: PageWatch
) -> None:
    """Viewport screenshots (1280 px wide, and a phone's 375 px) for docs/screenshots."""
    with page_on(browser, site, watch, height=800) as page:
        sign_in(page, site.alice)
        for name, path in (("home", "/"), ("jobs", "/jobs"), ("new-job", "/jobs/new/plot")):
            page.goto(path)
            if name == "new-job":
                page.locator("summary", has_text="Show optional parameters").click()
            screenshot(page, f"readme-{name}", full_page=False)
    # The job page down to its image.
    with page_on(browser, site, watch, height=1400) as page:
        sign_in(page, site.alice)
        page.goto(f"/jobs/plot/{made.plot}")
        image = page.get_by_role("img", name="plot.svg, a result of the job")
        assert wait_image(page, image) > 0
        page.evaluate("window.scrollTo(0, 0)")
        screenshot(page, "readme-job-image", full_page=False)
    with page_on(browser, site, watch, width=375, height=740) as page:
        sign_in(page, site.alice)
        page.goto(f"/jobs/plot/{made.plot}")
        assert wait_image(page, page.get_by_role("img", name=re.compile("plot.svg"))) > 0
        page.evaluate("window.scrollTo(0, 0)")
        screenshot(page, "readme-small-screen", full_page=False)


def test_the_menus_work_with_the_keyboard(alice_page: Page) -> None:
    page = alice_page
    page.goto("/jobs")
    toggle = page.get_by_role("button", name="Job types")
    toggle.focus()
    page.keyboard.press("Enter")
    expect(toggle).to_have_attribute("aria-expanded", "true")
    first = page.locator("#navbar-menu .dropdown-menu").first.get_by_role("link").first
    expect(first).to_be_visible()
    page.keyboard.press("ArrowDown")
    expect(first).to_be_focused()
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"/jobs/new/\w+$"))


def test_the_pages_work_without_javascript(browser: Browser, site: Site, made: Made) -> None:
    """The forms post themselves and the menu is shown open (css/nojs.css)."""
    context = browser.new_context(
        base_url=site.url, java_script_enabled=False, viewport={"width": 375, "height": 740}
    )
    try:
        page = context.new_page()
        page.goto("/jobs")
        page.get_by_label("User name").fill("alice")
        page.get_by_label("Password or API token").fill(site.alice.password)
        page.get_by_role("button", name="Sign in").click()
        expect(page).to_have_url(re.compile(r"/jobs$"))
        # The menu's toggles are links to pages with what their menus hold.
        expect(page.get_by_role("button", name="Job types")).to_be_visible()
        expect(page.get_by_label("Select all jobs")).to_be_hidden()
        expect(page.get_by_role("link", name="calibration")).to_be_visible()
        assert_fits(page)
        screenshot(page, "page-jobs-nojs")
        page.get_by_role("link", name="calibration").click()
        expect(page.locator("[data-live-phase]")).to_have_text("COMPLETED")
        page.get_by_role("button", name="User menu of alice").click()
        expect(page).to_have_url(re.compile(r"/profile$"))
        page.locator("main").get_by_role("button", name="Sign out").click()
        expect(page).to_have_url(re.compile(r"/login$"))
    finally:
        context.close()
