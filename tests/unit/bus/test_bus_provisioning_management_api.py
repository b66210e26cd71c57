"""The RabbitMQ management API client speaks HTTP(S) only and sends its credentials nowhere else."""

from __future__ import annotations

import base64
import json
import threading
import urllib.error
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tai_bus.provisioning import (
    BrokerAdministrationError,
    ManagementApiAdministrator,
    _http_only_opener,
)


class _Recorder(BaseHTTPRequestHandler):
    seen: list[tuple[str, str, str | None]] = []

    def do_GET(self) -> None:
        self.seen.append((self.command, self.path, self.headers.get("Authorization")))
        if self.path == "/api/overview":
            body = json.dumps({"rabbitmq_version": "3.13.7"}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        # anything else redirects to another host: the client must not follow it
        self.send_response(302)
        self.send_header("Location", "http://192.0.2.1/steal")
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_DELETE = do_GET  # noqa: N815 - the http.server hook name

    def log_message(self, format: str, *args: object) -> None:
        """Keep the test output quiet."""


@pytest.fixture
def management_api() -> Iterator[str]:
    _Recorder.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize(
    "url", ["file:///etc/passwd", "ftp://broker/", "data:text/plain,x", "broker:15672"]
)
def test_a_management_url_that_is_not_http_is_refused(url: str) -> None:
    with pytest.raises(ValueError, match="http"):
        ManagementApiAdministrator(url, "admin", "secret")


def test_the_opener_cannot_read_local_files(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("do not read")
    with pytest.raises(urllib.error.URLError, match="unknown url type"):
        _http_only_opener().open(secret.as_uri(), timeout=1)


def test_the_api_is_called_with_basic_credentials(management_api: str) -> None:
    administrator = ManagementApiAdministrator(management_api, "admin", "s3cret")
    assert administrator.server_version() == "3.13.7"
    expected = "Basic " + base64.b64encode(b"admin:s3cret").decode()
    assert _Recorder.seen == [("GET", "/api/overview", expected)]


def test_a_redirect_is_not_followed_with_the_credentials(management_api: str) -> None:
    administrator = ManagementApiAdministrator(management_api, "admin", "s3cret")
    with pytest.raises(BrokerAdministrationError, match="302"):
        administrator.delete_user("tai-risk")
    assert [path for _method, path, _auth in _Recorder.seen] == ["/api/users/tai-risk"]
