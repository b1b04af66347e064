"""Fixtures of the browser tests: Debian's Chromium driven by Playwright, against a live
`opus serve` with users who sign in with passwords.

Chromium is the system's (``/usr/bin/chromium``, which `make test` installs): the tests
fail, not skip, without it. Every page a test opens records its console errors (a
failed request is one) and uncaught exceptions; ``page`` fails the test at teardown if
any happened that the test did not expect (``watch.expected``: parts of the messages
allowed, "status of 404"). Screenshots go to ``ARTEFACTS`` (``OPUS_TEST_ARTEFACTS``,
default ``test-artefacts/`` in the working directory).

``site`` is one server per module; a module that needs other settings or job types of
its own overrides it with ``running_site`` (``AUTH_FREE_FAILURES="2"``, a definition
file); ``page_on`` opens a watched page on another site or viewport.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, ConsoleMessage, Page, sync_playwright

from opus.core.access import ALL_JOB_TYPES_ROLE as ALL_JOB_TYPES
from opus.server import schema
from opus.server.auth import UserManager
from opus.server.storage import UserStore, make_engine
from tests.conftest import EXAMPLES, LiveServer

pytestmark = pytest.mark.live

CHROMIUM = os.environ.get("OPUS_TEST_CHROMIUM", "/usr/bin/chromium")
ARTEFACTS = Path(os.environ.get("OPUS_TEST_ARTEFACTS", "test-artefacts")).resolve()
# Per Playwright action and navigation, in ms: the two cores are shared.
TIMEOUT_MS = 30_000


@dataclass(frozen=True)
class Account:
    name: str
    password: str
    token: str


@dataclass
class Site:
    """A live server and the accounts on it."""

    server: LiveServer
    alice: Account
    bob: Account
    admin: Account

    @property
    def url(self) -> str:
        return self.server.url


@dataclass
class PageWatch:
    """What went wrong in a page: console errors, uncaught exceptions, failed requests."""

    errors: list[str] = field(default_factory=list)
    expected: list[str] = field(default_factory=list)

    def console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.errors.append(f"console: {message.text} ({message.location})")

    def unexpected(self) -> list[str]:
        return [e for e in self.errors if not any(part in e for part in self.expected)]


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    assert Path(CHROMIUM).exists(), f"{CHROMIUM} is missing: `make test` installs chromium"
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=["--no-sandbox"]
        )
        yield launched
        launched.close()


def _account(users: UserManager, name: str, roles: list[str]) -> Account:
    password = f"the password of {name}"
    _, token = users.add(name, roles, password)
    return Account(name, password, token)


@contextmanager
def running_site(
    tmp_path: Path, definitions: Mapping[str, str] | None = None, **settings: str
) -> Iterator[Site]:
    """A started server with the example definitions (and ``definitions``: file name →
    text, added to its JDL directory), alice, bob and root; stopped on exit."""
    jdl = tmp_path / "jdl"
    shutil.copytree(EXAMPLES, jdl)
    for name, text in (definitions or {}).items():
        (jdl / name).write_text(text, encoding="utf-8")
    server = LiveServer(tmp_path, **{"ALLOW_ANONYMOUS": "false", **settings})
    schema.upgrade(server.database_url)
    engine = make_engine(server.database_url)
    try:
        users = UserManager(UserStore(engine))
        accounts = Site(
            server,
            _account(users, "alice", [ALL_JOB_TYPES]),
            _account(users, "bob", [ALL_JOB_TYPES]),
            _account(users, "root", ["admin"]),
        )
    finally:
        engine.dispose()
    server.start()
    try:
        yield accounts
    finally:
        server.stop()


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """One server per test module (SQLite, local manager, the example definitions)."""
    with running_site(tmp_path_factory.mktemp("site")) as started:
        yield started


@pytest.fixture
def context(browser: Browser, site: Site) -> Iterator[BrowserContext]:
    made = browser.new_context(base_url=site.url, viewport={"width": 1280, "height": 900})
    made.set_default_timeout(TIMEOUT_MS)
    yield made
    made.close()


@pytest.fixture
def watch() -> PageWatch:
    return PageWatch()


@pytest.fixture
def page(context: BrowserContext, watch: PageWatch) -> Iterator[Page]:
    opened = watched_page(context, watch)
    yield opened
    problems = watch.unexpected()
    assert not problems, "\n".join(problems)


def watched_page(context: BrowserContext, watch: PageWatch) -> Page:
    """A new page of ``context`` whose console errors and page errors ``watch`` records."""
    opened = context.new_page()
    opened.on("console", watch.console)
    opened.on("pageerror", lambda error: watch.errors.append(f"page error: {error}"))
    return opened


@contextmanager
def page_on(
    browser: Browser, site: Site, watch: PageWatch, width: int = 1280, height: int = 900
) -> Iterator[Page]:
    """A watched page of a context of its own on ``site`` (a site other than the
    module's, or another viewport); fails on exit if the page logged errors."""
    made = browser.new_context(base_url=site.url, viewport={"width": width, "height": height})
    made.set_default_timeout(TIMEOUT_MS)
    try:
        yield watched_page(made, watch)
    finally:
        made.close()
    problems = watch.unexpected()
    assert not problems, "\n".join(problems)


def sign_in(page: Page, account: Account, secret: str | None = None) -> None:
    """Sign in through the form (password unless another secret is given)."""
    page.goto("/login")
    page.get_by_label("User name").fill(account.name)
    page.get_by_label("Password or API token").fill(secret or account.password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(lambda url: "/login" not in url)


@pytest.fixture
def alice_page(page: Page, site: Site) -> Page:
    """A page signed in as alice, on her home page."""
    sign_in(page, site.alice)
    return page


def artefact(name: str) -> Path:
    """Where the screenshot ``name`` is saved (the directory made if need be)."""
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    return ARTEFACTS / f"{name}.png"


def screenshot(page: Page, name: str, full_page: bool = True) -> Path:
    """Save a screenshot (of the whole page, or of the viewport) as a test artefact."""
    path = artefact(name)
    page.screenshot(path=str(path), full_page=full_page)
    return path
