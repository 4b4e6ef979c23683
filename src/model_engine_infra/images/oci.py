"""Any OCI (Distribution API) registry: on-prem and local deployments, and the base of ACR and GAR.

Unlike the reference system's on-prem class, which answers True without asking, `image_exists`
asks the registry and answers False only when the registry itself says the tag or repository is
unknown. The registry class a config selects is picked in ``model_engine_infra.components``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import httpx

from ..errors import ConfigError, ImageNotFoundError, RegistryError, RegistryUnavailableError
from .base import DockerRepository
from .distribution import (
    INDEX_TYPES,
    MANIFEST_ACCEPT,
    NOT_FOUND_CODES,
    Challenge,
    Credentials,
    CredentialSource,
    RegistryClient,
    StaticCredentials,
    distribution_errors,
    pull_scope,
)
from .reference import validate_tag

if TYPE_CHECKING:
    from ..config.model import InfraConfig
    from ..infra import Infra

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
MAX_MANIFEST_BYTES = 4 * 1024 * 1024  # containerd's limit for manifests and indexes
MAX_TAG_PAGES = 1000  # of up to 1,000 tags each


@dataclass(frozen=True)
class Manifest:
    """Raw manifest bytes as the registry stored them (digests are over these exact bytes)."""

    body: bytes
    media_type: str
    digest: str

    @property
    def document(self) -> dict[str, Any]:
        parsed: dict[str, Any] = json.loads(self.body)
        return parsed

    @property
    def is_index(self) -> bool:
        return self.media_type in INDEX_TYPES or "manifests" in self.document


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


_DIGEST = re.compile(r"(sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128})")


def checked_digest(value: object, host: str) -> str:
    """A digest from a registry's document, before it goes into a URL path: only ``sha256:``/``sha512:`` hex."""
    if not isinstance(value, str) or not _DIGEST.fullmatch(value):
        shown = repr(value)[:80]
        raise RegistryError(f"registry {host} sent a descriptor with the malformed digest {shown}")
    return value


def fetch_manifest(client: RegistryClient, repository: str, reference: str) -> Manifest | None:
    """GET a manifest by tag or digest; None when the registry says it is unknown; digest verified."""
    response = client.request(
        "GET",
        f"/v2/{repository}/manifests/{reference}",
        scopes=[pull_scope(repository)],
        headers={"Accept": MANIFEST_ACCEPT},
        what=f"reading the manifest {repository}:{reference}",
        max_body=MAX_MANIFEST_BYTES,
    )
    if response.status_code == 404:
        if distribution_errors(response) & NOT_FOUND_CODES:
            return None
        raise _not_a_registry(client, response)
    _expect(client, response, (200,), f"reading {repository}:{reference}")
    body = response.content
    digest = sha256_digest(body)
    announced = response.headers.get("Docker-Content-Digest")
    expected = reference if reference.startswith("sha256:") else announced
    if expected and expected != digest:
        raise RegistryError(
            f"manifest {repository}@{reference} from {client.host} has digest {digest}, expected {expected}: "
            "the registry or a proxy altered it"
        )
    media_type = response.headers.get("Content-Type", "").split(";")[0].strip()
    try:
        parsed = json.loads(body)
    except ValueError as err:
        raise RegistryError(f"manifest {repository}:{reference} on {client.host} is not JSON") from err
    if not isinstance(parsed, dict):
        raise RegistryError(f"manifest {repository}:{reference} on {client.host} is not a JSON object")
    media_type = str(parsed.get("mediaType") or media_type)
    return Manifest(body, media_type, digest)


def head_manifest_digest(client: RegistryClient, repository: str, reference: str) -> str | None:
    """The digest a tag points at, or None when the registry says it is unknown."""
    response = client.request(
        "HEAD",
        f"/v2/{repository}/manifests/{reference}",
        scopes=[pull_scope(repository)],
        headers={"Accept": MANIFEST_ACCEPT},
        what=f"checking {repository}:{reference}",
    )
    if response.status_code == 200:
        digest = response.headers.get("Docker-Content-Digest")
        if digest:
            return str(digest)
        manifest = fetch_manifest(client, repository, reference)  # registries that omit the header
        return manifest.digest if manifest else None
    if response.status_code == 404:
        # A HEAD has no body: read the error code with a GET before saying "absent".
        manifest = fetch_manifest(client, repository, reference)
        return manifest.digest if manifest else None
    raise _unexpected(client, response, f"checking {repository}:{reference}")


def _expect(client: RegistryClient, response: httpx.Response, ok: Sequence[int], what: str) -> None:
    if response.status_code not in ok:
        raise _unexpected(client, response, what)


def _unexpected(client: RegistryClient, response: httpx.Response, what: str) -> RegistryError:
    codes = ", ".join(sorted(distribution_errors(response))) or "no error code"
    return RegistryError(f"registry {client.host} answered {response.status_code} ({codes}) while {what}")


def _not_a_registry(client: RegistryClient, response: httpx.Response) -> RegistryUnavailableError:
    return RegistryUnavailableError(
        f"{client.base_url} answered 404 without a Distribution error code: is it a registry, and is the prefix right?"
    )


def parse_created(value: object) -> datetime:
    """RFC 3339 ``created`` from an image config (nanoseconds allowed); the epoch when absent."""
    if not isinstance(value, str) or not value:
        return EPOCH
    text = value.replace("Z", "+00:00")
    head, dot, rest = text.partition(".")
    if dot:  # Python parses at most microseconds
        digits = "".join(c for c in rest if c.isdigit())
        text = f"{head}.{digits[:6]}{rest[len(digits) :]}"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return EPOCH
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


class OCIDockerRepository(DockerRepository):
    """`DockerRepository` over the Distribution API; ACR and GAR differ only in their credentials."""

    def __init__(
        self,
        docker_repo_prefix: str,
        *,
        client: RegistryClient | None = None,
        credentials: CredentialSource | None = None,
        insecure_registries: Sequence[str] = (),
        trusted_auth_hosts: Sequence[str] = (),
        ca_bundle: str | None = None,
        registry_url: str | None = None,
    ) -> None:
        super().__init__(docker_repo_prefix)
        self.client = client or RegistryClient(
            self.prefix.host,
            credentials=credentials,
            insecure_registries=insecure_registries,
            trusted_auth_hosts=trusted_auth_hosts,
            ca_bundle=ca_bundle,
            base_url=registry_url,
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.docker_repo_prefix!r})"

    def image_exists(self, image_tag: str, repository_name: str) -> bool:
        validate_tag(image_tag)
        return head_manifest_digest(self.client, self.repository_path(repository_name), image_tag) is not None

    def list_tags(self, repository_name: str) -> list[str]:
        """Every tag of the repository (following ``Link`` pagination); missing repository raises."""
        repository = self.repository_path(repository_name)
        tags: list[str] = []
        path: str | None = f"/v2/{repository}/tags/list?n=1000"
        seen: set[str] = set()
        while path is not None:
            if path in seen:
                raise RegistryError(
                    f"registry {self.prefix.host} paginates the tags of {repository} in a loop (the next page "
                    f"{path!r} came before); stopped after {len(seen)} pages"
                )
            if len(seen) >= MAX_TAG_PAGES:
                raise RegistryError(
                    f"registry {self.prefix.host} kept paginating the tags of {repository} past {MAX_TAG_PAGES} pages; "
                    "stopped"
                )
            seen.add(path)
            response = self.client.request(
                "GET", path, scopes=[pull_scope(repository)], what=f"listing tags of {repository}"
            )
            if response.status_code == 404 and distribution_errors(response) & NOT_FOUND_CODES:
                raise ImageNotFoundError(f"repository {repository!r} does not exist in {self.prefix.host}")
            if response.status_code == 404:
                raise _not_a_registry(self.client, response)
            _expect(self.client, response, (200,), f"listing tags of {repository}")
            tags.extend(_tags_of(self.client, response, repository))
            path = _next_link(response)
        return tags

    def get_latest_image_tag(self, repository_name: str) -> str:
        """The tag whose image config says it was created last (ties: the larger tag name)."""
        repository = self.repository_path(repository_name)
        tags = self.list_tags(repository_name)
        if not tags:
            raise ImageNotFoundError(f"repository {repository!r} in {self.prefix.host} has no tagged image")
        return max(tags, key=lambda tag: (self._created(repository, tag), tag))

    def _created(self, repository: str, tag: str) -> datetime:
        manifest = fetch_manifest(self.client, repository, tag)
        if manifest is None:  # deleted between listing and reading
            return EPOCH
        if manifest.is_index:
            children = [c for c in manifest.document.get("manifests") or [] if isinstance(c, dict)]
            if not children:
                return EPOCH
            child = next((c for c in children if (c.get("platform") or {}).get("architecture") == "amd64"), children[0])
            manifest = fetch_manifest(self.client, repository, checked_digest(child.get("digest"), self.client.host))
            if manifest is None:
                return EPOCH
        config = manifest.document.get("config") or {}
        if not isinstance(config, dict) or "digest" not in config:
            return EPOCH
        response = self.client.request(
            "GET",
            f"/v2/{repository}/blobs/{checked_digest(config['digest'], self.client.host)}",
            scopes=[pull_scope(repository)],
            what=f"reading the config of {repository}:{tag}",
        )
        if response.status_code == 404:
            return EPOCH
        _expect(self.client, response, (200,), f"reading the config of {repository}:{tag}")
        try:
            config_document = response.json()
        except ValueError:
            return EPOCH
        return parse_created(config_document.get("created") if isinstance(config_document, dict) else None)

    def close(self) -> None:
        self.client.close()


def _tags_of(client: RegistryClient, response: httpx.Response, repository: str) -> list[str]:
    """The ``tags`` of one page; anything but a JSON object with a list of strings is the registry's fault."""
    try:
        body = response.json()
    except ValueError:
        body = None
    tags = body.get("tags") if isinstance(body, dict) else None
    if tags is None and isinstance(body, dict):
        return []
    if not isinstance(tags, list) or not all(isinstance(tag, str) for tag in tags):
        raise RegistryError(f"registry {client.host} sent a tag list for {repository} that is not a list of names")
    return tags


def _next_link(response: httpx.Response) -> str | None:
    link = response.headers.get("Link")
    if not link or 'rel="next"' not in link:
        return None
    target = link.split(";", 1)[0].strip().strip("<>")
    parts = urlsplit(target)
    return f"{parts.path}?{parts.query}" if parts.query else parts.path


# --- credentials from the configuration ----------------------------------------------------------


class DockerConfigCredentials:
    """Logins from a Docker config JSON (``auths.HOST.auth`` / ``username`` / ``identitytoken``)."""

    def __init__(self, path: str, host: str) -> None:
        self._path = path
        self._host = host

    def __repr__(self) -> str:
        return f"DockerConfigCredentials({self._path!r}, {self._host!r})"

    def __call__(self, challenge: Challenge, http: httpx.Client) -> Credentials | None:
        return docker_config_login(self._path, self._host)


#: A Docker config JSON holds a few logins; anything larger is not one (or is a device like /dev/zero).
MAX_DOCKER_CONFIG_BYTES = 1024 * 1024


def docker_config_login(path: str, host: str) -> Credentials | None:
    try:
        with Path(path).expanduser().open("rb") as handle:
            data = handle.read(MAX_DOCKER_CONFIG_BYTES + 1)
        if len(data) > MAX_DOCKER_CONFIG_BYTES:
            raise ConfigError(
                f"{path} is larger than {MAX_DOCKER_CONFIG_BYTES // 1024} KiB, too large for a Docker config JSON",
                key="registry_auth_file",
                value=path,
                fix="point registry_auth_file at a Docker config JSON (e.g. a mounted .dockerconfigjson)",
            )
        document = json.loads(data)
    except OSError as err:
        raise ConfigError(
            f"cannot read {path}: {err.strerror}",
            key="registry_auth_file",
            value=path,
            fix="point registry_auth_file at a Docker config JSON (e.g. a mounted .dockerconfigjson)",
        ) from None
    except (ValueError, RecursionError):  # not JSON, not UTF-8, or nested past the parser's depth
        raise ConfigError(
            f"{path} is not JSON", key="registry_auth_file", value=path, fix="use a Docker config JSON file"
        ) from None
    auths = (document.get("auths") or {}) if isinstance(document, dict) else None
    if not isinstance(auths, dict):
        raise ConfigError(
            f'{path} is not a Docker config: it needs an object with an "auths" object',
            key="registry_auth_file",
            value=path,
            fix='use a Docker config JSON file ({"auths": {"registry.example.com": {"auth": "..."}}})',
        )
    entry = None
    for name, value in auths.items():
        netloc = urlsplit(name).netloc if "://" in name else name.split("/", 1)[0]
        if netloc.lower() == host:
            entry = value
            break
    if not isinstance(entry, dict):
        return None
    if entry.get("identitytoken"):
        return Credentials(entry.get("username") or "<token>", entry["identitytoken"], identity_token=True)
    if entry.get("auth"):
        try:
            user, _, password = base64.b64decode(entry["auth"]).decode().partition(":")
        except ValueError:  # binascii.Error, UnicodeDecodeError; never echo the value: it is the login
            raise ConfigError(
                f"the auth entry for {host} in {path} is not base64 of USER:PASSWORD",
                key="registry_auth_file",
                value=path,
                fix=f"log in again (docker login {host}) or rewrite the entry",
            ) from None
        return Credentials(user, password)
    if entry.get("username"):
        return Credentials(entry["username"], entry.get("password") or "")
    return None


def config_credentials(config: InfraConfig, host: str) -> CredentialSource | None:
    """The login the config gives for ``host``: registry_username/password, else registry_auth_file."""
    if config.registry_username is not None and host == _prefix_host(config):
        return StaticCredentials(config.registry_username, config.secret("registry_password") or "")
    if config.registry_auth_file is not None:
        return DockerConfigCredentials(config.registry_auth_file, host)
    return None


def _prefix_host(config: InfraConfig) -> str:
    return config.docker_repo_prefix.strip().split("/", 1)[0].lower()


# --- factories ----------------------------------------------------------------------------------


def build_repository(config: InfraConfig, infra: Infra | None = None) -> DockerRepository:
    """The registry class the config selects (ECR, ACR, GAR or OCI; see `components.build_docker_repository`)."""
    from ..components import build_docker_repository

    repository: DockerRepository = build_docker_repository(config, infra)
    return repository


def repository_from_config(config: InfraConfig) -> DockerRepository:
    """The ``oci`` registry backend: any Distribution API registry at ``docker_repo_prefix``."""
    return repository_for_prefix(config.docker_repo_prefix, config)


def repository_for_prefix(prefix: str, config: InfraConfig) -> DockerRepository:
    """A plain OCI repository for any prefix, with the config's TLS, HTTP and login settings."""
    host = prefix.strip().split("/", 1)[0].lower()
    configured_host = config.docker_repo_prefix.strip().split("/", 1)[0].lower()
    return OCIDockerRepository(
        prefix,
        credentials=config_credentials(config, host),
        registry_url=config.registry_endpoint_url if host == configured_host else None,
        insecure_registries=config.insecure_registries,
        trusted_auth_hosts=config.registry_trusted_auth_hosts,
        ca_bundle=config.registry_ca_bundle,
    )
