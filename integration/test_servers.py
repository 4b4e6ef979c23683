"""The real-server harness: each fixture's server answers a real client, and stop() ends it."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import socket
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from email.utils import formatdate
from pathlib import Path

import pytest

from model_engine_infra.testing.pytest_plugin import report_missing_server, require_server
from model_engine_infra.testing.servers import (
    RunningServer,
    ServerUnavailableError,
    free_port,
    self_signed_cert,
    start_fake_gcs,
    start_redis,
    start_registry,
)

pytestmark = pytest.mark.integration

_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _http(
    url: str, method: str = "GET", body: bytes | None = None, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    """Status, headers and body of one request; error statuses are answers too."""
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with _OPENER.open(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as err:
        with err:
            return err.code, dict(err.headers), err.read()


def _redis(server: RunningServer, payload: bytes, tls: ssl.SSLContext | None = None) -> bytes:
    sock = socket.create_connection((server.host, server.port), timeout=5)
    if tls is not None:
        sock = tls.wrap_socket(sock, server_hostname=server.host)
    with sock:
        sock.sendall(payload)
        time.sleep(0.1)
        return sock.recv(4096)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _direct(name: str, start: Callable[[], RunningServer]) -> RunningServer:
    """A server started by the test itself (so it may stop it); skips or fails like the fixtures."""
    try:
        return start()
    except ServerUnavailableError as err:
        report_missing_server(name, err)


def test_redis_answers_ping(mei_redis_server: RunningServer) -> None:
    assert _redis(mei_redis_server, b"PING\r\n") == b"+PONG\r\n"
    assert mei_redis_server.url == f"redis://127.0.0.1:{mei_redis_server.port}/0"


def test_moto_api_answers(mei_moto_server: RunningServer) -> None:
    status, _, _ = _http(f"{mei_moto_server.url}/moto-api/")
    assert status == 200
    assert mei_moto_server.sdk_env["AWS_ENDPOINT_URL"] == mei_moto_server.url


def test_moto_serves_s3(mei_moto_server: RunningServer) -> None:
    assert _http(f"{mei_moto_server.url}/harness-bucket", "PUT", b"")[0] == 200
    # Unsigned requests are anonymous: only a public-read object can be read back without signing.
    headers = {"Content-Type": "application/octet-stream", "x-amz-acl": "public-read"}
    assert _http(f"{mei_moto_server.url}/harness-bucket/key.txt", "PUT", b"hello", headers)[0] == 200
    assert _http(f"{mei_moto_server.url}/harness-bucket/key.txt")[2] == b"hello"


def test_azurite_accepts_connections_and_http(mei_azurite_server: RunningServer) -> None:
    with socket.create_connection((mei_azurite_server.host, mei_azurite_server.port), timeout=5):
        pass
    status, _, _ = _http(f"{mei_azurite_server.extra['blob_endpoint']}?comp=list")
    assert 200 <= status < 500  # anonymous list answers 403; any HTTP answer means it is up


def test_azurite_accepts_the_dev_account_key(mei_azurite_server: RunningServer) -> None:
    """A Shared Key signed List Containers answers 200, so the key in ``extra`` is the right one."""
    account, key = mei_azurite_server.extra["account_name"], mei_azurite_server.extra["account_key"]
    headers = {"x-ms-date": formatdate(usegmt=True), "x-ms-version": "2021-08-06"}
    canonical_headers = "".join(f"{name}:{value}\n" for name, value in sorted(headers.items()))
    string_to_sign = "GET\n" + "\n" * 11 + canonical_headers + f"/{account}/{account}/\ncomp:list"
    digest = hmac.new(base64.b64decode(key), string_to_sign.encode(), hashlib.sha256).digest()
    headers["Authorization"] = f"SharedKey {account}:{base64.b64encode(digest).decode()}"
    status, _, body = _http(f"{mei_azurite_server.extra['blob_endpoint']}/?comp=list", headers=headers)
    assert status == 200, body


def test_fake_gcs_lists_and_creates_buckets(mei_gcs_server: RunningServer) -> None:
    base = mei_gcs_server.sdk_env["STORAGE_EMULATOR_HOST"]
    assert _http(f"{base}/storage/v1/b")[0] == 200
    body = json.dumps({"name": "harness-bucket"}).encode()
    created = _http(f"{base}/storage/v1/b?project=test", "POST", body, {"Content-Type": "application/json"})
    assert created[0] == 200
    names = [item["name"] for item in json.loads(_http(f"{base}/storage/v1/b")[2])["items"]]
    assert "harness-bucket" in names


def test_fake_gcs_media_links_point_at_the_public_host(tmp_path: Path) -> None:
    """With a proxy in front (netsim), rclone-style downloads through ``mediaLink`` must go through it too."""
    proxy = f"127.0.0.1:{free_port()}"
    with start_fake_gcs(tmp_path, public_host=proxy) as server:
        base = server.sdk_env["STORAGE_EMULATOR_HOST"]
        body = json.dumps({"name": "linked"}).encode()
        assert _http(f"{base}/storage/v1/b?project=test", "POST", body, {"Content-Type": "application/json"})[0] == 200
        url = f"{base}/upload/storage/v1/b/linked/o?uploadType=media&name=x.bin"
        status, _, answer = _http(url, "POST", b"data", {"Content-Type": "application/octet-stream"})
        assert status == 200, answer
        status, _, answer = _http(f"{base}/storage/v1/b/linked/o/x.bin")
        assert status == 200, answer
        assert json.loads(answer)["mediaLink"].startswith(f"http://{proxy}/"), answer


def test_registry_answers_v2(mei_registry_server: RunningServer) -> None:
    assert _http(f"{mei_registry_server.url}/v2/")[0] == 200
    status, _, body = _http(f"{mei_registry_server.url}/v2/_catalog")
    assert status == 200
    catalog = json.loads(body)  # the session's registry: other tests may have pushed images already
    assert isinstance(catalog["repositories"], list)


def test_stop_ends_the_process(tmp_path: Path) -> None:
    server = _direct("redis", lambda: start_redis(tmp_path))
    assert _alive(server.pid)
    assert server.is_running()
    server.stop()
    assert not _alive(server.pid)
    assert not server.is_running()
    server.stop()  # idempotent
    with pytest.raises(OSError):
        socket.create_connection((server.host, server.port), timeout=1).close()


def test_context_manager_stops_the_server(tmp_path: Path) -> None:
    with _direct("redis", lambda: start_redis(tmp_path)) as server:
        pid = server.pid
        assert _alive(pid)
    assert not _alive(pid)


def test_redis_password_needs_auth(tmp_path: Path) -> None:
    with _direct("redis", lambda: start_redis(tmp_path, password="s3cret pass")) as server:
        assert _redis(server, b"PING\r\n").startswith(b"-NOAUTH")
        assert _redis(server, b'AUTH "s3cret pass"\r\nPING\r\n') == b"+OK\r\n+PONG\r\n"
        assert server.url.startswith("redis://:s3cret%20pass@")


def test_redis_tls(tmp_path: Path) -> None:
    with _direct("redis", lambda: start_redis(tmp_path, tls=True)) as server:
        context = ssl.create_default_context(cafile=server.extra["ca_cert"])
        assert _redis(server, b"PING\r\n", context) == b"+PONG\r\n"
        assert server.url.startswith("rediss://")


def test_registry_htpasswd(tmp_path: Path) -> None:
    with _direct("registry", lambda: start_registry(tmp_path, htpasswd=("alice", "wonder"))) as server:
        assert _http(f"{server.url}/v2/")[0] == 401
        basic = base64.b64encode(b"alice:wonder").decode()
        assert _http(f"{server.url}/v2/", headers={"Authorization": f"Basic {basic}"})[0] == 200


def test_registry_token_auth_challenges_with_bearer(tmp_path: Path) -> None:
    def start() -> RunningServer:
        cert, _ = self_signed_cert(tmp_path / "certs", "token")
        token_auth = {"realm": "http://127.0.0.1:1/token", "service": "harness", "issuer": "test-issuer"}
        return start_registry(tmp_path / "registry", token_auth={**token_auth, "rootcertbundle": cert})

    with _direct("registry", start) as server:
        status, headers, _ = _http(f"{server.url}/v2/")
        assert status == 401
        challenge = headers["Www-Authenticate"]
        assert challenge.startswith("Bearer ")
        assert 'service="harness"' in challenge


def test_require_server_returns_a_stoppable_server(tmp_path_factory: pytest.TempPathFactory) -> None:
    with require_server("redis", tmp_path_factory) as server:
        assert _redis(server, b"PING\r\n") == b"+PONG\r\n"
    assert not _alive(server.pid)
