"""The previews of a FITS image and a VOTable in a browser, made by the shipped example
job type fits_image: on the job page, a quick-look image (loaded, its natural size the
image's), the first cards of the header and the first rows of the catalogue; on a
result's page, the whole header and the quick look at full size. What the job's user
wrote (the field's name, in the header and the table) is text: no payload runs."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from tests.browser.conftest import Site, screenshot
from tests.browser.support import XSS, Api, assert_fits, assert_no_xss, axe_violations, wait_image


def test_the_home_page_offers_the_example(alice_page: Page) -> None:
    alice_page.goto("/")
    expect(alice_page.get_by_text("Simulates a star field")).to_be_visible()


def test_fits_and_votable_previews(alice_page: Page, site: Site) -> None:
    page = alice_page
    api = Api(site, site.alice)
    name = " ".join(XSS)
    job_id = api.create("fits_image", {"size": "300", "stars": "60", "object": name})
    api.wait_end("fits_image", job_id)
    page.goto(f"/jobs/fits_image/{job_id}")
    image = page.get_by_role("img", name="Quick look of the image of field.fits")
    assert wait_image(page, image) == 300
    header = page.get_by_label("Primary header of field.fits")
    expect(header).to_contain_text("NAXIS1  =                  300")
    expect(page.get_by_text("the first 12 of its 16 cards")).to_be_visible()
    table = page.get_by_label("First rows of stars.vot")
    expect(table.locator("thead th")).to_have_text(
        ["id", "x (pix)", "y (pix)", "ra (deg)", "dec (deg)", "flux (adu)"]
    )
    expect(table.locator("tbody tr")).to_have_count(10)
    expect(page.get_by_text("the first 10 of 60 rows")).to_be_visible()
    assert not axe_violations(page)
    assert_no_xss(page)
    screenshot(page, "astro-job")

    page.get_by_role("link", name="see the whole header").click()
    full = page.get_by_label("Primary header of field.fits")
    # The name, made printable ASCII for FITS, is shown as the text it is.
    expect(full).to_contain_text("OBJECT  = '<img src=x onerror=window.__xss=1>")
    expect(full).to_contain_text("ORIGIN  = 'OPUS fits_image example'")
    assert wait_image(page, page.get_by_role("img", name="Quick look of the image of field.fits"))
    assert_no_xss(page)
    screenshot(page, "astro-result")

    page.goto(f"/jobs/fits_image/{job_id}/results/catalogue")
    expect(page.get_by_label("First rows of stars.vot").locator("tbody tr")).to_have_count(60)
    assert_no_xss(page)


def test_previews_fit_a_small_screen(alice_page: Page, site: Site) -> None:
    page = alice_page
    page.set_viewport_size({"width": 375, "height": 800})
    api = Api(site, site.alice)
    job_id = api.create("fits_image", {"size": "1100", "stars": "20"})
    api.wait_end("fits_image", job_id, timeout=120)
    for path in ("", "/results/image", "/results/catalogue"):
        page.goto(f"/jobs/fits_image/{job_id}{path}")
        if path != "/results/catalogue":
            image = page.get_by_role("img", name="Quick look of the image of field.fits")
            assert wait_image(page, image) == 1100 // 2  # downsampled, every 2nd pixel
        assert_fits(page)
