"""The new-job form and the job list: the form generated for every example job type and
for a definition with every datatype, pre-filled values, validation errors at their
field, Run and Save as pending, reruns that reuse their inputs, the CSRF token, the
job list's filters, paging and actions, and the profile's token and password."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from opus.core.phases import Phase
from opus.server.jdl import load_definition
from tests.client_helpers import PASSWORD, Browser, document, field, label_of
from tests.conftest import EXAMPLES

EVERY = """name: every
annotation: Every datatype, for the form's tests.
version: "2.0"
parameters:
  - {name: s, datatype: xs:string, required: true, default: 'a "quoted" text',
     annotation: A string.}
  - {name: u, datatype: xs:anyURI, default: "https://example.org/"}
  - {name: b, datatype: xs:boolean, default: "true"}
  - {name: no, datatype: xs:boolean, default: "false"}
  - {name: i, datatype: xs:int, min: "-5", max: "5", default: "1", unit: m}
  - {name: l, datatype: xs:long}
  - {name: sh, datatype: xs:short}
  - {name: ub, datatype: xs:unsignedByte, required: true, default: "7"}
  - {name: f, datatype: xs:float, min: "0.5", default: "1.5", unit: s}
  - {name: d, datatype: xs:double, max: "10"}
  - {name: choice, datatype: xs:string, options: [a, b, c], default: b}
  - {name: doc, datatype: file}
used:
  - {name: many, multiplicity: "*", content_type: text/plain, url: "file://$ID",
     annotation: Several files.}
  - {name: one, content_type: text/plain, url: "file://$ID"}
script: "cat -- \\"$one\\" > out.txt"
generated:
  - {name: out, default: out.txt, content_type: text/plain}
"""
WIDGETS = {
    "xs:string": "text",
    "xs:anyURI": "url",
    "xs:int": "number",
    "xs:float": "number",
    "xs:boolean": "checkbox",
}


@pytest.fixture
def browser(tmp_path: Path, database_url: str) -> Browser:
    signed_in = Browser(tmp_path, database_url)
    signed_in.write_definition("every", EVERY)
    signed_in.sign_in()
    return signed_in


def new_job_of(browser: Browser, answer: object) -> str:
    location = answer.location  # type: ignore[attr-defined]
    match = re.search(r"/jobs/([A-Za-z0-9_-]+)/([a-z2-7]+)$", location)
    assert match, location
    return match.group(2)


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.yml")), ids=lambda p: p.stem)
def test_form_of_each_example(browser: Browser, path: Path) -> None:
    jdl = load_definition(path)
    answer = browser.get(f"/jobs/new/{jdl.name}")
    page = document(answer)
    for param in jdl.parameters:
        block = field(answer, param.name)
        control = block.xpath(".//input[@name=$n] | .//select[@name=$n]", n=param.name)[0]
        assert label_of(page, control).startswith(param.name)
        if param.options:
            assert control.tag == "select"
            assert control.xpath("./option[@selected]/@value") == [param.default]
            assert set(param.options) <= set(control.xpath("./option/@value"))
        else:
            assert control.get("type") == WIDGETS[param.datatype]
            assert control.get("value") == (param.default or "")
        assert param.annotation in block.text_content()
        if param.unit:
            assert f"({param.unit})" in label_of(page, control)
    for entity in jdl.used:
        block = field(answer, entity.name)
        assert block.xpath(".//input[@type='file'][@name=$n]", n=entity.name)
        assert block.xpath(".//input[@type='url'][@name=$n]", n=f"{entity.name}.url")
        assert "(required)" in block.xpath(".//legend")[0].text_content()
    buttons = page.xpath("//form[@data-job-form]//button/text()")
    assert buttons == ["Run", "Save as pending"]


def test_form_of_every_datatype(browser: Browser) -> None:
    answer = browser.get("/jobs/new/every")
    page = document(answer)

    def control(name: str) -> object:
        return field(answer, name).xpath(".//input[@name=$n] | .//select[@name=$n]", n=name)[0]

    assert control("s").get("type") == "text" and control("s").get("required") is not None
    assert control("s").get("value") == 'a "quoted" text'
    assert control("u").get("type") == "url"
    assert control("b").get("type") == "checkbox" and control("b").get("checked") is not None
    assert control("no").get("checked") is None
    i = control("i")
    assert (i.get("type"), i.get("step"), i.get("min"), i.get("max")) == ("number", "1", "-5", "5")
    assert (control("sh").get("min"), control("sh").get("max")) == ("-32768", "32767")
    assert (control("ub").get("min"), control("ub").get("max")) == ("0", "255")
    assert control("l").get("step") == "1"
    f = control("f")
    assert (f.get("type"), f.get("step"), f.get("min"), f.get("value")) == (
        "number",
        "any",
        "0.5",
        "1.5",
    )
    assert control("d").get("max") == "10.0"  # the definition's limit, in canonical form
    assert control("choice").tag == "select"
    assert control("choice").xpath("./option/@value") == ["", "a", "b", "c"]
    many = field(answer, "many").xpath(".//input[@type='file']")[0]
    assert many.get("multiple") is not None and many.get("accept") == "text/plain"
    # "one" takes one file a job: several only with "Run once per file", which a "*"
    # input is not offered (the browser's script drops `multiple` until it is ticked).
    one = field(answer, "one").xpath(".//fieldset[@data-file-input]")[0]
    assert one.get("data-batch") is not None and one.get("data-several") is None
    assert field(answer, "many").xpath(".//fieldset")[0].get("data-batch") is None
    each = page.xpath('//select[@name="opus.each.input"]/option/@value')
    assert each == ["doc", "one"]  # a form of several file inputs asks which
    assert field(answer, "doc").xpath(".//input[@type='file'][@name='doc']")
    # Required ones first, optional ones behind a summary, control ones in "Advanced".
    optional = page.xpath('//details[summary[starts-with(., "Show optional parameters")]]')[0]
    assert optional.xpath('.//*[@data-field="u"]') and optional.xpath('.//*[@data-field="doc"]')
    assert not optional.xpath('.//*[@data-field="s"]')
    advanced = page.xpath('//details[summary="Advanced"]')[0]
    for name in ("RUNID", "EXECUTIONDURATION", "DESTRUCTION"):
        assert advanced.xpath(f'.//*[@data-field="{name}"]'), name
    duration = advanced.xpath('.//input[@name="EXECUTIONDURATION"]')[0]
    assert duration.get("max") == str(browser.settings.EXECUTION_DURATION_MAX)
    for element in page.xpath("//form[@data-job-form]//input[@type!='hidden'] | //select"):
        label_of(page, element)  # every input has a label


def test_every_form_field_reaches_the_job(browser: Browser) -> None:
    answer = browser.post(
        "/jobs/new/every",
        {
            "s": "text",
            "opus.booleans": "b",
            "i": "3",
            "ub": "9",
            "choice": "c",
            "many.source": "file",
            "one.source": "file",
            "RUNID": "mine",
            "EXECUTIONDURATION": "30",
            "DESTRUCTION": "2099-01-02T03:04",
        },
        upload_files=[("one", "in.txt", b"contents\n"), ("many", "m.txt", b"m\n")],
    )
    job_id = new_job_of(browser, answer)
    details = browser.service.get_job(browser.caller, "every", job_id)
    values = {p.name: p.value for p in details.parameters}
    assert values["s"] == "text" and values["b"] == "false" and values["i"] == "3"
    assert values["choice"] == "c" and values["one"] == "in.txt"
    assert details.job.run_id == "mine" and details.job.execution_duration == 30
    assert details.job.phase == Phase.PENDING  # "Save as pending"
    assert details.job.destruction_time is not None


def test_query_string_fills_the_form(browser: Browser) -> None:
    answer = browser.get("/jobs/new/sleep?duration=3&RUNID=r1")
    assert field(answer, "duration").xpath(".//input")[0].get("value") == "3"
    assert field(answer, "RUNID").xpath(".//input")[0].get("value") == "r1"


def test_run_and_save_as_pending(browser: Browser) -> None:
    run = new_job_of(browser, browser.post("/jobs/new/sleep", {"duration": "0", "PHASE": "RUN"}))
    saved = new_job_of(browser, browser.post("/jobs/new/sleep", {"duration": "0"}))
    assert browser.service.get_job(browser.caller, "sleep", run).job.phase != Phase.PENDING
    assert browser.service.get_job(browser.caller, "sleep", saved).job.phase == Phase.PENDING


@pytest.mark.parametrize(
    ("jobname", "form", "at", "reason"),
    [
        ("sleep", {"duration": "abc"}, "duration", "is not"),
        ("sleep", {"duration": "-1"}, "duration", "duration"),
        ("sleep", {"RUNID": "x" * 2000}, "RUNID", "RUNID"),
        ("sleep", {"EXECUTIONDURATION": "soon"}, "EXECUTIONDURATION", "EXECUTIONDURATION"),
        ("sleep", {"DESTRUCTION": "tomorrow"}, "DESTRUCTION", "DESTRUCTION"),
        ("append_text", {"input.source": "file"}, "input", "required"),
        ("append_text", {"input.source": "url", "input.url": "ftp://x/y"}, "input", "http"),
        ("plot", {"function": "tan"}, "function", "tan"),
        ("plot", {"cycles": "99"}, "cycles", "99"),
    ],
)
def test_refusals_appear_at_their_field(
    browser: Browser, jobname: str, form: dict[str, str], at: str, reason: str
) -> None:
    answer = browser.post(f"/jobs/new/{jobname}", {**form, "PHASE": "RUN"}, status=400)
    feedback = field(answer, at).xpath('.//*[contains(@class, "invalid-feedback")]')
    assert feedback and reason in feedback[0].text_content(), answer.text
    for name, value in form.items():
        if "." not in name and len(value) < 100 and name != "function":
            block = field(answer, name)  # what was entered is there to correct
            assert block.xpath(".//input/@value")[0] == value
    assert not list(browser.service.list_jobs(browser.caller, jobname))


def test_changes_need_the_csrf_token(browser: Browser) -> None:
    browser.post("/jobs/new/sleep", {"duration": "1"}, status=403, csrf=False)
    job_id = browser.job(run=False, duration="1")
    browser.post(f"/jobs/sleep/{job_id}/delete", status=403, csrf=False)
    browser.post(f"/jobs/sleep/{job_id}/delete")
    assert not list(browser.service.list_jobs(browser.caller, "sleep"))


def test_rerun_reuses_the_inputs(browser: Browser) -> None:
    first = new_job_of(
        browser,
        browser.post(
            "/jobs/new/append_text",
            {"text": "again", "input.source": "file", "RUNID": "one"},
            upload_files=[("input", "notes.txt", b"first line\n")],
        ),
    )
    form = browser.get(f"/jobs/new/append_text?rerun={first}")
    assert field(form, "text").xpath(".//input")[0].get("value") == "again"
    assert field(form, "RUNID").xpath(".//input")[0].get("value") == "one"
    reuse = field(form, "input").xpath('.//input[@value="reuse"]')[0]
    assert reuse.get("checked") is not None
    assert "notes.txt" in field(form, "input").text_content()
    page = document(form)
    hidden = page.xpath('//input[@name="opus.rerun"]/@value')
    assert hidden == [first]
    second = new_job_of(
        browser,
        browser.post(
            "/jobs/new/append_text",
            {"text": "again", "input.source": "reuse", "opus.rerun": first},
        ),
    )
    opened = browser.service.files.open_input(second, "input")
    assert opened is not None
    with opened:
        assert opened.handle.read() == b"first line\n"


def test_job_list_filters_pages_and_actions(browser: Browser) -> None:
    pending = [browser.job(run=False, duration="1") for _ in range(23)]
    browser.service.create_job(browser.caller, "fail", {}, control={"RUNID": "special-run"})
    page = document(browser.get("/jobs?type=sleep&limit=20"))
    rows = page.xpath("//tbody/tr[@data-job]")
    assert len(rows) == 20
    created = page.xpath("//tbody/tr/td/time/@datetime")
    assert created == sorted(created, reverse=True)  # newest first
    older = page.xpath('//a[@rel="next"]/@href')[0]
    assert "cursor=" in older
    rest = document(browser.get(older)).xpath("//tbody/tr[@data-job]")
    listed = [r.get("data-job") for r in rows + rest]
    assert sorted(listed) == sorted(f"sleep/{j}" for j in pending)
    found = document(browser.get("/jobs?run_id=SPECIAL")).xpath("//tbody/tr[@data-job]")
    assert len(found) == 1 and found[0].get("data-job").startswith("fail/")
    browser.service.abort(browser.caller, "sleep", pending[0])
    aborted = document(browser.get("/jobs?phase=ABORTED&phase=ERROR")).xpath("//tbody/tr")
    assert [r.get("data-job") for r in aborted] == [f"sleep/{pending[0]}"]
    # Several at once: abort two, delete three; refusals are listed, the rest done.
    browser.post(
        "/jobs/actions",
        [("action", "abort"), ("job", f"sleep/{pending[1]}"), ("job", f"sleep/{pending[2]}")],
    )
    assert browser.service.get_job(browser.caller, "sleep", pending[1]).job.phase == Phase.ABORTED
    browser.post(
        "/jobs/actions", [("action", "delete"), *[("job", f"sleep/{j}") for j in pending[:3]]]
    )
    left = {
        j.job_id
        for j in browser.service.list_jobs(browser.caller, "sleep", Phase.__members__.values())
    }
    assert not left & set(pending[:3])
    refused = browser.post(
        "/jobs/actions", [("action", "abort"), ("job", f"sleep/{pending[1]}")], status=403
    )
    assert "could not be aborted" in refused.text
    browser.post(f"/jobs/sleep/{pending[4]}/run", {"next": "/jobs"})
    assert browser.service.get_job(browser.caller, "sleep", pending[4]).job.phase != Phase.PENDING


def test_list_page_is_ready_for_the_change_feed(browser: Browser) -> None:
    browser.job(run=False, duration="1")
    page = document(browser.get("/jobs?type=sleep&phase=PENDING"))
    form = page.xpath('//form[@id="job-list"]')[0]
    assert form.get("data-changes") and form.get("data-types") == "sleep"
    assert form.get("data-phases") == "PENDING" and form.get("data-first-page") == "true"
    assert page.xpath('//template[@id="job-row-template"]')
    feed = browser.app.get(
        f"/changes?since={form.get('data-changes')}",
        headers=browser.headers(Accept="application/json"),
    )
    assert feed.json["token"]


def test_profile_token_and_password(browser: Browser) -> None:
    page = document(browser.get("/profile"))
    assert page.xpath('//button[normalize-space()="Rotate API token"]')
    assert page.xpath('//button[normalize-space()="Sign out"]')
    wrong = browser.post(
        "/profile/password",
        {
            "current_password": "nope",
            "new_password": "a new password",
            "confirm_password": "a new password",
        },
        status=400,
    )
    assert "not your current password" in wrong.text
    short = browser.post(
        "/profile/password",
        {"current_password": PASSWORD, "new_password": "short", "confirm_password": "short"},
        status=400,
    )
    assert "8 to" in short.text
    browser.post(
        "/profile/password",
        {
            "current_password": PASSWORD,
            "new_password": "a new password",
            "confirm_password": "a new password",
        },
        status=200,
    )
    browser.get("/profile", status=303)  # the session ended with the old password
    browser.sign_in(secret="a new password")
    answer = browser.post("/profile/token", status=200)
    token = document(answer).xpath('//input[@id="new-token"]/@value')[0]
    assert token != browser.token
    browser.app.get("/rest", headers=browser.basic(), status=401)
    browser.token = token
    browser.app.get("/rest", headers=browser.basic(), status=200)


def test_definitions_of_the_test_parse() -> None:
    assert yaml.safe_load(EVERY)["name"] == "every"


def test_several_files_for_one_input_are_refused_at_the_field(browser: Browser) -> None:
    """The form lets a "*" input take several files; the service keeps one per input,
    so the page says so at the field rather than keep one silently."""
    answer = browser.post(
        "/jobs/new/every",
        {"s": "x", "ub": "1", "many.source": "file", "one.source": "file"},
        upload_files=[("many", "a.txt", b"a"), ("many", "b.txt", b"b"), ("one", "o.txt", b"o")],
        status=400,
    )
    assert "one file per input" in field(answer, "many").text_content()
    assert not list(browser.service.list_jobs(browser.caller, "every"))
