"""The pages of provenance, in process with real append_text jobs: the provenance part
of an ended job's page (image, map, download links), an entity's page (what made it,
what used it; 404 for another user's), its JSON kept for scripts, and the new-job form
given one of the user's results as an input."""

from __future__ import annotations

import io
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from opus.core.access import Caller
from opus.core.layout import INTERNAL_DIR, STATUS_FILE
from opus.server.service import reconcile
from opus.server.service.inputs import Upload
from opus.server.storage.entities import result_entity_id
from tests.client_helpers import PASSWORD, Browser, assert_inert, document


@pytest.fixture
def browser(tmp_path: Path, database_url: str) -> Browser:
    signed_in = Browser(tmp_path, database_url)
    signed_in.sign_in()
    return signed_in


def wait_end(browser: Browser, job_id: str) -> None:
    status = browser.service.files.directory(job_id) / INTERNAL_DIR / STATUS_FILE
    deadline = time.monotonic() + 30
    while not status.exists():
        assert time.monotonic() < deadline, "the job did not finish"
        time.sleep(0.05)
    reconcile(browser.service)


def appended(browser: Browser, caller: Caller | None = None, **values: str) -> str:
    """An append_text job run to its end (on an upload unless ``input`` is given)."""
    uploads = [] if "input" in values else [Upload("input", "in.txt", io.BytesIO(b"first\n"))]
    job = browser.service.create_job(
        caller or browser.caller, "append_text", values, uploads, control={"PHASE": "RUN"}
    )
    wait_end(browser, job.id)
    return job.id


def test_an_ended_job_page_has_its_provenance(browser: Browser) -> None:
    job_id = appended(browser, text="one")
    answer = browser.get(f"/jobs/append_text/{job_id}")
    assert_inert(answer)
    page = document(answer)
    part = page.xpath("//*[@data-provenance]")[0]
    assert part.get("data-job-id") == job_id
    assert part.get("data-base-url") == browser.settings.BASE_URL
    image = part.xpath(".//img[@data-provenance-image]")[0]
    assert image.get("alt") and image.get("usemap") == "#provenance-map"
    src = urlsplit(image.get("src"))
    assert src.path == "/provsap"
    assert parse_qs(src.query) == {
        "ID": [job_id],
        "DEPTH": ["1"],
        "DIRECTION": ["BOTH"],
        "RESPONSEFORMAT": ["PROV-SVG"],
    }
    assert page.xpath('//map[@name="provenance-map"]')
    # The image the page points at is an SVG, and the map of the same walk links home.
    drawn = browser.get(image.get("src"))
    assert drawn.headers["Content-Type"].startswith("image/svg+xml")
    areas = browser.get(image.get("src").replace("PROV-SVG", "IMAGE-MAP")).json["areas"]
    assert areas and all(a["href"].startswith(browser.settings.BASE_URL + "/") for a in areas)
    downloads = {a.get("data-provenance-download"): a.get("href") for a in page.xpath("//a")}
    for fmt in ("json", "xml", "provn", "svg", "png"):
        href = downloads[fmt]
        assert href == f"/rest/append_text/{job_id}/provenance?format={fmt}"
        assert browser.get(href, Accept="*/*").status_int == 200
    # The result links to its entity page.
    entity = result_entity_id(job_id, "output")
    assert page.xpath(f'//a[@data-entity-link][@href="/entities/{entity}"]')


def test_an_active_job_page_says_when_provenance_comes(browser: Browser) -> None:
    job_id = browser.job("sleep", run=False, duration="1")
    page = document(browser.get(f"/jobs/sleep/{job_id}"))
    assert not page.xpath("//*[@data-provenance]")
    assert "The provenance is recorded when the job ends." in page.text_content()


def test_the_entity_page_tells_what_made_and_used_it(browser: Browser) -> None:
    first = appended(browser, text="one")
    entity = result_entity_id(first, "output")
    second = appended(browser, input=entity, text="two")
    answer = browser.get(f"/entities/{entity}")
    assert answer.headers["Content-Type"].startswith("text/html")
    assert "Accept" in answer.headers["Vary"]
    assert_inert(answer)
    page = document(answer)
    made = page.xpath("//*[@data-made-by]")[0]
    assert made.xpath(".//a/@href") == [f"/jobs/append_text/{first}"]
    used = page.xpath("//*[@data-used-by]//a/@href")
    assert used == [f"/jobs/append_text/{second}"]
    assert page.xpath(f'//a[@href="/store/{entity}"]')
    text = " ".join(page.text_content().split())
    assert "output" in text and "text/plain" in text and "alice" in text
    # Scripts keep the JSON.
    value = browser.app.get(f"/entities/{entity}", headers=browser.basic()).json
    assert value["id"] == entity and value["usedBy"][0]["job"] == second


def test_the_entity_page_of_a_deleted_job(browser: Browser) -> None:
    first = appended(browser, text="one")
    entity = result_entity_id(first, "output")
    appended(browser, input=entity, text="two")
    browser.service.delete(browser.caller, "append_text", first)
    page = document(browser.get(f"/entities/{entity}"))
    assert "made by a job that was deleted" in page.text_content().lower()
    assert not page.xpath(f'//a[@href="/store/{entity}"]')


def test_another_users_entity_is_not_found(browser: Browser) -> None:
    browser.users.add("bob", [], PASSWORD)
    theirs = appended(browser, Caller("bob"), text="bob's")
    entity = result_entity_id(theirs, "output")
    answer = browser.get(f"/entities/{entity}", status=404)
    assert answer.headers["Content-Type"].startswith("text/html")
    assert entity not in answer.text or "no entity" in answer.text
    browser.get(f"/entities/{'0' * 32}", status=404)


def test_the_form_offers_my_results_and_takes_one(browser: Browser) -> None:
    first = appended(browser, text="one")
    entity = result_entity_id(first, "output")
    form = document(browser.get("/jobs/new/append_text"))
    picker = form.xpath('//select[@data-pick-for="field-input-url"]')[0]
    assert form.xpath(f'//label[@for="{picker.get("id")}"]')
    assert picker.getparent().get("hidden") is not None  # the script shows it
    listed = browser.app.get("/entities?kind=result&last=50", headers=browser.basic())
    location = listed.json["entities"][0]["location"]
    assert location == f"{browser.settings.BASE_URL}/store/{entity}"
    # What the script writes: the result's URL, in the input's URL field.
    fields = {"input.source": "url", "input.url": location, "text": "two", "PHASE": "RUN"}
    created = browser.post("/jobs/new/append_text", fields)
    job_id = created.location.rstrip("/").rsplit("/", 1)[-1]
    wait_end(browser, job_id)
    done = browser.service.get_job(browser.caller, "append_text", job_id)
    assert done.job.phase.value == "COMPLETED"
    uses = browser.service.entities.store.uses_of_entities([entity])
    assert [use.job_id for use in uses] == [job_id]
    output = browser.get(f"/store/{job_id}/output", Accept="*/*").body
    assert output == b"first\none\ntwo\n"
