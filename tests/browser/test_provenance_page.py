"""Provenance in the browser: the graph of an ended job's page loads, its map and its
list of nodes link to this server's job and entity pages, depth and direction draw it
again; an entity's page; "one of my results" as the input of a new job, which runs on
it. axe-core finds nothing serious on either page."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from playwright.sync_api import Page, expect

from opus.server.storage.entities import result_entity_id
from tests.browser.conftest import Site, artefact
from tests.browser.support import (
    LONG_MS,
    Api,
    assert_fits,
    axe_violations,
    expect_phase,
    job_id_of,
    wait_image,
)


def chain(site: Site) -> tuple[str, str]:
    """Two ended append_text jobs of alice's, the second fed the first's result."""
    api = Api(site, site.alice)
    first = api.create("append_text", {"text": "one"}, files={"input": ("in.txt", b"first\n")})
    api.wait_end("append_text", first)
    second = api.create("append_text", {"text": "two", "input": result_entity_id(first, "output")})
    assert api.wait_end("append_text", second)["phase"] == "COMPLETED"
    return first, second


def query_of(page: Page) -> dict[str, list[str]]:
    src = page.locator("[data-provenance-image]").get_attribute("src") or ""
    return parse_qs(urlsplit(src).query)


def test_the_provenance_graph_of_a_job(alice_page: Page, site: Site) -> None:
    page = alice_page
    first, second = chain(site)
    page.goto(f"/jobs/append_text/{second}")
    image = page.locator("[data-provenance-image]")
    assert wait_image(page, image) > 0
    nodes = page.locator("[data-provenance-nodes] a")
    expect(nodes.first).to_be_visible(timeout=LONG_MS)
    hrefs = nodes.evaluate_all("links => links.map((a) => a.href)")
    assert f"{site.url}/jobs/append_text/{second}" in hrefs
    # Depth 1: the job and its entities, not the job that made its input.
    assert f"{site.url}/jobs/append_text/{first}" not in hrefs
    entity = result_entity_id(first, "output")
    assert f"{site.url}/entities/{entity}" in hrefs
    assert all(href.startswith(site.url + "/") for href in hrefs)
    assert page.locator("map[name='provenance-map'] area").count() >= len(hrefs)
    assert query_of(page)["DEPTH"] == ["1"] and query_of(page)["DIRECTION"] == ["BOTH"]
    assert axe_violations(page) == []

    page.get_by_label("Depth").select_option("ALL")
    page.wait_for_function(
        "() => document.querySelector('[data-provenance-image]').src.includes('DEPTH=ALL')"
    )
    page.get_by_label("Direction").select_option("BACK")
    page.wait_for_function(
        "() => document.querySelector('[data-provenance-image]').src.includes('DIRECTION=BACK')"
    )
    assert query_of(page)["DEPTH"] == ["ALL"]
    assert wait_image(page, image) > 0
    section = page.locator("section[data-live='provenance']")
    section.screenshot(path=str(artefact("provenance-graph")))
    # On a phone the graph is fitted to the page, its map scaled with it; at full size
    # it scrolls inside its frame. The page itself never scrolls sideways.
    page.set_viewport_size({"width": 375, "height": 740})
    assert_fits(page)
    natural = image.evaluate("img => img.naturalWidth")
    page.wait_for_function("img => img.clientWidth < 360", arg=image.element_handle())
    shown = image.evaluate("img => img.clientWidth")
    scale = shown / natural
    area = page.locator("map[name='provenance-map'] area").first
    original = float((area.get_attribute("data-coords") or "").split(",")[0])
    scaled = float((area.get_attribute("coords") or "").split(",")[0])
    assert abs(scaled - round(original * scale)) <= 1 and scale < 0.9
    section.screenshot(path=str(artefact("provenance-graph-375")))
    full_size = page.get_by_role("button", name="Full size")
    full_size.click()
    expect(full_size).to_have_attribute("aria-pressed", "true")
    page.wait_for_function(f"img => img.clientWidth === {natural}", arg=image.element_handle())
    page.wait_for_function(
        "([area, x]) => Number(area.getAttribute('coords').split(',')[0]) === x",
        arg=[area.element_handle(), round(original)],
    )
    assert_fits(page)
    full_size.click()
    page.set_viewport_size({"width": 1280, "height": 800})
    expect(page.locator(f"[data-provenance-nodes] a[href$='/{first}']")).to_have_count(1)
    # Forward from the first job, the second is shown; back from it, it is not.
    page.goto(f"/jobs/append_text/{first}")
    page.get_by_label("Depth").select_option("ALL")
    expect(page.locator(f"[data-provenance-nodes] a[href$='/{second}']")).to_have_count(1)
    page.get_by_label("Direction").select_option("BACK")
    expect(page.locator(f"[data-provenance-nodes] a[href$='/{second}']")).to_have_count(0)

    # A node of the list opens the entity's page.
    page.goto(f"/jobs/append_text/{second}")
    page.locator(f"[data-provenance-nodes] a[href$='/entities/{entity}']").click()
    page.wait_for_url(f"**/entities/{entity}")
    expect(page.locator("[data-made-by] a")).to_have_attribute("href", f"/jobs/append_text/{first}")
    expect(page.locator("[data-used-by] a")).to_have_attribute(
        "href", f"/jobs/append_text/{second}"
    )
    assert axe_violations(page) == []


def test_one_of_my_results_as_an_input(alice_page: Page, site: Site) -> None:
    page = alice_page
    first, _ = chain(site)
    entity = result_entity_id(first, "output")
    page.goto("/jobs/new/append_text")
    picker = page.get_by_label("input: or one of my results")
    expect(picker).to_be_visible(timeout=LONG_MS)
    option = picker.locator(f"option[data-entity='{entity}']")
    label = option.text_content() or ""
    assert label.startswith("output · job ") and first in label
    picker.focus()
    picker.select_option(f"{site.url}/store/{entity}")
    expect(page.get_by_label("input: URL of the file")).to_have_value(f"{site.url}/store/{entity}")
    expect(page.get_by_label("Give a URL")).to_be_checked()
    page.get_by_role("button", name="Run").click()
    page.wait_for_url("**/jobs/append_text/*")
    expect_phase(page, "COMPLETED")
    job_id = job_id_of(page)
    answer = Api(site, site.alice).http.get(f"{site.url}/store/{job_id}/output")
    assert answer.text == "first\none\nappended by OPUS\n"
