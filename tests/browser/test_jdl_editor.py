"""The job definition editor in the browser: a definition written in the form (its
parameters, the three kinds of entities, a script) from the "New definition" button,
validated with a deliberate error shown at its field and at its YAML line, fixed, tried
(the trial job's page opens), submitted by its author, approved by an admin, run from
its generated form, edited to version 2 while the old job still shows version 1; the
YAML source and the form kept in sync both ways; import and export of YAML, JSON and
VOTable; reordering rows with the keyboard; axe-core and a 375 px screen; 403 for a
user who does not write definitions."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Locator, Page, expect

from opus.core.access import ALL_JOB_TYPES_ROLE, JDL_AUTHOR_ROLE
from opus.server.auth import UserManager
from opus.server.jdl import (
    GeneratedEntity,
    JobDefinition,
    JobSource,
    ParameterDefinition,
    UsedEntity,
    dump_definition,
    parse_definition,
)
from opus.server.storage import UserStore, make_engine
from tests.browser.conftest import Account, PageWatch, Site, page_on, screenshot, sign_in
from tests.browser.support import (
    LONG_MS,
    XSS,
    assert_fits,
    assert_no_xss,
    axe_violations,
    expect_phase,
    job_id_of,
)
from tests.browser.test_accessibility import unlabelled_inputs, unnamed_controls

NAME = "count_words"
SCRIPT = (
    'if [ -f "${words-}" ]; then n=$(wc -w < "$words"); else n=none; fi\n'
    'printf \'%s words, %s steps\\n\' "$n" "$nsteps" > output.txt\n'
)
JOB_PAGE = re.compile(rf"/jobs/{NAME}/[\w-]+$")


@pytest.fixture(scope="module")
def author(site: Site) -> Account:
    """ann, who writes job definitions (and may run every job type)."""
    engine = make_engine(site.server.database_url)
    try:
        users = UserManager(UserStore(engine))
        password = "the password of ann"
        _, token = users.add("ann", [JDL_AUTHOR_ROLE, ALL_JOB_TYPES_ROLE], password)
    finally:
        engine.dispose()
    return Account("ann", password, token)


@pytest.fixture
def author_page(browser: Browser, site: Site, author: Account, watch: PageWatch) -> Iterator[Page]:
    with page_on(browser, site, watch) as page:
        sign_in(page, author)
        yield page


@pytest.fixture
def admin_page(browser: Browser, site: Site, watch: PageWatch) -> Iterator[Page]:
    with page_on(browser, site, watch) as page:
        sign_in(page, site.admin)
        yield page


# --- what the tests do in the editor -----------------------------------------------------


def live_status(page: Page) -> Locator:
    return page.locator("main [data-live-status]")


def description(page: Page, label: str) -> Locator:
    return page.get_by_role("group", name="Description").get_by_label(label, exact=True)


def rows(page: Page, kind: str) -> Locator:
    return page.locator(f"[data-rows='{kind}'] [data-row]")


def add_row(page: Page, kind: str, singular: str) -> Locator:
    page.get_by_role("button", name=f"Add {singular}").click()
    row = rows(page, kind).last
    expect(row.get_by_label("Name", exact=True)).to_be_focused()
    return row


def yaml_text(page: Page) -> str:
    """The YAML editor's text as shown (its lines, unwrapped)."""
    lines = page.locator("[data-yaml-editor] .cm-line").all_inner_texts()
    return "\n".join(lines)


def set_yaml(page: Page, text: str) -> None:
    """Replace the YAML editor's text, as a user pasting it."""
    page.locator("#jdl-yaml-input").click()
    page.keyboard.press("Control+A")
    page.keyboard.press("Delete")
    page.keyboard.insert_text(text)


def action(page: Page, name: str) -> None:
    page.get_by_role("button", name=name, exact=True).click()


def open_editor(page: Page, name: str) -> None:
    page.goto(f"/admin/jdl/{name}")
    expect(page.locator("[data-yaml-editor] .cm-content")).to_contain_text(f"name: {name}")


def write_definition(page: Page) -> None:
    """count_words in the form: two parameters (the second moved up and back), a used
    and a generated entity, a script; nsteps' default is not an integer."""
    page.goto("/admin/jdl")
    page.get_by_label("Name of a new definition").fill(NAME)
    page.get_by_role("button", name="New definition").click()
    expect(page).to_have_url(re.compile(rf"/admin/jdl/{NAME}$"))
    expect(live_status(page)).to_have_text(re.compile("A new definition"))
    expect(description(page, "Name")).to_have_value(NAME)
    description(page, "Version").fill("1.0")
    description(page, "Annotation").fill(f"Counts the words of a text. {XSS[0]}")
    description(page, "Type").fill("test")
    description(page, "Contact name").fill("Ann Author")
    description(page, "Contact e-mail").fill("ann@example.org")
    description(page, "Execution duration (s)").fill("60")
    description(page, "Quote (s)").fill("1")

    nsteps = add_row(page, "parameters", "parameter")
    nsteps.get_by_label("Name", exact=True).fill("nsteps")
    nsteps.get_by_label("Datatype").select_option("xs:int")
    nsteps.get_by_label("Default").fill("abc")
    nsteps.get_by_label("Min").fill("1")
    nsteps.get_by_label("Annotation").fill("How many steps.")
    label = add_row(page, "parameters", "parameter")
    label.get_by_label("Name", exact=True).fill("label")
    label.get_by_label("Options, one per line").fill("words\nlines")
    label.get_by_label("Default").fill("words")
    label.get_by_label("Required").check()
    # The second parameter up, then down again: the YAML follows the rows' order.
    page.get_by_role("button", name="Move up parameter 2").click()
    expect(rows(page, "parameters").first).to_contain_text("Parameter 1: label")
    assert yaml_text(page).index("- name: label") < yaml_text(page).index("- name: nsteps")
    expect(page.get_by_role("button", name="Move down parameter 1")).to_be_visible()
    page.get_by_role("button", name="Move down parameter 1").click()
    expect(rows(page, "parameters").first).to_contain_text("Parameter 1: nsteps")

    words = add_row(page, "used", "used entity")
    words.get_by_label("Name", exact=True).fill("words")
    words.get_by_label("Default").fill("none")
    words.get_by_label("Content types").fill("text/plain")
    expect(words.get_by_label("Given as")).to_have_value("file")
    expect(words.get_by_label(re.compile("^URL template"))).to_be_hidden()
    words.get_by_label("Annotation").fill("The text whose words are counted.")

    output = add_row(page, "generated", "generated entity")
    output.get_by_label("Name", exact=True).fill("output")
    output.get_by_label("File name or glob").fill("output.txt")
    output.get_by_label("Content type").fill("text/plain")

    page.locator("#jdl-script-input").click()
    page.keyboard.insert_text(SCRIPT)
    text = yaml_text(page)
    for line in (
        "name: count_words",
        "version: '1.0'",
        "execution_duration: 60",
        "datatype: xs:int",
        "default: abc",
        "required: true",
        "url: file://$ID",
        "default: output.txt",
        "script: |",
        '  printf \'%s words, %s steps\\n\' "$n" "$nsteps" > output.txt',
    ):
        assert line in text, (line, text)


def expect_field_problem(control: Locator, text: str) -> None:
    expect(control).to_have_attribute("aria-invalid", "true")
    described = control.get_attribute("aria-describedby") or ""
    note = control.page.locator(f"#{described.split()[-1]}")
    expect(note).to_contain_text(text)


def approve(page: Page, name: str) -> int:
    """As an admin: the draft of ``name`` from the approval queue, approved."""
    page.goto("/admin/jdl")
    queue = page.get_by_role("region", name="Waiting for approval")
    queue.get_by_role("link", name=name).click()
    expect(page).to_have_url(re.compile(rf"/admin/jdl/{name}$"))
    expect(live_status(page)).to_have_text("The draft is shown.")
    action(page, "Approve")
    expect(live_status(page)).to_have_text(re.compile(rf"Approved: {name} is now revision \d+"))
    found = re.search(r"revision (\d+)", live_status(page).inner_text())
    assert found
    return int(found.group(1))


def run_from_form(page: Page, steps: str, text: bytes, tmp_path: Path) -> str:
    """A job of count_words from its form (/jobs/new/count_words), ended; its id."""
    page.goto(f"/jobs/new/{NAME}")
    # Both have defaults: optional.
    page.locator("summary", has_text="Show optional parameters").click()
    page.get_by_label(re.compile(r"^nsteps(\s|$)")).fill(steps)
    upload = tmp_path / "words.txt"
    upload.write_bytes(text)
    page.get_by_label("words: file to upload").set_input_files(str(upload))
    page.get_by_role("button", name="Run", exact=True).click()
    expect(page).to_have_url(JOB_PAGE)
    expect_phase(page, "COMPLETED")
    return job_id_of(page)


def titles(*names: str) -> list[str]:
    """The legends of parameter rows holding ``names``, in order."""
    return [f"Parameter {n}: {name}" for n, name in enumerate(names, 1)]


def definition_fact(page: Page) -> Locator:
    return page.locator("[data-definition-revision]")


# --- the tests ------------------------------------------------------------------------------


def test_from_a_new_definition_to_version_2(
    browser: Browser, site: Site, author: Account, watch: PageWatch, tmp_path: Path
) -> None:
    with page_on(browser, site, watch) as page:
        sign_in(page, author)
        write_definition(page)
        nsteps = rows(page, "parameters").first
        action(page, "Validate")
        # The problem at its field, in the list above the form, and at its YAML line.
        expect_field_problem(nsteps.get_by_label("Default"), "abc")
        expect(page.locator("[data-problem-list]")).to_contain_text("parameters[0].default")
        bad_line = page.locator("[data-yaml-editor] .cm-line", has_text="default: abc")
        expect(bad_line.locator(".cm-lintRange-error")).to_have_count(1)
        expect(page.locator("[data-yaml-editor] .cm-lint-marker-error")).to_have_count(1)
        screenshot(page, "jdl-editor-problem")
        # The problem's link goes to its field.
        page.locator("[data-problem-list] a").first.click()
        expect(nsteps.get_by_label("Default")).to_be_focused()
        nsteps.get_by_label("Default").fill("3")
        expect(nsteps.get_by_label("Default")).not_to_have_attribute("aria-invalid", "true")
        action(page, "Validate")
        expect(live_status(page)).to_have_text("The definition is valid.")
        expect(page.locator("[data-problems]")).to_be_hidden()

        action(page, "Try it")
        expect(live_status(page)).to_have_text(re.compile(r"Job [\w-]+ of the draft is running"))
        page.get_by_role("link", name="open its page").click()
        expect(page).to_have_url(JOB_PAGE)
        expect_phase(page, "COMPLETED")
        expect(definition_fact(page)).to_contain_text("a draft (trial job)")
        expect(page.locator("main")).to_contain_text("none words, 3 steps")

        open_editor(page, NAME)
        expect(live_status(page)).to_have_text("The draft is shown.")
        expect(rows(page, "parameters").first.get_by_label("Default")).to_have_value("3")
        action(page, "Submit for approval")
        expect(live_status(page)).to_have_text("The draft is submitted for approval.")
        expect(page.locator("[data-state]")).to_contain_text("submitted")
        assert_no_xss(page)
        # An author approves nothing.
        expect(page.get_by_role("button", name="Approve")).to_have_count(0)

    with page_on(browser, site, watch) as admin:
        sign_in(admin, site.admin)
        assert approve(admin, NAME) == 1
        expect(admin.locator("[data-version-rows] tr")).to_have_count(1)
        expect(admin.locator("[data-version-rows]")).to_contain_text("1 (current)")
        assert_no_xss(admin)

    with page_on(browser, site, watch) as page:
        sign_in(page, author)
        first_job = run_from_form(page, "4", b"one two three\n", tmp_path)
        expect(page.locator("main")).to_contain_text("3 words, 4 steps")
        expect(definition_fact(page)).to_contain_text("revision 1, version 1.0")

        # Version 2: a new label and default, saved, submitted.
        open_editor(page, NAME)
        expect(live_status(page)).to_have_text(re.compile("The active definition is shown"))
        description(page, "Version").fill("2.0")
        rows(page, "parameters").first.get_by_label("Default").fill("5")
        action(page, "Save draft")
        expect(live_status(page)).to_have_text("Draft saved.")
        action(page, "Submit for approval")
        expect(live_status(page)).to_have_text("The draft is submitted for approval.")

    with page_on(browser, site, watch) as admin:
        sign_in(admin, site.admin)
        assert approve(admin, NAME) == 2
        versions = admin.locator("[data-version-rows] tr")
        expect(versions).to_have_count(2)
        expect(versions.first).to_contain_text("2 (current)")
        admin.get_by_role("button", name="Compare with revision 1 (revision 2)").click()
        diff = admin.locator("[data-diff-text]")
        expect(diff).to_be_focused()
        expect(diff.locator(".jdl-diff-del", has_text="-version: '1.0'")).to_have_count(1)
        expect(diff.locator(".jdl-diff-add", has_text="+version: '2.0'")).to_have_count(1)
        expect(diff.locator(".jdl-diff-add", has_text="default: '5'")).to_have_count(1)
        screenshot(admin, "jdl-editor-versions")

    with page_on(browser, site, watch) as page:
        sign_in(page, author)
        page.goto(f"/jobs/{NAME}/{first_job}")
        expect(definition_fact(page)).to_contain_text("revision 1, version 1.0")
        second_job = run_from_form(page, "6", b"a b\n", tmp_path)
        assert second_job != first_job
        expect(definition_fact(page)).to_contain_text("revision 2, version 2.0")
        expect(page.locator("main")).to_contain_text("2 words, 6 steps")

    # An admin puts revision 1 back.
    with page_on(browser, site, watch) as admin:
        sign_in(admin, site.admin)
        open_editor(admin, NAME)
        admin.once("dialog", lambda dialog: dialog.accept())
        admin.get_by_role("button", name="Restore revision 1").click()
        expect(live_status(admin)).to_have_text("Revision 1 is the active definition again.")
        expect(admin.locator("[data-state]")).to_contain_text("(version 1.0)")
        expect(description(admin, "Version")).to_have_value("1.0")
        expect(admin.get_by_role("button", name="Restore revision 1")).to_have_count(0)


ROUND_TRIP = JobDefinition(
    name="round_trip",
    annotation="A definition imported and exported in every form.",
    version="3.1",
    doculink="https://example.org/round_trip",
    type="test",
    subtype="formats",
    contact_name="Ann Author",
    contact_email="ann@example.org",
    execution_duration=120,
    quote=5,
    source=JobSource("https://git.example.org/round_trip.git", ref_parameter="mode"),
    script="printf '%s\\n' \"$ratio\" > out.txt\n",
    parameters=[
        ParameterDefinition(
            "ratio",
            "xs:float",
            default="1.50",
            annotation="A ratio.",
            min="0.5",
            max="9.5",
            unit="m",
            ucd="arith.ratio",
            utype="test:ratio",
        ),
        ParameterDefinition("mode", default="fast", options=["fast", "slow"], required=True),
        ParameterDefinition("flag", "xs:boolean", default="true", normalize=True),
    ],
    used=[
        UsedEntity("table", content_type="text/csv, text/plain", url="file://$ID"),
        UsedEntity(
            "image",
            default="m31",
            content_type="image/fits",
            multiplicity="0..1",
            url="https://archive.example.org/data/$ID",
            annotation="An image by its identifier.",
        ),
    ],
    generated=[
        GeneratedEntity("out", "out.txt", "text/plain", annotation="The ratio."),
        GeneratedEntity("plots", "*.png", "image/png", multiplicity="*"),
    ],
)
EXTENSIONS = {"yaml": "yml", "json": "json", "votable": "xml"}


@pytest.mark.parametrize("fmt", ["yaml", "json", "votable"])
def test_import_and_export(admin_page: Page, fmt: str, tmp_path: Path) -> None:
    page = admin_page
    name = f"round_trip_{fmt}"
    original = dump_definition(_renamed(name), fmt)
    source = tmp_path / f"{name}.{EXTENSIONS[fmt]}"
    source.write_text(original, encoding="utf-8")
    page.goto(f"/admin/jdl/{name}")
    expect(live_status(page)).to_have_text(re.compile("A new definition"))
    page.locator("#jdl-import").set_input_files(str(source))
    expect(live_status(page)).to_have_text(f"{source.name} is imported as the draft.")
    # The form shows what the file holds.
    expect(description(page, "Version")).to_have_value("3.1")
    expect(rows(page, "parameters")).to_have_count(3)
    expect(rows(page, "parameters").first.get_by_label("Default")).to_have_value("1.50")
    image = rows(page, "used").nth(1)
    expect(image.get_by_label("Given as")).to_have_value("id")
    expect(image.get_by_label(re.compile("^URL template"))).to_have_value(
        "https://archive.example.org/data/$ID"
    )
    expect(rows(page, "parameters").nth(2).get_by_label("Normalize values")).to_be_checked()
    source = page.get_by_role("group", name="Source code")
    expect(source.get_by_label("Git repository URL")).to_have_value(
        "https://git.example.org/round_trip.git"
    )
    expect(source.get_by_label("Ref given as")).to_have_value("parameter")
    expect(source.get_by_label("Ref or parameter name")).to_have_value("mode")
    expect(rows(page, "generated")).to_have_count(2)
    for other in ("yaml", "json", "votable"):
        label = {"yaml": "YAML", "json": "JSON", "votable": "VOTable"}[other]
        with page.expect_download() as download:
            page.get_by_role("button", name=f"Export {label}").click()
        saved = download.value
        assert saved.suggested_filename == f"{name}.{EXTENSIONS[other]}"
        exported = Path(saved.path()).read_text(encoding="utf-8")
        assert parse_definition(exported, other) == parse_definition(original, fmt), other
        if other == fmt:
            assert exported == original


def _renamed(name: str) -> JobDefinition:
    from dataclasses import replace

    return replace(ROUND_TRIP, name=name)


def test_yaml_and_form_follow_each_other(admin_page: Page) -> None:
    page = admin_page
    open_editor(page, "plot")
    function = rows(page, "parameters").first
    expect(function.get_by_label("Options, one per line")).to_have_value(
        "sin\ncos\nsquare\ntriangle\nsawtooth"
    )
    text = yaml_text(page)
    assert "annotation: Draws a few cycles" in text
    # YAML → form, once the text parses.
    set_yaml(page, text.replace("annotation: Draws a few cycles", "annotation: Draws cycles"))
    expect(description(page, "Annotation")).to_have_value(
        re.compile("^Draws cycles of a periodic function")
    )
    # A syntax error: shown, at its line; the form stays as it was.
    set_yaml(page, "name: plot\nannotation: [broken\nversion: '9'\n")
    error = page.locator("[data-yaml-error]")
    expect(error).to_contain_text("The YAML does not parse")
    expect(page.locator("[data-yaml-editor] .cm-lint-marker-error")).to_have_count(1)
    expect(description(page, "Annotation")).to_have_value(re.compile("^Draws cycles"))
    expect(rows(page, "parameters")).to_have_count(4)
    # Fixed: the form follows, the error goes.
    set_yaml(page, "name: plot\nannotation: fixed\nversion: '9'\n")
    expect(error).to_be_hidden()
    expect(description(page, "Annotation")).to_have_value("fixed")
    expect(rows(page, "parameters")).to_have_count(0)
    # Form → YAML, and the script editor → YAML.
    description(page, "Subtype").fill("curves")
    assert "subtype: curves" in yaml_text(page)
    page.locator("#jdl-script-input").click()
    page.keyboard.insert_text("echo done > out.txt\n")
    expect(page.locator("[data-yaml-editor] .cm-content")).to_contain_text("echo done > out.txt")
    # The source's fields: a fixed ref, then a parameter's; emptied, no source.
    source = page.get_by_role("group", name="Source code")
    source.get_by_label("Git repository URL").fill("https://git.example.org/plot.git")
    source.get_by_label("Ref or parameter name").fill("v2.0")
    expect(page.locator("[data-yaml-editor] .cm-content")).to_contain_text("ref: v2.0")
    assert "source:\n  git: https://git.example.org/plot.git\n  ref: v2.0" in yaml_text(page)
    source.get_by_label("Ref given as").select_option("parameter")
    source.get_by_label("Ref or parameter name").fill("version")
    expect(page.locator("[data-yaml-editor] .cm-content")).to_contain_text("parameter: version")
    set_yaml(page, yaml_text(page).replace("parameter: version", "parameter: release"))
    expect(source.get_by_label("Ref or parameter name")).to_have_value("release")
    source.get_by_label("Git repository URL").fill("")
    source.get_by_label("Ref or parameter name").fill("")
    expect(page.locator("[data-yaml-editor] .cm-content")).not_to_contain_text("source:")
    # A key the form has no field for stays in the YAML, for the server to name.
    set_yaml(page, "name: plot\ncolour: red\nversion: '9'\nsubtype: bars\n")
    description(page, "Version").fill("10")
    expect(description(page, "Subtype")).to_have_value("bars")
    assert "colour: red" in yaml_text(page) and "version: '10'" in yaml_text(page)
    action(page, "Validate")
    expect(page.locator("[data-problem-list]")).to_contain_text("colour")
    expect(
        page.locator("[data-yaml-editor] .cm-line", has_text="colour: red").locator(
            ".cm-lintRange-error"
        )
    ).to_have_count(1)


def test_rows_with_the_keyboard(admin_page: Page) -> None:
    page = admin_page
    open_editor(page, "fits_image")
    expect(rows(page, "parameters")).to_have_count(4)
    names = page.locator("[data-rows='parameters'] [data-row-title]")
    expect(names).to_have_text(titles("size", "stars", "seed", "object"))
    down = page.get_by_role("button", name="Move down parameter 1")
    down.focus()
    page.keyboard.press("Enter")
    expect(names).to_have_text(titles("stars", "size", "seed", "object"))
    # The focus moved with its row: its button is now "parameter 2"'s.
    focused = page.get_by_role("button", name="Move down parameter 2")
    expect(focused).to_be_focused()
    page.keyboard.press("Space")
    expect(names).to_have_text(titles("stars", "seed", "size", "object"))
    page.get_by_role("button", name="Remove parameter 4").focus()
    page.keyboard.press("Enter")
    expect(names).to_have_text(titles("stars", "seed", "size"))
    expect(page.get_by_role("button", name="Remove parameter 3")).to_be_focused()
    add = page.get_by_role("button", name="Add parameter")
    add.focus()
    page.keyboard.press("Enter")
    expect(rows(page, "parameters").last.get_by_label("Name", exact=True)).to_be_focused()
    page.keyboard.type("level")
    expect(rows(page, "parameters").last).to_contain_text("Parameter 4: level")
    assert "- name: level" in yaml_text(page)
    # Tab leaves the script editor (CodeMirror does not keep it for indenting).
    page.locator("#jdl-script-input").click()
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") != "jdl-script-input"


@pytest.mark.parametrize("path", ["/admin/jdl", "/admin/jdl/append_text", "/admin/jdl/brand_new"])
def test_accessible_and_fits_a_phone(
    browser: Browser, site: Site, watch: PageWatch, path: str
) -> None:
    with page_on(browser, site, watch) as page:
        sign_in(page, site.admin)
        page.goto(path)
        if path == "/admin/jdl":
            expect(page.locator("[data-definition-rows] tr").first).to_be_visible()
        else:
            expect(page.locator("[data-yaml-editor] .cm-content")).to_contain_text("name:")
        if path == "/admin/jdl/append_text":
            action(page, "Validate")
            expect(live_status(page)).to_have_text("The definition is valid.")
        label = path.strip("/").replace("/", "-")
        screenshot(page, f"page-{label}")
        assert axe_violations(page) == []
        assert unnamed_controls(page) == []
        assert unlabelled_inputs(page) == []
        page.set_viewport_size({"width": 375, "height": 740})
        screenshot(page, f"page-{label}-375")
        assert_fits(page)
        assert axe_violations(page) == []


def test_a_problem_is_accessible(admin_page: Page) -> None:
    page = admin_page
    open_editor(page, "sleep")
    rows(page, "parameters").first.get_by_label("Default").fill("soon")
    action(page, "Validate")
    expect_field_problem(rows(page, "parameters").first.get_by_label("Default"), "soon")
    assert axe_violations(page) == []


def test_who_may_not_write_definitions_is_refused(
    browser: Browser, site: Site, watch: PageWatch
) -> None:
    watch.expected.append("status of 403")
    with page_on(browser, site, watch) as page:
        sign_in(page, site.alice)
        for path in ("/admin/jdl", f"/admin/jdl/{NAME}"):
            answer = page.goto(path)
            assert answer is not None and answer.status == 403
            expect(page.locator("main")).to_contain_text(JDL_AUTHOR_ROLE)


def test_a_refusal_of_the_api_is_said(author_page: Page, watch: PageWatch) -> None:
    """The editor of a type an admin put in place: its author may not write it."""
    watch.expected.append("status of 403")
    page = author_page
    page.goto("/admin/jdl/sleep")
    expect(page.locator("[data-yaml-editor] .cm-content")).to_contain_text("name: sleep")
    action(page, "Save draft")
    expect(live_status(page)).to_have_text(
        re.compile("The draft was not saved: ann may not write the definition of sleep"),
        timeout=LONG_MS,
    )
