"""Registries for real: the DockerRepository conformance suite over docker-registry and moto server, and mirroring.

One token server (Docker token protocol + ACR's ``/oauth2/exchange``) fronts one token-auth
docker-registry, which serves the OCI bearer, ACR and Artifact Registry variants (GAR with its
``project/repository/name`` path layout and a fake ADC token source). Images are pushed with plain
HTTP requests by the testing kit's `ImagePusher`, independent of the code under test.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import ssl
import sys
import time
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from model_engine_infra.errors import ImageNotFoundError, RegistryAuthError, RegistryError, RegistryUnavailableError
from model_engine_infra.images import mirror
from model_engine_infra.images.acr import ACRDockerRepository
from model_engine_infra.images.distribution import RegistryClient, StaticCredentials
from model_engine_infra.images.gar import GARDockerRepository
from model_engine_infra.images.oci import OCIDockerRepository, head_manifest_digest
from model_engine_infra.testing.conformance.images import T0, DockerRepositoryConformance, RegistryTarget, ecr_target
from model_engine_infra.testing.pytest_plugin import report_missing_server
from model_engine_infra.testing.servers import RunningServer, ServerUnavailableError, start_moto, start_registry

sys.path.insert(0, str(Path(__file__).parent))
from model_engine_infra.testing.images import ImagePusher as Pusher
from registry_fakes import TokenServer

USER, PASSWORD = "alice", "s3cret-pw"
ADC_TOKEN, AAD_TOKEN = "fake-adc-token", "fake-aad-token"
CLOSED = "127.0.0.1:9"  # discard port: nothing listens


def _start(name: str, tmp_path_factory: pytest.TempPathFactory, **kwargs: Any) -> RunningServer:
    try:
        return start_registry(tmp_path_factory.mktemp(name), **kwargs)
    except ServerUnavailableError as err:
        report_missing_server("registry", err)


@pytest.fixture(scope="module")
def mei_registry_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """Our own anonymous registry: the session-wide one is expected to stay empty by the harness tests."""
    with _start("registry-anon", tmp_path_factory) as server:
        yield server


@pytest.fixture(scope="module")
def basic_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    with _start("registry-basic", tmp_path_factory, htpasswd=(USER, PASSWORD)) as server:
        yield server


@pytest.fixture(scope="module")
def token_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TokenServer]:
    server = TokenServer(
        tmp_path_factory.mktemp("token"), {USER: PASSWORD, "oauth2accesstoken": ADC_TOKEN}, {AAD_TOKEN}
    )
    yield server
    server.stop()


@pytest.fixture(scope="module")
def token_registry(tmp_path_factory: pytest.TempPathFactory, token_server: TokenServer) -> Iterator[RunningServer]:
    with _start("registry-token", tmp_path_factory, token_auth=token_server.registry_auth()) as server:
        yield server


def _basic_header(repository: str) -> dict[str, str]:
    return {"Authorization": httpx.BasicAuth(USER, PASSWORD)._auth_header}


def _oci_push(pusher: Pusher, prefix_path: str = "") -> Any:
    def push(name: str, tag: str, created: dt.datetime) -> None:
        pusher.image(f"{prefix_path}{name}", tag, created=created)

    return push


# --- the conformance suite over each registry -----------------------------------------------------


class TestOCIAnonymousContract(DockerRepositoryConformance):
    @pytest.fixture
    def registry_target(self, mei_registry_server: RunningServer, basic_registry: RunningServer) -> Iterator[Any]:
        pusher = Pusher(mei_registry_server.url)
        repo = OCIDockerRepository(mei_registry_server.extra["registry"])
        yield RegistryTarget(
            repo,
            _oci_push(pusher),
            # An anonymous client meets a registry that wants a login.
            lambda: OCIDockerRepository(basic_registry.extra["registry"]),
            lambda: OCIDockerRepository(CLOSED),
        )
        repo.close()
        pusher.close()

    @pytest.mark.usefixtures("basic_registry")
    def test_auth_failure(self, registry_target: Any) -> None:
        refused = registry_target.unauthorized()
        with pytest.raises(RegistryAuthError, match="requires credentials"):
            refused.image_exists("1.0", "anything")


class TestOCIBasicContract(DockerRepositoryConformance):
    @pytest.fixture
    def registry_target(self, basic_registry: RunningServer) -> Iterator[Any]:
        host = basic_registry.extra["registry"]
        pusher = Pusher(basic_registry.url, auth=_basic_header)
        repo = OCIDockerRepository(host, credentials=StaticCredentials(USER, PASSWORD))
        yield RegistryTarget(
            repo,
            _oci_push(pusher),
            lambda: OCIDockerRepository(host, credentials=StaticCredentials(USER, "hunter2")),
            lambda: OCIDockerRepository(CLOSED, credentials=StaticCredentials(USER, PASSWORD)),
        )
        repo.close()
        pusher.close()


def _token_pusher(registry: RunningServer, tokens: TokenServer) -> Pusher:
    return Pusher(
        registry.url, auth=lambda repo: {"Authorization": "Bearer " + tokens.mint([f"repository:{repo}:pull,push"])}
    )


class TestOCIBearerContract(DockerRepositoryConformance):
    @pytest.fixture
    def registry_target(self, token_registry: RunningServer, token_server: TokenServer) -> Iterator[Any]:
        host = token_registry.extra["registry"]
        pusher = _token_pusher(token_registry, token_server)
        repo = OCIDockerRepository(f"{host}/team", credentials=StaticCredentials(USER, PASSWORD))
        yield RegistryTarget(
            repo,
            _oci_push(pusher, "team/"),
            lambda: OCIDockerRepository(f"{host}/team", credentials=StaticCredentials(USER, "hunter2")),
            lambda: OCIDockerRepository(CLOSED),
        )
        repo.close()
        pusher.close()


class FakeAADCredential:
    """Stands in for DefaultAzureCredential: counts calls, returns a fixed token."""

    def __init__(self, token: str) -> None:
        self.token = token
        self.calls = 0

    def get_token(self, *scopes: str) -> Any:
        self.calls += 1
        return type("AccessToken", (), {"token": self.token, "expires_on": int(time.time()) + 3600})()


class TestACRContract(DockerRepositoryConformance):
    @pytest.fixture
    def registry_target(self, token_registry: RunningServer, token_server: TokenServer) -> Iterator[Any]:
        pusher = _token_pusher(token_registry, token_server)

        def acr(token: str, url: str = token_registry.url) -> ACRDockerRepository:
            return ACRDockerRepository("contoso.azurecr.io", credential=FakeAADCredential(token), registry_url=url)

        repo = acr(AAD_TOKEN)
        yield RegistryTarget(
            repo, _oci_push(pusher), lambda: acr("hunter2"), lambda: acr(AAD_TOKEN, f"http://{CLOSED}")
        )
        repo.close()
        pusher.close()


class TestGARContract(DockerRepositoryConformance):
    PREFIX = "us-docker.pkg.dev/test-project/images"

    @pytest.fixture
    def registry_target(self, token_registry: RunningServer, token_server: TokenServer) -> Iterator[Any]:
        pusher = _token_pusher(token_registry, token_server)

        def gar(token: str, url: str = token_registry.url) -> GARDockerRepository:
            return GARDockerRepository(self.PREFIX, token_source=lambda: token, registry_url=url)

        repo = gar(ADC_TOKEN)
        yield RegistryTarget(
            repo,
            _oci_push(pusher, "test-project/images/"),
            lambda: gar("hunter2"),
            lambda: gar(ADC_TOKEN, f"http://{CLOSED}"),
        )
        repo.close()
        pusher.close()


@pytest.fixture(scope="module")
def ecr_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A private moto server (IAM auth is switched on server-wide, so it is not the shared one)."""
    try:
        server = start_moto(tmp_path_factory.mktemp("moto-ecr"))
    except ServerUnavailableError as err:
        report_missing_server("moto", err)
    import boto3

    with server:
        iam = boto3.client(
            "iam",
            region_name="us-east-1",
            endpoint_url=server.url,
            aws_access_key_id="setup",
            aws_secret_access_key="setup",
        )
        iam.create_user(UserName="contract")
        policy = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "ecr:*", "Resource": "*"}]}
        iam.put_user_policy(UserName="contract", PolicyName="ecr", PolicyDocument=json.dumps(policy))
        key = iam.create_access_key(UserName="contract")["AccessKey"]
        request = urllib.request.Request(
            f"{server.url}/moto-api/reset-auth", data=b"0", method="POST", headers={"Content-Type": "text/plain"}
        )
        urllib.request.build_opener(urllib.request.ProxyHandler({})).open(request).close()
        keys = {"aws_access_key_id": key["AccessKeyId"], "aws_secret_access_key": key["SecretAccessKey"]}
        yield {"url": server.url, "keys": keys}


def _next_second(name: str, tag: str, created: dt.datetime) -> None:
    """moto stores push time in whole seconds: wait so pushes in a row get increasing times."""
    start = int(time.time())
    while int(time.time()) == start:
        time.sleep(0.02)


class TestECRServerContract(DockerRepositoryConformance):
    @pytest.fixture
    def registry_target(self, ecr_server: dict[str, Any]) -> Any:
        return ecr_target(ecr_server["keys"], _next_second, endpoint_url=ecr_server["url"])


# --- auth details -------------------------------------------------------------------------------


def test_bearer_token_is_cached_until_expiry(token_registry: RunningServer, token_server: TokenServer) -> None:
    now = [1000.0]
    pusher = _token_pusher(token_registry, token_server)
    pusher.image("cache/app", "1", created=T0)
    client = RegistryClient(
        token_registry.extra["registry"], credentials=StaticCredentials(USER, PASSWORD), clock=lambda: now[0]
    )
    repo = OCIDockerRepository(token_registry.extra["registry"], client=client)
    for _ in range(5):
        assert repo.image_exists("1", "cache/app")
    assert client.token_requests == 1
    now[0] += 301  # the token server grants 300 s
    assert repo.image_exists("1", "cache/app")
    assert client.token_requests == 2
    repo.close()
    pusher.close()


def test_acr_exchanges_once_for_many_scopes(token_registry: RunningServer, token_server: TokenServer) -> None:
    aad = FakeAADCredential(AAD_TOKEN)
    repo = ACRDockerRepository("contoso.azurecr.io", credential=aad, registry_url=token_registry.url)
    before = token_server.exchanges
    for name in ("acr/a", "acr/b", "acr/c"):
        assert repo.image_exists("1", name) is False
    assert token_server.exchanges - before == 1
    assert aad.calls == 1
    repo.close()


# --- mirroring ----------------------------------------------------------------------------------


class Counter:
    """httpx event hooks: counts blob requests and blob bytes per method."""

    def __init__(self) -> None:
        self.blob_requests: list[tuple[str, str]] = []
        self.blob_bytes = 0

    def client(self, host: str, credentials: StaticCredentials | None = None) -> RegistryClient:
        session = httpx.Client(event_hooks={"request": [self.on_request], "response": [self.on_response]})
        return RegistryClient(host, credentials=credentials, session=session)

    def on_request(self, request: httpx.Request) -> None:
        if "/blobs/" in request.url.path and request.method != "HEAD":
            self.blob_requests.append((request.method, request.url.path))

    def on_response(self, response: httpx.Response) -> None:
        if "/blobs/" in response.request.url.path and response.request.method == "GET":
            self.blob_bytes += int(response.headers.get("Content-Length") or 0)


def test_mirror_image_and_index_then_nothing(mei_registry_server: RunningServer, basic_registry: RunningServer) -> None:
    src_host, dst_host = mei_registry_server.extra["registry"], basic_registry.extra["registry"]
    pusher = Pusher(mei_registry_server.url)
    layers = [os.urandom(300_000), os.urandom(200_000), os.urandom(100_000)]
    image_digest, _ = pusher.image("mirror-src/app", "1.0", created=T0, layers=layers)
    shared = os.urandom(150_000)
    index_digest = pusher.index(
        "mirror-src/multi",
        "2.0",
        {"amd64": [shared, os.urandom(50_000)], "arm64": [shared, os.urandom(60_000)]},
        T0,
    )
    pusher.close()
    login = StaticCredentials(USER, PASSWORD)
    events: list[str] = []

    def run() -> tuple[Counter, list[Any]]:
        counter = Counter()
        src, dst = counter.client(src_host), counter.client(dst_host, login)
        results = mirror(
            ["app:1.0", "multi:2.0"],
            source=f"{src_host}/mirror-src",
            target=f"{dst_host}/copy",
            source_client=src,
            target_client=dst,
            progress=lambda e: events.append(e.event),
        )
        src.close()
        dst.close()
        return counter, results

    _counter, results = run()
    assert [r.digest for r in results] == [image_digest, index_digest]
    # app: config + 3 layers; multi: 2 configs + 3 distinct layers (one shared between platforms).
    assert sum(r.blobs_copied + r.blobs_skipped for r in results) >= 9
    assert results[0].blobs_copied == 4
    assert results[0].bytes_copied > 600_000
    assert "bytes" in events
    assert "manifest_pushed" in events

    check = RegistryClient(dst_host, credentials=login)
    assert head_manifest_digest(check, "copy/app", "1.0") == image_digest
    assert head_manifest_digest(check, "copy/multi", "2.0") == index_digest
    children = json.loads(
        check.request(
            "GET",
            f"/v2/copy/multi/manifests/{index_digest}",
            headers={"Accept": "application/vnd.oci.image.index.v1+json"},
            scopes=["repository:copy/multi:pull"],
        ).content
    )["manifests"]
    for child in children:
        assert head_manifest_digest(check, "copy/multi", child["digest"]) == child["digest"]
    check.close()

    again, second = run()
    assert all(r.up_to_date for r in second)
    assert sum(r.bytes_copied + r.blobs_copied for r in second) == 0
    assert again.blob_requests == []
    assert again.blob_bytes == 0


def test_mirror_mounts_across_repositories_in_one_registry(basic_registry: RunningServer) -> None:
    host = basic_registry.extra["registry"]
    pusher = Pusher(basic_registry.url, auth=_basic_header)
    pusher.image("mount-src/app", "1", created=T0, layers=[os.urandom(10_000), os.urandom(20_000)])
    pusher.close()
    counter = Counter()
    client = counter.client(host, StaticCredentials(USER, PASSWORD))
    [result] = mirror(
        ["app:1"], source=f"{host}/mount-src", target=f"{host}/mount-dst", source_client=client, target_client=client
    )
    client.close()
    assert result.blobs_mounted == 3
    assert result.blobs_copied == 0
    assert result.bytes_copied == 0
    assert not [r for r in counter.blob_requests if r[0] == "GET"]


def test_first_requests_racing_over_the_plain_http_fallback_all_succeed(mei_registry_server: RunningServer) -> None:
    host = mei_registry_server.extra["registry"]
    for _ in range(3):
        client = RegistryClient(host)  # tries HTTPS first, then falls back to plain HTTP
        with ThreadPoolExecutor(4) as pool:
            statuses = [r.status_code for r in pool.map(client.request, ["GET"] * 4, ["/v2/"] * 4)]
        client.close()
        assert statuses == [200, 200, 200, 200]
        assert client.base_url.startswith("http://")


def test_mirror_missing_source_image_raises(mei_registry_server: RunningServer) -> None:
    host = mei_registry_server.extra["registry"]
    with pytest.raises(ImageNotFoundError, match="does not exist at the source"):
        mirror(["nothing-here:1"], source=host, target=f"{host}/elsewhere")


# --- the CLI --------------------------------------------------------------------------------------


def test_cli_check_and_mirror(
    mei_registry_server: RunningServer, basic_registry: RunningServer, tmp_path: Path
) -> None:
    from model_engine_infra.cli.images import app

    src_host, dst_host = mei_registry_server.extra["registry"], basic_registry.extra["registry"]
    pusher = Pusher(mei_registry_server.url)
    for name in ("cli-src/model-engine", "cli-src/vllm"):
        pusher.image(name, "1.0", created=T0)
    pusher.close()
    config = tmp_path / "infra.yaml"
    config.write_text(
        "cloud_provider: onprem\n"
        f"docker_repo_prefix: {dst_host}/cli\n"
        f"registry_username: {USER}\n"
        f"registry_password: {PASSWORD}\n"
        "image_tag: '1.0'\n"
        + "".join(
            f"{k}: {dst_host}/cli/model-engine\n"
            for k in ("gateway_repository", "builder_repository", "cacher_repository", "forwarder_repository")
        )
    )
    runner = CliRunner()
    missing = runner.invoke(app, ["check", "--config", str(config), "--tag", "vllm=1.0"])
    assert missing.exit_code == 1, missing.output
    assert "missing" in missing.output
    assert "model-engine" in missing.output

    mirrored = runner.invoke(
        app,
        [
            "mirror",
            "--from",
            f"{src_host}/cli-src",
            "--to",
            f"{dst_host}/cli",
            "--image",
            "model-engine:1.0",
            "--image",
            "vllm:1.0",
            "--to-username",
            USER,
            "--to-password",
            PASSWORD,
        ],
    )
    assert mirrored.exit_code == 0, mirrored.output
    assert PASSWORD not in mirrored.output

    # tensorrt-llm and batch are checked for "any tag" unless --tag names one: give them one.
    pusher = Pusher(basic_registry.url, auth=_basic_header)
    pusher.image("cli/tensorrt-llm", "0.9", created=T0)
    pusher.image("cli/llm-engine/batch-infer-vllm", "0.9", created=T0)
    pusher.close()
    found = runner.invoke(app, ["check", "--config", str(config), "--tag", "vllm=1.0"])
    assert found.exit_code == 0, found.output
    assert "missing" not in found.output


def test_digest_mismatch_is_refused(mei_registry_server: RunningServer, basic_registry: RunningServer) -> None:
    """A source that serves different bytes than the manifest promises never lands in the target."""
    host = mei_registry_server.extra["registry"]
    pusher = Pusher(mei_registry_server.url)
    pusher.image("tamper/app", "1", created=T0, layers=[b"honest bytes"])
    pusher.close()

    def tamper(response: httpx.Response) -> None:
        if response.request.method == "GET" and "/blobs/" in response.request.url.path:
            response.stream = httpx.ByteStream(b"tampered bytes")  # type: ignore[assignment]
            response.headers["Content-Length"] = "14"

    source = RegistryClient(host, session=httpx.Client(event_hooks={"response": [tamper]}))
    target = RegistryClient(basic_registry.extra["registry"], credentials=StaticCredentials(USER, PASSWORD))
    with pytest.raises(RegistryError, match="different digest"):
        mirror(
            ["app:1"],
            source=f"{host}/tamper",
            target=f"{basic_registry.extra['registry']}/tampered",
            source_client=source,
            target_client=target,
        )
    assert head_manifest_digest(target, "tampered/app", "1") is None
    source.close()
    target.close()


def test_https_registry_with_a_private_ca(tmp_path: Path) -> None:
    """registry_ca_bundle: HTTPS with a private CA works; without the CA nothing is trusted or guessed."""
    try:
        server = start_registry(tmp_path / "tls-registry", tls=True)
    except ServerUnavailableError as err:
        report_missing_server("registry", err)
    with server:
        ca = server.extra["ca_cert"]
        pusher = Pusher(server.url)
        pusher.http.close()
        pusher.http = httpx.Client(timeout=30, verify=ssl.create_default_context(cafile=ca))
        try:
            pusher.image("secure/app", "1.0", created=dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc))
        finally:
            pusher.close()
        prefix = server.extra["registry"]
        trusted = OCIDockerRepository(prefix, ca_bundle=ca)
        try:
            assert trusted.image_exists("1.0", "secure/app")
            assert not trusted.image_exists("2.0", "secure/app")
        finally:
            trusted.close()
        untrusted = OCIDockerRepository(prefix)
        try:
            with pytest.raises(RegistryUnavailableError, match="registry_ca_bundle"):
                untrusted.image_exists("1.0", "secure/app")
        finally:
            untrusted.close()


# --- a token realm on another host (issue 14) -----------------------------------------------------------


@pytest.fixture(scope="module")
def foreign_realm_registry(
    tmp_path_factory: pytest.TempPathFactory, token_server: TokenServer
) -> Iterator[RunningServer]:
    """A real registry we reach as 127.0.0.1 whose challenge names its token server as ``localhost``:
    another host as far as the client can tell."""
    auth = {**token_server.registry_auth(), "realm": token_server.realm.replace("127.0.0.1", "localhost")}
    with _start("registry-foreign-realm", tmp_path_factory, token_auth=auth) as server:
        yield server


def test_foreign_realm_gets_no_login_until_trusted(
    foreign_realm_registry: RunningServer, token_server: TokenServer
) -> None:
    pusher = _token_pusher(foreign_realm_registry, token_server)
    pusher.image("realm/app", "1", created=T0)
    host = foreign_realm_registry.extra["registry"]
    before = len(token_server.authorizations)
    untrusted = OCIDockerRepository(host, credentials=StaticCredentials(USER, PASSWORD))
    with pytest.raises(RegistryAuthError, match="registry_trusted_auth_hosts"):
        untrusted.image_exists("1", "realm/app")
    assert token_server.authorizations[before:] == []  # the token server never saw our login
    untrusted.close()
    trusted = OCIDockerRepository(host, credentials=StaticCredentials(USER, PASSWORD), trusted_auth_hosts=["localhost"])
    assert trusted.image_exists("1", "realm/app")
    assert len(token_server.authorizations) > before
    trusted.close()
    pusher.close()
