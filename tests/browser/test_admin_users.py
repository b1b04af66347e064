"""The admin pages in a browser: an admin creates a user on /admin/users and manages
them end to end (the token shown once and copied, roles that limit the job types the
user sees, disabling, a new token, a password, deleting with a confirmation), finds
users; filters /admin/jobs by owner and aborts jobs in bulk; a user who is not an admin
gets 403 on every admin page and sees no Admin link; and the pages pass axe-core and
fit a 375 px screen."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
import requests
from playwright.sync_api import Browser, BrowserContext, Dialog, Page, expect

from tests.browser.conftest import (
    TIMEOUT_MS,
    Account,
    PageWatch,
    Site,
    page_on,
    running_site,
    screenshot,
    sign_in,
)
from tests.browser.support import XSS, Api, assert_fits, assert_no_xss, axe_violations
from tests.browser.test_accessibility import unlabelled_inputs, unnamed_controls

REFUSED = "invalid user name, password or token"
# The SCIM tree may not filter by "contains": the page's first search learns it from a
# 400, which the browser logs.
SEARCH_PROBE = "status of 400"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """Roles grant job types (CHECK_PERMISSIONS), so that they show on a home page."""
    with running_site(
        tmp_path_factory.mktemp("site"), CHECK_PERMISSIONS="true", AUTH_FREE_FAILURES="50"
    ) as started:
        yield started


@pytest.fixture
def root_page(page: Page, context: BrowserContext, site: Site) -> Page:
    """root, an admin, signed in; the page may use the clipboard."""
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=site.url)
    sign_in(page, site.admin)
    return page


def scim_status(site: Site, name: str) -> int:
    answer = requests.get(
        f"{site.url}/scim/v2/Users/{name}", auth=(site.admin.name, site.admin.token), timeout=30
    )
    return answer.status_code


def token_works(site: Site, name: str, token: str) -> bool:
    answer = requests.get(f"{site.url}/rest/sleep", auth=(name, token), timeout=30)
    assert answer.status_code in (200, 401), answer.text
    return answer.status_code == 200


def try_sign_in(page: Page, name: str, secret: str) -> None:
    page.goto("/login")
    page.get_by_label("User name").fill(name)
    page.get_by_label("Password or API token").fill(secret)
    page.get_by_role("button", name="Sign in").click()


def job_types_seen(browser: Browser, site: Site, watch: PageWatch, account: Account) -> set[str]:
    """The job types on the home page of ``account``, signed in in a browser of its own."""
    with page_on(browser, site, watch) as page:
        sign_in(page, account)
        expect(page.get_by_role("heading", name="Job types", level=1)).to_be_visible()
        names = page.locator("section.card h2").all_inner_texts()
    return {name.split()[0] for name in names}


def shown_token(page: Page) -> str:
    panel = page.locator("#token-panel")
    expect(panel).to_be_visible()
    value = page.get_by_label(re.compile("^API token of")).input_value()
    assert len(value) > 20
    return value


def test_an_admin_creates_and_manages_a_user(
    root_page: Page, browser: Browser, site: Site, watch: PageWatch
) -> None:
    page = root_page
    dialogs: list[str] = []
    answers = {"next": True}

    def answer(dialog: Dialog) -> None:
        dialogs.append(dialog.message)
        if answers["next"]:
            dialog.accept()
        else:
            dialog.dismiss()

    page.on("dialog", answer)
    page.get_by_role("link", name="Admin", exact=True).click()
    expect(page).to_have_url(re.compile(r"/admin$"))
    page.get_by_role("link", name="Users", exact=True).click()
    expect(page.get_by_role("heading", name="Users", level=1)).to_be_visible()

    # Create carol, who may run sleep jobs only.
    create = page.locator("#create-user")
    create.get_by_label("User name").fill("carol")
    create.get_by_label("Password (optional)").fill("carol's first password")
    create.get_by_role("checkbox", name=re.compile(r"^sleep ")).check()
    create.get_by_role("button", name="Create user").click()
    token = shown_token(page)
    expect(page.locator("[data-live-status]")).to_have_text("User carol created.")
    row = page.locator('tr[data-user="carol"]')
    expect(row.locator('[data-cell="roles"]')).to_have_text("sleep")
    expect(row.locator('[data-cell="status"]')).to_have_text("active")
    # Copied to the clipboard, then hidden: it is in the page no more.
    page.get_by_role("button", name="Copy token").click()
    expect(page.locator("#token-copy-status")).to_have_text("Copied to the clipboard.")
    assert page.evaluate("navigator.clipboard.readText()") == token
    screenshot(page, "admin-users-token")
    page.get_by_role("button", name="Done: hide the token").click()
    expect(page.locator("#token-panel")).to_be_hidden()
    assert token not in page.content()
    page.reload()
    assert token not in page.content()
    assert token_works(site, "carol", token)
    carol = Account("carol", "carol's first password", token)
    # Her roles are the job types of her home page.
    assert job_types_seen(browser, site, watch, carol) == {"sleep"}

    page.get_by_role("button", name="Manage carol").click()
    manage = page.locator("#manage-user")
    expect(manage.get_by_role("heading", name="Manage carol")).to_be_focused()
    roles = manage.get_by_role("group", name="Roles of carol")
    expect(roles.get_by_role("checkbox", name=re.compile(r"^sleep "))).to_be_checked()
    roles.get_by_role("checkbox", name=re.compile(r"^plot ")).check()
    manage.get_by_role("button", name="Save roles").click()
    expect(page.locator("[data-live-status]")).to_have_text("Roles of carol saved.")
    expect(row.locator('[data-cell="roles"]')).to_have_text("plot, sleep")
    assert job_types_seen(browser, site, watch, carol) == {"sleep", "plot"}

    # Disabled: her sign-in is refused, and her token too.
    manage.get_by_role("button", name="Disable carol").click()
    expect(row.locator('[data-cell="status"]')).to_have_text("disabled")
    expect(manage.get_by_role("button", name="Enable carol")).to_be_visible()
    assert not token_works(site, "carol", token)
    refused = PageWatch(expected=["401"])
    with page_on(browser, site, refused) as other:
        try_sign_in(other, "carol", carol.password)
        expect(other.locator("#login-error")).to_have_text(REFUSED)
    manage.get_by_role("button", name="Enable carol").click()
    expect(row.locator('[data-cell="status"]')).to_have_text("active")
    assert token_works(site, "carol", token)

    # A new token: asked first (dismissed: nothing changes), shown once; the old one dies.
    answers["next"] = False
    manage.get_by_role("button", name="New API token for carol").click()
    assert dialogs[-1].startswith("Replace the API token of carol?")
    expect(page.locator("#token-panel")).to_be_hidden()
    assert token_works(site, "carol", token)
    answers["next"] = True
    manage.get_by_role("button", name="New API token for carol").click()
    new_token = shown_token(page)
    assert new_token != token
    assert token_works(site, "carol", new_token)
    assert not token_works(site, "carol", token)
    page.get_by_role("button", name="Done: hide the token").click()

    # A new password: the old one is refused, the new one signs in.
    manage.get_by_label("New password for carol").fill("carol's second password")
    manage.get_by_role("button", name="Set password").click()
    expect(page.locator("[data-live-status]")).to_have_text(re.compile("^The password of carol"))
    with page_on(browser, site, refused) as other:
        try_sign_in(other, "carol", carol.password)
        expect(other.locator("#login-error")).to_have_text(REFUSED)
        try_sign_in(other, "carol", "carol's second password")
        expect(other).to_have_url(re.compile(r"/$"))
        expect(other.get_by_role("button", name="User menu of carol")).to_be_visible()

    # Deleted, after a confirmation (dismissed first: she stays).
    answers["next"] = False
    manage.get_by_role("button", name="Delete carol").click()
    assert dialogs[-1] == "Delete the user carol? Their jobs stay, for the admins."
    expect(row).to_be_visible()
    assert scim_status(site, "carol") == 200
    answers["next"] = True
    manage.get_by_role("button", name="Delete carol").click()
    expect(page.locator("[data-live-status]")).to_have_text("User carol deleted.")
    expect(row).to_have_count(0)
    expect(manage).to_be_hidden()
    assert scim_status(site, "carol") == 404
    assert not token_works(site, "carol", new_token)


def test_find_users_and_refusals_shown_as_text(
    root_page: Page, site: Site, watch: PageWatch
) -> None:
    page = root_page
    watch.expected.append(SEARCH_PROBE)
    page.goto("/admin/users")
    expect(page.locator("tbody tr[data-user]")).to_have_count(3)
    page.get_by_label("Name contains").fill("O")
    page.get_by_role("button", name="Search").click()
    expect(page.locator("[data-live-status]")).to_have_text(
        re.compile("^2 users whose name contains")
    )
    assert page.locator("tbody tr[data-user]").evaluate_all(
        "rows => rows.map((r) => r.dataset.user)"
    ) == ["bob", "root"]
    expect(page).to_have_url(re.compile(r"/admin/users\?q=O$"))
    page.get_by_label("Name contains").fill("nobody")
    page.get_by_role("button", name="Search").click()
    expect(page.get_by_text("No users match.")).to_be_visible()
    # What SCIM refuses is said on the page, as text.
    watch.expected.append("status of 400")
    create = page.locator("#create-user")
    name_field = create.get_by_label("User name")
    # Past the form's own check, to SCIM's.
    name_field.evaluate("(input) => { input.removeAttribute('pattern'); }")
    for name in XSS:
        name_field.fill(name)
        create.get_by_role("button", name="Create user").click()
        expect(page.get_by_role("alert")).to_contain_text("user name")
        assert_no_xss(page)
    # The same name twice: 409 from SCIM, said on the page.
    watch.expected.append("status of 409")
    create.get_by_label("User name").fill("alice")
    create.get_by_role("button", name="Create user").click()
    expect(page.get_by_role("alert")).to_have_text("user 'alice' already exists")


def test_all_jobs_by_owner_and_bulk_abort(root_page: Page, site: Site) -> None:
    page = root_page
    alice, bob = Api(site, site.alice), Api(site, site.bob)
    alices = [alice.create("sleep", {"RUNID": f"alice-{i}"}, run=False) for i in range(2)]
    bobs = [bob.create("sleep", {"RUNID": f"bob-{i}"}, run=False) for i in range(3)]
    page.goto("/admin")
    page.get_by_role("link", name="All jobs").click()
    for job_id in (*alices, *bobs):
        expect(page.locator(f'tr[data-job="sleep/{job_id}"]')).to_be_visible()
    page.get_by_label("Owner").fill("bob")
    page.get_by_role("button", name="Filter").click()
    expect(page.get_by_role("heading", name="Jobs of bob", level=1)).to_be_visible()
    rows = page.locator("tbody tr[data-job]")
    owners = rows.evaluate_all("rows => rows.map((r) => r.dataset.owner)")
    assert owners and set(owners) == {"bob"}
    for job_id in alices:
        expect(page.locator(f'tr[data-job="sleep/{job_id}"]')).to_have_count(0)
    for run_id in ("bob-0", "bob-2"):
        page.get_by_label(f"Select job {run_id} of bob", exact=True).check()
    page.get_by_role("button", name="Abort selected").click()
    expect(page).to_have_url(re.compile(r"/admin/jobs\?owner=bob"))
    for job_id in (bobs[0], bobs[2]):
        phase = page.locator(f'tr[data-job="sleep/{job_id}"] [data-cell="phase"]')
        expect(phase).to_have_text("ABORTED")
    assert bob.job("sleep", bobs[0])["phase"] == "ABORTED"
    assert bob.job("sleep", bobs[1])["phase"] == "PENDING"
    assert all(alice.job("sleep", job_id)["phase"] == "PENDING" for job_id in alices)
    screenshot(page, "admin-jobs-owner")


def test_the_admin_pages_are_not_for_others(page: Page, site: Site, watch: PageWatch) -> None:
    watch.expected.append("status of 403")
    sign_in(page, site.alice)
    expect(page.get_by_role("link", name="Jobs", exact=True)).to_be_visible()
    expect(page.get_by_role("link", name="Admin", exact=True)).to_have_count(0)
    for path in ("/admin", "/admin/users", "/admin/jobs", "/admin/status"):
        answer = page.goto(path)
        assert answer is not None and answer.status == 403, path
        expect(page.get_by_role("heading", name="403 Forbidden")).to_be_visible()
        expect(page.get_by_role("alert")).to_have_text("the admin pages are for admins only")
        expect(page.get_by_role("link", name="Admin", exact=True)).to_have_count(0)


@pytest.mark.parametrize("path", ["/admin", "/admin/users", "/admin/jobs", "/admin/status"])
def test_accessible_and_small_screens(
    browser: Browser, site: Site, watch: PageWatch, path: str
) -> None:
    Api(site, site.alice).create("sleep", {"RUNID": "listed"}, run=False)
    with page_on(browser, site, watch) as page:
        page.set_default_timeout(TIMEOUT_MS)
        sign_in(page, site.admin)
        page.goto(path)
        expect(page.locator("main h1")).to_be_visible()
        if path == "/admin/users":
            # Every part of the page shown: the manage panel and a token panel.
            page.get_by_role("button", name="Manage alice").click()
            expect(page.get_by_role("heading", name="Manage alice")).to_be_visible()
            page.evaluate("document.getElementById('token-panel').hidden = false")
        name = path.strip("/").replace("/", "-")
        screenshot(page, f"page-{name}")
        assert axe_violations(page) == []
        assert unnamed_controls(page) == []
        assert unlabelled_inputs(page) == []
        page.set_viewport_size({"width": 375, "height": 740})
        screenshot(page, f"page-{name}-375")
        assert_fits(page)
        assert axe_violations(page) == []
