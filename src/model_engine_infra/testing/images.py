"""Put test images into a registry with plain HTTP requests (the OCI Distribution API).

Independent of the library's own registry clients, so a test of ``image_exists`` or ``mirror``
does not use the code under test to set itself up::

    from model_engine_infra.testing.images import push_test_image

    digest = push_test_image(mei_registry_server, "vllm", "0.6.3")

A server started with ``htpasswd=`` is logged in to with its own user; any registry can be
reached with `ImagePusher` and an ``auth`` callable that returns headers per repository.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import ssl
from collections.abc import Callable
from typing import Any

import httpx

from .servers import RunningServer

__all__ = [
    "OCI_CONFIG",
    "OCI_INDEX",
    "OCI_LAYER",
    "OCI_MANIFEST",
    "ImagePushError",
    "ImagePusher",
    "basic_auth",
    "digest_of",
    "push_test_image",
]

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
EPOCH = dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)

AuthHeaders = Callable[[str], dict[str, str]]


class ImagePushError(RuntimeError):
    """The registry refused an upload; the message carries its status and answer."""


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class ImagePusher:
    """Writes blobs, manifests and indexes to ``base_url``; ``auth`` gives headers per repository."""

    def __init__(self, base_url: str, auth: AuthHeaders | None = None, *, ca_bundle: str | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.auth: AuthHeaders = auth or (lambda repository: {})
        verify: ssl.SSLContext | bool = ssl.create_default_context(cafile=ca_bundle) if ca_bundle else True
        self.http = httpx.Client(timeout=60, verify=verify, trust_env=False)

    def __enter__(self) -> ImagePusher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.http.close()

    def _check(self, response: httpx.Response, expected: int, what: str) -> None:
        if response.status_code != expected:
            raise ImagePushError(f"{what}: HTTP {response.status_code} from {self.base_url}: {response.text[:300]}")

    def blob(self, repository: str, data: bytes) -> dict[str, Any]:
        headers = self.auth(repository)
        digest = digest_of(data)
        start = self.http.post(f"{self.base_url}/v2/{repository}/blobs/uploads/", headers=headers)
        self._check(start, 202, f"starting an upload to {repository}")
        location = start.headers["Location"]
        url = httpx.URL(location if location.startswith("http") else self.base_url + location)
        done = self.http.put(url.copy_merge_params({"digest": digest}), content=data, headers=headers)
        self._check(done, 201, f"uploading blob {digest} to {repository}")
        return {"mediaType": OCI_LAYER, "digest": digest, "size": len(data)}

    def manifest(self, repository: str, reference: str, body: bytes, media_type: str) -> str:
        headers = {**self.auth(repository), "Content-Type": media_type}
        response = self.http.put(
            f"{self.base_url}/v2/{repository}/manifests/{reference}", content=body, headers=headers
        )
        self._check(response, 201, f"putting manifest {repository}:{reference}")
        return digest_of(body)

    def image(
        self,
        repository: str,
        tag: str | None,
        *,
        created: dt.datetime = EPOCH,
        layers: list[bytes] | None = None,
        architecture: str = "amd64",
    ) -> tuple[str, bytes]:
        """Push an image; returns (manifest digest, manifest bytes). ``tag`` None pushes by digest."""
        config = json.dumps(
            {
                "created": created.isoformat().replace("+00:00", "Z"),
                "architecture": architecture,
                "os": "linux",
                "rootfs": {"type": "layers", "diff_ids": []},
            }
        ).encode()
        config_descriptor = {**self.blob(repository, config), "mediaType": OCI_CONFIG}
        layer_descriptors = [self.blob(repository, layer) for layer in (layers or [f"{repository}:{tag}".encode()])]
        body = json.dumps(
            {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config_descriptor, "layers": layer_descriptors}
        ).encode()
        digest = self.manifest(repository, tag or digest_of(body), body, OCI_MANIFEST)
        return digest, body

    def index(self, repository: str, tag: str, platforms: dict[str, list[bytes]], created: dt.datetime = EPOCH) -> str:
        """A multi-platform index over one image per architecture."""
        manifests = []
        for architecture, layers in platforms.items():
            digest, body = self.image(repository, None, created=created, layers=layers, architecture=architecture)
            manifests.append(
                {
                    "mediaType": OCI_MANIFEST,
                    "digest": digest,
                    "size": len(body),
                    "platform": {"architecture": architecture, "os": "linux"},
                }
            )
        body = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests}).encode()
        return self.manifest(repository, tag, body, OCI_INDEX)


def basic_auth(username: str, password: str) -> AuthHeaders:
    """Headers for a registry with htpasswd (basic) auth."""
    token = base64.b64encode(f"{username}:{password}".encode()).decode()
    return lambda repository: {"Authorization": f"Basic {token}"}


def push_test_image(
    registry: RunningServer,
    repository: str,
    tag: str,
    *,
    layers: list[bytes] | None = None,
    created: dt.datetime = EPOCH,
) -> str:
    """Push a small image to a registry this kit started (its htpasswd user and CA are used); its digest."""
    user, password = registry.extra.get("username"), registry.extra.get("password")
    auth = basic_auth(user, password) if user and password else None
    with ImagePusher(registry.url, auth, ca_bundle=registry.extra.get("ca_cert")) as pusher:
        digest, _ = pusher.image(repository, tag, created=created, layers=layers)
    return digest
