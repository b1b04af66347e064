"""“Run once per file” of the new-job form: several uploads, or several results by
reference, for one input make one job each with every other value the same; a bad
value, JOBS_PER_USER_MAX, BATCH_FILES_MAX or a file refused on the way refuse the whole
batch with nothing kept; NJOBS_MAX leaves the jobs it does not let run PENDING and the
job list says so; without the box several files are refused as before."""

from __future__ import annotations

import io
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from opus.client.batchform import batch_notice
from opus.core.layout import INTERNAL_DIR, STATUS_FILE
from opus.core.phases import Phase
from opus.core.records import JobSummary
from opus.server.service import reconcile
from opus.server.service.inputs import Upload
from opus.server.storage.entities import result_entity_id
from tests.client_helpers import Browser, document, field

# Two file inputs: "data" takes one file a job (the batch's), "config" is shared.
PAIR = """name: pair
annotation: Two inputs, for the batch form's tests.
version: "1.0"
parameters:
  - {name: n, datatype: xs:int, min: "0", max: "5", default: "1"}
used:
  - {name: data, content_type: text/plain, url: "file://$ID"}
  - {name: config, content_type: text/plain, url: "file://$ID", default: none.txt}
  - {name: many, multiplicity: "*", content_type: text/plain, url: "file://$ID",
     default: none.txt}
script: "cat -- \\"$data\\" > out.txt"
generated:
  - {name: out, default: out.txt, content_type: text/plain}
"""
NOBODYS = "0" * 32  # an entity id no entity has
BATCH = {"opus.each": "true", "opus.each.input": "input", "input.source": "file"}


def make(tmp_path: Path, database_url: str, **settings: object) -> Browser:
    signed_in = Browser(tmp_path, database_url, **settings)
    signed_in.write_definition("pair", PAIR)
    signed_in.sign_in()
    return signed_in


@pytest.fixture
def browser(tmp_path: Path, database_url: str) -> Browser:
    return make(tmp_path, database_url)


def jobs_of(browser: Browser, jobname: str = "append_text") -> list[JobSummary]:
    return list(browser.service.list_jobs(browser.caller, jobname))


def input_of(browser: Browser, job_id: str, name: str = "input") -> bytes:
    opened = browser.service.files.open_input(job_id, name)
    assert opened is not None, f"job {job_id} has no file {name}"
    with opened:
        return opened.handle.read()


def landing(answer: object) -> dict[str, list[str]]:
    location = answer.location  # type: ignore[attr-defined]
    parts = urlsplit(location)
    assert parts.path == "/jobs", location
    return parse_qs(parts.query)


def uploads(count: int, name: str = "input") -> list[tuple[str, str, bytes]]:
    return [(name, f"part{i}.txt", f"part {i}\n".encode()) for i in range(1, count + 1)]


def finished_with_result(browser: Browser, text: str) -> str:
    """The id of an ended append_text job of alice's (its result ``output`` recorded)."""
    job = browser.service.create_job(
        browser.caller,
        "append_text",
        {"text": text},
        [Upload("input", "in.txt", io.BytesIO(b"start\n"))],
        {"PHASE": "RUN"},
    )
    status = browser.service.files.directory(job.id) / INTERNAL_DIR / STATUS_FILE
    deadline = time.monotonic() + 30
    while not status.exists():
        assert time.monotonic() < deadline, "the job did not finish"
        time.sleep(0.05)
    reconcile(browser.service)
    details = browser.service.get_job(browser.caller, "append_text", job.id)
    assert details.job.phase == Phase.COMPLETED
    return job.id


def test_the_form_offers_the_box_for_inputs_of_one_file(browser: Browser) -> None:
    page = document(browser.get("/jobs/new/append_text"))
    box = page.xpath('//input[@type="checkbox"][@name="opus.each"]')[0]
    assert " ".join(page.xpath(f'//label[@for="{box.get("id")}"]')[0].text_content().split()) == (
        "Run once per file"
    )
    assert page.xpath('//input[@type="hidden"][@name="opus.each.input"]/@value') == ["input"]
    # Without a script, several files can be chosen: the note says what to tick.
    upload = page.xpath('//input[@type="file"][@name="input"]')[0]
    note = field(browser.get("/jobs/new/append_text"), "input")
    assert upload.get("multiple") is not None
    assert "Run once per file" in note.text_content()
    # A form of several file inputs names them; a "*" input is never offered.
    pair = document(browser.get("/jobs/new/pair"))
    assert pair.xpath('//select[@name="opus.each.input"]/option/@value') == ["data", "config"]
    # A form without a file input has no box.
    assert not document(browser.get("/jobs/new/sleep")).xpath('//*[@name="opus.each"]')


def test_three_uploads_make_three_jobs_each_with_its_own_file(browser: Browser) -> None:
    answer = browser.post(
        "/jobs/new/append_text", {**BATCH, "text": "same"}, upload_files=uploads(3)
    )
    query = landing(answer)
    assert query["type"] == ["append_text"] and query["batch"] == ["3"]
    assert "started" not in query  # "Save as pending"
    run_id = query["run_id"][0]
    assert run_id.startswith("batch 20")
    made = jobs_of(browser)
    assert len(made) == 3
    assert {job.run_id for job in made} == {run_id}
    assert {job.phase for job in made} == {Phase.PENDING}
    contents = set()
    for job in made:
        details = browser.service.get_job(browser.caller, "append_text", job.job_id)
        assert {p.name: p.value for p in details.parameters}["text"] == "same"
        contents.add(input_of(browser, job.job_id))
    assert contents == {b"part 1\n", b"part 2\n", b"part 3\n"}
    # The list it lands on: the batch's jobs, and the notice.
    page = document(browser.get(answer.location))
    assert len(page.xpath("//tbody/tr[@data-job]")) == 3
    notice = page.xpath("//*[@data-batch-notice]")[0].text_content()
    assert notice == "3 jobs created, pending: run them from the job list."
    # The notice is not carried back to the list by an action.
    assert "batch=" not in page.xpath('//input[@name="next"]/@value')[0]


def test_a_shared_upload_is_copied_whole_into_every_job(browser: Browser) -> None:
    answer = browser.post(
        "/jobs/new/pair",
        {
            "opus.each": "true",
            "opus.each.input": "data",
            "data.source": "file",
            "config.source": "file",
            "RUNID": "mine",
        },
        upload_files=[*uploads(2, "data"), ("config", "config.txt", b"shared\n" * 1000)],
    )
    assert landing(answer)["run_id"] == ["mine"]  # the user's run ID is the batch's
    made = jobs_of(browser, "pair")
    assert len(made) == 2 and {job.run_id for job in made} == {"mine"}
    assert {input_of(browser, job.job_id, "data") for job in made} == {b"part 1\n", b"part 2\n"}
    for job in made:
        assert input_of(browser, job.job_id, "config") == b"shared\n" * 1000


def test_two_results_are_used_by_reference(browser: Browser) -> None:
    first = finished_with_result(browser, "one")
    second = finished_with_result(browser, "two")
    base = browser.settings.BASE_URL
    urls = [f"{base}/store/{result_entity_id(job, 'output')}" for job in (first, second)]
    answer = browser.post(
        "/jobs/new/append_text",
        [
            ("opus.each", "true"),
            ("opus.each.input", "input"),
            ("input.source", "results"),
            *[("input.result", url) for url in urls],
            ("PHASE", "RUN"),
        ],
    )
    query = landing(answer)
    assert query["batch"] == ["2"] and query["started"] == ["2"]
    made = [job for job in jobs_of(browser) if job.job_id not in (first, second)]
    assert len(made) == 2
    given = set()
    for job in made:
        details = browser.service.get_job(browser.caller, "append_text", job.job_id)
        (param,) = [p for p in details.parameters if p.name == "input"]
        assert param.by_reference
        given.add(param.value)
        # Nothing copied: the job's directory holds no input file of its own.
        assert browser.service.files.open_input(job.job_id, "input") is None
    assert given == set(urls)
    notice = document(browser.get(answer.location)).xpath("//*[@data-batch-notice]")[0]
    assert notice.text_content() == "2 jobs created and running."


def test_one_bad_value_refuses_the_whole_batch(browser: Browser) -> None:
    answer = browser.post(
        "/jobs/new/pair",
        {"opus.each": "true", "opus.each.input": "data", "data.source": "file", "n": "99"},
        upload_files=uploads(3, "data"),
        status=400,
    )
    assert "99" in field(answer, "n").text_content()
    page = document(answer)
    assert page.xpath('//input[@name="opus.each"]/@checked')  # drawn again as it was
    assert page.xpath('//select[@name="opus.each.input"]/option[@selected]/@value') == ["data"]
    assert not jobs_of(browser, "pair")
    # One file's own value (a result that is nobody's) refuses all, naming the file.
    first = finished_with_result(browser, "one")
    base = browser.settings.BASE_URL
    good = f"{base}/store/{result_entity_id(first, 'output')}"
    answer = browser.post(
        "/jobs/new/append_text",
        [
            *BATCH.items(),
            ("input.source", "results"),
            ("input.result", good),
            ("input.result", f"{base}/entities/{NOBODYS}"),
        ],
        status=400,
    )
    reason = field(answer, "input").text_content()
    assert "file 2 of 2" in reason and NOBODYS in reason
    assert [job.job_id for job in jobs_of(browser)] == [first]
    # The results ticked are ticked again in the form drawn again.
    ticked = field(answer, "input").xpath('.//input[@name="input.result"][@checked]/@value')
    assert good in ticked


def test_a_file_refused_on_the_way_leaves_nothing(tmp_path: Path, database_url: str) -> None:
    browser = make(tmp_path, database_url, MAX_UPLOAD_SIZE=1000)
    files = [*uploads(2), ("input", "big.txt", b"x" * 2000)]
    answer = browser.post("/jobs/new/append_text", BATCH, upload_files=files, status=413)
    assert "file 3 of 3 (big.txt)" in document(answer).text_content()
    assert not jobs_of(browser)
    assert not [p for p in browser.service.files.jobs_path.iterdir() if p.is_dir()]


def test_jobs_per_user_max_is_checked_for_the_whole_batch(
    tmp_path: Path, database_url: str
) -> None:
    browser = make(tmp_path, database_url, JOBS_PER_USER_MAX=3)
    browser.job(run=False, duration="1")
    answer = browser.post("/jobs/new/append_text", BATCH, upload_files=uploads(3), status=403)
    reason = document(answer).xpath('//*[@id="form-error"]')[0].text_content()
    assert "JOBS_PER_USER_MAX" in reason and "3 jobs" in reason
    assert not jobs_of(browser)
    # Two fit.
    browser.post("/jobs/new/append_text", BATCH, upload_files=uploads(2))
    assert len(jobs_of(browser)) == 2


def test_njobs_max_leaves_the_rest_pending(tmp_path: Path, database_url: str) -> None:
    browser = make(tmp_path, database_url, NJOBS_MAX=2)
    answer = browser.post(
        "/jobs/new/append_text", {**BATCH, "PHASE": "RUN"}, upload_files=uploads(5)
    )
    query = landing(answer)
    assert query["batch"] == ["5"] and query["started"] == ["2"]
    made = jobs_of(browser)
    assert len(made) == 5
    phases = [job.phase for job in made]
    assert phases.count(Phase.PENDING) == 3
    page = document(browser.get(answer.location))
    notice = page.xpath("//*[@data-batch-notice]")[0].text_content()
    assert notice == (
        "5 jobs created: 2 running, 3 pending — the server runs at most 2 of yours at "
        "once; run them from the job list."
    )


def test_several_files_without_the_box_are_refused(browser: Browser) -> None:
    answer = browser.post(
        "/jobs/new/append_text", {"input.source": "file"}, upload_files=uploads(2), status=400
    )
    reason = field(answer, "input").text_content()
    assert "one file per input" in reason and "Run once per file" in reason
    assert not jobs_of(browser)
    # Nor several results.
    answer = browser.post(
        "/jobs/new/append_text",
        [("input.source", "results"), ("input.result", "a"), ("input.result", "b")],
        status=400,
    )
    assert "one file per input" in field(answer, "input").text_content()


def test_batch_files_max(tmp_path: Path, database_url: str) -> None:
    browser = make(tmp_path, database_url, BATCH_FILES_MAX=2)
    answer = browser.post("/jobs/new/append_text", BATCH, upload_files=uploads(3), status=400)
    reason = field(answer, "input").text_content()
    assert "at most 2" in reason and "BATCH_FILES_MAX" in reason
    assert not jobs_of(browser)
    assert "at most 2 files" in document(browser.get("/jobs/new/append_text")).text_content()


def test_the_box_needs_files_and_an_input_of_one_file(browser: Browser) -> None:
    answer = browser.post("/jobs/new/append_text", BATCH, status=400)
    assert "upload the files" in field(answer, "input").text_content()
    answer = browser.post(
        "/jobs/new/pair",
        {"opus.each": "true", "opus.each.input": "many", "data.source": "file"},
        upload_files=uploads(2, "many"),
        status=400,
    )
    assert "an input of one file" in document(answer).xpath('//*[@id="batch-each-error"]')[0].text
    assert not jobs_of(browser, "pair")


def test_a_batch_needs_the_csrf_token(browser: Browser) -> None:
    browser.post("/jobs/new/append_text", BATCH, upload_files=uploads(2), status=403, csrf=False)
    assert not jobs_of(browser)


@pytest.mark.parametrize(
    ("query", "notice"),
    [
        ({}, ""),
        ({"batch": "x"}, ""),
        ({"batch": "0"}, ""),
        ({"batch": "1"}, "1 job created, pending: run them from the job list."),
        ({"batch": "4", "started": "4"}, "4 jobs created and running."),
        ({"batch": "4", "started": "99"}, "4 jobs created and running."),
        ({"batch": "4", "started": "<b>"}, "4 jobs created, pending: run them from the job list."),
    ],
)
def test_the_notice_is_made_of_numbers(query: dict[str, str], notice: str) -> None:
    assert batch_notice(query.get("batch"), query.get("started"), 4) == notice
