"""The OpenAPI description (opus/server/openapi.yaml) against the code and a live server.

- every API route of the application is described, and every described operation exists;
- /openapi.json is served, parses, and is a valid OpenAPI 3 document;
- schemathesis sends generated requests (valid and invalid) to every operation of a live
  `opus serve` and checks each answer: no 5xx, a documented status code and media type,
  the documented headers and body schema (text/plain bodies against their string
  schemas, text/xml bodies against the UWS 1.1 or VOSI 1.0 XML schema, JSON against its schema);
  each operation of the UWS tree is called again with ``Accept: application/json``, so
  that its JSON answers and JSON errors are checked as well.

For generated requests to reach real jobs, results and users, the test narrows the served
description's path parameters to values that exist on the test server (job types;
placeholder job and user ids, replaced by real ones before each call; result ids;
parameter names) and names the example job definitions' parameters in the creation and
update bodies. Operations, status codes, media types, headers and body schemas are the
served ones.
"""

from __future__ import annotations

import base64
import copy
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import hypothesis
import pytest
import requests
import schemathesis
import webtest
from lxml import etree
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.core.parameters import ParameterLocation
from schemathesis.core.transport import response_content_type
from schemathesis.generation import GenerationMode

from opus.core.layout import INTERNAL_DIR, STDERR_FILE, TOKEN_FILE
from opus.core.phases import Phase
from opus.server.app import create_app
from opus.server.routes.openapi import load_description
from opus.server.service import JobService
from opus.settings import Settings
from tests.conftest import LiveServer, make_settings, safe_parser, xml_schema
from tests.live_helpers import Client, add_user, job_list_ids, running_server

ADMIN = "openapi-admin"
JOB_TYPES = ["sleep", "fail", "append_text", "plot"]
# Placeholder job ids (valid ids) replaced by real jobs before each call.
PENDING, ABORTED, FINISHED, UNKNOWN_JOB = "pending", "aborted", "finished", "nosuchjob"
JOB_PLACEHOLDERS = [PENDING, ABORTED, FINISHED, UNKNOWN_JOB]
FRESH_USER, UNKNOWN_USER = "fresh", "nosuchuser"
VALID_TOKEN = "valid"
# The parameters of the example job definitions (jdl/*.yml).
JOB_PARAMETERS = ["duration", "message", "text", "function", "cycles", "color", "title"]
RESULT_IDS = ["output", "image", "nosuchresult"]
# The endpoints of batch scripts, authenticated by a job's token.
SIGNAL_PATHS = ("/handler/job_event", "/handler/job_progress")
EXAMPLES_PER_OPERATION = 25
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
API_PREFIXES = (
    "/rest",
    "/store/",
    "/shared/",
    "/handler/",
    "/scim/v2/",
    "/openapi.json",
    "/jdl",
    "/entities",
    "/provsap",
    "/sync/",
    "/availability",
    "/capabilities",
)
# Paths of the API that the web client's pages extend (/jobs/...).
API_PATHS = ("/", "/jobs", "/changes")
# The job type the generated requests of /jdl write, approve, try and retire.
FUZZED_TYPE = "fuzzed"
# A placeholder of the change feed's token, replaced by a real one before each call.
CURRENT_TOKEN = "current"
HTTP_TIMEOUT = 30
FRAMING = {"content-length", "transfer-encoding", "host", "connection", "expect", "te"}


# -- response bodies: text/plain as strings, text/xml checked against the UWS schema ----

# The schema of each kind of document the API answers as text/xml, by root namespace.
_SCHEMAS = {
    "http://www.ivoa.net/xml/UWS/v1.0": "UWS-v1.1.xsd",
    "http://www.ivoa.net/xml/VOSIAvailability/v1.0": "VOSIAvailability-v1.0.xsd",
    "http://www.ivoa.net/xml/VOSICapabilities/v1.0": "VOSICapabilities-v1.0.xsd",
}


@schemathesis.deserializer("text/plain")
def _plain_text(_ctx: Any, response: Any) -> str:
    return response.content.decode("utf-8")


@schemathesis.deserializer("text/xml")
def _uws_document(_ctx: Any, response: Any) -> str:
    # Registered for text/xml, this is also called for other XML types (result files).
    content_type = response_content_type(response) or ""
    if content_type.split(";")[0].strip().lower() != "text/xml":
        return response.content.decode("utf-8", "replace")
    root = etree.fromstring(response.content, safe_parser())
    name = _SCHEMAS.get(etree.QName(root).namespace or "")
    if name is None:
        raise ValueError(f"an XML document of no known kind: {root.tag}")
    schema = xml_schema(name)
    if not schema.validate(root):
        raise ValueError(f"not valid against {name}: {schema.error_log}")
    return response.content.decode("utf-8")


# -- the description and the code ------------------------------------------------------


def described_operations(document: dict[str, Any]) -> set[tuple[str, str]]:
    methods = {"get", "put", "post", "delete", "patch", "head", "options"}
    return {
        (method.upper(), path)
        for path, item in document["paths"].items()
        for method in item
        if method in methods
    }


def route_path(rule: str) -> str:
    """A bottle rule as an OpenAPI path: /rest/<jobname:re:...> → /rest/{jobname}."""
    return re.sub(r"<([A-Za-z_][A-Za-z0-9_]*)(?::[^>]*)?>", r"{\1}", rule)


def test_every_api_route_is_described(settings: Settings) -> None:
    app = create_app(settings)
    routes = {
        (route.method, route_path(route.rule))
        for route in app.routes
        if route.rule in API_PATHS or route.rule.startswith(API_PREFIXES)
    }
    assert routes == described_operations(load_description(settings))


# -- the live server -----------------------------------------------------------------


class Fixtures:
    """The jobs and users the generated requests work on, made through the API."""

    def __init__(self, server: LiveServer, token: str) -> None:
        self.server = server
        self.client = Client(server)
        self.client.session.auth = (ADMIN, token)
        credentials = base64.b64encode(f"{ADMIN}:{token}".encode()).decode()
        self.authorization = f"Basic {credentials}"
        # Jobs only read by GET operations, made once: (placeholder, jobname) → id.
        self.shared: dict[tuple[str, str], str] = {}
        self.shared_user = self.add_user()

    def create(self, jobname: str, run: bool = False) -> str:
        files = {"input": ("input.txt", b"a line\n", "text/plain")}
        data = {"duration": "0"} if jobname == "sleep" else {}
        return self.client.create(
            jobname, data, files=files if jobname == "append_text" else None, run=run
        )

    def aborted(self, jobname: str) -> str:
        job_id = self.create(jobname)
        response = self.client.post(f"/rest/{jobname}/{job_id}/phase", data={"PHASE": "ABORT"})
        assert response.status_code == 303, response.text
        return job_id

    def make_shared_jobs(self) -> None:
        for jobname in JOB_TYPES:
            self.shared[PENDING, jobname] = self.create(jobname)
            self.shared[ABORTED, jobname] = self.aborted(jobname)
            self.shared[FINISHED, jobname] = self.create(jobname, run=True)
        for jobname in JOB_TYPES:
            doc = self.client.wait_for(jobname, self.shared[FINISHED, jobname], timeout=60)
            assert doc.phase == ("ERROR" if jobname == "fail" else "COMPLETED"), doc.body

    def add_user(self) -> str:
        name = f"user{time.monotonic_ns()}"
        response = self.client.post(
            "/scim/v2/Users",
            json={"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": name},
        )
        assert response.status_code == 201, response.text
        return name

    def job_for(self, placeholder: str, jobname: str, method: str) -> str:
        """A real job for a placeholder id: shared for reads, fresh for changes."""
        if method == "GET":
            return self.shared[placeholder, jobname]
        if placeholder == PENDING:
            return self.create(jobname)
        return self.aborted(jobname)  # ABORTED or FINISHED: any job that has ended

    def substitute(self, case: Any) -> None:
        """Replace placeholder ids in the case's path by real ones."""
        if case.operation.path in SIGNAL_PATHS:
            self.substitute_signal(case)
        if case.operation.path == "/changes" and (case.query or {}).get("since") == CURRENT_TOKEN:
            case.query["since"] = self.client.get("/changes").json()["token"]
        path = case.path_parameters
        if not path:
            return
        method = case.method.upper()
        job_id = path.get("job_id")
        if job_id in (PENDING, ABORTED, FINISHED):
            jobname = path.get("jobname")
            if jobname not in JOB_TYPES:
                # /store has no job type: the result id says which finished job to use.
                jobname = "plot" if path.get("result_id") == "image" else "sleep"
            path["job_id"] = self.job_for(job_id, jobname, method)
        if path.get("user_id") == FRESH_USER:
            path["user_id"] = self.shared_user if method == "GET" else self.add_user()

    def substitute_signal(self, case: Any) -> None:
        """A job_event or job_progress body: placeholder job id and token replaced by a
        finished job's."""
        body = case.body
        if not isinstance(body, dict):
            return
        jobname = "fail" if body.get("phase") == "ERROR" else "sleep"
        job_id = self.shared[FINISHED, jobname]
        if body.get("jobid") == FINISHED:
            body["jobid"] = job_id
        if body.get("token") == VALID_TOKEN:
            token_file = self.client.job_dir(job_id) / INTERNAL_DIR / TOKEN_FILE
            body["token"] = token_file.read_text()

    def end_active_jobs(self) -> None:
        """Delete the jobs the generated requests left running (and their processes)."""
        for jobname in JOB_TYPES:
            active = [("PHASE", p) for p in ("QUEUED", "EXECUTING", "HELD", "SUSPENDED")]
            response = self.client.get(f"/rest/{jobname}", params=active)
            assert response.status_code == 200, response.text
            for job_id in job_list_ids(response.content):
                self.client.delete(f"/rest/{jobname}/{job_id}")


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, module_database_url: str
) -> Iterator[LiveServer]:
    with running_server(
        tmp_path_factory.mktemp("openapi"),
        module_database_url,
        ALLOW_ANONYMOUS="true",
        # Generated URL inputs must not reach anything, and quickly.
        ALLOW_PRIVATE_URLS="false",
        URL_FETCH_TIMEOUT="1",
        # Generated jobs and WAITs stay short.
        EXECUTION_DURATION_MAX="5",
        WAIT_MAX="1",
        SYNC_TIMEOUT="1",
        # Hundreds of generated wrong credentials from one address: throttled, every
        # later request would be answered 429 (test_throttle.py tests that).
        AUTH_FREE_FAILURES="1000000",
    ) as live:
        yield live


@pytest.fixture(scope="module")
def admin_token(server: LiveServer) -> str:
    return add_user(server, ADMIN, "--admin")


@pytest.fixture(scope="module")
def fixtures(server: LiveServer, admin_token: str) -> Iterator[Fixtures]:
    made = Fixtures(server, admin_token)
    made.make_shared_jobs()
    yield made
    made.end_active_jobs()


@pytest.mark.live
def test_openapi_json_is_a_valid_openapi_3_document(server: LiveServer) -> None:
    response = requests.get(f"{server.url}/openapi.json", timeout=HTTP_TIMEOUT)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    document = response.json()
    assert document["openapi"].startswith("3.")
    assert document["servers"] == [{"url": server.url}]
    # Checked against the OpenAPI 3.0 meta-schema; raises on the first error.
    schemathesis.openapi.from_dict(document).validate()
    # What test_api_answers_as_described works from.
    assert document == load_description(Settings(BASE_URL=server.url))


# -- schemathesis --------------------------------------------------------------------


def narrowed(document: dict[str, Any]) -> dict[str, Any]:
    """The served description with path parameters narrowed to this server's values."""
    document = copy.deepcopy(document)
    components = document["components"]
    parameters = components["parameters"]
    parameters["jobname"]["schema"] = {"type": "string", "enum": [*JOB_TYPES, "nosuchtype"]}
    parameters["job_id"]["schema"] = {"type": "string", "enum": JOB_PLACEHOLDERS}
    parameters["result_id"]["schema"] = {"type": "string", "enum": RESULT_IDS}
    # Generated requests edit, approve and retire a type of their own, never the others'.
    parameters["definitionName"]["schema"] = {"type": "string", "enum": [FUZZED_TYPE, "nosuchtype"]}
    paths = document["paths"]
    for parameter in paths["/jobs"]["get"]["parameters"]:
        if parameter.get("name") == "TYPE":
            parameter["schema"]["items"] = {"type": "string", "enum": [*JOB_TYPES, "nosuchtype"]}
    for parameter in paths["/changes"]["get"]["parameters"]:
        if parameter.get("name") == "since":
            parameter["schema"] = {"type": "string", "enum": [CURRENT_TOKEN, "s0", "p1:1:", "x"]}
    for parameter in paths["/rest/{jobname}/{job_id}/parameters/{name}"]["parameters"]:
        if parameter.get("name") == "name":
            parameter["schema"] = {"type": "string", "enum": [*JOB_PARAMETERS, "input", "x"]}
    for parameter in paths["/scim/v2/Users/{user_id}"]["parameters"]:
        parameter["schema"] = {"type": "string", "enum": [FRESH_USER, UNKNOWN_USER]}
    for parameter in paths["/sync/{jobname}"]["get"]["parameters"]:
        if parameter.get("name") == "fields":
            named_fields = {name: {"type": "string"} for name in JOB_PARAMETERS}
            parameter["schema"] = {"type": "object", "properties": named_fields}
    for path in SIGNAL_PATHS:
        signal = paths[path]["post"]["requestBody"]["content"]
        fields = signal["application/x-www-form-urlencoded"]["schema"]["properties"]
        fields["jobid"] = {"type": "string", "enum": [FINISHED, UNKNOWN_JOB]}
        fields["token"] = {"type": "string", "enum": [VALID_TOKEN, "wrong"]}
    named = {name: {"type": "string"} for name in JOB_PARAMETERS}
    bodies = components["requestBodies"]
    for body in (bodies["JobCreation"], bodies["Parameters"]):
        for media_type, content in body["content"].items():
            schema = content["schema"]
            if "$ref" in schema:
                schema = copy.deepcopy(components["schemas"]["JobFields"])
                content["schema"] = schema
            schema.setdefault("properties", {}).update(copy.deepcopy(named))
            if media_type == "multipart/form-data":
                schema["properties"]["input"] = {"type": "string", "format": "binary"}
            else:
                schema["properties"]["input"] = {"type": "string", "format": "uri"}
    return document


# Built at import time from the same file the server serves (test above): the
# schemathesis loader that waits for a fixture does not work with pytest 9.2.
API_SCHEMA = schemathesis.openapi.from_dict(
    narrowed(load_description(Settings(BASE_URL="http://opus.invalid"))),
    config=schemathesis.config.SchemathesisConfig.from_dict(
        {"request-timeout": HTTP_TIMEOUT, "generation": {"deterministic": True}}
    ),
)


@pytest.mark.live
@API_SCHEMA.parametrize()
@hypothesis.settings(
    max_examples=EXAMPLES_PER_OPERATION,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(hypothesis.HealthCheck),
)
def test_api_answers_as_described(
    case: Any, server: LiveServer, admin_token: str, fixtures: Fixtures
) -> None:
    fixtures.substitute(case)
    if case.headers:
        # Message framing is the HTTP server's business (cheroot answers 400), not the API's.
        case.headers = {k: v for k, v in case.headers.items() if k.lower() not in FRAMING}
    # Admin credentials, unless the case is about wrong headers (then 401 is expected).
    headers = case.meta.components.get(ParameterLocation.HEADER) if case.meta else None
    if headers is None or headers.mode != GenerationMode.NEGATIVE:
        case.headers = {**(case.headers or {}), "Authorization": fixtures.authorization}
    case.call_and_validate(base_url=server.url, checks=CHECKS)
    if case.operation.path.startswith("/rest/"):
        # The same request asking for JSON: its answers and errors as documented too.
        case.headers = {**(case.headers or {}), "Accept": "application/json"}
        case.call_and_validate(base_url=server.url, checks=CHECKS)


@pytest.mark.live
def test_jobs_left_by_the_generated_requests_still_render(
    fixtures: Fixtures, validate: Any
) -> None:
    """What the generated requests stored (run ids, parameters, times, errors) can still
    be shown: every job list and every job document is valid UWS."""
    client = fixtures.client
    for jobname in JOB_TYPES:
        phases = [("PHASE", phase) for phase in ("PENDING", "QUEUED", "EXECUTING", "COMPLETED")]
        phases += [("PHASE", phase) for phase in ("ERROR", "ABORTED", "ARCHIVED")]
        response = client.get(f"/rest/{jobname}", params=phases)
        assert response.status_code == 200, response.text
        validate(response.content)
        for job_id in job_list_ids(response.content):
            response = client.get(f"/rest/{jobname}/{job_id}")
            assert response.status_code in (200, 404), response.text  # 404: destroyed since
            if response.status_code == 200:
                validate(response.content)


# -- inputs that were answered 500 (found while describing the API) ---------------------


@pytest.mark.parametrize(
    "query",
    [
        "LAST=%C2%B2",  # a digit that int() refuses
        "LAST=99999999999999999999",  # more than SQL can bind
        "AFTER=0001-01-01T00:00:00%2B01:00",  # before the first datetime, in UTC
        "AFTER=9999-12-31T23:59:59-01:00",  # after the last one
    ],
)
def test_out_of_range_job_list_filters_are_refused(app: Any, query: str) -> None:
    response = app.get(f"/rest/sleep?{query}", expect_errors=True)
    assert response.status_code == 400, response.text


@pytest.mark.parametrize(
    "fields",
    [
        {"RUNID": "a\x00b"},  # XML cannot carry it: the job could never be shown
        {"RUNID": "a\x1b[0m"},
        {"DESTRUCTION": "9999-12-31T23:59:59-01:00"},
    ],
)
def test_creation_values_that_cannot_be_kept_are_refused(app: Any, fields: dict) -> None:
    response = app.post("/rest/sleep", fields, expect_errors=True)
    assert response.status_code == 400, response.text


def test_times_before_year_1000_are_written_with_four_digits(app: Any, validate: Any) -> None:
    response = app.post("/rest/sleep", {"DESTRUCTION": "0900-01-01T00:00:00Z"})
    job_url = response.headers["Location"]
    assert app.get(f"{job_url}/destruction").text == "0900-01-01T00:00:00.000Z"
    validate(app.get(job_url).body)


def test_error_messages_with_control_characters_are_shown(
    app: Any, service: JobService, validate: Any
) -> None:
    job_id = app.post("/rest/fail").headers["Location"].rsplit("/", 1)[1]
    job = service.store.get_job(job_id)
    stderr = service.files.layout(job_id).stream(STDERR_FILE)
    stderr.parent.mkdir(parents=True, exist_ok=True)
    stderr.write_bytes(b"\x1b[31mboom\x1b[0m\n")  # a script's colours
    assert service.finish(job, Phase.ERROR, "failed\x07")
    validate(app.get(f"/rest/fail/{job_id}").body)
    message = app.get(f"/rest/fail/{job_id}/error").text
    assert "boom" in message and "\x1b" not in message and "\x07" not in message


def test_huge_execution_durations_without_a_maximum_are_refused(
    tmp_path: Path, database_url: str
) -> None:
    settings = make_settings(tmp_path, DATABASE_URL=database_url, EXECUTION_DURATION_MAX=0)
    app = webtest.TestApp(create_app(settings))
    fields = {"EXECUTIONDURATION": "99999999999999999999"}  # more than SQL can store
    assert app.post("/rest/sleep", fields, expect_errors=True).status_code == 400
    fields = {"EXECUTIONDURATION": "2147483647"}
    assert app.post("/rest/sleep", fields).status_code == 303
