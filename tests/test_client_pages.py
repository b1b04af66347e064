"""The web pages: every page for a signed-in user, the sign-in redirect for anybody
else, the headers of every page, what users and definitions write shown as text,
previews, the results' zip, the static files and their caching, and the weight of a
page (its JS and CSS, gzip-compressed, at most 150 kB)."""

from __future__ import annotations

import gzip
import io
import json
import re
import urllib.request
import zipfile
from pathlib import Path
from urllib.parse import parse_qs, urljoin, urlsplit

import pytest
import webob

from opus.client.static import StaticFiles
from tests.client_helpers import HTML_ACCEPT, XSS, Browser, assert_inert, document
from tests.conftest import LiveServer

WEIGHT_LIMIT = 150 * 1000
PNG = (
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00"
    b"\x00\x1f\x15\xc4\x89\x00\x00\x00\rIDATx\x9cc\xf8\xff\xff?\x00\x05\xfe\x02\xfe\xa7"
    b"\x35\x81\x84\x00\x00\x00\x00IEND\xaeB`\x82"
)
SVG = b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"><script>alert(2)</script></svg>'


@pytest.fixture
def browser(tmp_path: Path, database_url: str) -> Browser:
    signed_in = Browser(tmp_path, database_url)
    signed_in.sign_in()
    return signed_in


def page_paths(browser: Browser) -> list[str]:
    """One path of every page (jobs of each kind made for them)."""
    done = browser.with_results({"table.csv": b"a,b\n1,2\n"})
    pending = browser.job(run=False, duration="1")
    paths = ["/", "/jobs", "/jobs?type=sleep", "/jobs?phase=COMPLETED&phase=ERROR", "/profile"]
    paths += [f"/jobs/new/{name}" for name in browser.service.job_types(browser.caller)]
    paths += [f"/jobs/sleep/{done}", f"/jobs/sleep/{pending}", f"/jobs/sleep/{done}/results/output"]
    paths += [f"/jobs/new/sleep?rerun={done}", "/login"]
    return paths


def test_every_page_renders_for_a_signed_in_user(browser: Browser) -> None:
    for path in page_paths(browser):
        answer = browser.get(path)
        assert answer.content_type == "text/html", path
        assert "alice" in answer.text, path
        assert_inert(answer)


def test_anybody_else_is_sent_to_sign_in(tmp_path: Path, database_url: str) -> None:
    anonymous = Browser(tmp_path, database_url)
    for path in [
        "/",
        "/jobs",
        "/jobs?type=sleep",
        "/jobs/new/sleep",
        "/profile",
        "/jobs/sleep/abc",
    ]:
        answer = anonymous.get(path, status=303)
        target = urlsplit(answer.location)
        assert target.path == "/login"
        assert parse_qs(target.query)["next"] == [path]
    # A form posted without a session: to the sign-in page, then back where it was.
    answer = anonymous.post("/jobs/new/sleep", {"duration": "1"}, csrf=False)
    assert urlsplit(answer.location).path == "/login"
    login = anonymous.get("/login?next=/jobs%3Ftype%3Dsleep")
    form = document(login).xpath('//form[@action="/login"]')[0]
    assert form.xpath('.//input[@name="next"]/@value') == ["/jobs?type=sleep"]
    assert form.xpath('.//input[@name="username"]') and form.xpath('.//input[@name="secret"]')
    assert form.xpath('.//button[normalize-space()="Sign in"]')
    # Another site is never a "next".
    login = anonymous.get("/login?next=//evil.example/")
    assert document(login).xpath('//input[@name="next"]/@value') == ["/"]


def test_signing_in_through_the_page_form(tmp_path: Path, database_url: str) -> None:
    browser = Browser(tmp_path, database_url)
    answer = browser.app.post(
        "/login", {"username": "alice", "secret": "PASSWORD!", "next": "/jobs"}, status=401
    )
    assert "invalid" in answer.text
    browser.sign_in()
    assert "Sign out" in browser.get("/jobs").text


def test_security_headers_on_every_page(browser: Browser) -> None:
    answers = [browser.get(path) for path in page_paths(browser)]
    answers += [browser.get("/jobs/sleep/nosuchjob", status=404)]
    answers += [browser.get("/jobs/nosuchtype/a/b/c", status=404)]
    answers += [browser.get("/jobs/new/nosuchtype", status=404)]
    for answer in answers:
        policy = answer.headers["Content-Security-Policy"]
        assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
        assert "unsafe-inline" not in policy and "unsafe-eval" not in policy
        assert answer.headers["X-Content-Type-Options"] == "nosniff"
        assert answer.headers["X-Frame-Options"] == "DENY"
        assert answer.headers["Cache-Control"] == "no-store"
        assert answer.content_type == "text/html"
    error = browser.get("/jobs/sleep/nosuchjob", status=404)
    assert "no job &#039;nosuchjob&#039;" in error.text


def test_scripts_still_get_text_and_json(browser: Browser) -> None:
    """/ and /jobs are pages for browsers; a script (no Accept, */*) gets the plain-text
    index and the JSON job list as before."""
    index = browser.app.get("/", headers=browser.basic())
    assert index.content_type == "text/plain" and "Vary" in index.headers
    listing = browser.app.get("/jobs", headers={**browser.basic(), "Accept": "*/*"})
    assert listing.content_type == "application/json" and "jobs" in listing.json
    page = browser.get("/jobs")
    assert page.content_type == "text/html" and page.headers["Vary"] == "Accept"


def test_what_users_and_definitions_write_is_text(browser: Browser) -> None:
    browser.write_definition(
        "xss",
        f"""name: xss
annotation: {json.dumps("about " + XSS)}
version: {json.dumps(XSS[:20])}
contact_name: {json.dumps(XSS)}
contact_email: a@example.org
parameters:
  - name: text
    datatype: xs:string
    default: {json.dumps(XSS)}
    annotation: {json.dumps(XSS)}
    unit: {json.dumps("u" + XSS[:10])}
  - name: pick
    datatype: xs:string
    options: [{json.dumps(XSS)}, plain]
    default: plain
script: 'echo "$text" >&2; exit 1'
""",
    )
    failing = browser.finished("xss", text=XSS)
    job = browser.service.create_job(
        browser.caller, "sleep", {"duration": "0"}, control={"RUNID": XSS}
    )
    named = browser.with_results({'"><svg onload=alert(1)>.txt': XSS.encode()})
    pages = [
        browser.get("/"),
        browser.get("/jobs"),
        browser.get("/jobs/new/xss"),
        browser.get(f"/jobs/new/xss?text={XSS}"),
        browser.get(f"/jobs/xss/{failing}"),
        browser.get(f"/jobs/sleep/{job.id}"),
        browser.get(f"/jobs/sleep/{named}"),
    ]
    error = browser.service.get_job(browser.caller, "xss", failing).job.error_message
    assert error and "<script>" in error
    for answer in pages:
        assert "<script>alert" not in answer.text
        assert "<img src=x" not in answer.text
        assert_inert(answer)
    assert "&lt;script&gt;alert(&#039;x&#039;)&lt;/script&gt;" in pages[4].text
    assert XSS in document(pages[5]).text_content()  # the runId, as text
    assert '"><svg onload=alert(1)>.txt' in document(pages[6]).text_content()
    select = document(pages[2]).xpath('//select[@name="pick"]/option/@value')
    assert XSS in select  # the option's value survives as text


def test_job_page_shows_the_job(browser: Browser) -> None:
    job_id = browser.with_results({"notes.txt": b"hello\n"})
    page = browser.get(f"/jobs/sleep/{job_id}")
    tree = document(page)
    assert tree.xpath('//*[@data-live-phase]//*[@data-phase="COMPLETED"]/text()') == ["COMPLETED"]
    for name in ("Delete", "Rerun", "Download all"):
        assert tree.xpath(f'//*[self::a or self::button][normalize-space()="{name}"]'), name
    assert not tree.xpath('//button[normalize-space()="Run"]')
    assert (
        "duration" in tree.xpath('//section[@aria-labelledby="parameters-title"]')[0].text_content()
    )
    output = tree.xpath('//article[.//h3[text()="output"]]')[0]
    sha = browser.service.get_job(browser.caller, "sleep", job_id).result("output")
    assert sha is not None and sha.sha256 in output.text_content()
    assert output.xpath(".//a[@href=$h]", h=f"/store/{job_id}/output")
    assert "slept" in output.xpath(".//pre")[0].text_content()
    pending = browser.job(run=False, duration="1")
    tree = document(browser.get(f"/jobs/sleep/{pending}"))
    assert tree.xpath('//button[normalize-space()="Run"]')
    assert tree.xpath('//button[normalize-space()="Abort"]')
    root = tree.xpath('//*[@id="job"]')[0]
    assert root.get("data-job-path") == f"/rest/sleep/{pending}"


def test_previews_of_each_kind(browser: Browser) -> None:
    big = b"".join(b"line %d\n" % n for n in range(200_000))  # past 1 MB
    job_id = browser.with_results(
        {
            "pic.png": PNG,
            "plot.svg": SVG,
            "data.json": b'{"b": [1, 2], "a": "x"}',
            "rows.csv": b"name,value\n" + b"".join(b"r%d,%d\n" % (n, n) for n in range(500)),
            "rows.tsv": b"x\ty\n1\t2\n",
            "config.yaml": b"key: value\n",
            "big.log": big,
            "blob.bin": b"\x00\x01",
        }
    )
    page = browser.get(f"/jobs/sleep/{job_id}")
    tree = document(page)
    images = tree.xpath("//img/@src")
    assert f"/store/{job_id}/pic.png" in images and f"/store/{job_id}/plot.svg" in images
    assert b"onload" not in page.body and "alert(2)" not in page.text  # never inlined

    def preview(result: str) -> object:
        return document(browser.get(f"/jobs/sleep/{job_id}/results/{result}"))

    assert '"b": [\n    1,' in preview("data.json").xpath("//pre")[0].text_content()
    table = preview("rows.csv").xpath("//table")[0]
    assert table.xpath(".//th/text()") == ["name", "value"]
    assert len(table.xpath(".//tbody/tr")) == 200
    assert preview("rows.tsv").xpath("//table//td/text()") == ["1", "2"]
    assert "key: value" in preview("config.yaml").xpath("//pre")[0].text_content()
    log = preview("big.log")
    shown = log.xpath("//pre")[0].text_content()
    assert shown.startswith("line 0\n") and len(shown) <= 1024 * 1024
    assert log.xpath('//a[normalize-space()="download the rest"]/@href') == [
        f"/store/{job_id}/big.log"
    ]
    assert "No preview" in preview("blob.bin").text_content()


def test_stdout_and_stderr_show_their_end(browser: Browser) -> None:
    job_id = browser.finished("fail", message="the end of the story")
    tree = document(browser.get(f"/jobs/fail/{job_id}"))
    stderr = tree.xpath('//pre[@data-stream="stderr"]')[0].text_content()
    assert "the end of the story" in stderr
    assert "the end of the story" in tree.xpath('//*[@role="alert"]')[0].text_content()


def test_download_all_is_a_zip_of_the_results(browser: Browser) -> None:
    job_id = browser.with_results({"a.txt": b"A" * 10_000, "b.bin": bytes(range(256))})
    answer = browser.get(f"/jobs/sleep/{job_id}/results.zip")
    assert answer.content_type == "application/zip"
    assert answer.headers["Content-Disposition"].startswith("attachment;")
    archive = zipfile.ZipFile(io.BytesIO(answer.body))
    assert archive.testzip() is None
    assert archive.read(f"{job_id}/a.txt") == b"A" * 10_000
    assert archive.read(f"{job_id}/b.bin") == bytes(range(256))
    assert f"{job_id}/output.txt" in archive.namelist()


def test_static_files_are_cached(browser: Browser) -> None:
    page = document(browser.get("/"))
    css = next(href for href in page.xpath("//link[@rel='stylesheet']/@href") if "opus.css" in href)
    assert re.fullmatch(r"/static/css/opus\.css\?v=[0-9a-f]{16}", css)
    answer = browser.app.get(css)
    assert answer.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    assert answer.content_type == "text/css"
    assert answer.headers["X-Content-Type-Options"] == "nosniff"
    etag = answer.headers["ETag"]
    assert browser.app.get(css, headers={"If-None-Match": etag}, status=304)
    plain = browser.app.get("/static/js/common.js")  # as a module imports it
    assert plain.headers["Cache-Control"] == "no-cache"
    assert plain.content_type == "text/javascript"
    assert browser.app.get(
        "/static/js/common.js", headers={"If-None-Match": plain.headers["ETag"]}, status=304
    )
    packed = raw_get(browser, css, {"Accept-Encoding": "gzip"})
    assert packed.headers["Content-Encoding"] == "gzip"
    assert packed.headers["Vary"] == "Accept-Encoding"
    assert gzip.decompress(packed.body) == answer.body
    for bad in ("/static/../pyproject.toml", "/static/%2e%2e/pyproject.toml", "/static/.hidden"):
        browser.app.get(bad, status=404)
    browser.app.get("/static/vendor/bootstrap/LICENSE")
    assert browser.app.get("/static/vendor/bootstrap/VERSION").text.startswith("5.")


def test_static_directory_is_found(tmp_path: Path) -> None:
    files = StaticFiles()
    assert (files.root / "vendor" / "bootstrap" / "bootstrap.min.css").is_file()
    (tmp_path / "css").mkdir()
    (tmp_path / "css" / "x.css").write_text("a{}")
    other = StaticFiles(tmp_path)
    first = other.url("css/x.css")
    (tmp_path / "css" / "x.css").write_text("b{color:red}")
    assert other.url("css/x.css") != first  # an edited file gets a new URL


def test_module_imports_name_their_hashes(tmp_path: Path) -> None:
    """A page loaded again costs one request: a module's imports name their versions,
    and editing an imported module gives its importers new URLs too."""
    (tmp_path / "js").mkdir()
    (tmp_path / "vendor").mkdir()
    (tmp_path / "js" / "common.js").write_text("export const a = 1;\n")
    (tmp_path / "vendor" / "lib.js").write_text("export const b = 2;\n")
    (tmp_path / "js" / "page.js").write_text(
        "import { a } from './common.js';\n"
        'export { a } from "./common.js";\n'
        "const lib = () => import('../vendor/lib.js');\n"
        "import './missing.js';\n"
        "const text = 'from ./common.js';\n"
    )
    files = StaticFiles(tmp_path)
    common = files.get("js/common.js").digest
    lib = files.get("vendor/lib.js").digest
    page = files.get("js/page.js").body.decode()
    assert f"from './common.js?v={common}';" in page
    assert f'from "./common.js?v={common}";' in page
    assert f"import('../vendor/lib.js?v={lib}')" in page
    assert "import './missing.js';" in page  # a missing file is left for the browser
    assert "'from ./common.js'" in page  # not an import
    before = files.url("js/page.js")
    (tmp_path / "js" / "common.js").write_text("export const a = 10;\n")
    assert files.url("js/page.js") != before
    assert (
        f"common.js?v={files.get('js/common.js').digest}" in files.get("js/page.js").body.decode()
    )


def test_modules_importing_each_other_are_served(tmp_path: Path) -> None:
    # A cycle of imports (legal in ES modules) is followed to IMPORT_DEPTH, not forever,
    # however often its files are asked for afterwards (its versions may then change
    # from one request to the next: a cache miss, never a wrong file).
    (tmp_path / "js").mkdir()
    (tmp_path / "js" / "a.js").write_text("import { b } from './b.js';\nexport const a = 1;\n")
    (tmp_path / "js" / "b.js").write_text("import { a } from './a.js';\nexport const b = 2;\n")
    files = StaticFiles(tmp_path)
    first = files.get("js/a.js")
    assert "./b.js?v=" in first.body.decode()
    for _ in range(3):
        assert "./b.js?v=" in files.get("js/a.js").body.decode()
        assert "./a.js?v=" in files.get("js/b.js").body.decode()
        assert files.url("js/a.js").startswith("/static/js/a.js?v=")


def raw_get(browser: Browser, url: str, headers: dict[str, str]) -> webob.Response:
    """An answer as sent (webtest would decompress a gzip body)."""
    answer: webob.Response = webob.Request.blank(url, headers=headers).get_response(browser.app.app)
    return answer


def assets(browser: Browser, answer: object) -> set[str]:
    """Every CSS and JS URL a page loads, ES module imports included."""
    tree = document(answer)  # type: ignore[arg-type]
    found = set(tree.xpath("//link[@rel='stylesheet']/@href") + tree.xpath("//script/@src"))
    for noscript in tree.xpath("//noscript"):
        found |= set(re.findall(r'href="([^"]+)"', noscript.text or ""))
    pending = [url for url in found if ".js" in url]
    while pending:
        url = pending.pop()
        source = browser.app.get(url).text
        for imported in re.findall(r"(?:from\s+|import\()'(\.{1,2}/[^']+)'", source):
            target = urljoin(url, imported)
            if target not in found:
                found.add(target)
                pending.append(target)
    return found


def test_page_weight(browser: Browser) -> None:
    weights = {}
    for path in page_paths(browser):
        total = 0
        for url in assets(browser, browser.get(path)):
            assert url.startswith("/static/"), url  # no CDN
            answer = raw_get(browser, url, {"Accept-Encoding": "gzip, deflate, br"})
            assert answer.status_int == 200, url
            total += len(answer.body)
        weights[path.split("?")[0]] = total
        assert total <= WEIGHT_LIMIT, (path, total)
    print("JS + CSS per page, gzip:", weights)


def test_pages_for_the_anonymous_owner(tmp_path: Path, database_url: str) -> None:
    """With ALLOW_ANONYMOUS, the pages work without signing in (the shared owner)."""
    anonymous = Browser(tmp_path, database_url, ALLOW_ANONYMOUS=True)
    home = document(anonymous.get("/"))
    sign_in = urlsplit(home.xpath('//a[normalize-space()="Sign in"]/@href')[0])
    assert sign_in.path == "/login" and parse_qs(sign_in.query)["next"] == ["/"]
    created = anonymous.post("/jobs/new/sleep", {"duration": "0"}, csrf=False)
    page = anonymous.get(urlsplit(created.location).path)
    assert "anonymous" in page.text
    # Basic credentials work for the pages too (no CSRF token: no cookie authority).
    alice = anonymous.app.get("/jobs", headers={**anonymous.headers(), **anonymous.basic()})
    assert "alice" in alice.text


def test_server_faults_tell_nothing(browser: Browser, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("a detail for the log only")

    monkeypatch.setattr(browser.service, "list_user_jobs", broken)
    answer = browser.get("/jobs", status=500)
    assert "internal server error" in answer.text
    assert "a detail" not in answer.text
    assert "script-src 'self'" in answer.headers["Content-Security-Policy"]
    missing = browser.get("/profile/nothing-here", status=404)
    assert (
        missing.content_type == "text/html" and "no page at /profile/nothing-here" in missing.text
    )
    assert missing.headers["X-Content-Type-Options"] == "nosniff"


def test_templates_come_from_the_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Templates are looked up in opus/templates whatever the working directory (never
    bottle's TEMPLATE_PATH, which is the working directory's)."""
    from opus.client import rendering
    from opus.client.views import HELPERS

    (tmp_path / "error.tpl").write_text("not ours")
    monkeypatch.chdir(tmp_path)
    templates = rendering.Templates(**HELPERS)
    assert templates.lookup == [str(Path(rendering.__file__).parents[1] / "templates") + "/"]
    page = templates.render(
        "phase", phase="COMPLETED", static=str, viewer=None, request_path="/", here="/"
    )
    assert "COMPLETED" in page and "not ours" not in page


@pytest.mark.live
def test_opus_serve_serves_the_pages(live: LiveServer) -> None:
    """A real server: the home page for a browser, its CSS and JS (gzip), the index
    for curl."""
    request = urllib.request.Request(live.url + "/", headers={"Accept": HTML_ACCEPT})
    with urllib.request.urlopen(request, timeout=10) as answer:
        page = answer.read().decode()
        assert answer.headers["Content-Type"].startswith("text/html")
        assert "script-src 'self'" in answer.headers["Content-Security-Policy"]
    for url in re.findall(r'(?:href|src)="(/static/[^"]+)"', page):
        fetch = urllib.request.Request(live.url + url, headers={"Accept-Encoding": "gzip"})
        with urllib.request.urlopen(fetch, timeout=10) as answer:
            assert answer.headers["Cache-Control"].endswith("immutable"), url
            assert answer.headers["Content-Encoding"] == "gzip", url
    with urllib.request.urlopen(live.url + "/", timeout=10) as answer:
        assert answer.headers["Content-Type"].startswith("text/plain")
