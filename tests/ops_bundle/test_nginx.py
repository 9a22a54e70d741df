"""The nginx site parses with Debian's nginx, rate-limits sign-in and the API, and forwards headers."""

from __future__ import annotations

import http.server
import json
import os
import re
import ssl
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.procs import wait_for

from .tools import DEPLOY, free_port, require_tool, run

SITE = DEPLOY / "nginx" / "deia.conf"


@pytest.fixture(scope="module")
def nginx() -> str:
    return require_tool("nginx")


def location(text: str, spec: str) -> str:
    match = re.search(r"location " + re.escape(spec) + r" \{([^}]*)\}", text)
    assert match, f"no location {spec} in {SITE}"
    return match.group(1)


def test_sign_in_and_the_api_are_rate_limited_per_address() -> None:
    text = SITE.read_text()
    zones = dict(re.findall(r"limit_req_zone \$binary_remote_addr zone=(\w+):\S+ rate=(\S+);", text))
    assert set(zones) == {"deia_login", "deia_api"}
    assert "limit_req zone=deia_login" in location(text, "= /admin/login/")
    assert "limit_req zone=deia_api" in location(text, "/api/")
    assert "limit_req_status 429;" in text


def test_the_site_sets_the_forwarded_headers_itself() -> None:
    text = SITE.read_text()
    for header in (
        "X-Forwarded-Host $host",
        "X-Forwarded-For $proxy_add_x_forwarded_for",
        "X-Forwarded-Proto $scheme",
    ):
        assert f"proxy_set_header {header};" in text


def runnable_site(tmp_path: Path, upstream_port: int, http_port: int, https_port: int) -> Path:
    """The shipped site on scratch ports, logs and a throwaway certificate; wrapped in an http block."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"),
            *("-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=deia.example.com"),
            *("-addext", "subjectAltName=DNS:deia.example.com,IP:127.0.0.1"),
        ],
        check=True,
        capture_output=True,
    )
    text = SITE.read_text()
    text = text.replace("server 127.0.0.1:8000", f"server 127.0.0.1:{upstream_port}")
    text = re.sub(r"^\s*listen \[::\].*$", "", text, flags=re.M)
    text = text.replace("listen 80;", f"listen 127.0.0.1:{http_port};")
    text = text.replace("listen 443 ssl", f"listen 127.0.0.1:{https_port} ssl")
    text = re.sub(r"ssl_certificate\s+\S+;", f"ssl_certificate {cert};", text)
    text = re.sub(r"ssl_certificate_key\s+\S+;", f"ssl_certificate_key {key};", text)
    text = re.sub(r"(access_log|error_log)\s+/var/log/nginx/(\S+);", rf"\1 {tmp_path}/\2;", text)
    site = tmp_path / "deia.conf"
    site.write_text(text)
    user = "user root;\n" if os.geteuid() == 0 else ""
    wrapper = tmp_path / "nginx.conf"
    wrapper.write_text(
        f"{user}pid {tmp_path}/nginx.pid;\nerror_log {tmp_path}/error.log;\nevents {{}}\n"
        f"http {{\n  client_body_temp_path {tmp_path}/body;\n  proxy_temp_path {tmp_path}/proxy;\n"
        f"  include {site};\n}}\n"
    )
    return wrapper


def test_nginx_accepts_the_site(nginx: str, tmp_path: Path) -> None:
    config = runnable_site(tmp_path, free_port(), free_port(), free_port())
    result = run([nginx, "-t", "-c", str(config), "-p", str(tmp_path), "-e", str(tmp_path / "error.log")])
    assert result.returncode == 0, result.stderr
    assert "test is successful" in result.stderr


class Upstream(http.server.BaseHTTPRequestHandler):
    """Stands in for gunicorn: answers 200 with the forwarded headers it received, and the
    port of nginx's end of the (kept-alive) connection it came on."""

    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        names = ("Host", "X-Forwarded-Host", "X-Forwarded-For", "X-Forwarded-Proto")
        seen = {name: self.headers.get(name) for name in names}
        body = json.dumps({**seen, "connection": self.client_address[1]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.do_GET()

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def proxied(nginx: str, tmp_path: Path) -> Iterator[httpx.Client]:
    """The site in a real nginx in front of the stand-in upstream; yields an HTTPS client for it."""
    upstream = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Upstream)
    threading.Thread(target=upstream.serve_forever, daemon=True).start()
    https_port = free_port()
    config = runnable_site(tmp_path, upstream.server_address[1], free_port(), https_port)
    proc = subprocess.Popen(
        [nginx, "-c", str(config), "-p", str(tmp_path), "-e", str(tmp_path / "error.log"), "-g", "daemon off;"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    client = httpx.Client(
        base_url=f"https://127.0.0.1:{https_port}",
        verify=ssl.create_default_context(cafile=tmp_path / "cert.pem"),
        timeout=5,
    )
    try:
        wait_for(lambda: _answers(client) or proc.poll() is not None, timeout=15, what="nginx")
        assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
        yield client
    finally:
        client.close()
        proc.terminate()
        proc.wait(10)
        upstream.shutdown()
        upstream.server_close()


def _answers(client: httpx.Client) -> bool:
    try:
        return client.get("/").status_code == 200
    except httpx.HTTPError:
        return False


def test_nginx_refuses_a_burst_of_sign_ins_with_429(proxied: httpx.Client) -> None:
    codes = [proxied.post("/admin/login/").status_code for _ in range(12)]
    assert codes[:6] == [200] * 6  # one plus the burst of five
    assert set(codes[6:]) == {429}
    assert proxied.get("/admin/").status_code == 200  # other pages are not limited


def test_nginx_passes_its_own_view_of_the_client(proxied: httpx.Client) -> None:
    seen = proxied.get(
        "/api/bots",
        headers={"Host": "deia.example.com", "X-Forwarded-For": "127.0.0.1", "X-Forwarded-Host": "evil.example"},
    ).json()
    assert seen["X-Forwarded-Host"] == "deia.example.com"
    assert seen["X-Forwarded-Proto"] == "https"
    # The client's forged hop stays on the left; nginx appends the peer it saw.
    assert seen["X-Forwarded-For"] == "127.0.0.1, 127.0.0.1"


def test_chats_and_the_rest_never_share_a_kept_alive_connection(proxied: httpx.Client) -> None:
    # gunicorn places a connection by its first request (chat workers or the rest), so a
    # connection nginx keeps for chats must never carry the admin or the API, nor the reverse.
    chats, rest = set(), set()
    for _ in range(3):
        chats.add(proxied.post("/api/bots/7/messages", json={"message": "hi"}).json()["connection"])
        rest.add(proxied.get("/api/bots").json()["connection"])
        rest.add(proxied.get("/admin/").json()["connection"])
        chats.add(proxied.get("/api/bots/7/messages").json()["connection"])
    assert chats and rest
    assert not chats & rest, (chats, rest)
