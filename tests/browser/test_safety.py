"""Safety in the browser: changes made with the session cookie need its CSRF token and
the site's own Origin (Basic credentials need no token, but the Origin too), and
script payloads in everything a user or a definition supplies are shown as text, run
nowhere (window.__xss stays undefined) and log no error."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import quote

import pytest
import requests
from playwright.sync_api import Page, expect

from tests.browser.conftest import PageWatch, Site, running_site, screenshot, sign_in
from tests.browser.support import LONG_MS, XSS, Api, assert_no_xss

IMG, SCRIPT, SVG = XSS
DOCULINK = "https://example.org/" + SCRIPT


def _marked_definition() -> str:
    """A job type whose every text is a payload (JSON strings are YAML scalars)."""
    q = json.dumps
    return f"""\
name: marked
annotation: {q("Marked " + IMG + " and " + SCRIPT)}
version: {q("1.0" + SVG)}
contact_name: {q("Mallory " + IMG)}
contact_email: mallory@example.org
doculink: {q(DOCULINK)}
execution_duration: 60
parameters:
  - name: label
    datatype: xs:string
    default: {q(SCRIPT)}
    unit: {q(SVG)}
    annotation: {q("The label " + IMG)}
  - name: choice
    datatype: xs:string
    default: plain
    options: [{q(IMG)}, plain]
    annotation: {q(SCRIPT)}
generated:
  - name: output
    default: output.txt
    content_type: text/plain
    annotation: {q(IMG)}
script: |
  printf '%s\\n' "$label" "$choice" > output.txt
"""


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    definitions = {"marked.yml": _marked_definition()}
    with running_site(tmp_path_factory.mktemp("site"), definitions=definitions) as started:
        yield started


@pytest.fixture
def api(site: Site) -> Api:
    return Api(site, site.alice)


def csrf_token(page: Page) -> str:
    token: str = page.evaluate("document.body.dataset.csrfToken")
    assert token
    return token


def count_jobs(api: Api) -> int:
    answer = api.http.get(api.url("/jobs"), headers={"Accept": "application/json"})
    answer.raise_for_status()
    return len(answer.json()["jobs"])


def test_a_change_without_the_csrf_token_is_refused(alice_page: Page, api: Api) -> None:
    page = alice_page
    before = count_jobs(api)
    refused = page.request.post("/rest/sleep", form={"duration": "0"}, max_redirects=0)
    assert refused.status == 403
    assert "CSRF" in refused.text()
    # With the page's token, the same request works.
    made = page.request.post(
        "/rest/sleep",
        form={"duration": "0"},
        headers={"X-CSRF-Token": csrf_token(page)},
        max_redirects=0,
    )
    assert made.status == 303
    assert count_jobs(api) == before + 1
    # A page's own form without its token: the job stays.
    job_id = made.headers["location"].rsplit("/", 1)[-1]
    deleted = page.request.post(f"/jobs/sleep/{job_id}/delete", form={"next": "/jobs"})
    assert deleted.status == 403
    assert "text/html" in deleted.headers["content-type"]
    assert api.exists("sleep", job_id)
    # Signing out is a change too.
    assert page.request.post("/logout", max_redirects=0).status == 403
    page.goto("/profile")
    expect(page.get_by_role("heading", name="alice", level=1)).to_be_visible()


def test_a_script_of_the_page_needs_the_token(alice_page: Page, watch: PageWatch, api: Api) -> None:
    page = alice_page
    watch.expected.append("403")
    before = count_jobs(api)
    statuses = page.evaluate(
        """async () => {
            const post = (headers) => fetch('/rest/sleep', {
                method: 'POST', headers, body: new URLSearchParams({duration: '0'}),
            });
            const without = await post({});
            const token = document.body.dataset.csrfToken;
            const withToken = await post({'X-CSRF-Token': token});
            return [without.status, withToken.status];
        }"""
    )
    # fetch follows the 303 to the new job.
    assert statuses == [403, 200]
    assert count_jobs(api) == before + 1


def test_a_foreign_origin_is_refused(alice_page: Page, site: Site, api: Api) -> None:
    page = alice_page
    before = count_jobs(api)
    foreign = page.request.post(
        "/rest/sleep",
        form={"duration": "0"},
        headers={"X-CSRF-Token": csrf_token(page), "Origin": "http://evil.example"},
        max_redirects=0,
    )
    assert foreign.status == 403
    assert "cross-site request refused" in foreign.text()
    # Basic credentials need no CSRF token, but are refused from another site as well.
    url = site.url + "/rest/sleep"
    auth = (site.alice.name, site.alice.token)
    basic = requests.post(url, data={"duration": "0"}, auth=auth, allow_redirects=False, timeout=30)
    assert basic.status_code == 303
    cross = requests.post(
        url,
        data={"duration": "0"},
        auth=auth,
        headers={"Origin": "http://evil.example"},
        allow_redirects=False,
        timeout=30,
    )
    assert cross.status_code == 403
    assert count_jobs(api) == before + 1


@dataclass(frozen=True)
class Marked:
    append: str
    fail: str
    plot: str
    marked: str


@pytest.fixture(scope="module")
def marked_jobs(site: Site) -> Marked:
    """Jobs whose run IDs, values, input file name and content are payloads."""
    api = Api(site, site.alice)
    content = "\n".join(XSS).encode()
    made = Marked(
        append=api.create(
            "append_text",
            {"RUNID": IMG, "text": SCRIPT},
            files={"input": (f"{IMG}.txt", content)},
        ),
        fail=api.create("fail", {"RUNID": SCRIPT, "message": f"{IMG} {SVG}"}),
        plot=api.create("plot", {"RUNID": SVG, "title": SCRIPT}),
        marked=api.create("marked", {"RUNID": "marked", "choice": IMG}),
    )
    for jobname, job_id in vars(made).items():
        api.wait_end("append_text" if jobname == "append" else jobname, job_id)
    return made


def shown_as_text(page: Page, text: str) -> None:
    expect(page.get_by_text(text, exact=False).first).to_be_attached()


def test_payloads_in_job_pages(alice_page: Page, marked_jobs: Marked) -> None:
    page = alice_page
    page.goto(f"/jobs/append_text/{marked_jobs.append}")
    expect(page.locator("[data-live-phase]")).to_have_text("COMPLETED")
    expect(page.get_by_role("heading", level=1)).to_have_text(f"append_text job {IMG}")
    expect(page.locator("article pre.preview")).to_have_text("\n".join(XSS) + "\n" + SCRIPT + "\n")
    input_row = page.get_by_role("row", name=re.compile("^input"))
    expect(input_row).to_contain_text(".txt")
    assert page.title().startswith(f"append_text job {IMG}")
    assert_no_xss(page)
    page.goto(f"/jobs/append_text/{marked_jobs.append}/results/output")
    expect(page.locator("pre.preview")).to_contain_text(SVG)
    assert_no_xss(page)
    page.goto(f"/jobs/fail/{marked_jobs.fail}")
    expect(page.get_by_role("heading", level=1)).to_have_text(f"fail job {SCRIPT}")
    expect(page.locator('[data-stream="stderr"]')).to_have_text(f"{IMG} {SVG}\n")
    expect(page.get_by_role("row", name=re.compile("^message"))).to_contain_text(IMG)
    # The error summary ends with what the job wrote on stderr.
    expect(page.get_by_role("alert").filter(has_text="Error:")).to_contain_text(f"{IMG} {SVG}")
    assert_no_xss(page)
    page.goto(f"/jobs/plot/{marked_jobs.plot}")
    expect(page.get_by_role("row", name=re.compile("^title"))).to_contain_text(SCRIPT)
    expect(page.get_by_role("img", name="plot.svg, a result of the job")).to_be_visible()
    assert_no_xss(page)
    page.goto(f"/jobs/marked/{marked_jobs.marked}")
    expect(page.get_by_role("row", name=re.compile("^label"))).to_contain_text(SCRIPT)
    expect(page.get_by_role("row", name=re.compile("^label"))).to_contain_text("The label " + IMG)
    expect(page.locator("article pre.preview")).to_have_text(f"{SCRIPT}\n{IMG}\n")
    screenshot(page, "xss-job")
    assert_no_xss(page)


def test_payloads_in_lists_and_forms(
    alice_page: Page, watch: PageWatch, marked_jobs: Marked
) -> None:
    page = alice_page
    watch.expected.append("status of 400")
    page.goto("/")
    # The definition's texts on the home page, and the run IDs of the recent jobs.
    expect(page.locator("#type-marked")).to_contain_text("version 1.0" + SVG)
    shown_as_text(page, "Marked " + IMG + " and " + SCRIPT)
    shown_as_text(page, "Mallory " + IMG)
    doculink = page.get_by_role("link", name="Documentation of marked")
    expect(doculink).to_have_attribute("href", DOCULINK)
    for run_id in (IMG, SCRIPT, SVG):
        expect(page.get_by_role("link", name=run_id, exact=True)).to_be_visible()
    assert_no_xss(page)
    page.goto("/jobs")
    for run_id in (IMG, SCRIPT, SVG):
        expect(page.get_by_role("link", name=run_id, exact=True)).to_be_visible()
        expect(page.get_by_label(f"Select job {run_id}", exact=True)).to_be_attached()
    assert_no_xss(page)
    # The search field holds the payload searched for.
    page.get_by_label("Run ID contains").fill(SCRIPT)
    page.get_by_role("button", name="Filter").click()
    expect(page.get_by_label("Run ID contains")).to_have_value(SCRIPT)
    expect(page.locator("tbody tr[data-job]")).to_have_count(1)
    assert_no_xss(page)
    # The form of the definition: annotations, unit, options, default.
    page.goto("/jobs/new/marked")
    for details in page.locator("details").all():
        details.evaluate("d => { d.open = true; }")
    expect(page.locator("#field-label")).to_have_value(SCRIPT)
    expect(page.locator('[data-field="label"] label')).to_contain_text(f"({SVG})")
    expect(page.locator('[data-field="label"] .annotation')).to_have_text("The label " + IMG)
    expect(page.locator("#field-choice option")).to_have_text(["(none)", IMG, "plain"])
    screenshot(page, "xss-form")
    assert_no_xss(page)
    # A rerun's form holds the job's values.
    page.goto(f"/jobs/new/append_text?rerun={marked_jobs.append}")
    expect(page.locator("#field-RUNID")).to_have_value(IMG)
    expect(page.locator("#field-text")).to_have_value(SCRIPT)
    assert_no_xss(page)
    # A form drawn again after a refusal holds what was entered.
    page.goto("/jobs/new/plot")
    page.locator("[data-job-form]").evaluate("form => { form.noValidate = true; }")
    for details in page.locator("details").all():
        details.evaluate("d => { d.open = true; }")
    page.locator("#field-title").fill(IMG)
    # A number field takes no text: a forged form would send it.
    page.locator("#field-cycles").evaluate("input => { input.type = 'text'; }")
    page.locator("#field-cycles").fill(SCRIPT)
    page.get_by_role("button", name="Run", exact=True).click()
    expect(page.locator("#form-error")).to_be_visible()
    expect(page.locator("#field-title")).to_have_value(IMG)
    expect(page.locator("#field-cycles-error")).to_be_visible()
    assert_no_xss(page)


def test_payloads_in_a_live_row_and_error_pages(
    alice_page: Page, watch: PageWatch, site: Site, api: Api
) -> None:
    page = alice_page
    watch.expected.append("404")
    page.goto("/jobs")
    job_id = api.create("sleep", {"duration": "0", "RUNID": SCRIPT + IMG})
    # A row built by the page's script from the change feed.
    row = page.locator(f'tr[data-job="sleep/{job_id}"]')
    expect(row.get_by_role("link", name=SCRIPT + IMG)).to_be_visible(timeout=LONG_MS)
    expect(row.get_by_role("button", name=f"Delete job {SCRIPT}{IMG}")).to_be_attached()
    assert_no_xss(page)
    # A 404's reason names the path asked for.
    page.goto("/jobs/sleep/" + quote(IMG))
    expect(page.get_by_role("alert")).to_be_visible()
    assert_no_xss(page)
    page.goto("/login?next=" + quote('/"><script>window.__xss=1</script>'))
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    assert_no_xss(page)


def test_another_users_job_is_refused(
    page: Page, watch: PageWatch, site: Site, marked_jobs: Marked
) -> None:
    watch.expected.append("status of 403")
    sign_in(page, site.bob)
    answer = page.goto(f"/jobs/fail/{marked_jobs.fail}")
    assert answer is not None and answer.status == 403
    expect(page.get_by_role("alert")).to_be_visible()
    expect(page.get_by_text("this job fails")).to_have_count(0)
    answer = page.goto(f"/jobs/append_text/{marked_jobs.append}/results/output")
    assert answer is not None and answer.status == 403
    page.goto("/jobs")
    expect(page.get_by_text("No jobs match.")).to_be_visible()
    assert_no_xss(page)
