"""Registry prefixes and image references: parsing and type inference, with no SDK.

Kept free of network code so the configuration check can use it offline.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from ..errors import InvalidImageReferenceError

RegistryType = Literal["ecr", "acr", "gar", "oci"]

ECR_HOST = re.compile(r"^(?P<account>\d{12})\.dkr\.ecr(?:-fips)?\.(?P<region>[a-z0-9-]+)\.amazonaws\.com(?:\.cn)?$")
ACR_HOST = re.compile(r"^[a-z0-9]+\.azurecr\.(?:io|cn|us)$")
GAR_PREFIX = re.compile(
    r"^(?P<location>[a-z0-9-]+)-docker\.pkg\.dev/(?P<project>[a-z0-9](?:[a-z0-9:.-]*[a-z0-9])?)/(?P<repository>[a-z0-9][a-z0-9._-]*)$"
)
# Distribution spec: path components of lowercase alphanumerics joined by separators.
REPOSITORY_NAME = re.compile(r"^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*$")
TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")


@dataclass(frozen=True)
class GarPrefix:
    location: str
    project: str
    repository: str

    @property
    def host(self) -> str:
        return f"{self.location}-docker.pkg.dev"


def registry_host(prefix: str) -> str:
    """The host[:port] part of a registry prefix or image reference."""
    return prefix.strip().rstrip("/").split("/", 1)[0].lower()


def infer_registry_type(prefix: str) -> RegistryType:
    """ECR, ACR and Artifact Registry by their host names; anything else speaks plain OCI."""
    host = registry_host(prefix)
    if ECR_HOST.match(host):
        return "ecr"
    if ACR_HOST.match(host):
        return "acr"
    if host.endswith("-docker.pkg.dev"):
        return "gar"
    return "oci"


def parse_gar_prefix(prefix: str, *, key: str = "docker_repo_prefix") -> GarPrefix:
    """Split ``{location}-docker.pkg.dev/{project}/{repository}``; anything else is an error."""
    match = GAR_PREFIX.match(prefix.strip().rstrip("/"))
    if match is None:
        raise InvalidImageReferenceError(
            f"{key}: {prefix!r} does not parse as {{location}}-docker.pkg.dev/{{project}}/{{repository}}. "
            f"Fix: set {key} to e.g. 'us-docker.pkg.dev/my-project/my-repo'"
        )
    return GarPrefix(match["location"], match["project"], match["repository"])


def validate_repository_name(name: str) -> str:
    if not name or len(name) > 255 or not REPOSITORY_NAME.match(name):
        raise InvalidImageReferenceError(
            f"repository name {name!r} is not valid: use lowercase letters, digits and . _ - separators, "
            "path components joined by '/', at most 255 characters"
        )
    return name


def validate_tag(tag: str) -> str:
    if not TAG.match(tag):
        raise InvalidImageReferenceError(
            f"image tag {tag!r} is not valid: 1-128 characters of letters, digits, '_', '.', '-', "
            "not starting with '.' or '-'"
        )
    return tag


def is_relative_repository(repository: str) -> bool:
    """True for ``vllm`` or ``llm-engine/batch-infer-vllm``: no registry host in front."""
    first = repository.split("/", 1)[0]
    return "/" not in repository or not ("." in first or ":" in first or first == "localhost")
