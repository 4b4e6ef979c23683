"""Registry pieces that need no server: references, scheme policy, the auth flow and error mapping.

The HTTP cases run the real `RegistryClient` over ``httpx.MockTransport`` (the SDK boundary),
scripted to answer like a registry does, including its failures.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from model_engine_infra import InfraConfig, build_infra, load_config
from model_engine_infra.errors import (
    ConfigError,
    InvalidImageReferenceError,
    RegistryAuthError,
    RegistryUnavailableError,
)
from model_engine_infra.images import infer_registry_type, parse_gar_prefix
from model_engine_infra.images.check import deployment_images, parse_tag_options
from model_engine_infra.images.distribution import (
    Credentials,
    RegistryClient,
    StaticCredentials,
    parse_challenge,
    plain_http_allowed,
)
from model_engine_infra.images.oci import OCIDockerRepository, build_repository, parse_created
from model_engine_infra.images.reference import parse_image, parse_prefix, validate_repository_name, validate_tag


@pytest.mark.parametrize(
    ("prefix", "kind"),
    [
        ("123456789012.dkr.ecr.us-east-1.amazonaws.com", "ecr"),
        ("123456789012.dkr.ecr-fips.us-gov-west-1.amazonaws.com/team", "ecr"),
        ("123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn", "ecr"),
        ("123456789012.dkr-ecr.eu-west-1.on.aws", "ecr"),
        ("12345.dkr.ecr.us-east-1.amazonaws.com", "oci"),  # not 12 digits
        ("public.ecr.aws/b2z8n5q1", "oci"),
        ("myregistry.azurecr.io", "acr"),
        ("MyRegistry.azurecr.io/ml", "acr"),
        ("us-docker.pkg.dev/my-project/my-repo", "gar"),
        ("europe-west4-docker.pkg.dev/p/r", "gar"),
        ("gcr.io/my-project", "oci"),
        ("localhost:5000", "oci"),
        ("registry.internal/ml", "oci"),
    ],
)
def test_infer_registry_type(prefix: str, kind: str) -> None:
    assert infer_registry_type(prefix) == kind


@pytest.mark.parametrize(
    "prefix", ["us-docker.pkg.dev/only-project", "us-docker.pkg.dev", "us-docker.pkg.dev/P/r", "docker.pkg.dev/p/r"]
)
def test_malformed_gar_prefix_names_the_key(prefix: str) -> None:
    with pytest.raises(InvalidImageReferenceError, match="docker_repo_prefix"):
        parse_gar_prefix(prefix)


def test_gar_config_error_names_docker_repo_prefix() -> None:
    with pytest.raises(ConfigError, match="docker_repo_prefix"):
        load_config(
            None,
            env={
                "MODEL_ENGINE_INFRA_CLOUD_PROVIDER": "gcp",
                "MODEL_ENGINE_INFRA_DOCKER_REPO_PREFIX": "us-docker.pkg.dev/no-repo",
            },
        )


@pytest.mark.parametrize("prefix", ["https://registry.internal", "", "/path-only", "registry.internal/UPPER"])
def test_malformed_prefixes(prefix: str) -> None:
    with pytest.raises(InvalidImageReferenceError, match="docker_repo_prefix"):
        parse_prefix(prefix)


@pytest.mark.parametrize("name", ["Vllm", "team/Model", "a//b", "-lead", "trail-", "x" * 256, ""])
def test_bad_repository_names(name: str) -> None:
    with pytest.raises(InvalidImageReferenceError):
        validate_repository_name(name)


def test_tags_up_to_128_characters() -> None:
    assert validate_tag("a" * 128)
    for bad in ("a" * 129, "", ".hidden", "-dash", "has space", "a:b"):
        with pytest.raises(InvalidImageReferenceError):
            validate_tag(bad)


def test_parse_image() -> None:
    assert parse_image("vllm:0.6.3") == ("vllm", "0.6.3")
    assert parse_image("localhost:5000/team/app:1") == ("localhost:5000/team/app", "1")
    for bad in ("vllm", "localhost:5000/app", "Vllm:1", "vllm:" + "x" * 129):
        with pytest.raises(InvalidImageReferenceError):
            parse_image(bad)


def test_full_reference_must_name_this_registry() -> None:
    repo = OCIDockerRepository("localhost:5000/team")
    assert repo.repository_path("vllm") == "team/vllm"
    assert repo.repository_path("localhost:5000/other/vllm") == "other/vllm"
    with pytest.raises(InvalidImageReferenceError, match=r"ghcr\.io"):
        repo.repository_path("ghcr.io/org/vllm")


@pytest.mark.parametrize(
    ("host", "allowed"),
    [
        ("localhost:5000", True),
        ("127.0.0.1:5000", True),
        ("127.8.9.10", True),
        ("[::1]:5000", True),
        ("registry.internal", False),
        ("registry.internal:5000", True),  # listed with its port
        ("mirror.lan", True),  # listed without a port: any port
        ("mirror.lan:8443", True),
        ("10.1.2.3:5000", True),  # inside a listed CIDR
        ("11.1.2.3", False),
    ],
)
def test_plain_http_only_where_docker_allows(host: str, allowed: bool) -> None:
    assert plain_http_allowed(host, ["registry.internal:5000", "mirror.lan", "10.0.0.0/8"]) is allowed


def test_https_is_used_and_plain_http_refused_elsewhere() -> None:
    assert RegistryClient("registry.internal").base_url == "https://registry.internal"
    # Where plain HTTP is allowed, HTTPS is tried first and HTTP only if that first contact fails.
    assert RegistryClient("localhost:5000").base_url == "https://localhost:5000"
    with pytest.raises(ConfigError, match="insecure_registries"):
        RegistryClient("registry.internal", base_url="http://registry.internal")
    assert (
        RegistryClient(
            "registry.internal", base_url="http://registry.internal", insecure_registries=["registry.internal"]
        ).base_url
        == "http://registry.internal"
    )


def test_parse_challenge() -> None:
    challenge = parse_challenge(
        'Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push"'
    )
    assert challenge is not None
    assert (challenge.scheme, challenge.realm, challenge.service) == (
        "bearer",
        "https://auth.example/token",
        "registry.example",
    )
    assert challenge.scope == "repository:a/b:pull,push"
    assert parse_challenge('Basic realm="x"') is not None
    assert parse_challenge(None) is None


def test_secrets_stay_out_of_repr() -> None:
    assert "pw-123" not in repr(Credentials("u", "pw-123"))
    assert "pw-123" not in repr(StaticCredentials("u", "pw-123"))
    from model_engine_infra.images.distribution import _Token

    assert "tok-123" not in repr(_Token("tok-123", 0.0))  # cached bearer tokens sit in locals and dicts


# --- the HTTP flow over a scripted registry ---------------------------------------------------------

Handler = Callable[[httpx.Request], httpx.Response]


def client_for(handler: Handler, **kwargs: object) -> RegistryClient:
    session = httpx.Client(transport=httpx.MockTransport(handler))
    return RegistryClient("registry.example", session=session, backoff=0, **kwargs)  # type: ignore[arg-type]


def repo_for(handler: Handler, **kwargs: object) -> OCIDockerRepository:
    return OCIDockerRepository("registry.example", client=client_for(handler, **kwargs))


def test_throttling_and_5xx_are_unavailable_never_false() -> None:
    calls: list[int] = []

    def throttled(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        return httpx.Response(429, headers={"Retry-After": "0"})

    with pytest.raises(RegistryUnavailableError, match="429"):
        repo_for(throttled).image_exists("1", "app")
    assert len(calls) == 3  # two retries, then give up

    with pytest.raises(RegistryUnavailableError, match="503"):
        repo_for(lambda r: httpx.Response(503)).image_exists("1", "app")


def test_404_is_false_only_with_a_registry_error_code() -> None:
    def unknown(request: httpx.Request) -> httpx.Response:
        if request.method == "HEAD":
            return httpx.Response(404)
        return httpx.Response(404, json={"errors": [{"code": "MANIFEST_UNKNOWN", "message": "manifest unknown"}]})

    assert repo_for(unknown).image_exists("1", "app") is False

    proxy_page = repo_for(lambda r: httpx.Response(404, text="<html>not found</html>"))
    with pytest.raises(RegistryUnavailableError, match="without a Distribution error code"):
        proxy_page.image_exists("1", "app")


def test_basic_challenge_without_credentials_is_an_auth_error() -> None:
    def basic(request: httpx.Request) -> httpx.Response:
        return httpx.Response(401, headers={"WWW-Authenticate": 'Basic realm="registry"'})

    with pytest.raises(RegistryAuthError, match="requires credentials"):
        repo_for(basic).image_exists("1", "app")
    with pytest.raises(RegistryAuthError):
        repo_for(lambda r: httpx.Response(403)).image_exists("1", "app")


def test_bearer_flow_caches_tokens_per_scope_until_expiry() -> None:
    now = [0.0]
    token_calls: list[str] = []

    def registry(request: httpx.Request) -> httpx.Response:
        if request.url.host == "auth.example":
            token_calls.append(request.url.params.get("scope", ""))
            assert request.headers["Authorization"].startswith("Basic ")
            return httpx.Response(200, json={"token": f"t{len(token_calls)}", "expires_in": 60})
        if not request.headers.get("Authorization", "").startswith("Bearer t"):
            return httpx.Response(
                401,
                headers={
                    "WWW-Authenticate": 'Bearer realm="https://auth.example/token",service="svc",scope="repository:app:pull"'
                },
            )
        return httpx.Response(200, headers={"Docker-Content-Digest": "sha256:" + "0" * 64})

    repo = repo_for(
        registry, credentials=StaticCredentials("u", "p"), clock=lambda: now[0], trusted_auth_hosts=["auth.example"]
    )
    for _ in range(3):
        assert repo.image_exists("1", "app")
    assert token_calls == ["repository:app:pull"]
    assert repo.image_exists("1", "other")  # a new scope is a new token, fetched up front
    assert len(token_calls) == 2
    now[0] = 120.0  # past expiry
    assert repo.image_exists("1", "app")
    assert len(token_calls) == 3


def test_token_realm_over_plain_http_is_refused() -> None:
    def registry(request: httpx.Request) -> httpx.Response:
        return httpx.Response(401, headers={"WWW-Authenticate": 'Bearer realm="http://auth.example/token"'})

    with pytest.raises(RegistryAuthError, match="plain HTTP"):
        repo_for(registry, credentials=StaticCredentials("u", "p")).image_exists("1", "app")


def test_latest_tag_reads_config_created_through_an_index() -> None:
    import hashlib

    created = {"old": "2023-01-01T00:00:00.123456789Z", "new": "2024-06-01T00:00:00Z"}
    config_digest = {tag: "sha256:" + hashlib.sha256(tag.encode()).hexdigest() for tag in created}
    images = {
        tag: json.dumps({"schemaVersion": 2, "config": {"digest": config_digest[tag]}, "layers": []}).encode()
        for tag in created
    }
    child = "sha256:" + hashlib.sha256(images["new"]).hexdigest()
    index = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": [{"digest": child, "platform": {"architecture": "amd64"}}],
        }
    ).encode()
    manifests = {"new": index, child: images["new"], "old": images["old"]}  # "new" is a multi-platform tag

    def registry(request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path.endswith("/tags/list"):
            return httpx.Response(200, json={"name": "app", "tags": ["new", "old"]})
        if "/manifests/" in path:
            return httpx.Response(200, content=manifests[path.rsplit("/", 1)[1]])
        tag = next(t for t, digest in config_digest.items() if path.endswith(digest))
        return httpx.Response(200, json={"created": created[tag]})

    assert repo_for(registry).get_latest_image_tag("app") == "new"


def test_parse_created_handles_nanoseconds_and_junk() -> None:
    assert parse_created("2024-01-01T00:00:00.123456789Z").microsecond == 123456
    assert parse_created(None).year == 1970
    assert parse_created("yesterday").year == 1970


# --- factory and check planning -------------------------------------------------------------------


def test_local_without_registry_names_docker_repo_prefix() -> None:
    config = InfraConfig(cloud_provider="local")
    with pytest.raises(ConfigError, match="docker_repo_prefix"):
        build_repository(config)
    with pytest.raises(ConfigError, match="docker_repo_prefix"):
        build_infra(config).docker_repository  # noqa: B018


def test_factory_follows_docker_registry_type() -> None:
    config = InfraConfig(
        cloud_provider="onprem",
        docker_repo_prefix="registry.internal:5000/ml",
        registry_username="robot",
        registry_password="pw",
    )  # type: ignore[arg-type]
    repo = build_repository(config)
    assert isinstance(repo, OCIDockerRepository)
    assert repo.client.base_url == "https://registry.internal:5000"
    forced = InfraConfig(cloud_provider="aws", docker_repo_prefix="registry.internal", docker_registry_type="oci")
    assert isinstance(build_repository(forced), OCIDockerRepository)


def test_deployment_images_and_tags() -> None:
    config = InfraConfig(cloud_provider="onprem", docker_repo_prefix="reg.internal", image_tag="abc")
    images = deployment_images(config, parse_tag_options(["vllm=0.6.3"]))
    by_role = {role: image for image in images for role in image.roles}
    assert by_role["gateway"] is by_role["forwarder"]  # one check for the shared model-engine image
    assert by_role["gateway"].tag == "abc"
    assert by_role["vllm"].reference == "vllm:0.6.3"
    assert by_role["tensorrt-llm"].tag is None
    with pytest.raises(InvalidImageReferenceError, match="NAME=TAG"):
        parse_tag_options(["gpu=1"])


def test_mirror_from_config_image_names() -> None:
    from model_engine_infra.cli.images import config_images

    config = InfraConfig(cloud_provider="onprem", docker_repo_prefix="reg.internal/ml", image_tag="abc")
    names = config_images(
        config, ["vllm=0.6.3", "tensorrt-llm=0.9", "batch=0.6.3"], ("public.ecr.aws/b2z8n5q1", "reg.internal/ml")
    )
    assert names == ["model-engine:abc", "vllm:0.6.3", "tensorrt-llm:0.9", "llm-engine/batch-infer-vllm:0.6.3"]
    with pytest.raises(InvalidImageReferenceError, match="--tag vllm=TAG"):
        config_images(config, [], ("public.ecr.aws/b2z8n5q1", "reg.internal/ml"))


def test_ecr_uses_the_configured_aws_profile() -> None:
    """``aws_profile`` is "the AWS profile for everything else": ECR included, as S3 and secrets do."""
    from unittest import mock

    from model_engine_infra.images.ecr import ECRDockerRepository

    config = InfraConfig(
        cloud_provider="aws", docker_repo_prefix="123456789012.dkr.ecr.eu-west-1.amazonaws.com", aws_profile="ml"
    )
    with mock.patch("boto3.session.Session") as session:
        repo = ECRDockerRepository.from_config(config)
    session.assert_called_once_with(profile_name="ml")
    assert repo.region == "eu-west-1"


def test_gar_without_google_credentials_is_a_registry_auth_error() -> None:
    from unittest import mock

    from google.auth.exceptions import DefaultCredentialsError

    from model_engine_infra.images.gar import GARDockerRepository

    with (
        mock.patch("google.auth.default", side_effect=DefaultCredentialsError("no ADC")),
        pytest.raises(RegistryAuthError, match="GOOGLE_APPLICATION_CREDENTIALS"),
    ):
        GARDockerRepository("us-docker.pkg.dev/proj/repo")


def test_docker_config_logins(tmp_path: Path) -> None:
    import base64

    from model_engine_infra.images.oci import docker_config_login

    path = tmp_path / "config.json"
    good = base64.b64encode(b"robot:s3cr3t:x").decode()
    path.write_text(json.dumps({"auths": {"https://reg.internal:5000": {"auth": good}}}))
    login = docker_config_login(str(path), "reg.internal:5000")
    assert login is not None
    assert (login.username, login.password) == ("robot", "s3cr3t:x")
    assert docker_config_login(str(path), "other.internal") is None
    path.write_text(json.dumps({"auths": {"reg.internal:5000": {"auth": "cm9ib3Q6czNjcjN0a"}}}))
    with pytest.raises(ConfigError, match="registry_auth_file") as info:
        docker_config_login(str(path), "reg.internal:5000")
    assert "cm9ib3Q6czNjcjN0" not in str(info.value)
