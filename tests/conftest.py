"""Shared fixtures: settings in a temporary directory, an in-process app, a live server."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import webtest
from lxml import etree

from opus.server.app import build_service, create_app
from opus.server.service import JobService
from opus.settings import Settings

# Fixtures of the real services the tests start: PostgreSQL and a SLURM cluster.
pytest_plugins = ["tests.pg_cluster", "tests.slurm_cluster"]

ROOT = Path(__file__).resolve().parents[1]
SCHEMA_DIR = Path(__file__).resolve().parent / "schemas"
EXAMPLES = ROOT / "jdl"


@pytest.fixture(scope="session")
def uws_schema() -> etree.XMLSchema:
    parser = etree.XMLParser(resolve_entities=False, no_network=True)
    return etree.XMLSchema(etree.parse(str(SCHEMA_DIR / "UWS-v1.1.xsd"), parser))


@pytest.fixture
def validate(uws_schema: etree.XMLSchema):
    """Parse a UWS document, assert it is schema-valid, return its root."""

    def check(body: bytes) -> etree._Element:
        root = etree.fromstring(body)
        assert uws_schema.validate(root), uws_schema.error_log
        return root

    return check


def make_settings(tmp_path: Path, **overrides) -> Settings:
    jdl = tmp_path / "jdl"
    if not jdl.exists():
        shutil.copytree(EXAMPLES, jdl)
    values = dict(
        VAR_PATH=tmp_path / "var",
        JDL_PATH=jdl,
        # Nothing listens there: in-process tests deliver signals themselves.
        BASE_URL=f"http://127.0.0.1:{free_port()}",
        RECONCILE_INTERVAL=0.5,
        SIGNAL_RETRY_SECONDS=1,
        ALLOW_ANONYMOUS=True,
    )
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path)


@pytest.fixture
def service(settings: Settings) -> JobService:
    return build_service(settings)


@pytest.fixture
def app(settings: Settings, service: JobService) -> webtest.TestApp:
    return webtest.TestApp(create_app(settings, service))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LiveServer:
    """An `opus serve` process on a loopback port, with its own data directory."""

    def __init__(self, tmp_path: Path, **settings: str) -> None:
        self.tmp_path = tmp_path
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        jdl = tmp_path / "jdl"
        if not jdl.exists():
            shutil.copytree(EXAMPLES, jdl)
        self.env = dict(os.environ)
        self.env.update(
            {
                "OPUS_BASE_URL": self.url,
                "OPUS_VAR_PATH": str(tmp_path / "var"),
                "OPUS_JDL_PATH": str(jdl),
                "OPUS_RECONCILE_INTERVAL": "0.5",
                "OPUS_SIGNAL_RETRY_SECONDS": "60",
                "OPUS_LOG_LEVEL": "WARNING",
                # Most live tests act as the shared anonymous owner; auth has its own.
                "OPUS_ALLOW_ANONYMOUS": "true",
                # Their URL inputs are served on loopback.
                "OPUS_ALLOW_PRIVATE_URLS": "true",
            }
        )
        self.env.pop("OPUS_SETTINGS", None)
        self.env.update({f"OPUS_{k}": v for k, v in settings.items()})
        self.process: subprocess.Popen[bytes] | None = None
        self.log = tmp_path / "server.log"

    def start(self) -> None:
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "opus", "serve", "--port", str(self.port)],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(self.url + "/rest", timeout=2).read()
                return
            except urllib.error.HTTPError:
                return  # answering (401 when anonymous access is off)
            except OSError:
                if self.process.poll() is not None:
                    break
                time.sleep(0.1)
        raise RuntimeError(f"server did not start:\n{self.log.read_text()}")

    def stop(self, kill: bool = False) -> None:
        if self.process and self.process.poll() is None:
            if kill:
                self.process.kill()
            else:
                self.process.terminate()
            self.process.wait(10)


@pytest.fixture
def live(tmp_path: Path) -> Iterator[LiveServer]:
    server = LiveServer(tmp_path)
    server.start()
    yield server
    server.stop()
