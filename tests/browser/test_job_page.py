"""A job's page: the previews of each kind the server makes (text, image, table, JSON,
YAML), a result's own page, downloads (a result, and every result as a zip), and the
buttons: Abort a running job, Delete, Rerun with the job's values and input."""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Iterator

import pytest
from playwright.sync_api import Dialog, Locator, Page, expect

from tests.browser.conftest import Site, running_site, screenshot
from tests.browser.support import (
    LONG_MS,
    Api,
    assert_not_reloaded,
    expect_phase,
    field,
    job_id_of,
    mark,
    wait_image,
)

# A job type of this module's site whose results have each kind of text preview.
FORMATS = """\
name: formats
annotation: Writes the same rows as CSV, TSV, JSON and YAML.
version: "1.0"
execution_duration: 60
parameters:
  - name: rows
    datatype: xs:int
    default: 3
    min: 1
    max: 1000
    annotation: How many rows to write.
generated:
  - name: table
    default: table.csv
    content_type: text/csv
  - name: tabs
    default: table.tsv
    content_type: text/tab-separated-values
  - name: data
    default: data.json
    content_type: application/json
  - name: config
    default: config.yaml
    content_type: application/yaml
script: |
  printf 'name,value\\n' > table.csv
  printf 'name\\tvalue\\n' > table.tsv
  printf 'rows:\\n' > config.yaml
  json='{"rows": ['
  for i in $(seq 1 "$rows"); do
    printf 'row %s,%s\\n' "$i" "$((i * i))" >> table.csv
    printf 'row %s\\t%s\\n' "$i" "$((i * i))" >> table.tsv
    printf '  - {name: row %s, value: %s}\\n' "$i" "$((i * i))" >> config.yaml
    [ "$i" -gt 1 ] && json="$json,"
    json="$json{\\"name\\":\\"row $i\\",\\"value\\":$((i * i))}"
  done
  printf '%s]}' "$json" > data.json
"""

# A job type that writes a line on stdout every second, to watch its output live.
TALK = """\
name: talk
annotation: Writes a numbered line on its standard output every second.
version: "1.0"
execution_duration: 120
parameters:
  - name: lines
    datatype: xs:int
    default: 12
    min: 1
    max: 100
script: |
  for i in $(seq 1 "$lines"); do echo "line $i"; sleep 1; done
"""


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    with running_site(
        tmp_path_factory.mktemp("site"), definitions={"formats.yml": FORMATS, "talk.yml": TALK}
    ) as started:
        yield started


@pytest.fixture
def api(site: Site) -> Api:
    return Api(site, site.alice)


def completed(
    api: Api,
    jobname: str,
    values: dict[str, str] | None = None,
    files: dict[str, tuple[str, bytes]] | None = None,
) -> str:
    job_id = api.create(jobname, values, files)
    assert api.wait_end(jobname, job_id)["phase"] == "COMPLETED"
    return job_id


def result_card(page: Page, result_id: str) -> Locator:
    return page.get_by_role("article").filter(
        has=page.get_by_role("heading", name=result_id, exact=True)
    )


def test_previews_of_each_kind(alice_page: Page, api: Api) -> None:
    page = alice_page
    job_id = completed(api, "formats", {"rows": "12"})
    page.goto(f"/jobs/formats/{job_id}")
    # A table of the first ten rows on the job page.
    table = result_card(page, "table").get_by_role("table")
    expect(table.get_by_role("columnheader")).to_have_text(["name", "value"])
    expect(table.locator("tbody tr")).to_have_count(10)
    expect(table.locator("tbody tr").first.get_by_role("cell")).to_have_text(["row 1", "1"])
    expect(result_card(page, "table")).to_contain_text("Shown: the first 10 rows")
    tabs = result_card(page, "tabs").get_by_role("table")
    expect(tabs.locator("tbody tr").nth(2).get_by_role("cell")).to_have_text(["row 3", "9"])
    # JSON pretty-printed, YAML as it is.
    data = result_card(page, "data").locator("pre.preview")
    expect(data).to_contain_text('{\n  "rows": [\n    {\n      "name": "row 1",\n      "value": 1')
    config = result_card(page, "config").locator("pre.preview")
    expect(config).to_contain_text(
        "rows:\n  - {name: row 1, value: 1}\n  - {name: row 2, value: 4}"
    )
    screenshot(page, "job-formats")
    # The result's own page: every row (up to 200).
    result_card(page, "table").get_by_role("link", name="Preview table").click()
    expect(page).to_have_url(re.compile(rf"/jobs/formats/{job_id}/results/table$"))
    expect(page.get_by_role("heading", name="table", level=1)).to_be_visible()
    expect(page.locator("tbody tr")).to_have_count(12)
    expect(page.locator("dd", has_text="text/csv")).to_be_visible()
    nav = page.get_by_role("navigation", name="Breadcrumb")
    expect(nav.get_by_role("link", name=job_id)).to_have_attribute(
        "href", f"/jobs/formats/{job_id}"
    )
    screenshot(page, "result-table")


def test_text_and_image_previews(alice_page: Page, api: Api) -> None:
    page = alice_page
    sleep_id = completed(api, "sleep", {"duration": "0"})
    page.goto(f"/jobs/sleep/{sleep_id}")
    expect(result_card(page, "output").locator("pre.preview")).to_have_text(
        f"OPUS job {sleep_id} slept for 0 seconds.\n"
    )
    plot_id = completed(api, "plot", {"function": "triangle", "cycles": "4"})
    page.goto(f"/jobs/plot/{plot_id}")
    image = result_card(page, "image").get_by_role("img")
    assert wait_image(page, image) == 720
    result_card(page, "image").get_by_role("link", name="Preview image").click()
    assert wait_image(page, page.get_by_role("img", name="plot.svg, a result of the job")) == 720
    screenshot(page, "result-image")


def test_downloads(alice_page: Page, api: Api) -> None:
    page = alice_page
    job_id = completed(api, "formats", {"rows": "2"})
    page.goto(f"/jobs/formats/{job_id}")
    with page.expect_download() as one:
        page.get_by_role("link", name="Download table").click()
    assert one.value.suggested_filename == "table.csv"
    path = one.value.path()
    assert path.read_text(encoding="utf-8") == "name,value\nrow 1,1\nrow 2,4\n"
    with page.expect_download() as every:
        page.get_by_role("link", name="Download all").click()
    assert every.value.suggested_filename == f"formats-{job_id}.zip"
    with zipfile.ZipFile(io.BytesIO(every.value.path().read_bytes())) as archive:
        names = sorted(archive.namelist())
        assert names == [
            f"{job_id}/{name}" for name in ("config.yaml", "data.json", "table.csv", "table.tsv")
        ]
        assert archive.read(f"{job_id}/table.csv") == b"name,value\nrow 1,1\nrow 2,4\n"
        assert archive.read(f"{job_id}/data.json").startswith(b'{"rows": [')


def accept_dialogs(page: Page, seen: list[str]) -> None:
    def accept(dialog: Dialog) -> None:
        seen.append(dialog.message)
        dialog.accept()

    page.on("dialog", accept)


def test_abort_a_running_job(alice_page: Page, api: Api) -> None:
    page = alice_page
    job_id = api.create("sleep", {"duration": "120", "RUNID": "long nap"})
    page.goto(f"/jobs/sleep/{job_id}")
    mark(page)
    expect_phase(page, "EXECUTING")
    assert_not_reloaded(page)
    page.get_by_role("button", name="Abort").click()
    expect_phase(page, "ABORTED")
    expect(page.get_by_role("button", name="Abort")).to_have_count(0)
    assert api.job("sleep", job_id)["phase"] == "ABORTED"


def test_delete_a_job(alice_page: Page, api: Api) -> None:
    page = alice_page
    job_id = completed(api, "sleep", {"duration": "0", "RUNID": "to be deleted"})
    page.goto(f"/jobs/sleep/{job_id}")
    seen: list[str] = []
    accept_dialogs(page, seen)
    page.get_by_role("button", name="Delete").click()
    expect(page).to_have_url(re.compile(r"/jobs\?type=sleep$"))
    assert seen == ["Delete this job and its files?"]
    expect(page.get_by_role("link", name="to be deleted")).to_have_count(0)
    assert not api.exists("sleep", job_id)


def test_delete_can_be_cancelled(alice_page: Page, api: Api) -> None:
    page = alice_page
    job_id = api.create("sleep", {"duration": "0"}, run=False)
    page.goto(f"/jobs/sleep/{job_id}")
    page.once("dialog", lambda dialog: dialog.dismiss())
    page.get_by_role("button", name="Delete").click()
    expect_phase(page, "PENDING")
    assert api.exists("sleep", job_id)


def test_rerun_with_the_job_values_and_input(alice_page: Page, api: Api) -> None:
    page = alice_page
    first = completed(
        api,
        "append_text",
        {"text": "the first run", "RUNID": "rerun me"},
        files={"input": ("lines.txt", b"an uploaded line\n")},
    )
    page.goto(f"/jobs/append_text/{first}")
    page.get_by_role("link", name="Rerun").click()
    expect(page).to_have_url(re.compile(rf"/jobs/new/append_text\?rerun={first}$"))
    expect(page.get_by_role("link", name=first)).to_be_visible()
    expect(field(page, "text")).to_have_value("the first run")
    expect(field(page, "RUNID")).to_have_value("rerun me")
    expect(page.get_by_label("Reuse the file of the job rerun")).to_be_checked()
    expect(page.locator('[data-source="reuse"]')).to_contain_text("lines.txt")
    expect(page.get_by_label("input: file to upload")).to_be_hidden()
    screenshot(page, "new-rerun")
    page.locator("summary", has_text="Show optional parameters").click()
    field(page, "text").fill("the second run")
    page.get_by_role("button", name="Run", exact=True).click()
    expect(page).to_have_url(re.compile(r"/jobs/append_text/[\w-]+$"))
    second = job_id_of(page)
    assert second != first
    expect_phase(page, "COMPLETED")
    expect(result_card(page, "output").locator("pre.preview")).to_have_text(
        "an uploaded line\nthe second run\n", timeout=LONG_MS
    )
    # The first job is as it was.
    assert api.job("append_text", first)["phase"] == "COMPLETED"


def test_rerun_fills_in_options_and_numbers(alice_page: Page, api: Api) -> None:
    page = alice_page
    job_id = api.create("plot", {"function": "cos", "cycles": "7", "color": "seagreen"}, run=False)
    page.goto(f"/jobs/new/plot?rerun={job_id}")
    expect(field(page, "function")).to_have_value("cos")
    expect(field(page, "cycles")).to_have_value("7")
    expect(field(page, "color")).to_have_value("seagreen")


def test_the_output_of_a_running_job_shows_live(alice_page: Page, api: Api) -> None:
    page = alice_page
    job_id = api.create("talk", {"lines": "12"})
    page.goto(f"/jobs/talk/{job_id}")
    mark(page)
    stdout = page.locator('pre[data-stream="stdout"]')
    # Read again while the job executes (every 5 s), from its first line.
    expect(stdout).to_contain_text("line 3", timeout=LONG_MS)
    assert page.locator("[data-live-phase]").inner_text() == "EXECUTING"
    assert stdout.inner_text().startswith("line 1\nline 2\nline 3")
    expect_phase(page, "COMPLETED")
    expect(stdout).to_have_text("".join(f"line {i}\n" for i in range(1, 13)))
    assert_not_reloaded(page)
