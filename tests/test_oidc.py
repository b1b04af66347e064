"""Signing in with OpenID Connect, end to end against a real provider on loopback
(tests/oidc_provider.py): OPUS in process (webtest), the provider over HTTP, the
browser's part (following the redirects, carrying the cookies) played by the test.

A sign-in that works ends in an ordinary session; every refusal (a wrong or missing
state, an ID token expired, badly signed or for someone else, a provider that says
no or cannot be reached, an unknown or disabled user, a user of the claimed name that
the provider's account is not linked to) lands on the login page with its reason, and
makes no session. The user is the one the account (the ID token's ``sub``) is linked
to: the name claim only chooses the user of an account not linked yet."""

from __future__ import annotations

import base64
import http.cookiejar
import os
import re
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import webtest

from opus.core.times import utcnow
from opus.server.app import build_service, create_app
from opus.server.auth import UserManager
from opus.server.oidc import (
    ATTEMPT_COOKIE,
    ATTEMPT_KEY_FILE,
    ATTEMPT_LIFETIME,
    AttemptSeal,
    attempt_key,
)
from opus.server.oidcprovider import (
    REASONS,
    RETRY_INTERVAL,
    Attempt,
    ProviderClient,
    SignInFailed,
)
from opus.server.sessions import SESSION_COOKIE
from opus.server.storage import UserStore
from opus.server.storage.identities import Identity, IdentityStore
from opus.settings import oidc_providers as make_provider_settings
from tests.conftest import free_port, make_settings
from tests.oidc_provider import SUBJECT, Provider

PASSWORD = "the password of carol"


@pytest.fixture(scope="module")
def provider() -> Iterator[Provider]:
    with Provider().running() as running:
        yield running


def no_cookies() -> http.cookiejar.CookieJar:
    """A cookie jar that keeps nothing: each request carries the cookies it means to."""
    return http.cookiejar.CookieJar(http.cookiejar.DefaultCookiePolicy(allowed_domains=[]))


def set_cookies(response: webtest.TestResponse) -> dict[str, str]:
    """Name → the whole Set-Cookie value, of each cookie an answer sets."""
    return {
        value.split("=", 1)[0]: value
        for name, value in response.headerlist
        if name.lower() == "set-cookie"
    }


def cookie_value(set_cookie: str) -> str:
    return set_cookie.split(";", 1)[0].split("=", 1)[1]


class Site:
    """An in-process OPUS whose OIDC_PROVIDERS is the test provider (``test``, or
    the entries given), with carol (a password, the role sleep), whom the provider's
    account SUBJECT signs in as at each provider unless ``link_carol`` is False."""

    def __init__(
        self,
        tmp_path: Path,
        provider: Provider,
        *entries: dict[str, Any],
        link_carol: bool = True,
        **settings: Any,
    ) -> None:
        self.provider = provider
        provider.reset()
        self.settings = make_settings(
            tmp_path,
            ALLOW_ANONYMOUS=False,
            OIDC_PROVIDERS=list(entries) or [provider.setting()],
            **settings,
        )
        names = [entry.name for entry in self.settings.OIDC_PROVIDERS]
        provider.client.redirect_uris = [
            f"{self.settings.BASE_URL}/login/oidc/{name}/callback" for name in names
        ]
        service = build_service(self.settings)
        self.app = webtest.TestApp(create_app(self.settings, service), cookiejar=no_cookies())
        self.users = UserManager(UserStore(service.store.engine))
        self.users.add("carol", ["sleep"], PASSWORD)
        self.identities = IdentityStore(service.store.engine)
        for name in names if link_carol else []:
            assert self.identities.link(Identity(name, SUBJECT, "carol", utcnow()))

    def linked(self, name: str) -> list[tuple[str, str]]:
        """The (provider, subject) of the accounts that sign in as ``name``."""
        return [(i.provider, i.subject) for i in self.identities.of_user(name)]

    def start(self, name: str = "test", next_path: str | None = None) -> tuple[str, str]:
        """Begin a sign-in: the provider's authorization URL and the attempt cookie."""
        query = f"?next={next_path}" if next_path else ""
        answer = self.app.get(f"/login/oidc/{name}{query}", status=303)
        assert answer.headers["Cache-Control"] == "no-store"
        cookie = set_cookies(answer)[ATTEMPT_COOKIE]
        return answer.headers["Location"], cookie_value(cookie)

    def at_provider(self, authorization_url: str) -> str:
        """What the provider sends the browser back to (the callback's path and query)."""
        answer = requests.get(authorization_url, allow_redirects=False, timeout=30)
        assert answer.status_code in (302, 303), answer.text
        location = urlsplit(answer.headers["Location"])
        assert f"{location.scheme}://{location.netloc}" == self.settings.BASE_URL
        return f"{location.path}?{location.query}"

    def callback(
        self,
        target: str,
        attempt: str | None,
        status: int | str = 200,
        session: str | None = None,
    ) -> webtest.TestResponse:
        """The callback's answer to ``target``, with the cookies of an attempt and of
        a session if given."""
        cookies = [f"{SESSION_COOKIE}={session}"] if session else []
        cookies += [f"{ATTEMPT_COOKIE}={attempt}"] if attempt is not None else []
        headers = {"Cookie": "; ".join(cookies)} if cookies else {}
        return self.app.get(
            target, headers=headers, extra_environ={"REMOTE_ADDR": "10.1.2.3"}, status=status
        )

    def sign_in(self, name: str = "test", next_path: str | None = None) -> webtest.TestResponse:
        """A whole sign-in: the callback's answer (whatever its status)."""
        url, attempt = self.start(name, next_path)
        return self.callback(self.at_provider(url), attempt, status="*")

    def who(self, session: str) -> dict[str, Any]:
        about: dict[str, Any] = self.app.get(
            "/session", headers={"Cookie": f"{SESSION_COOKIE}={session}"}
        ).json
        return about


def refused_with(answer: webtest.TestResponse, reason: str, next_path: str = "") -> None:
    """The answer is the login page's address with ``reason``, and signs nobody in."""
    assert answer.status_int == 303, answer.text
    expected = f"/login?oidc_error={reason}" + (f"&next={next_path}" if next_path else "")
    assert answer.headers["Location"].endswith(expected), answer.headers["Location"]
    cookies = set_cookies(answer)
    assert SESSION_COOKIE not in cookies
    assert "Max-Age=0" in cookies[ATTEMPT_COOKIE]


@pytest.fixture
def site(tmp_path: Path, provider: Provider) -> Site:
    return Site(tmp_path, provider)


def test_sign_in_makes_an_ordinary_session(site: Site, provider: Provider) -> None:
    url, attempt = site.start(next_path="/jobs")
    asked = parse_qs(urlsplit(url).query)
    assert url.startswith(f"{provider.issuer}/authorize?")
    assert asked["response_type"] == ["code"]
    assert asked["code_challenge_method"] == ["S256"]
    assert asked["redirect_uri"] == [f"{site.settings.BASE_URL}/login/oidc/test/callback"]
    assert set(asked["scope"][0].split()) == {"openid", "profile", "email"}
    # The attempt cookie: sealed (nothing of the attempt readable), Lax, for the callback.
    assert asked["state"][0] not in attempt and asked["nonce"][0] not in attempt
    start_cookie = set_cookies(site.app.get("/login/oidc/test", status=303))[ATTEMPT_COOKIE]
    assert "SameSite=Lax" in start_cookie and "HttpOnly" in start_cookie
    assert "Path=/login/oidc/" in start_cookie
    assert f"Max-Age={ATTEMPT_LIFETIME}" in start_cookie

    answer = site.callback(site.at_provider(url), attempt)
    granted = provider.granted[-1]
    assert granted.nonce == asked["nonce"][0]
    assert granted.code_challenge == asked["code_challenge"][0]
    # The page goes on to next itself (see routes/oidc.py), escaped, and says who.
    assert '<meta http-equiv="refresh" content="0; url=/jobs">' in answer.text
    assert "signed in as carol" in answer.text
    assert answer.headers["Referrer-Policy"] == "no-referrer"
    assert "default-src 'none'" in answer.headers["Content-Security-Policy"]
    cookies = set_cookies(answer)
    assert "Max-Age=0" in cookies[ATTEMPT_COOKIE]
    session = cookies[SESSION_COOKIE]
    assert "SameSite=Strict" in session and "HttpOnly" in session
    about = site.who(cookie_value(session))
    assert about["user_name"] == "carol"
    assert about["roles"] == ["sleep"]
    # The session is one like any other: the job list, then signing out ends it.
    headers = {"Cookie": f"{SESSION_COOKIE}={cookie_value(session)}"}
    site.app.get("/rest/sleep", headers=headers, status=200)
    out = site.app.post(
        "/logout",
        {"csrf_token": about["csrf_token"]},
        headers={**headers, "Origin": site.settings.BASE_URL},
        status=303,
    )
    assert out.headers["Location"].endswith("/login")
    site.app.get("/session", headers=headers, status=401)


def test_a_new_sign_in_ends_the_earlier_session(site: Site) -> None:
    first = cookie_value(set_cookies(site.sign_in())[SESSION_COOKIE])
    url, attempt = site.start()
    earlier = {"Cookie": f"{SESSION_COOKIE}={first}"}
    answer = site.callback(site.at_provider(url), attempt, session=first)
    second = cookie_value(set_cookies(answer)[SESSION_COOKIE])
    assert second != first
    site.app.get("/session", headers=earlier, status=401)
    assert site.who(second)["user_name"] == "carol"


def test_a_wrong_state_is_refused_before_the_code_is_used(site: Site, provider: Provider) -> None:
    url, attempt = site.start(next_path="/jobs")
    target = site.at_provider(url)
    before = provider.token_requests
    forged = re.sub(r"state=[^&]+", "state=somebody-elses", target)
    refused_with(site.callback(forged, attempt, status=303), "state", "%2Fjobs")
    without = re.sub(r"&?state=[^&]+", "", target)
    refused_with(site.callback(without, attempt, status=303), "state", "%2Fjobs")
    repeated = target + "&state=x"
    refused_with(site.callback(repeated, attempt, status=303), "state", "%2Fjobs")
    assert provider.token_requests == before


def test_an_answer_without_its_attempt_is_refused(site: Site, provider: Provider) -> None:
    url, attempt = site.start()
    target = site.at_provider(url)
    refused_with(site.callback(target, None, status=303), "expired")
    # A cookie that is not one of this server's seals (changed, or of another key).
    changed = attempt[:-4] + ("AAAA" if not attempt.endswith("AAAA") else "BBBB")
    refused_with(site.callback(target, changed, status=303), "expired")
    other = AttemptSeal(b"\x01" * 32).seal(Attempt("test", "s", "n", "v" * 43, "/"))
    refused_with(site.callback(target, other, status=303), "expired")
    # An attempt that has ended (sealed with a clock ten minutes and more behind).
    seal = AttemptSeal(attempt_key(site.settings.VAR_PATH), clock=lambda: 1_000_000.0)
    state = parse_qs(urlsplit(target).query)["state"][0]
    ended = seal.seal(Attempt("test", state, "n", "v" * 43, "/"))
    refused_with(site.callback(target, ended, status=303), "expired")
    # It was still good: the code works with its own attempt.
    assert SESSION_COOKIE in set_cookies(site.callback(target, attempt))


def test_a_code_works_once(site: Site) -> None:
    url, attempt = site.start()
    target = site.at_provider(url)
    assert SESSION_COOKIE in set_cookies(site.callback(target, attempt))
    # The same answer again (the cookie kept by whoever copied it): the code is spent.
    refused_with(site.callback(target, attempt, status=303), "provider")


def test_an_attempt_at_another_provider_is_refused(tmp_path: Path, provider: Provider) -> None:
    site = Site(tmp_path, provider, provider.setting("test"), provider.setting("other"))
    url, attempt = site.start("other")
    target = site.at_provider(url).replace("/login/oidc/other/", "/login/oidc/test/")
    refused_with(site.callback(target, attempt, status=303), "state")


def test_an_expired_id_token_is_refused(site: Site, provider: Provider) -> None:
    provider.expired = True
    refused_with(site.sign_in(), "token")


def test_an_id_token_signed_with_a_key_not_in_the_jwks_is_refused(
    site: Site, provider: Provider
) -> None:
    provider.foreign_key = True
    refused_with(site.sign_in(), "token")
    provider.foreign_key = False
    assert SESSION_COOKIE in set_cookies(site.sign_in())


@pytest.mark.parametrize(
    "claims",
    [
        {"aud": ["another-client"]},
        {"iss": "http://127.0.0.1:1"},
        {"nonce": "not-the-attempts"},
        {"exp": "tomorrow"},
    ],
    ids=["audience", "issuer", "nonce", "exp"],
)
def test_an_id_token_for_someone_else_is_refused(
    site: Site, provider: Provider, claims: dict[str, Any]
) -> None:
    provider.extra_claims = claims
    refused_with(site.sign_in(), "token")


@pytest.mark.parametrize("id_token", ["not.a.jwt", "e30.e30.e30", 12345, ""])
def test_a_malformed_id_token_is_refused(site: Site, provider: Provider, id_token: Any) -> None:
    provider.id_token = id_token
    refused_with(site.sign_in(), "token")


def test_a_refusal_at_the_provider_is_said(site: Site, provider: Provider) -> None:
    provider.deny = True
    before = provider.token_requests
    refused_with(site.sign_in(next_path="/jobs"), "denied", "%2Fjobs")
    assert provider.token_requests == before


def test_an_unknown_user_is_refused_by_default(tmp_path: Path, provider: Provider) -> None:
    site = Site(tmp_path, provider, link_carol=False)
    provider.user_name = "dave"
    refused_with(site.sign_in(), "unknown")
    assert site.users.get("dave") is None
    assert site.identities.user_of("test", SUBJECT) is None


def test_an_unknown_user_is_created_with_the_default_roles(
    tmp_path: Path, provider: Provider
) -> None:
    entry = provider.setting(unknown_users="create", default_roles=["sleep", "plot"])
    site = Site(tmp_path, provider, entry, link_carol=False)
    provider.user_name = "dave"
    before = utcnow()
    answer = site.sign_in()
    about = site.who(cookie_value(set_cookies(answer)[SESSION_COOKIE]))
    assert about["user_name"] == "dave"
    assert about["roles"] == ["sleep", "plot"]
    dave = site.users.get("dave")
    assert dave is not None and dave.active and dave.password_hash is None
    assert dave.roles == ("sleep", "plot")
    # The account that made dave is linked to dave, from then on.
    (identity,) = site.identities.of_user("dave")
    assert (identity.provider, identity.subject, identity.user_name) == ("test", SUBJECT, "dave")
    assert before <= identity.created <= utcnow()
    # The next time, dave is the user made then (no second one, the same roles).
    site.users.set_roles("dave", ["sleep"])
    again = site.who(cookie_value(set_cookies(site.sign_in())[SESSION_COOKIE]))
    assert again["roles"] == ["sleep"]
    assert site.linked("dave") == [("test", SUBJECT)]


def test_a_disabled_user_is_refused(tmp_path: Path, provider: Provider) -> None:
    site = Site(tmp_path, provider, provider.setting(unknown_users="create"))
    site.users.set_active("carol", False)
    refused_with(site.sign_in(), "disabled")


def signed_in_as(site: Site, answer: webtest.TestResponse) -> str:
    """The user a sign-in's answer made a session for."""
    assert answer.status_int == 200, answer.headers.get("Location")
    name: str = site.who(cookie_value(set_cookies(answer)[SESSION_COOKIE]))["user_name"]
    return name


def test_the_account_stays_its_user_when_its_name_changes(
    tmp_path: Path, provider: Provider
) -> None:
    site = Site(tmp_path, provider, provider.setting(unknown_users="create"), link_carol=False)
    provider.user_name = "dave"
    assert signed_in_as(site, site.sign_in()) == "dave"
    # The provider now calls the same account (the same sub) by another name, or none.
    provider.user_name = "david"
    assert signed_in_as(site, site.sign_in()) == "dave"
    provider.user_name = None
    assert signed_in_as(site, site.sign_in()) == "dave"
    # Even the name of another user: the link wins, the name only made the user.
    provider.user_name = "carol"
    assert signed_in_as(site, site.sign_in()) == "dave"
    assert [user.name for user in site.users.all()] == ["carol", "dave"]
    assert site.linked("dave") == [("test", SUBJECT)] and site.linked("carol") == []


def test_an_existing_user_is_not_taken_by_an_account_by_default(
    tmp_path: Path, provider: Provider
) -> None:
    site = Site(tmp_path, provider, provider.setting(unknown_users="create"), link_carol=False)
    site.users.add("root", ["admin"])
    for name in ("carol", "root"):
        provider.user_name = name
        refused_with(site.sign_in(), "taken")
        assert site.linked(name) == []
    assert site.identities.user_of("test", SUBJECT) is None
    # Once linked (here, by the store), the account signs in as that user.
    assert site.identities.link(Identity("test", SUBJECT, "carol", utcnow()))
    assert signed_in_as(site, site.sign_in()) == "carol"


def test_link_existing_links_a_user_of_the_name_at_its_first_sign_in(
    tmp_path: Path, provider: Provider
) -> None:
    entries = (provider.setting("test", link_existing=True), provider.setting("other"))
    site = Site(tmp_path, provider, *entries, link_carol=False)
    assert signed_in_as(site, site.sign_in()) == "carol"
    assert site.linked("carol") == [("test", SUBJECT)]
    provider.user_name = "carol-renamed"
    assert signed_in_as(site, site.sign_in()) == "carol"
    # Links are per provider: the same sub at another provider is another account.
    provider.user_name = "carol"
    refused_with(site.sign_in("other"), "taken")
    assert site.linked("carol") == [("test", SUBJECT)]
    # A user of the name that is not there is not made: unknown_users still decides.
    provider.extra_claims = {"sub": "someone-new"}
    provider.user_name = "frank"
    refused_with(site.sign_in(), "unknown")
    assert site.users.get("frank") is None


def test_link_existing_links_no_disabled_user(tmp_path: Path, provider: Provider) -> None:
    site = Site(tmp_path, provider, provider.setting(link_existing=True), link_carol=False)
    site.users.set_active("carol", False)
    refused_with(site.sign_in(), "disabled")
    assert site.linked("carol") == []
    site.users.set_active("carol", True)
    assert signed_in_as(site, site.sign_in()) == "carol"


@pytest.mark.parametrize("link_existing", [False, True])
def test_another_account_claiming_a_linked_users_name_is_refused(
    tmp_path: Path, provider: Provider, link_existing: bool
) -> None:
    entry = provider.setting(unknown_users="create", link_existing=link_existing)
    site = Site(tmp_path, provider, entry)  # carol is the account SUBJECT's
    provider.extra_claims = {"sub": "an-intruder", "preferred_username": "carol"}
    refused_with(site.sign_in(), "linked")
    assert site.identities.user_of("test", "an-intruder") is None
    assert site.linked("carol") == [("test", SUBJECT)]
    # carol's own account still signs in as carol.
    provider.extra_claims = {}
    assert signed_in_as(site, site.sign_in()) == "carol"


@pytest.mark.parametrize(
    "subject",
    ["s" * 256, "line\nbreak", "caf\u00e9", 12345],
    ids=["long", "control", "not-ascii", "number"],
)
def test_a_subject_that_is_not_one_is_refused(
    tmp_path: Path, provider: Provider, subject: Any, caplog: pytest.LogCaptureFixture
) -> None:
    site = Site(tmp_path, provider, provider.setting(unknown_users="create"), link_carol=False)
    provider.extra_claims = {"sub": subject, "preferred_username": "dave"}
    with caplog.at_level("INFO", logger="opus.auth"):
        refused_with(site.sign_in(), "token")
    # OPUS's check, or joserfc's for a sub that is not even a string.
    assert re.search(r"refused: (claim sub is|.*Claim 'sub')", caplog.text)
    assert site.users.get("dave") is None
    # At most 255 characters (OpenID Connect Core, section 2): 255 are one.
    provider.extra_claims = {"sub": "s" * 255, "preferred_username": "dave"}
    assert signed_in_as(site, site.sign_in()) == "dave"


def test_the_links_go_with_their_user(
    tmp_path: Path, provider: Provider, database_url: str
) -> None:
    entries = (provider.setting("test", unknown_users="create"), provider.setting("other"))
    site = Site(tmp_path, provider, *entries, DATABASE_URL=database_url)
    assert site.linked("carol") == [("other", SUBJECT), ("test", SUBJECT)]
    # `opus user delete` (UserManager.delete): the user's links are gone with it.
    site.users.delete("carol")
    assert site.linked("carol") == []
    assert site.identities.user_of("test", SUBJECT) is None
    # A later carol is not the earlier one's account: it is refused, not signed in.
    site.users.add("carol", [])
    refused_with(site.sign_in(), "taken")
    # The SCIM deletion too (an admin's DELETE): the account made dave, then dave goes.
    token = site.users.add("root", ["admin"])[1]
    provider.extra_claims = {"sub": "dave-account", "preferred_username": "dave"}
    assert signed_in_as(site, site.sign_in()) == "dave"
    assert site.linked("dave") == [("test", "dave-account")]
    basic = base64.b64encode(f"root:{token}".encode()).decode()
    site.app.delete("/scim/v2/Users/dave", headers={"Authorization": f"Basic {basic}"}, status=204)
    assert site.users.get("dave") is None and site.linked("dave") == []
    # The account signs in again as a new dave (unknown_users = "create"), linked anew.
    assert signed_in_as(site, site.sign_in()) == "dave"
    assert site.linked("dave") == [("test", "dave-account")]


def test_the_store_keeps_one_account_per_user_and_provider(
    tmp_path: Path, provider: Provider, database_url: str
) -> None:
    site = Site(tmp_path, provider, DATABASE_URL=database_url)
    store, now = site.identities, utcnow()
    # carol has the account SUBJECT of "test": not a second one, nor SUBJECT for another.
    assert not store.link(Identity("test", "second", "carol", now))
    site.users.add("dave", [])
    assert not store.link(Identity("test", SUBJECT, "dave", now))
    assert store.link(Identity("elsewhere", SUBJECT, "dave", now))
    # No link for a user who does not exist, nor for keys no row can hold.
    assert not store.link(Identity("test", "third", "nobody", now))
    assert not store.link(Identity("test", "nul\x00", "dave", now))
    assert store.user_of("test", "nul\x00") is None and store.subject_of("test", "a\x00") is None
    assert store.of_user("a\x00") == []
    assert store.user_of("test", SUBJECT) == "carol"
    assert store.user_of("elsewhere", SUBJECT) == "dave"
    assert store.subject_of("test", "carol") == SUBJECT and store.subject_of("test", "dave") is None


@pytest.mark.parametrize("name", [None, "", "no spaces please", "anonymous", 42])
def test_a_user_name_opus_cannot_have_is_refused(
    tmp_path: Path, provider: Provider, name: Any
) -> None:
    site = Site(tmp_path, provider, provider.setting(unknown_users="create"), link_carol=False)
    provider.user_name = None
    if name is not None:
        provider.extra_claims = {"preferred_username": name}
    refused_with(site.sign_in(), "name")
    assert [user.name for user in site.users.all()] == ["carol"]
    assert site.identities.user_of("test", SUBJECT) is None


def test_the_user_name_claim_is_the_providers_setting(tmp_path: Path, provider: Provider) -> None:
    entry = provider.setting(username_claim="email", unknown_users="create")
    site = Site(tmp_path, provider, entry, link_carol=False)
    provider.extra_claims = {"email": "erin"}
    provider.user_name = "somebody-else"
    answer = site.sign_in()
    assert site.who(cookie_value(set_cookies(answer)[SESSION_COOKIE]))["user_name"] == "erin"
    assert site.users.get("somebody-else") is None
    assert site.linked("erin") == [("test", SUBJECT)]


def test_a_provider_that_cannot_be_reached_is_said(tmp_path: Path, provider: Provider) -> None:
    gone = f"http://127.0.0.1:{free_port()}/.well-known/openid-configuration"
    site = Site(tmp_path, provider, provider.setting(discovery_url=gone))
    answer = site.app.get("/login/oidc/test?next=/jobs", status=303)
    refused_with(answer, "provider", "%2Fjobs")


def test_a_provider_that_failed_is_not_asked_again_at_once(provider: Provider) -> None:
    now = [1_000_000.0]
    gone = f"http://127.0.0.1:{free_port()}/.well-known/openid-configuration"
    (entry,) = make_provider_settings([provider.setting(discovery_url=gone)])
    client = ProviderClient(entry, "http://127.0.0.1:1/cb", clock=lambda: now[0])
    with pytest.raises(SignInFailed, match=r"^GET http://127\.0\.0\.1"):
        client.metadata()
    now[0] += RETRY_INTERVAL - 1
    with pytest.raises(SignInFailed, match="failed just before"):
        client.metadata()
    now[0] += 1
    with pytest.raises(SignInFailed, match=r"^GET http://127\.0\.0\.1"):
        client.metadata()


def test_a_discovery_document_of_another_issuer_is_refused(
    tmp_path: Path, provider: Provider
) -> None:
    # The same provider by another name: its document names an issuer that is not it.
    other_name = provider.discovery_url.replace("127.0.0.1", "localhost")
    site = Site(tmp_path, provider, provider.setting(discovery_url=other_name))
    refused_with(site.app.get("/login/oidc/test", status=303), "provider")


def test_unknown_providers_and_open_redirects(site: Site) -> None:
    answer = site.app.get("/login/oidc/nobody", status=404)
    assert answer.text == "no identity provider 'nobody'\n"
    site.app.get("/login/oidc/nobody/callback?code=x&state=y", status=404)
    # A next page of another site is not kept: the sign-in ends on the home page.
    answer = site.sign_in(next_path="//evil.example/")
    assert 'content="0; url=/"' in answer.text


def test_the_login_page_has_a_button_per_provider(tmp_path: Path, provider: Provider) -> None:
    entries = [
        provider.setting("test", label="Observatoire <b>ID</b>"),
        provider.setting("other", label="Another"),
    ]
    site = Site(tmp_path, provider, *entries)
    page = site.app.get("/login?next=/jobs?PHASE=COMPLETED%26x=1")
    assert "Sign in with Observatoire &lt;b&gt;ID&lt;/b&gt;" in page.text
    assert 'href="/login/oidc/test?next=%2Fjobs%3FPHASE%3DCOMPLETED%26x%3D1"' in page.text
    assert 'href="/login/oidc/other?next=' in page.text
    plain = site.app.get("/login")
    assert 'href="/login/oidc/test"' in plain.text
    # The reason of a refusal is OPUS's sentence for its key; other text is not shown.
    refused = site.app.get("/login?oidc_error=unknown")
    assert REASONS["unknown"].replace("'", "&#039;") in refused.text
    forged = site.app.get("/login?oidc_error=Call+this+number")
    assert "Call this number" not in forged.text and 'id="oidc-error"' not in forged.text


def test_the_login_page_without_providers_has_no_buttons(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, ALLOW_ANONYMOUS=False)
    app = webtest.TestApp(create_app(settings, build_service(settings)))
    assert "Sign in with" not in app.get("/login").text
    app.get("/login/oidc/test", status=404)
    assert not (settings.VAR_PATH / ATTEMPT_KEY_FILE).exists()


def test_the_attempt_key_is_private_and_kept(tmp_path: Path) -> None:
    key = attempt_key(tmp_path)
    path = tmp_path / ATTEMPT_KEY_FILE
    assert len(key) == 32
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert attempt_key(tmp_path) == key
    assert sorted(p.name for p in tmp_path.iterdir()) == [ATTEMPT_KEY_FILE]
    path.write_text("not hex")
    with pytest.raises(ValueError):
        attempt_key(tmp_path)


def test_an_attempt_is_sealed_and_ends() -> None:
    now = [1_000_000.0]
    seal = AttemptSeal(b"\x07" * 32, clock=lambda: now[0])
    attempt = Attempt("test", "state", "nonce", "v" * 64, "/jobs")
    value = seal.seal(attempt)
    assert "state" not in value and "/jobs" not in value
    assert seal.open(value) == attempt
    now[0] += ATTEMPT_LIFETIME - 1
    assert seal.open(value) == attempt
    now[0] += 1
    assert seal.open(value) is None
    assert seal.open("") is None
    assert seal.open("a.b.c.d.e") is None
