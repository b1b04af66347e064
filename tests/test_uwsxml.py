"""UWS XML documents: schema validity, element order, time format, streaming."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from opus.core.phases import Phase
from opus.core.records import Job, JobDetails, JobSummary, Parameter, Result
from opus.core.times import format_time, parse_time
from opus.server.uwsxml import (
    UWS_NS,
    job_document,
    job_list_chunks,
    parameters_document,
    results_document,
)

T0 = datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)


BASE_URL = "http://x"


def make_view(parameters=None, results=None, **changes) -> JobDetails:
    values = dict(
        id="abc",
        jobname="sleep",
        run_id='run <1> & "quoted"',
        owner="anonymous",
        phase=Phase.ERROR,
        quote=None,
        creation_time=T0,
        start_time=T0,
        end_time=None,
        execution_duration=60,
        destruction_time=T0 + timedelta(days=30),
        phase_time=T0,
        error_type="fatal",
        error_message="the job script exited with status 1",
        external_id=None,
        token_hash="",
    )
    values.update(changes)
    if parameters is None:
        parameters = [Parameter("duration", "1"), Parameter("input", "http://x/y", True)]
    if results is None:
        results = [Result("output", "results/output", "text/plain", 12, "0" * 64)]
    return JobDetails(Job(**values), tuple(parameters), tuple(results))


def test_time_format_is_utc_with_z() -> None:
    assert format_time(T0) == "2026-01-02T03:04:05.678Z"
    paris = timezone(timedelta(hours=1))
    assert format_time(T0.astimezone(paris)) == "2026-01-02T03:04:05.678Z"
    assert format_time(None) == ""


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-01-02T03:04:05.678Z", T0),
        ("2026-01-02T04:04:05.678+01:00", T0),
        ("2026-01-02T03:04:05.678", T0),
    ],
)
def test_parse_time(text: str, expected: datetime) -> None:
    assert parse_time(text) == expected


def test_parse_time_rejects_garbage() -> None:
    with pytest.raises(ValueError, match="ISO 8601"):
        parse_time("yesterday")


def test_job_document_is_valid_and_ordered(validate) -> None:
    root = validate(job_document(make_view(), BASE_URL))
    assert root.get("version") == "1.1"
    names = [child.tag.split("}")[1] for child in root]
    assert names == [
        "jobId",
        "runId",
        "ownerId",
        "phase",
        "creationTime",
        "startTime",
        "endTime",
        "executionDuration",
        "destruction",
        "parameters",
        "results",
        "errorSummary",
    ]
    summary = root.find(f"{{{UWS_NS}}}errorSummary")
    assert summary.get("type") == "fatal"
    assert summary.get("hasDetail") == "false"
    assert root.findtext(f"{{{UWS_NS}}}runId") == 'run <1> & "quoted"'
    by_ref = root.find(f".//{{{UWS_NS}}}parameter[@id='input']")
    assert by_ref.get("byReference") == "true"


def test_minimal_job_document_is_valid(validate) -> None:
    view = make_view(
        run_id=None,
        phase=Phase.PENDING,
        start_time=None,
        destruction_time=None,
        parameters=[],
        results=[],
        error_message=None,
        quote=T0,
    )
    root = validate(job_document(view, BASE_URL))
    nil = "{http://www.w3.org/2001/XMLSchema-instance}nil"
    assert root.find(f"{{{UWS_NS}}}startTime").get(nil) == "true"
    assert root.find(f"{{{UWS_NS}}}runId") is None


def test_parameters_and_results_documents_are_valid(validate) -> None:
    view = make_view()
    validate(parameters_document(view.parameters))
    validate(results_document(view, BASE_URL))
    validate(results_document(make_view(results=[]), BASE_URL))


def test_job_list_streams_in_chunks(validate) -> None:
    refs = [
        JobSummary(f"job{i}", Phase.PENDING, "r" if i % 2 else None, "anonymous", T0)
        for i in range(1200)
    ]
    chunks = list(job_list_chunks(refs, "http://x/rest/sleep", chunk_rows=500))
    assert len(chunks) >= 3  # written as it goes, not in one piece
    root = validate(b"".join(chunks))
    assert root.get("version") == "1.1"
    assert len(root) == 1200
    first = root[0]
    assert first.get("{http://www.w3.org/1999/xlink}href") == "http://x/rest/sleep/job0"


def test_empty_job_list_is_valid(validate) -> None:
    root = validate(b"".join(job_list_chunks([], "http://x/rest/sleep")))
    assert len(root) == 0
