""" "Send to SAMP", against a real SAMP hub: astropy's SAMPHubServer with its Web Profile
(http://localhost:21012/, registrations accepted by the test's own dialog), and a
standard-profile client that subscribes to image.load.fits and table.load.votable and
records what it receives. The page (static/js/samp.js, the vendored sampjs) asks OPUS
for a shared link, registers with the hub and sends the link; the link, fetched without
cookies as TOPCAT or Aladin would, gives the result's bytes, and ends with its job, its
lifetime, or never existed (404)."""

from __future__ import annotations

import queue
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from astropy.samp import SAMPHubServer, SAMPIntegratedClient
from playwright.sync_api import Page, expect
from sqlalchemy import text

from opus.server.storage import make_engine
from tests.browser.conftest import PageWatch, Site, screenshot
from tests.browser.support import LONG_MS, Api

WEB_PROFILE_PORT = 21012
MTYPES = ("image.load.fits", "table.load.votable")


class AcceptingDialog:
    """The hub's Web Profile "dialog" (astropy.samp's interface: it sets queue_request
    and queue_result): every registration is accepted, as a user clicking Yes."""

    queue_request: queue.Queue[Any]
    queue_result: queue.Queue[bool]

    def __init__(self) -> None:
        self.asked: list[Any] = []
        self.done = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        while not self.done.is_set():
            try:
                request = self.queue_request.get(timeout=0.1)
            except (AttributeError, queue.Empty):
                time.sleep(0.05)  # the queues are set when the hub starts
                continue
            self.asked.append(request)
            self.queue_result.put(True)


class Recorder:
    """A SAMP client (standard profile) that records the notifications it receives."""

    def __init__(self) -> None:
        self.client = SAMPIntegratedClient(name="recorder", description="OPUS test")
        self.received: queue.Queue[tuple[str, dict[str, str]]] = queue.Queue()

    def receive(
        self, _key: str, _sender: str, mtype: str, params: dict[str, str], _extra: object
    ) -> None:
        self.received.put((mtype, params))

    def next(self, timeout: float = 60) -> tuple[str, dict[str, str]]:
        return self.received.get(timeout=timeout)


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[SAMPHubServer, Recorder]]:
    with socket.socket() as probe:
        if probe.connect_ex(("127.0.0.1", WEB_PROFILE_PORT)) == 0:
            pytest.fail(f"port {WEB_PROFILE_PORT} is taken: another SAMP hub runs here")
    dialog = AcceptingDialog()
    lockfile = tmp_path_factory.mktemp("samp") / "samp-hub"
    server = SAMPHubServer(
        web_profile=True, web_profile_dialog=dialog, lockfile=str(lockfile), label="OPUS tests"
    )
    server.start(wait=False)
    dialog.thread.start()
    recorder = Recorder()
    recorder.client.connect(hub=server)
    for mtype in MTYPES:
        recorder.client.bind_receive_notification(mtype, recorder.receive)
    try:
        yield server, recorder
    finally:
        recorder.client.disconnect()
        dialog.done.set()
        server.stop()


def fetch(url: str) -> tuple[int, bytes]:
    """GET without cookies or credentials: what a SAMP tool does."""
    try:
        with urllib.request.urlopen(url, timeout=30) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as error:
        return error.code, b""


def test_send_to_samp_gives_the_tools_a_link_they_can_read(
    alice_page: Page, site: Site, hub: tuple[SAMPHubServer, Recorder]
) -> None:
    _, recorder = hub
    page = alice_page
    api = Api(site, site.alice)
    job_id = api.create("fits_image", {"size": "64", "stars": "5"})
    api.wait_end("fits_image", job_id)
    files = {
        name: api.http.get(api.url(f"/store/{job_id}/{name}")).content
        for name in ("image", "catalogue")
    }
    page.goto(f"/jobs/fits_image/{job_id}")
    received = {}
    for result, mtype in (("image", "image.load.fits"), ("catalogue", "table.load.votable")):
        card = page.locator("article", has=page.get_by_role("heading", name=result, exact=True))
        card.get_by_role("button", name=f"Send to SAMP {result}").click()
        expect(card.locator("[data-samp-status]")).to_contain_text("Sent to SAMP", timeout=LONG_MS)
        got, params = recorder.next()
        assert got == mtype
        assert params["name"] in ("field.fits", "stars.vot")
        assert params["url"].startswith(f"{site.url}/shared/")
        status, body = fetch(params["url"])
        assert status == 200 and body == files[result]
        received[result] = params["url"]
    screenshot(page, "samp-sent")
    # A made-up token, and the link once it has expired.
    assert fetch(f"{site.url}/shared/{'A' * 43}")[0] == 404
    engine = make_engine(site.server.database_url)
    try:
        with engine.begin() as conn:
            conn.execute(text("UPDATE shared_links SET expires = '2000-01-01 00:00:00'"))
    finally:
        engine.dispose()
    assert fetch(received["image"])[0] == 404
    assert fetch(received["catalogue"])[0] == 404


def test_deleting_the_job_ends_its_links(
    alice_page: Page, site: Site, hub: tuple[SAMPHubServer, Recorder]
) -> None:
    _, recorder = hub
    api = Api(site, site.alice)
    job_id = api.create("fits_image", {"size": "32", "stars": "2"})
    api.wait_end("fits_image", job_id)
    alice_page.goto(f"/jobs/fits_image/{job_id}")
    alice_page.get_by_role("button", name="Send to SAMP catalogue").click()
    mtype, params = recorder.next()
    assert mtype == "table.load.votable" and fetch(params["url"])[0] == 200
    assert api.http.delete(api.url(f"/rest/fits_image/{job_id}"), allow_redirects=False).ok
    assert fetch(params["url"])[0] == 404


def test_without_a_hub_the_page_says_so(alice_page: Page, site: Site, watch: PageWatch) -> None:
    """No hub: the status line tells, and nothing else breaks."""
    watch.expected.append("21012")  # the failed requests to the hub
    api = Api(site, site.alice)
    job_id = api.create("fits_image", {"size": "32", "stars": "2"})
    api.wait_end("fits_image", job_id)
    page = alice_page
    # The browser cannot reach the hub: requests to it fail as with no hub running.
    page.route("http://localhost:21012/**", lambda route: route.abort())
    page.goto(f"/jobs/fits_image/{job_id}/results/image")
    page.get_by_role("button", name="Send to SAMP image").click()
    expect(page.locator("[data-samp-status]")).to_contain_text("No SAMP hub", timeout=LONG_MS)
