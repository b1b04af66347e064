"""Signing in with an OpenID Connect provider in a browser: the "Sign in with …" button
of the login page, the provider (tests/oidc_provider.py, whose user signs in without
being asked), and back to the page asked for, signed in; a user OPUS refuses sees why
on the login page.

The provider is reached as ``localhost`` and OPUS as ``127.0.0.1``: two sites to the
browser, as a real provider is, so that the SameSite=Strict session cookie meets the
cross-site return it must survive (routes/oidc.py)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import pytest
from playwright.sync_api import Page, expect

from opus.server.oidcprovider import REASONS
from tests.browser.conftest import Site, running_site, screenshot
from tests.browser.support import assert_fits, axe_violations
from tests.oidc_provider import Provider


@pytest.fixture(scope="module")
def provider() -> Iterator[Provider]:
    with Provider(host="localhost", sign_in_page=True).running() as running:
        yield running


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, provider: Provider) -> Iterator[Site]:
    # alice exists already (made by the site): her account links to her at its first
    # sign-in (docs/oidc.md, link_existing).
    entries = json.dumps([provider.setting("test", link_existing=True)])
    with running_site(tmp_path_factory.mktemp("site"), OIDC_PROVIDERS=entries) as started:
        provider.client.redirect_uris = [f"{started.url}/login/oidc/test/callback"]
        yield started


@pytest.fixture(autouse=True)
def fresh_provider(provider: Provider) -> None:
    provider.reset()


def test_sign_in_with_the_provider(page: Page, site: Site, provider: Provider) -> None:
    provider.user_name = "alice"
    page.goto("/jobs")
    expect(page).to_have_url(re.compile(r"/login\?next=/jobs$"))
    button = page.get_by_role("link", name="Sign in with Test Provider")
    expect(button).to_be_visible()
    screenshot(page, "login-with-provider")
    button.click()
    # Through the provider and back: the job list, signed in as alice.
    expect(page).to_have_url(f"{site.url}/jobs")
    expect(page.get_by_role("heading", name="Jobs", level=1)).to_be_visible()
    expect(page.get_by_role("button", name="User menu of alice")).to_be_visible()
    assert provider.granted[-1].code_challenge_method == "S256"
    page.goto("/")
    expect(page.get_by_role("button", name="User menu of alice")).to_be_visible()


def test_a_refused_user_sees_why(page: Page, site: Site, provider: Provider) -> None:
    provider.user_name = "mallory"  # no such user, and this provider makes none
    provider.extra_claims = {"sub": "mallory-account"}  # not alice's account
    page.goto("/login")
    page.get_by_role("link", name="Sign in with Test Provider").click()
    expect(page).to_have_url(re.compile(r"/login\?oidc_error=unknown$"))
    expect(page.get_by_role("alert")).to_have_text(REASONS["unknown"])
    expect(page.get_by_text("User menu of")).to_have_count(0)
    screenshot(page, "login-provider-refused")
    # The page with its buttons and the reason is as usable as the others.
    assert axe_violations(page) == []
    page.set_viewport_size({"width": 375, "height": 740})
    assert_fits(page)
    # Nobody is signed in: the profile asks to sign in.
    page.goto("/profile")
    expect(page).to_have_url(re.compile(r"/login\?next=/profile$"))


@pytest.mark.parametrize(
    ("knob", "reason"),
    [("expired", "token"), ("foreign_key", "token")],
    ids=["expired-id-token", "signed-with-a-key-not-in-the-jwks"],
)
def test_an_id_token_that_does_not_verify_signs_nobody_in(
    page: Page, site: Site, provider: Provider, knob: str, reason: str
) -> None:
    provider.user_name = "alice"
    setattr(provider, knob, True)
    page.goto("/login?next=/jobs")
    page.get_by_role("link", name="Sign in with Test Provider").click()
    expect(page).to_have_url(re.compile(rf"/login\?oidc_error={reason}&next=%2Fjobs$"))
    expect(page.get_by_role("alert")).to_have_text(REASONS[reason])
    expect(page.get_by_text("User menu of")).to_have_count(0)
    page.goto("/jobs")
    expect(page).to_have_url(re.compile(r"/login\?next=/jobs$"))


def test_an_answer_with_another_state_signs_nobody_in(
    page: Page, site: Site, provider: Provider
) -> None:
    provider.user_name = "alice"

    # The answer reaches OPUS with a state that is not this attempt's (a forged or
    # replayed link): the browser's request to the provider, after its sign-in page,
    # carries another state, which the provider sends back.
    signed_in = re.compile(r".*/authorize\?.*signed_in=yes.*")

    def forge(route) -> None:  # type: ignore[no-untyped-def]
        url = re.sub(r"state=[^&]+", "state=somebody-elses", route.request.url)
        route.continue_(url=url)

    page.route(signed_in, forge)
    page.goto("/login")
    page.get_by_role("link", name="Sign in with Test Provider").click()
    expect(page).to_have_url(re.compile(r"/login\?oidc_error=state"))
    expect(page.get_by_role("alert")).to_have_text(REASONS["state"])
    page.unroute(signed_in)
    page.goto("/profile")
    expect(page).to_have_url(re.compile(r"/login\?next=/profile$"))
