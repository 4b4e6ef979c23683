"""Hostile registries: foreign token realms, downgrading redirects, huge manifests, endless tag pages.

Each test is one reproduced report of issue 14 ("Registries") or a sibling of one. The registry is
the real `RegistryClient` over ``httpx.MockTransport`` scripted to misbehave; the same flows against
a real docker-registry are in integration/test_images_servers.py.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from model_engine_infra import InfraConfig
from model_engine_infra.errors import RegistryAuthError, RegistryError, RegistryUnavailableError
from model_engine_infra.images.distribution import (
    MAX_RESPONSE_BYTES,
    Challenge,
    Credentials,
    RegistryClient,
    StaticCredentials,
)
from model_engine_infra.images.oci import MAX_MANIFEST_BYTES, MAX_TAG_PAGES, OCIDockerRepository, build_repository

Handler = Callable[[httpx.Request], httpx.Response]
CANARY = "c4n4ry-pa55"
DIGEST = "sha256:" + "0" * 64


def client_for(handler: Handler, host: str = "registry.example", **kwargs: Any) -> RegistryClient:
    session = httpx.Client(transport=httpx.MockTransport(handler))
    return RegistryClient(host, session=session, backoff=0.0, **kwargs)


def repo_for(handler: Handler, host: str = "registry.example", **kwargs: Any) -> OCIDockerRepository:
    return OCIDockerRepository(host, client=client_for(handler, host, **kwargs))


def carries_canary(request: httpx.Request) -> bool:
    """Whether the request holds our password anywhere: header (Basic or raw), query or body."""
    header = request.headers.get("Authorization", "")
    decoded = ""
    if header.startswith("Basic "):
        decoded = base64.b64decode(header[6:]).decode(errors="replace")
    body = request.content.decode(errors="replace") if not request.stream or request.content else ""
    return CANARY in header or CANARY in decoded or CANARY in str(request.url) or CANARY in body


def bearer_registry(realm: str, seen: list[httpx.Request], *, anonymous_ok: bool = True) -> Handler:
    """A registry at registry.example whose token server is at ``realm``; records every request."""

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if str(request.url).startswith(realm):
            if not anonymous_ok and "Authorization" not in request.headers and request.method == "GET":
                return httpx.Response(401, json={"details": "anonymous access denied"})
            return httpx.Response(200, json={"token": "tok", "expires_in": 300})
        if request.headers.get("Authorization") != "Bearer tok":
            challenge = f'Bearer realm="{realm}",service="registry",scope="repository:app:pull"'
            return httpx.Response(401, headers={"WWW-Authenticate": challenge})
        return httpx.Response(200, headers={"Docker-Content-Digest": DIGEST})

    return handler


# --- credentials go only to the registry's own host or trusted hosts --------------------------------------


def test_realm_on_another_host_never_receives_the_login() -> None:
    seen: list[httpx.Request] = []
    repo = repo_for(bearer_registry("https://evil.example/token", seen), credentials=StaticCredentials("u", CANARY))
    assert repo.image_exists("1", "app")  # an anonymous token was enough
    token_requests = [r for r in seen if r.url.host == "evil.example"]
    assert token_requests
    assert not any(carries_canary(r) for r in token_requests)
    assert not any("Authorization" in r.headers for r in token_requests)


def test_foreign_realm_refusing_anonymous_says_how_to_trust_it() -> None:
    seen: list[httpx.Request] = []
    handler = bearer_registry("https://auth.other.example/token", seen, anonymous_ok=False)
    repo = repo_for(handler, credentials=StaticCredentials("u", CANARY))
    with pytest.raises(RegistryAuthError, match="registry_trusted_auth_hosts") as info:
        repo.image_exists("1", "app")
    assert "auth.other.example" in str(info.value)
    assert CANARY not in str(info.value)
    assert not any(carries_canary(r) for r in seen if r.url.host != "registry.example")


def test_identity_token_never_goes_to_a_foreign_realm() -> None:
    seen: list[httpx.Request] = []
    login = StaticCredentials("<token>", CANARY, identity_token=True)
    repo = repo_for(bearer_registry("https://evil.example/token", seen), credentials=login)
    assert repo.image_exists("1", "app")
    assert not any(carries_canary(r) for r in seen)
    assert all(r.method == "GET" for r in seen if r.url.host == "evil.example")  # no refresh-token POST


def test_credential_source_is_not_even_asked_for_a_foreign_realm() -> None:
    """ACR and GAR sources fetch cloud tokens for the realm: an Entra ID token must not go elsewhere either."""
    asked: list[Challenge] = []

    def source(challenge: Challenge, http: httpx.Client) -> Credentials | None:
        asked.append(challenge)
        return Credentials("u", CANARY)

    repo = repo_for(bearer_registry("https://evil.example/token", []), credentials=source)
    assert repo.image_exists("1", "app")
    assert asked == []


@pytest.mark.parametrize(
    "realm",
    [
        "https://registry.example/token",  # the registry's own host
        "https://registry.example:8443/token",  # its own host on another port
        "https://auth.example/token",  # trusted below
        "https://auth.pinned.example:9000/token",  # trusted with its port
    ],
)
def test_login_goes_to_the_registry_itself_and_to_trusted_hosts(realm: str) -> None:
    seen: list[httpx.Request] = []
    trusted = ["auth.example", "auth.pinned.example:9000"]
    repo = repo_for(
        bearer_registry(realm, seen), credentials=StaticCredentials("u", CANARY), trusted_auth_hosts=trusted
    )
    assert repo.image_exists("1", "app")
    assert any(carries_canary(r) for r in seen if str(r.url).startswith(realm))


def test_trust_with_a_port_is_only_that_port() -> None:
    seen: list[httpx.Request] = []
    realm = "https://auth.pinned.example:9001/token"
    repo = repo_for(
        bearer_registry(realm, seen),
        credentials=StaticCredentials("u", CANARY),
        trusted_auth_hosts=["auth.pinned.example:9000"],
    )
    assert repo.image_exists("1", "app")
    assert not any(carries_canary(r) for r in seen)


def test_docker_hub_token_server_is_built_in() -> None:
    client = client_for(lambda r: httpx.Response(200), host="registry-1.docker.io")
    assert client.may_receive_credentials("auth.docker.io")
    assert not client_for(lambda r: httpx.Response(200)).may_receive_credentials("auth.docker.io")


def test_config_key_reaches_the_client() -> None:
    config = InfraConfig(
        cloud_provider="onprem",
        docker_repo_prefix="registry.internal/ml",
        registry_trusted_auth_hosts=("sso.internal",),
        registry_username="u",
        registry_password=CANARY,  # type: ignore[arg-type]
    )
    repo = build_repository(config)
    assert isinstance(repo, OCIDockerRepository)
    assert repo.client.may_receive_credentials("sso.internal")
    assert repo.client.may_receive_credentials("SSO.internal:443")
    assert not repo.client.may_receive_credentials("sso.internal.evil.example")
    repo.close()


def test_basic_login_is_not_attached_to_another_host() -> None:
    """An upload ``Location`` (or any absolute URL) on another host gets no ``Authorization``."""
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.host == "registry.example" and "Authorization" not in request.headers:
            return httpx.Response(401, headers={"WWW-Authenticate": 'Basic realm="r"'})
        return httpx.Response(200, headers={"Docker-Content-Digest": DIGEST})

    client = client_for(handler, credentials=StaticCredentials("u", CANARY))
    client.request("GET", "/v2/")  # learns Basic
    client.request("PUT", "https://storage.elsewhere.example/upload?x=1", content=b"blob")
    elsewhere = [r for r in seen if r.url.host == "storage.elsewhere.example"]
    assert elsewhere
    assert not any("Authorization" in r.headers for r in elsewhere)


# --- redirects ----------------------------------------------------------------------------------------


def redirecting(to: str, seen: list[httpx.Request], status: int = 307) -> Handler:
    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.host == "registry.example":
            return httpx.Response(status, headers={"Location": to})
        return httpx.Response(404, json={"errors": [{"code": "MANIFEST_UNKNOWN"}]})

    return handler


def test_redirect_to_plain_http_elsewhere_is_refused_and_its_404_never_trusted() -> None:
    seen: list[httpx.Request] = []
    repo = repo_for(redirecting("http://mirror.example/v2/app/manifests/1", seen))
    with pytest.raises(RegistryUnavailableError, match=r"plain HTTP at mirror\.example"):
        repo.image_exists("1", "app")  # answering False here would be the bug
    assert [r.url.host for r in seen] == ["registry.example"]


def test_redirect_to_plain_http_on_the_same_host_is_refused() -> None:
    seen: list[httpx.Request] = []
    repo = repo_for(redirecting("http://registry.example/v2/app/manifests/1", seen))
    with pytest.raises(RegistryUnavailableError, match="plain HTTP"):
        repo.image_exists("1", "app")


def test_redirect_to_an_insecure_registry_or_https_is_followed() -> None:
    seen: list[httpx.Request] = []
    repo = repo_for(redirecting("http://mirror.example/x", seen), insecure_registries=["mirror.example"])
    assert repo.image_exists("1", "app") is False  # the allowed host's 404 with an error code
    seen.clear()
    repo = repo_for(redirecting("https://cdn.example/x", seen))
    assert repo.image_exists("1", "app") is False
    assert [r.url.host for r in seen] == ["registry.example", "cdn.example"] * 2  # HEAD, then GET for the code


def test_redirect_across_hosts_drops_the_login() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.host == "registry.example":
            if "Authorization" not in request.headers:
                return httpx.Response(401, headers={"WWW-Authenticate": 'Basic realm="r"'})
            return httpx.Response(302, headers={"Location": "https://blobs.example/b"})
        return httpx.Response(200, content=b"{}")

    client = client_for(handler, credentials=StaticCredentials("u", CANARY))
    client.request("GET", "/v2/app/blobs/" + DIGEST)
    assert [r for r in seen if r.url.host == "blobs.example"]
    assert not any(carries_canary(r) for r in seen if r.url.host == "blobs.example")


def test_redirect_loop_stops() -> None:
    repo = repo_for(redirecting("https://registry.example/again", []))
    with pytest.raises(RegistryUnavailableError, match="more than 10 times"):
        repo.image_exists("1", "app")


def test_token_server_redirect_to_plain_http_is_refused() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/token":
            return httpx.Response(302, headers={"Location": "http://evil.example/token"})
        challenge = 'Bearer realm="https://registry.example/token",service="r"'
        return httpx.Response(401, headers={"WWW-Authenticate": challenge})

    with pytest.raises(RegistryUnavailableError, match=r"plain HTTP at evil\.example"):
        repo_for(handler, credentials=StaticCredentials("u", CANARY)).image_exists("1", "app")


# --- bounded bodies -----------------------------------------------------------------------------------


class Endless(httpx.SyncByteStream):
    """A body of ``size`` bytes made on demand; counts what was actually produced."""

    def __init__(self, size: int, chunk: int = 64 * 1024) -> None:
        self.size, self.chunk, self.produced = size, chunk, 0

    def __iter__(self) -> Iterator[bytes]:
        while self.produced < self.size:
            piece = min(self.chunk, self.size - self.produced)
            self.produced += piece
            yield b" " * piece


def test_huge_declared_manifest_is_refused_unread() -> None:
    body = Endless(3 * 1024**3)

    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "HEAD":
            return httpx.Response(404)
        headers = {"Content-Length": str(body.size), "Content-Type": "application/vnd.oci.image.manifest.v1+json"}
        return httpx.Response(200, headers=headers, stream=body)

    with pytest.raises(RegistryError, match="limit is 4 MiB") as info:
        repo_for(handler).image_exists("1", "app")
    assert "3221225472 bytes" in str(info.value)
    assert body.produced <= 64 * 1024


def test_huge_chunked_manifest_stops_at_the_limit() -> None:
    body = Endless(3 * 1024**3)

    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "HEAD":
            return httpx.Response(404)
        return httpx.Response(200, stream=body)  # no Content-Length

    with pytest.raises(RegistryError, match="more than 4194304 bytes"):
        repo_for(handler).image_exists("1", "app")
    assert body.produced <= MAX_MANIFEST_BYTES + 64 * 1024


def test_manifest_at_the_limit_is_read() -> None:
    document = {"schemaVersion": 2, "config": {"digest": DIGEST}, "layers": [], "pad": ""}
    document["pad"] = "x" * (MAX_MANIFEST_BYTES - len(json.dumps(document)))
    raw = json.dumps(document).encode()
    assert len(raw) == MAX_MANIFEST_BYTES

    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "HEAD":
            return httpx.Response(200)  # no digest header: the client GETs the manifest
        return httpx.Response(200, content=raw)

    assert repo_for(handler).image_exists("1", "app") is True


def test_every_buffered_answer_is_bounded() -> None:
    """Tag lists, error pages, configs and token answers go through the same cap as manifests."""
    body = Endless(50 * 1024**2)
    repo = repo_for(lambda request: httpx.Response(200, stream=body))
    with pytest.raises(RegistryError, match="limit is 4 MiB"):
        repo.list_tags("app")
    assert body.produced <= MAX_RESPONSE_BYTES + 64 * 1024


def test_huge_token_answer_is_refused() -> None:
    body = Endless(50 * 1024**2)

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/token":
            return httpx.Response(200, stream=body)
        challenge = 'Bearer realm="https://registry.example/token",service="r"'
        return httpx.Response(401, headers={"WWW-Authenticate": challenge})

    with pytest.raises(RegistryError, match="limit is 1 MiB"):
        repo_for(handler).image_exists("1", "app")
    assert body.produced <= 1024**2 + 64 * 1024


def test_answer_cut_mid_body_is_unavailable() -> None:
    class Cut(httpx.SyncByteStream):
        def __iter__(self) -> Iterator[bytes]:
            yield b'{"tags": ["a"'
            raise httpx.ReadError("connection reset")

    repo = repo_for(lambda request: httpx.Response(200, stream=Cut()))
    with pytest.raises(RegistryUnavailableError, match="broke off"):
        repo.list_tags("app")


# --- tag pagination -------------------------------------------------------------------------------------


def test_tag_page_linking_to_itself_stops() -> None:
    calls: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(str(request.url))
        link = '</v2/app/tags/list?n=1000>; rel="next"'
        return httpx.Response(200, json={"name": "app", "tags": ["a"]}, headers={"Link": link})

    with pytest.raises(RegistryError, match="in a loop"):
        repo_for(handler).list_tags("app")
    assert len(calls) == 1


def test_tag_pages_in_a_cycle_stop() -> None:
    calls: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request.url.params.get("last", ""))
        following = "b" if request.url.params.get("last") == "a" else "a"
        link = f'</v2/app/tags/list?n=1000&last={following}>; rel="next"'
        return httpx.Response(200, json={"tags": [following]}, headers={"Link": link})

    with pytest.raises(RegistryError, match="in a loop"):
        repo_for(handler).list_tags("app")
    assert len(calls) == 3


def test_endless_distinct_pages_are_capped() -> None:
    calls = [0]

    def handler(request: httpx.Request) -> httpx.Response:
        calls[0] += 1
        link = f'</v2/app/tags/list?n=1000&last=t{calls[0]}>; rel="next"'
        return httpx.Response(200, json={"tags": [f"t{calls[0]}"]}, headers={"Link": link})

    with pytest.raises(RegistryError, match=f"past {MAX_TAG_PAGES} pages"):
        repo_for(handler).list_tags("app")
    assert calls[0] == MAX_TAG_PAGES


def test_normal_pagination_still_works() -> None:
    pages = {"": (["a", "b"], "b"), "b": (["c"], None)}

    def handler(request: httpx.Request) -> httpx.Response:
        tags, following = pages[request.url.params.get("last", "")]
        headers = {"Link": f'</v2/app/tags/list?n=1000&last={following}>; rel="next"'} if following else {}
        return httpx.Response(200, json={"tags": tags}, headers=headers)

    assert repo_for(handler).list_tags("app") == ["a", "b", "c"]


# --- malformed documents --------------------------------------------------------------------------------


@pytest.mark.parametrize("body", [b'["a list"]', b'{"tags": "abc"}', b'{"tags": [1, 2]}', b"not json"])
def test_malformed_tag_lists_are_registry_errors(body: bytes) -> None:
    with pytest.raises(RegistryError, match="not a list of names"):
        repo_for(lambda request: httpx.Response(200, content=body)).list_tags("app")


def test_manifest_that_is_not_an_object_is_a_registry_error() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "HEAD":
            return httpx.Response(200)
        return httpx.Response(200, content=b"[1, 2, 3]")

    with pytest.raises(RegistryError, match="not a JSON object"):
        repo_for(handler).image_exists("1", "app")


@pytest.mark.parametrize("digest", ["../../../v2/other/manifests/x", "sha256:short", 7, None])
def test_malformed_digest_in_an_index_never_reaches_a_url(digest: object) -> None:
    index = json.dumps(
        {"mediaType": "application/vnd.oci.image.index.v1+json", "manifests": [{"digest": digest}]}
    ).encode()
    requested: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        requested.append(request.url.path)
        if request.url.path.endswith("/tags/list"):
            return httpx.Response(200, json={"tags": ["1"]})
        return httpx.Response(200, content=index)

    with pytest.raises(RegistryError, match="malformed digest"):
        repo_for(handler).get_latest_image_tag("app")
    assert requested == ["/v2/app/tags/list", "/v2/app/manifests/1"]
