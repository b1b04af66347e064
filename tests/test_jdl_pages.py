"""The pages of the job definition editor (in-process): who may open them (admins and
jdl_author users; 403 for anybody else, sign-in without credentials), what the editor
page holds (a labelled control for every field of the JDL format, the row templates,
the actions), its CSP (a style nonce for CodeMirror, never 'unsafe-inline'), the "New
definition" form without JavaScript, and the vendored editor libraries served with
hashes and their licences."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import webob

from opus.client.static import StaticFiles
from opus.core.access import JDL_AUTHOR_ROLE
from opus.server.jdl.model import DATATYPES
from tests.client_helpers import PASSWORD, Browser, assert_inert, document

DESCRIPTION_KEYS = (
    "name",
    "version",
    "annotation",
    "doculink",
    "type",
    "subtype",
    "contact_name",
    "contact_email",
    "execution_duration",
    "quote",
)
ROW_FIELDS = {
    "parameters": (
        "name",
        "datatype",
        "default",
        "required",
        "normalize",
        "annotation",
        "options",
        "min",
        "max",
        "unit",
        "ucd",
        "utype",
    ),
    "used": ("name", "default", "content_type", "multiplicity", "source", "url", "annotation"),
    "generated": ("name", "default", "content_type", "multiplicity", "annotation"),
}
ACTIONS = ("Save draft", "Validate", "Try it", "Submit for approval")
EXPORTS = ("Export YAML", "Export JSON", "Export VOTable")


def _signed_in(tmp_path: Path, database_url: str, name: str, roles: list[str]) -> Browser:
    browser = Browser(tmp_path, database_url)
    browser.users.add(name, roles, PASSWORD)
    browser.sign_in(name)
    return browser


@pytest.fixture
def author(tmp_path: Path, database_url: str) -> Browser:
    return _signed_in(tmp_path, database_url, "ann", [JDL_AUTHOR_ROLE])


@pytest.fixture(params=["author", "admin"])
def editor_user(request: pytest.FixtureRequest, tmp_path: Path, database_url: str) -> Browser:
    """Each of those who may open the editor: a jdl_author, an admin."""
    if request.param == "admin":
        return _signed_in(tmp_path, database_url, "root", ["admin"])
    return _signed_in(tmp_path, database_url, "ann", [JDL_AUTHOR_ROLE])


def is_admin(browser: Browser) -> bool:
    return browser.users.get("root") is not None


@pytest.fixture
def plain(tmp_path: Path, database_url: str) -> Browser:
    """carol, who may run every job type but not write definitions."""
    return _signed_in(tmp_path, database_url, "carol", ["all"])


@pytest.mark.parametrize("path", ["/admin/jdl", "/admin/jdl/sleep", "/admin/jdl/brand_new"])
def test_a_plain_user_is_refused(plain: Browser, path: str) -> None:
    answer = plain.get(path, status=403)
    assert answer.content_type == "text/html"
    page = document(answer)
    assert JDL_AUTHOR_ROLE in page.xpath("//main//*[@role='alert']")[0].text_content()
    assert not page.xpath("//nav[@aria-label='Main']//a[starts-with(@href, '/admin')]")


def test_anybody_without_credentials_signs_in_first(tmp_path: Path, database_url: str) -> None:
    anonymous = Browser(tmp_path, database_url)
    answer = anonymous.get("/admin/jdl/sleep", status=303)
    assert answer.headers["Location"].endswith("/login?next=/admin/jdl/sleep")


def test_the_list_page(editor_user: Browser) -> None:
    browser = editor_user
    admin = is_admin(browser)
    answer = browser.get("/admin/jdl")
    assert_inert(answer)
    page = document(answer)
    assert page.xpath("//h1")[0].text_content() == "Job definitions"
    name = page.xpath("//input[@id='new-definition-name']")[0]
    assert name.get("name") == "new" and name.get("required") is not None
    assert page.xpath("//label[@for='new-definition-name']")
    assert page.xpath("//button[normalize-space()='New definition']")
    assert page.xpath("//script[contains(@src, '/static/js/jdl_list.js?v=')]")
    # The approval queue is the admins'.
    assert bool(page.xpath("//*[@data-queue]")) == admin
    # Authors reach the editor from the menu (admins, from the admin pages).
    menu = page.xpath("//nav[@aria-label='Main']//a[@href='/admin/jdl']")
    assert bool(menu) != admin


def test_new_definition_without_javascript(author: Browser) -> None:
    answer = author.get("/admin/jdl?new=my_job", status=303)
    assert answer.headers["Location"] == author.settings.BASE_URL + "/admin/jdl/my_job"
    for bad in ("My-Job", "1abc", "a b", "", "x" * 65):
        refused = author.get(f"/admin/jdl?new={bad}", status=400)
        page = document(refused)
        error = page.xpath("//*[@id='new-definition-error']")[0].text_content()
        assert "is not a definition name" in error
        assert "is-invalid" in page.xpath("//input[@id='new-definition-name']")[0].get("class")


def test_the_editor_page_has_every_field(editor_user: Browser) -> None:
    browser = editor_user
    admin = is_admin(browser)
    answer = browser.get("/admin/jdl/sleep")
    assert answer.content_type == "text/html"
    assert_inert(answer)
    page = document(answer)
    root = page.xpath("//*[@data-jdl-editor]")[0]
    assert root.get("data-name") == "sleep"
    assert root.get("data-admin") == ("1" if admin else "")
    for key in DESCRIPTION_KEYS:
        control = page.xpath(f"//form//*[@data-path='{key}']")
        assert len(control) == 1, key
        assert page.xpath(f"//label[@for='{control[0].get('id')}']"), key
    for key in ("git", "kind", "ref"):  # the source: a git repository and its ref
        control = page.xpath(f"//form//*[@data-source='{key}']")
        assert len(control) == 1, key
        assert page.xpath(f"//label[@for='{control[0].get('id')}']"), key
    kinds = page.xpath("//select[@data-source='kind']/option/@value")
    assert kinds == ["fixed", "parameter"]
    assert page.xpath("//*[@data-script-editor][@data-path='script']")
    assert page.xpath("//*[@data-yaml-editor]")
    for kind, fields in ROW_FIELDS.items():
        template = page.xpath(f"//template[@data-row-template='{kind}']")[0]
        # lxml puts a <template>'s children in the element itself.
        for name in fields:
            control = template.xpath(f".//*[@data-field='{name}']")
            assert len(control) == 1, (kind, name)
            labels = template.xpath(f".//label[@data-label-for='{name}']")
            assert labels and labels[0].text_content().strip(), (kind, name)
        for button in ("Move up", "Move down", "Remove"):
            assert template.xpath(f".//button[starts-with(normalize-space(), '{button}')]")
        assert page.xpath(f"//button[@data-add='{kind}']")
    datatypes = page.xpath(
        "//template[@data-row-template='parameters']//select[@data-field='datatype']/option/@value"
    )
    assert tuple(datatypes) == DATATYPES
    sources = page.xpath(
        "//template[@data-row-template='used']//select[@data-field='source']/option/@value"
    )
    assert sources == ["file", "url", "id"]
    buttons = [" ".join(b.text_content().split()) for b in page.xpath("//button")]
    for text in (*ACTIONS, *EXPORTS):
        assert text in buttons, text
    assert ("Approve" in buttons) == admin
    assert page.xpath("//input[@type='file'][@id='jdl-import']")
    assert page.xpath("//label[@for='jdl-import']")[0].text_content() == "Import a file"
    assert page.xpath("//*[@data-version-rows]")


def test_the_editor_allows_codemirror_styles_by_nonce_only(author: Browser) -> None:
    first = author.get("/admin/jdl/sleep")
    second = author.get("/admin/jdl/sleep")
    policies = [a.headers["Content-Security-Policy"] for a in (first, second)]
    nonces = []
    for answer, policy in zip((first, second), policies, strict=True):
        assert "unsafe-inline" not in policy and "unsafe-eval" not in policy
        assert "script-src 'self';" in policy
        found = re.search(r"style-src 'self' 'nonce-([A-Za-z0-9_-]{20,})';", policy)
        assert found, policy
        root = document(answer).xpath("//*[@data-jdl-editor]")[0]
        assert root.get("data-style-nonce") == found.group(1)
        nonces.append(found.group(1))
    assert nonces[0] != nonces[1], "a nonce is never reused"
    # Every other page keeps styles to the server's files.
    for path in ("/admin/jdl", "/jobs", "/"):
        policy = author.get(path).headers["Content-Security-Policy"]
        assert "style-src 'self';" in policy and "nonce" not in policy, path
    assert "nonce" not in author.get("/admin/jdl/sleep/x", status=404).headers.get(
        "Content-Security-Policy", ""
    )


def test_names_outside_the_api_pattern_are_not_pages(author: Browser) -> None:
    for path in ("/admin/jdl/Sleep", "/admin/jdl/1x", "/admin/jdl/a-b", "/admin/jdl/a.b"):
        answer = author.get(path, status=404)
        assert answer.content_type == "text/html", path


def test_the_definition_name_is_text(author: Browser) -> None:
    # The only value of the request a page writes: its name, in the pattern's alphabet.
    answer = author.get("/admin/jdl/x_y")
    page = document(answer)
    assert page.xpath("//h1/span")[0].text_content() == "x_y"
    assert "Job definition x_y" in page.xpath("//title")[0].text_content()


def test_the_editor_libraries_are_served_with_hashes_and_licences(author: Browser) -> None:
    files = StaticFiles()
    editor = author.app.get(files.url("js/jdl_editor.js")).text
    imported = set(re.findall(r"""from\s*['"]([^'"]+)['"]""", editor))
    assert any(re.fullmatch(r"\./common\.js\?v=[0-9a-f]{16}", i) for i in imported), imported
    modules = {"vendor/codemirror/codemirror.js", "vendor/js-yaml/js-yaml.js"}
    seen = set()
    pending = [files.url("js/jdl_editor.js")]
    while pending:
        url = pending.pop()
        source = author.app.get(url).text
        base = url.split("?")[0].rsplit("/", 1)[0]
        for spec in re.findall(r"""(?:from\s*|import\s*\(\s*)['"](\.{1,2}/[^'"]+)['"]""", source):
            assert "?v=" in spec, (url, spec)
            path = _resolve(base, spec.split("?")[0])
            if path not in seen:
                seen.add(path)
                pending.append(f"/static/{path}?{spec.split('?')[1]}")
    assert modules <= seen, seen
    for directory in ("vendor/codemirror", "vendor/js-yaml"):
        licence = author.app.get(f"/static/{directory}/LICENSE").text
        assert "MIT" in licence or "Permission is hereby granted" in licence
        assert author.app.get(f"/static/{directory}/README.md").status_int == 200
    versions = author.app.get("/static/vendor/codemirror/VERSIONS").text
    assert re.search(r"^codemirror 6\.\d+\.\d+$", versions, re.M)
    assert re.search(r"^@codemirror/view 6\.\d+\.\d+$", versions, re.M)
    assert re.search(r"^4\.\d+\.\d+$", author.app.get("/static/vendor/js-yaml/VERSION").text)


def test_the_editor_page_weight(author: Browser) -> None:
    """CodeMirror makes the editor heavier than the other pages' 150 kB; it still stays
    under 250 kB of JS and CSS, gzip-compressed."""
    page = document(author.get("/admin/jdl/sleep"))
    urls = set(page.xpath("//link[@rel='stylesheet']/@href") + page.xpath("//script/@src"))
    pending = [u for u in urls if ".js" in u]
    while pending:
        url = pending.pop()
        base = url.split("?")[0].rsplit("/", 1)[0]
        source = author.app.get(url).text
        for spec in re.findall(r"""(?:from\s*|import\s*\(\s*)['"](\.{1,2}/[^'"]+)['"]""", source):
            target = f"/static/{_resolve(base, spec.split('?')[0])}?{spec.split('?')[1]}"
            if target not in urls:
                urls.add(target)
                pending.append(target)
    total = 0
    for url in urls:
        # As sent: webtest would decompress a gzip body.
        sent = webob.Request.blank(url, headers={"Accept-Encoding": "gzip"})
        answer = sent.get_response(author.app.app)
        assert answer.status_int == 200, url
        total += len(answer.body)
    assert total <= 250_000, total


def _resolve(base: str, specifier: str) -> str:
    """The static path of a module specifier relative to ``base`` (a /static/ URL path)."""
    parts = base.removeprefix("/static").strip("/").split("/")
    for piece in specifier.split("/"):
        if piece == "..":
            parts.pop()
        elif piece != ".":
            parts.append(piece)
    return "/".join(p for p in parts if p)
