"""Input files: sanitised names, paths kept inside, guarded URL downloads."""

from __future__ import annotations

import http.server
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from opus.core.errors import BadRequest, PayloadTooLarge
from opus.server.service import inputs


class Handler(http.server.BaseHTTPRequestHandler):
    """/data: 5000 bytes; /chunked: the same without Content-Length; /slow: a trickle;
    /to/<url>: a redirect to <url>."""

    def log_message(self, *args) -> None:  # keep the test output clean
        pass

    def do_GET(self) -> None:
        if self.path.startswith("/to/"):
            self.send_response(302)
            self.send_header("Location", self.path[4:])
            self.end_headers()
        elif self.path == "/data":
            self.send_response(200)
            self.send_header("Content-Length", "5000")
            self.end_headers()
            self.wfile.write(b"x" * 5000)
        elif self.path in ("/chunked", "/slow"):
            self.send_response(200)
            self.end_headers()
            for _ in range(50 if self.path == "/slow" else 1):
                self.wfile.write(b"x" * 5000)
                self.wfile.flush()
                if self.path == "/slow":
                    time.sleep(0.1)
        else:
            self.send_error(404)


def serve(host: str) -> Iterator[str]:
    server = http.server.ThreadingHTTPServer((host, 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://{host}:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def loopback() -> Iterator[str]:
    yield from serve("127.0.0.1")


@pytest.fixture
def other_loopback() -> Iterator[str]:
    yield from serve("127.0.0.2")


def fetch(url: str, tmp_path: Path, **options) -> str:
    values = dict(limit=10_000, timeout=5.0, allow_private=True)
    values.update(options)
    return inputs.fetch_url("input", url, tmp_path, **values)


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("8.8.8.8", True),
        ("2001:4860:4860::8888", True),
        ("127.0.0.1", False),
        ("10.1.2.3", False),
        ("172.16.0.1", False),
        ("192.168.1.1", False),
        ("169.254.169.254", False),  # cloud metadata
        ("0.0.0.0", False),
        ("224.0.0.1", False),
        ("::1", False),
        ("::ffff:127.0.0.1", False),
        ("fc00::1", False),
        ("fe80::1%eth0", False),
    ],
)
def test_public_addresses(address: str, public: bool) -> None:
    assert inputs.is_public_address(address) is public


def test_download_when_private_addresses_are_allowed(loopback: str, tmp_path: Path) -> None:
    name = fetch(f"{loopback}/data", tmp_path)
    assert (tmp_path / name).read_bytes() == b"x" * 5000


def test_loopback_refused_by_default(loopback: str, tmp_path: Path) -> None:
    with pytest.raises(BadRequest, match="non-public"):
        fetch(f"{loopback}/data", tmp_path, allow_private=False)
    with pytest.raises(BadRequest, match="non-public"):
        fetch(f"http://localhost:{loopback.rsplit(':', 1)[1]}/data", tmp_path, allow_private=False)
    assert list(tmp_path.iterdir()) == []


def test_every_redirect_hop_is_checked(
    loopback: str, other_loopback: str, tmp_path: Path, monkeypatch
) -> None:
    # Pretend 127.0.0.2 is public: its redirect to 127.0.0.1 must still be refused.
    monkeypatch.setattr(inputs, "is_public_address", lambda address: address == "127.0.0.2")
    with pytest.raises(BadRequest, match="non-public"):
        fetch(f"{other_loopback}/to/{loopback}/data", tmp_path, allow_private=False)
    assert fetch(f"{other_loopback}/data", tmp_path, allow_private=False) == "data"


@pytest.mark.parametrize(
    "target", ["file:///etc/passwd", "ftp://example.org/x", "gopher://example.org/"]
)
def test_redirects_only_to_http(loopback: str, tmp_path: Path, target: str) -> None:
    with pytest.raises(BadRequest):
        fetch(f"{loopback}/to/{target}", tmp_path)
    assert not (tmp_path / "passwd").exists()


@pytest.mark.parametrize(
    "url", ["file:///etc/passwd", "ftp://example.org/x", "http://", "javascript:alert(1)", "x"]
)
def test_only_http_urls(url: str, tmp_path: Path) -> None:
    with pytest.raises(BadRequest, match="only http and https"):
        fetch(url, tmp_path)


@pytest.mark.parametrize("path", ["/data", "/chunked"])
def test_size_limit(loopback: str, tmp_path: Path, path: str) -> None:
    with pytest.raises(PayloadTooLarge):
        fetch(f"{loopback}{path}", tmp_path, limit=1000)
    assert list(tmp_path.iterdir()) == []


def test_time_limit(loopback: str, tmp_path: Path) -> None:
    started = time.monotonic()
    with pytest.raises(BadRequest, match="longer than"):
        fetch(f"{loopback}/slow", tmp_path, limit=10**7, timeout=1.0)
    assert time.monotonic() - started < 4
    assert list(tmp_path.iterdir()) == []


def test_http_errors_are_client_errors(loopback: str, tmp_path: Path) -> None:
    with pytest.raises(BadRequest, match="404"):
        fetch(f"{loopback}/missing", tmp_path)


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("../../etc/passwd", "passwd"),
        (".hidden", "hidden"),
        ("-rf", "rf"),
        ("a b;c$(x).txt", "a_b_c_x_.txt"),
        ("C:\\\\windows\\\\x.dll", "x.dll"),
        ("", "input"),
        ("results", "input_results"),
        (".opus", "opus"),  # the leading dot goes: never the internal directory
    ],
)
def test_sanitize_filename(given: str, expected: str) -> None:
    assert inputs.sanitize_filename(given) == expected


def test_paths_stay_inside(tmp_path: Path) -> None:
    assert inputs.inside(tmp_path, "a.txt") == tmp_path.resolve() / "a.txt"
    for name in ["../x", "/etc/passwd", "a/../../x"]:
        with pytest.raises(BadRequest):
            inputs.inside(tmp_path, name)
