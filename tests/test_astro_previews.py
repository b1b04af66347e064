"""Previews of FITS files and VOTables (opus/client/astro.py, quicklook.py) and the shared
links of results (service/sharing.py, /shared), in process: the header as text, the
quick-look PNG (signature, size, caching, limits), the first rows of a VOTable, what a
hostile file writes shown as text, XML entities and STREAM hrefs never followed, the
fallback without astropy, who may see and share what, and when a link ends."""

from __future__ import annotations

import gzip
import io
import os
import struct
import threading
import time
import zlib
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import pytest
from astropy.io import fits

from opus.client import astro, previews
from opus.core.records import Result
from opus.core.times import utcnow
from opus.server.service import sharing
from tests.client_helpers import XSS, Browser, assert_inert, document

HOSTILE = "<script>alert(1)</script>"


@pytest.fixture
def browser(tmp_path: Path, database_url: str) -> Browser:
    signed_in = Browser(tmp_path, database_url)
    signed_in.sign_in()
    return signed_in


def fits_bytes(
    data: np.ndarray | None, extension: np.ndarray | None = None, **cards: object
) -> bytes:
    primary = fits.PrimaryHDU(data)
    for key, value in cards.items():
        primary.header[key] = value
    hdus = [primary] + ([fits.ImageHDU(extension)] if extension is not None else [])
    out = io.BytesIO()
    fits.HDUList(hdus).writeto(out)
    return out.getvalue()


def header_only(**axes: int) -> bytes:
    """A primary header announcing an image whose data is not there."""
    header = fits.Header()
    header["SIMPLE"] = True
    header["BITPIX"] = -32
    header["NAXIS"] = len(axes)
    for key, value in axes.items():
        header[key] = value
    return header.tostring().encode()


def png_size(body: bytes) -> tuple[int, int]:
    """(width, height) of a PNG, checked to be one: signature, IHDR, 8-bit gray, IEND."""
    assert body[:8] == b"\x89PNG\r\n\x1a\n"
    length, kind = struct.unpack(">I4s", body[8:16])
    assert kind == b"IHDR" and length == 13
    width, height, depth, colour = struct.unpack(">IIBB", body[16:26])
    assert (depth, colour) == (8, 0)
    assert body.endswith(b"IEND\xaeB`\x82")
    return width, height


def png_chunks(body: bytes) -> list[bytes]:
    """The chunk types of a PNG, each checked against its CRC."""
    kinds, at = [], 8
    while at < len(body):
        (length,) = struct.unpack(">I", body[at : at + 4])
        kind, data = body[at + 4 : at + 8], body[at + 8 : at + 8 + length]
        (crc,) = struct.unpack(">I", body[at + 8 + length : at + 12 + length])
        assert zlib.crc32(kind + data) == crc, kind
        kinds.append(kind)
        at += 12 + length
    return kinds


def png_rows(body: bytes) -> np.ndarray:
    """The gray levels of one of these PNGs (one IDAT, filter 0)."""
    width, height = png_size(body)
    start = body.index(b"IDAT") + 4
    length = struct.unpack(">I", body[start - 8 : start - 4])[0]
    raw = np.frombuffer(zlib.decompress(body[start : start + length]), np.uint8)
    return raw.reshape(height, width + 1)[:, 1:]


def votable(rows: list[tuple[str, str]], *, prologue: str = "", cell: str = "") -> bytes:
    body = "".join(f"<TR><TD>{a}</TD><TD>{b}</TD></TR>" for a, b in rows)
    return (
        f'<?xml version="1.0"?>{prologue}'
        '<VOTABLE version="1.4" xmlns="http://www.ivoa.net/xml/VOTable/v1.3">'
        '<RESOURCE><TABLE><FIELD name="name" datatype="char" arraysize="*"/>'
        '<FIELD name="flux" datatype="char" arraysize="*" unit="mJy"/>'
        f"<DATA><TABLEDATA>{body}{cell}</TABLEDATA></DATA></TABLE></RESOURCE></VOTABLE>"
    ).encode()


def result_page(browser: Browser, job_id: str, name: str) -> object:
    return document(browser.get(f"/jobs/sleep/{job_id}/results/{name}"))


# -- FITS ----------------------------------------------------------------------------------


def test_fits_header_and_quick_look(browser: Browser) -> None:
    image = np.arange(200 * 300, dtype=np.float32).reshape(200, 300)
    job_id = browser.with_results({"field.fits": fits_bytes(image, OBJECT=HOSTILE)})
    page = browser.get(f"/jobs/sleep/{job_id}")
    assert_inert(page)
    assert HOSTILE not in page.text  # escaped
    tree = document(page)
    header = tree.xpath('//pre[@aria-label="Primary header of field.fits"]')[0].text_content()
    assert header.startswith("SIMPLE  =                    T")
    base = f"/jobs/sleep/{job_id}/results/field.fits"
    # The result's previews (the page's other image is its provenance graph).
    assert tree.xpath("//img[not(starts-with(@src, '/provsap'))]/@src") == [f"{base}/quicklook.png"]
    assert tree.xpath('//button[@data-samp-mtype="image.load.fits"]/@data-samp-share') == [
        f"{base}/share"
    ]
    full = result_page(browser, job_id, "field.fits")
    text = full.xpath("//pre")[0].text_content()
    assert f"OBJECT  = '{HOSTILE}'" in text
    assert "300 x 200 pixels" in full.text_content()
    answer = browser.get(f"{base}/quicklook.png")
    assert answer.content_type == "image/png"
    assert png_size(answer.body) == (300, 200)
    assert png_chunks(answer.body) == [b"IHDR", b"IDAT", b"IEND"]
    # Flipped (FITS's first row at the bottom) and scaled: the last row is the brightest.
    gray = png_rows(answer.body)
    assert gray[0].mean() > gray[-1].mean()
    etag = answer.headers["ETag"]
    assert browser.get(f"{base}/quicklook.png", status=304, **{"If-None-Match": etag})
    assert answer.headers["Cache-Control"] == "private, no-cache"


def test_a_large_image_is_downsampled_and_a_cube_shows_its_first_plane(
    browser: Browser,
) -> None:
    wide = np.random.default_rng(1).integers(0, 1000, (1500, 3000)).astype(np.int16)
    noise = np.random.default_rng(2).normal(size=(100, 100)).astype(np.float32)
    cube = np.zeros((3, 40, 50), dtype=np.float64)
    cube[0] = 1.0
    cube[0, :20] = 5.0
    job_id = browser.with_results(
        {
            "wide.fits": fits_bytes(wide, BZERO=32768, BSCALE=1),
            "cube.fit": fits_bytes(cube),
            "extension.fts": fits_bytes(None, np.ones((30, 20), dtype=np.int32)),
            "packed.fits.gz": gzip.compress(fits_bytes(np.ones((10, 12), np.float32))),
            "cut.fits.gz": gzip.compress(fits_bytes(noise))[:3000],
        }
    )
    base = f"/jobs/sleep/{job_id}/results"
    assert png_size(browser.get(f"{base}/wide.fits/quicklook.png").body) == (1000, 500)
    plane = png_rows(browser.get(f"{base}/cube.fit/quicklook.png").body)
    assert plane.shape == (40, 50)
    assert plane[-1].mean() > plane[0].mean()  # rows 0-19 (bright) drawn at the bottom
    assert png_size(browser.get(f"{base}/extension.fts/quicklook.png").body) == (20, 30)
    assert png_size(browser.get(f"{base}/packed.fits.gz/quicklook.png").body) == (12, 10)
    assert "SIMPLE" in result_page(browser, job_id, "packed.fits.gz").xpath("//pre")[0].text
    # A compressed file cut short: its header is shown, its image cannot be drawn.
    assert "NAXIS1" in result_page(browser, job_id, "cut.fits.gz").xpath("//pre")[0].text
    browser.get(f"{base}/cut.fits.gz/quicklook.png", status=404)


def test_fits_files_past_the_limits_get_no_quick_look(browser: Browser) -> None:
    job_id = browser.with_results(
        {
            "huge.fits": header_only(NAXIS1=20000, NAXIS2=20000),
            "short.fits": header_only(NAXIS1=100, NAXIS2=100),
            "table.fits": fits_bytes(None) + b"",
            "fake.fits": b"not FITS at all" * 300,
        }
    )
    base = f"/jobs/sleep/{job_id}/results"
    huge = result_page(browser, job_id, "huge.fits")
    assert "20000 x 20000 pixels: too large to quick-look" in huge.text_content()
    assert not huge.xpath("//img")
    browser.get(f"{base}/huge.fits/quicklook.png", status=404)
    # A header that promises more data than the file has: no picture, no fault.
    browser.get(f"{base}/short.fits/quicklook.png", status=404)
    assert "no 2-D image" in result_page(browser, job_id, "table.fits").text_content()
    fake = result_page(browser, job_id, "fake.fits")
    assert "not a FITS file" in fake.text_content()
    browser.get(f"{base}/fake.fits/quicklook.png", status=404)


def test_a_header_longer_than_the_limit_is_not_read(
    browser: Browser, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(astro, "MAX_HEADER_BYTES", 2 * astro.BLOCK)
    header = fits.Header([("SIMPLE", True), ("BITPIX", 8), ("NAXIS", 0)])
    for n in range(200):
        header[f"KEY{n}"] = n
    job_id = browser.with_results({"long.fits": header.tostring().encode()})
    assert "longer than" in result_page(browser, job_id, "long.fits").text_content()


# Cards after SIMPLE, "|" between them.
BROKEN_HEADERS = {
    "naxis.fits": "BITPIX  = -32|NAXIS   = 'abc'",
    "negative.fits": "BITPIX  = -32|NAXIS   = 2|NAXIS1  = -5|NAXIS2  = 3",
    "bitpix.fits": "BITPIX  = 12|NAXIS   = 2|NAXIS1  = 5|NAXIS2  = 3",
    "axes.fits": "BITPIX  = -32|NAXIS   = 999",
    "bscale.fits": "BITPIX  = 16|NAXIS   = 2|NAXIS1  = 5|NAXIS2  = 3|BSCALE  = 'a'",
    "giant.fits": "BITPIX  = -32|NAXIS   = 2|NAXIS1  = 1000000000000000000000000000000|NAXIS2  = 3",
    "extend.fits": "BITPIX  = -32|NAXIS   = 0|EXTEND  = T",
    "binary.fits": "BITPIX  = \udcff\x00 not a value|NAXIS   = 0",
}


def test_broken_headers_are_refused_without_a_fault(browser: Browser) -> None:
    def fits_file(cards: str) -> bytes:
        lines = ["SIMPLE  = T", *cards.split("|"), "END"]
        text = "".join(line.ljust(80) for line in lines)
        data = text.encode("ascii", "surrogateescape")
        return data + b" " * (-len(data) % astro.BLOCK)

    job_id = browser.with_results(
        {name: fits_file(cards) for name, cards in BROKEN_HEADERS.items()}
    )
    assert_inert(browser.get(f"/jobs/sleep/{job_id}"))
    for name in BROKEN_HEADERS:
        assert "SIMPLE" in browser.get(f"/jobs/sleep/{job_id}/results/{name}").text, name
        path = f"/jobs/sleep/{job_id}/results/{name}/quicklook.png"
        assert browser.get(path, status="*").status_int == 404, name


# -- VOTable -------------------------------------------------------------------------------


def test_votable_rows_and_units(browser: Browser) -> None:
    rows = [(f"star {n}", str(n)) for n in range(300)]
    rows[0] = (
        "&lt;script&gt;alert(1)&lt;/script&gt;",
        XSS.replace("&", "&amp;").replace("<", "&lt;"),
    )
    job_id = browser.with_results({"stars.vot": votable(rows)})
    page = browser.get(f"/jobs/sleep/{job_id}")
    assert_inert(page)
    assert HOSTILE not in page.text
    table = document(page).xpath("//table")[-1]
    assert [" ".join(th.text_content().split()) for th in table.xpath(".//th")] == [
        "name",
        "flux (mJy)",
    ]
    cells = table.xpath(".//tbody/tr[1]/td")
    assert [cell.text_content() for cell in cells] == [HOSTILE, XSS]
    assert len(table.xpath(".//tbody/tr")) == 10
    assert document(page).xpath('//button[@data-samp-mtype="table.load.votable"]')
    full = result_page(browser, job_id, "stars.vot")
    assert len(full.xpath("//table//tbody/tr")) == 200
    assert "the first 200 of 300 rows" in full.text_content()


def test_xml_is_a_votable_only_when_its_root_says_so(browser: Browser) -> None:
    job_id = browser.with_results(
        {"table.xml": votable([("a", "1")]), "other.xml": b"<doc><p>hello</p></doc>"}
    )
    assert result_page(browser, job_id, "table.xml").xpath("//table//td/text()") == ["a", "1"]
    other = result_page(browser, job_id, "other.xml")
    assert "<doc><p>hello</p></doc>" in other.xpath("//pre")[0].text_content()


def test_xml_entities_and_stream_urls_are_never_followed(
    browser: Browser, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("THE-SECRET")
    dtd = tmp_path / "secret.dtd"
    dtd.write_text(f'<!ENTITY leak SYSTEM "file://{secret}">')
    fetched: list[object] = []
    monkeypatch.setattr("urllib.request.urlopen", lambda *args, **_: fetched.append(args))
    declared = f'<!DOCTYPE VOTABLE [<!ENTITY leak SYSTEM "file://{secret}">]>'
    laughs = '<!DOCTYPE VOTABLE [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;">]>'
    external = f'<!DOCTYPE VOTABLE SYSTEM "file://{dtd}">'
    stream = (
        b'<?xml version="1.0"?><VOTABLE version="1.4"><RESOURCE><TABLE>'
        b'<FIELD name="x" datatype="int"/><DATA><BINARY>'
        + f'<STREAM href="file://{secret}"/>'.encode()
        + b"</BINARY></DATA></TABLE></RESOURCE></VOTABLE>"
    )
    job_id = browser.with_results(
        {
            "declared.vot": votable(
                [("a", "1")], prologue=declared, cell="<TR><TD>&leak;</TD></TR>"
            ),
            "laughs.vot": votable([("a", "1")], prologue=laughs, cell="<TR><TD>&b;</TD></TR>"),
            "external.vot": votable(
                [("a", "1")], prologue=external, cell="<TR><TD>&leak;</TD><TD>2</TD></TR>"
            ),
            "stream.vot": stream,
        }
    )
    for name in ("declared.vot", "laughs.vot", "external.vot", "stream.vot"):
        page = browser.get(f"/jobs/sleep/{job_id}/results/{name}")
        assert "THE-SECRET" not in page.text, name
    assert "declares XML entities" in result_page(browser, job_id, "declared.vot").text_content()
    assert "declares XML entities" in result_page(browser, job_id, "laughs.vot").text_content()
    assert "STREAM href" in result_page(browser, job_id, "stream.vot").text_content()
    # The external DTD is never read: its entity is skipped, the rest of the table shown.
    cells = result_page(browser, job_id, "external.vot").xpath("//table//tbody//td")
    assert [cell.text_content() for cell in cells] == ["a", "1", "", "2"]
    assert "THE-SECRET" not in browser.get(f"/jobs/sleep/{job_id}").text
    assert fetched == []


def test_no_file_a_dtd_an_entity_or_a_stream_names_is_opened(
    browser: Browser, tmp_path: Path
) -> None:
    """The files named are FIFOs: opening one to read would block until a writer comes,
    and a watcher that tries to open each for writing (which fails while no reader has
    it open) sees any reader at once, and lets it go."""
    fifos = [tmp_path / name for name in ("dtd", "entity", "stream")]
    for fifo in fifos:
        os.mkfifo(fifo)
    opened: list[str] = []
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            for fifo in fifos:
                try:
                    os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
                except OSError:
                    continue
                opened.append(fifo.name)
            time.sleep(0.001)

    dtd, entity, stream = (f"file://{fifo}" for fifo in fifos)
    job_id = browser.with_results(
        {
            "external.vot": votable([("a", "1")], prologue=f'<!DOCTYPE VOTABLE SYSTEM "{dtd}">'),
            "declared.vot": votable(
                [("a", "1")],
                prologue=f'<!DOCTYPE VOTABLE [<!ENTITY e SYSTEM "{entity}">]>',
                cell="<TR><TD>&e;</TD><TD>2</TD></TR>",
            ),
            "stream.vot": (
                b'<?xml version="1.0"?><VOTABLE version="1.4"><RESOURCE><TABLE>'
                b'<FIELD name="x" datatype="int"/><DATA><BINARY>'
                + f'<STREAM href="{stream}"/>'.encode()
                + b"</BINARY></DATA></TABLE></RESOURCE></VOTABLE>"
            ),
        }
    )
    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        browser.get(f"/jobs/sleep/{job_id}")
        for name in ("external.vot", "declared.vot", "stream.vot"):
            browser.get(f"/jobs/sleep/{job_id}/results/{name}")
    finally:
        done.set()
        watcher.join()
    assert opened == []


def test_previews_from_bytes_too() -> None:
    """previews.preview (first bytes, no open file) gives the same kinds."""
    image = fits_bytes(np.ones((3, 4), np.float32))
    shown = previews.preview(
        Result("i", "results/i.fits", "image/fits", len(image), ""), image, len(image)
    )
    assert shown.kind == "fits" and shown.text.startswith("SIMPLE") and shown.quicklook
    table = votable([("a", "1")])
    result = Result("t", "results/t.xml", "text/xml; content=x-votable", len(table), "")
    shown = previews.preview(result, table, len(table))
    assert shown.kind == "votable" and shown.rows == (("a", "1"),)
    assert shown.columns == (("name", ""), ("flux", "mJy"))


# -- without astropy -----------------------------------------------------------------------


def test_without_astropy_the_binary_preview_says_what_to_install(
    browser: Browser, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(astro, "available", lambda: False)
    job_id = browser.with_results(
        {
            "field.fits": fits_bytes(np.ones((4, 4), np.float32)),
            "stars.vot": votable([("a", "1")]),
            "table.xml": votable([("a", "1")]),
        }
    )
    for name in ("field.fits", "stars.vot"):
        text = result_page(browser, job_id, name).text_content()
        assert "pip install opus[fits]" in text and "No preview for this type" in text
    assert "<TABLEDATA>" in result_page(browser, job_id, "table.xml").xpath("//pre")[0].text
    assert not document(browser.get(f"/jobs/sleep/{job_id}")).xpath("//button[@data-samp-mtype]")
    browser.get(f"/jobs/sleep/{job_id}/results/field.fits/quicklook.png", status=404)


# -- who may see and share -----------------------------------------------------------------


def share(browser: Browser, path: str, status: int = 201, **headers: str) -> object:
    sent = browser.headers(**{"X-CSRF-Token": browser.csrf, **headers})
    return browser.app.post(f"{path}/share", headers=sent, status=status)


def test_another_user_sees_and_shares_nothing(browser: Browser) -> None:
    job_id = browser.with_results({"field.fits": fits_bytes(np.ones((4, 4), np.float32))})
    base = f"/jobs/sleep/{job_id}/results/field.fits"
    browser.users.add("bob", [], "bob's password is long enough")
    browser.sign_in("bob", "bob's password is long enough")
    refused = browser.get(base, status="*").status_int
    assert refused in (403, 404)
    assert browser.get(f"{base}/quicklook.png", status="*").status_int == refused
    assert share(browser, base, status="*").status_int == refused


def test_a_shared_link_reads_one_result_without_credentials(
    browser: Browser, monkeypatch: pytest.MonkeyPatch
) -> None:
    content = fits_bytes(np.ones((4, 4), np.float32))
    job_id = browser.with_results({"field.fits": content, "stars.xml": votable([("a", "1")])})
    base = f"/jobs/sleep/{job_id}/results/field.fits"
    # A change: the session's CSRF token is required.
    assert share(browser, base, status=403, **{"X-CSRF-Token": "wrong"})
    made = share(browser, base).json
    assert made["name"] == "field.fits" and made["expires"].endswith("Z")
    link = urlsplit(made["url"])
    assert made["url"].startswith(browser.settings.BASE_URL + "/shared/")
    answer = browser.app.get(link.path)  # no cookie, no Authorization
    assert answer.body == content
    assert answer.headers["Content-Security-Policy"] == "sandbox"
    assert answer.headers["X-Content-Type-Options"] == "nosniff"
    assert answer.headers["Cache-Control"] == "private, no-store"
    # A VOTable (XML, an active type) is an attachment, as /store serves it.
    table = urlsplit(share(browser, f"/jobs/sleep/{job_id}/results/stars.xml").json["url"])
    assert browser.app.get(table.path).headers["Content-Disposition"].startswith("attachment")
    # Unknown tokens, and a malformed one.
    browser.app.get("/shared/" + "A" * 43, status=404)
    browser.app.get("/shared/x", status=404)
    # Expired.
    later = utcnow() + timedelta(seconds=browser.settings.SHARED_LINK_LIFETIME + 1)
    monkeypatch.setattr(sharing, "utcnow", lambda: later)
    browser.app.get(link.path, status=404)
    monkeypatch.undo()
    browser.app.get(link.path, status=200)
    # Deleting the job ends its links.
    browser.service.delete(browser.caller, "sleep", job_id)
    browser.app.get(link.path, status=404)
    browser.app.get(table.path, status=404)


def test_links_of_unknown_results_are_refused(browser: Browser) -> None:
    job_id = browser.with_results({"field.fits": fits_bytes(np.ones((4, 4), np.float32))})
    share(browser, f"/jobs/sleep/{job_id}/results/nothing", status=404)
    share(browser, f"/jobs/sleep/{'0' * 32}/results/field.fits", status=404)
