"""Registry prefixes and image references: parsing and type inference, with no SDK.

Kept free of network code, and outside ``images/``, so the configuration check can use it offline
without loading any component module (``images.reference`` re-exports it).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from .errors import InvalidImageReferenceError
from .rules import Rule, error_rule

if TYPE_CHECKING:
    from .config.model import InfraConfig

RegistryType = Literal["ecr", "acr", "gar", "oci"]
# Where llm-engine publishes its images; the chart's image defaults point here.
PUBLIC_DEFAULT_REGISTRY = "public.ecr.aws/b2z8n5q1"
# llm-engine's docker_registry_type values for a plain Distribution-API registry: here "oci"
UPSTREAM_OCI_REGISTRY_TYPES = ("onprem", "generic")

ECR_HOST = re.compile(
    r"^(?P<account>\d{12})\.dkr\.ecr(?P<fips>-fips)?\.(?P<region>[a-z0-9-]+)\.amazonaws\.com(?:\.cn)?\Z"
)
# Dual-stack (IPv6) ECR endpoints: {account}.dkr-ecr[-fips].{region}.on.aws
ECR_DUALSTACK_HOST = re.compile(r"^(?P<account>\d{12})\.dkr-ecr(?P<fips>-fips)?\.(?P<region>[a-z0-9-]+)\.on\.aws\Z")
ACR_HOST = re.compile(r"^[a-z0-9]+\.azurecr\.(?:io|cn|us)\Z")
GAR_PREFIX = re.compile(
    r"^(?P<location>[a-z0-9-]+)-docker\.pkg\.dev/(?P<project>[a-z0-9](?:[a-z0-9:.-]*[a-z0-9])?)/(?P<repository>[a-z0-9][a-z0-9._-]*)\Z"
)
# Distribution spec: path components of lowercase alphanumerics joined by separators. Every pattern
# ends in \Z, not $: with re.match, "$" also matches before a trailing newline ("vllm\n" passed).
REPOSITORY_NAME = re.compile(r"^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*\Z")
TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}\Z")


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
    if ECR_HOST.match(host) or ECR_DUALSTACK_HOST.match(host):
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


# host[:port]: DNS labels or an IPv4 address, optionally a port; IPv6 literals in brackets.
HOST = re.compile(
    r"^(?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)*|\[[0-9a-f:.]+\])(?::\d{1,5})?\Z"
)


@dataclass(frozen=True)
class EcrHost:
    account: str
    region: str
    fips: bool


def parse_ecr_host(host: str) -> EcrHost | None:
    """Account, region and FIPS flag of an ECR registry host, or None for any other host."""
    match = ECR_HOST.match(host) or ECR_DUALSTACK_HOST.match(host)
    if match is None:
        return None
    return EcrHost(match["account"], match["region"], bool(match["fips"]))


@dataclass(frozen=True)
class RegistryPrefix:
    """``host[:port]`` plus an optional path that relative repository names go under."""

    host: str
    path: str = ""

    def repository(self, name: str) -> str:
        """The repository path inside the registry for a name relative to this prefix."""
        return f"{self.path}/{name}" if self.path else name

    def __str__(self) -> str:
        return f"{self.host}/{self.path}" if self.path else self.host


def parse_prefix(prefix: str, *, key: str = "docker_repo_prefix") -> RegistryPrefix:
    """``REGISTRY[/PATH]`` without a scheme; the path must be valid repository components."""
    text = prefix.strip().rstrip("/")
    fix = f"Fix: set {key} to a registry host with an optional path, e.g. 'registry.internal:5000/ml'"
    if "://" in text:
        raise InvalidImageReferenceError(f"{key}: {prefix!r} must not contain a scheme. {fix}")
    host, _, path = text.partition("/")
    host = host.lower()
    if not host or not HOST.match(host):
        raise InvalidImageReferenceError(f"{key}: {prefix!r} does not start with a registry host. {fix}")
    if path and not REPOSITORY_NAME.match(path):
        raise InvalidImageReferenceError(
            f"{key}: the path {path!r} in {prefix!r} is not valid: use lowercase letters, digits and . _ - "
            f"separators. {fix}"
        )
    return RegistryPrefix(host, path)


def split_repository(repository: str) -> tuple[str | None, str]:
    """``(host, path)`` of a full reference, or ``(None, name)`` for a relative one."""
    if is_relative_repository(repository):
        return None, repository
    host, _, path = repository.partition("/")
    return host.lower(), path


def parse_image(reference: str) -> tuple[str, str]:
    """``NAME:TAG`` (NAME may carry a registry host) -> (NAME, TAG), both validated."""
    text = reference.strip()
    name, sep, tag = text.rpartition(":")
    if not sep or "/" in tag or not name:
        raise InvalidImageReferenceError(
            f"image {reference!r} needs an explicit tag: write it as NAME:TAG, e.g. 'vllm:0.6.3'"
        )
    validate_tag(tag)
    host, path = split_repository(name)
    validate_repository_name(path)
    if host is not None and not HOST.match(host):
        raise InvalidImageReferenceError(f"image {reference!r}: {host!r} is not a registry host")
    return name, tag


# --- the Artifact Registry backend's rule (run by load_config when gar is selected) ----------------


@error_rule("gar-prefix", "docker_repo_prefix")
def _gar_prefix(config: InfraConfig) -> None:
    from .config.keys import fail

    try:
        parse_gar_prefix(config.docker_repo_prefix)
    except InvalidImageReferenceError:
        raise fail(
            config,
            "docker_repo_prefix",
            f"{config.docker_repo_prefix!r} does not parse as {{location}}-docker.pkg.dev/{{project}}/{{repository}}",
            "set docker_repo_prefix to e.g. 'us-docker.pkg.dev/my-project/my-repo', "
            "or set docker_registry_type: oci for another registry",
        ) from None


GAR_RULES: tuple[Rule, ...] = (_gar_prefix,)
