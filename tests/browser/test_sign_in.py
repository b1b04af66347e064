"""Signing in and out: with the password and with the API token, a refusal shown on
the page that never tells whether the user exists, and the delay after too many
failures (refused at once, the right secret included, until it has passed)."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator

import pytest
import requests
from playwright.sync_api import Browser, Page, expect

from tests.browser.conftest import PageWatch, Site, page_on, running_site, screenshot, sign_in

# The failures of this module's wrong sign-ins stay under AUTH_FREE_FAILURES.
REFUSED = "invalid user name, password or token"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    with running_site(tmp_path_factory.mktemp("site"), AUTH_FREE_FAILURES="50") as started:
        yield started


def fill_sign_in(page: Page, name: str, secret: str) -> None:
    page.get_by_label("User name").fill(name)
    page.get_by_label("Password or API token").fill(secret)
    page.get_by_role("button", name="Sign in").click()


def test_password_sign_in_and_sign_out(page: Page, site: Site) -> None:
    page.goto("/jobs")
    # Without a session: the sign-in page, which comes back to the list.
    expect(page).to_have_url(re.compile(r"/login\?next=/jobs$"))
    screenshot(page, "login")
    fill_sign_in(page, "alice", site.alice.password)
    expect(page).to_have_url(re.compile(r"/jobs$"))
    expect(page.get_by_role("heading", name="Jobs", level=1)).to_be_visible()
    menu = page.get_by_role("button", name="User menu of alice")
    expect(menu).to_be_visible()
    menu.click()
    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(re.compile(r"/login$"))
    expect(page.get_by_text("User menu of alice")).to_have_count(0)
    # The session is over on the server too.
    page.goto("/profile")
    expect(page).to_have_url(re.compile(r"/login\?next=/profile$"))


def test_token_sign_in(page: Page, site: Site) -> None:
    sign_in(page, site.bob, site.bob.token)
    page.goto("/profile")
    expect(page.get_by_role("heading", name="bob", level=1)).to_be_visible()
    screenshot(page, "profile")


@pytest.mark.parametrize(
    ("name", "secret"),
    [("alice", "not her password"), ("nobody", "a password"), ("bob", "a wrong token")],
    ids=["wrong-password", "unknown-user", "wrong-token"],
)
def test_wrong_sign_in_is_shown_on_the_page(
    page: Page, watch: PageWatch, site: Site, name: str, secret: str
) -> None:
    # The refused POST is logged by the browser as a failed resource.
    watch.expected.append("401")
    page.goto("/login")
    page.evaluate("window.__marker = 1")
    fill_sign_in(page, name, secret)
    error = page.locator("#login-error")
    expect(error).to_be_visible()
    # The same words whether the user exists or not.
    expect(error).to_have_text(REFUSED)
    assert page.evaluate("window.__marker") == 1, "the refusal was not shown in place"
    expect(page).to_have_url(re.compile(r"/login$"))
    expect(page.get_by_label("Password or API token")).to_have_value("")
    expect(page.get_by_label("Password or API token")).to_be_focused()
    screenshot(page, f"login-refused-{name}")


def test_refusals_do_not_tell_who_exists(site: Site) -> None:
    answers = [
        requests.post(
            site.url + "/login",
            data={"username": name, "secret": "wrong"},
            allow_redirects=False,
            timeout=30,
        )
        for name in ("alice", "nobody")
    ]
    assert [a.status_code for a in answers] == [401, 401]
    assert answers[0].text == answers[1].text
    assert answers[0].headers.get("Content-Type") == answers[1].headers.get("Content-Type")


@pytest.fixture(scope="module")
def throttled_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """Two free failures, then 1, 2, 4 s refusals (at most AUTH_DELAY_MAX)."""
    with running_site(
        tmp_path_factory.mktemp("throttled"), AUTH_FREE_FAILURES="2", AUTH_DELAY_MAX="4"
    ) as started:
        yield started


@pytest.fixture
def throttled_page(browser: Browser, throttled_site: Site, watch: PageWatch) -> Iterator[Page]:
    with page_on(browser, throttled_site, watch) as opened:
        yield opened


def test_throttled_sign_in(throttled_page: Page, watch: PageWatch, throttled_site: Site) -> None:
    page = throttled_page
    watch.expected += ["401", "429"]
    alice = throttled_site.alice
    page.goto("/login")
    # Failures until one is refused for the longest delay (4 s): each waits out the
    # refusal of the one before, which answers 429 without counting.
    failures = 0
    while failures < 5:
        fill_sign_in(page, "alice", "wrong")
        error = page.locator("#login-error")
        expect(error).to_be_visible()
        if "too many" in error.inner_text():
            time.sleep(0.25)  # waiting out the refusal of the failure before
            continue
        expect(error).to_have_text(REFUSED)
        failures += 1
    refused_at = time.monotonic()
    # The right password now: refused, the secret not even checked.
    fill_sign_in(page, "alice", alice.password)
    expect(error).to_contain_text("too many failed authentications: try again later")
    match = re.search(r"try again later \(in (\d+) s\)$", error.inner_text())
    assert match, error.inner_text()
    delay = int(match.group(1))
    assert 1 <= delay <= 4
    screenshot(page, "login-throttled")
    # Still refused a little later, within the delay.
    if time.monotonic() - refused_at < 2.5:
        fill_sign_in(page, "alice", alice.password)
        expect(error).to_contain_text("too many failed authentications")
        assert time.monotonic() - refused_at < 4, "the check came too late to tell"
    # Once the delay has passed, the password works.
    time.sleep(max(0.0, 4.2 - (time.monotonic() - refused_at)))
    fill_sign_in(page, "alice", alice.password)
    expect(page).to_have_url(re.compile(r"/$"))
    expect(page.get_by_role("button", name="User menu of alice")).to_be_visible()


def test_new_credentials_from_the_profile(page: Page, watch: PageWatch, site: Site) -> None:
    """root's token and password (no other test of this module uses them)."""
    watch.expected.append("status of 400")
    root = site.admin
    page.on("dialog", lambda dialog: dialog.accept())
    sign_in(page, root)
    page.goto("/profile")
    page.get_by_role("button", name="Rotate API token").click()
    expect(page.get_by_role("heading", name="Your new API token")).to_be_visible()
    token = page.get_by_label("API token of root").input_value()
    assert token and token != root.token
    answers = [
        requests.get(site.url + "/rest", auth=("root", secret), timeout=30).status_code
        for secret in (root.token, token)
    ]
    assert answers == [401, 200]
    # The sessions ended with the old token.
    page.goto("/profile")
    expect(page).to_have_url(re.compile(r"/login\?next=/profile$"))
    fill_sign_in(page, "root", token)
    expect(page).to_have_url(re.compile(r"/profile$"))
    # A wrong current password is shown at its field.
    page.get_by_label("Current password").fill("not the password")
    page.get_by_label("New password", exact=True).fill("a new password")
    page.get_by_label("New password again").fill("a new password")
    page.get_by_role("button", name="Change password").click()
    expect(page.locator("#profile-current_password-error")).to_be_visible()
    expect(page.locator("#profile-current_password-error")).to_have_text(
        "this is not your current password"
    )
    page.get_by_label("Current password").fill(root.password)
    page.get_by_label("New password", exact=True).fill("a new password")
    page.get_by_label("New password again").fill("a new password")
    page.get_by_role("button", name="Change password").click()
    expect(page.get_by_role("heading", name="Password changed")).to_be_visible()
    page.get_by_role("link", name="Sign in").last.click()
    fill_sign_in(page, "root", "a new password")
    expect(page.get_by_role("button", name="User menu of root")).to_be_visible()
