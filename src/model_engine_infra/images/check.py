"""Does every image the deployment refers to exist? The check behind ``images check``.

An image that was never mirrored lets endpoint creation succeed and the endpoint hang in
INITIALIZING with the pull error buried in pod events. This asks each image's registry first.

Tags: gateway, builder, cacher and forwarder use ``image_tag`` (the chart's ``tag``). The config
holds no tag for the vLLM, TensorRT-LLM and batch images (the tag is chosen per endpoint), so they
are checked at the tags passed in ``tags`` (``--tag vllm=0.6.3``); without one, the check asks that
the repository holds at least one tagged image and reports the newest.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from ..errors import ImageNotFoundError, InfraError, InvalidImageReferenceError
from .reference import (
    infer_registry_type,
    is_relative_repository,
    parse_gar_prefix,
    parse_prefix,
    split_repository,
    validate_tag,
)

if TYPE_CHECKING:
    from ..config.model import InfraConfig
    from .base import DockerRepository

Status = Literal["found", "missing", "error"]

MODEL_ENGINE_ROLES = ("gateway", "builder", "cacher", "forwarder")
# role -> config key; "model-engine" in --tag sets the tag of all four MODEL_ENGINE_ROLES.
IMAGE_KEYS: dict[str, str] = {
    "gateway": "gateway_repository",
    "builder": "builder_repository",
    "cacher": "cacher_repository",
    "forwarder": "forwarder_repository",
    "vllm": "vllm_repository",
    "tensorrt-llm": "tensorrt_llm_repository",
    "batch": "batch_inference_vllm_repository",
}
TAG_NAMES = ("model-engine", "vllm", "tensorrt-llm", "batch")


@dataclass(frozen=True)
class ImageRef:
    """One image the deployment uses; ``tag`` None means "any tag" (see the module docstring)."""

    roles: tuple[str, ...]
    repository: str
    tag: str | None

    @property
    def reference(self) -> str:
        return f"{self.repository}:{self.tag}" if self.tag else f"{self.repository}:*"


@dataclass(frozen=True)
class CheckRow:
    roles: tuple[str, ...]
    reference: str
    status: Status
    detail: str = ""


def parse_tag_options(options: list[str] | tuple[str, ...]) -> dict[str, str]:
    """``["vllm=0.6.3", "model-engine=abc"]`` -> mapping, validating names and tags."""
    tags: dict[str, str] = {}
    for option in options:
        name, sep, tag = option.partition("=")
        name = name.strip()
        if not sep or name not in TAG_NAMES:
            raise InvalidImageReferenceError(
                f"--tag {option!r}: write NAME=TAG with NAME one of {', '.join(TAG_NAMES)}"
            )
        tags[name] = validate_tag(tag.strip())
    return tags


def deployment_images(config: InfraConfig, tags: Mapping[str, str] | None = None) -> list[ImageRef]:
    """The images the config refers to, one entry per distinct repository and tag."""
    tags = dict(tags or {})
    merged: dict[tuple[str, str | None], list[str]] = {}
    for role, key in IMAGE_KEYS.items():
        repository = str(getattr(config, key)).strip().rstrip("/")
        tag = tags.get("model-engine", config.image_tag) if role in MODEL_ENGINE_ROLES else tags.get(role)
        merged.setdefault((repository, tag), []).append(role)
    return [ImageRef(tuple(roles), repo, tag) for (repo, tag), roles in merged.items()]


RepositoryFactory = Callable[[str], "DockerRepository"]


def check_images(
    images: list[ImageRef],
    configured: DockerRepository,
    repository_for: RepositoryFactory,
) -> list[CheckRow]:
    """One row per image: found, missing, or error (registry unreachable, auth, bad reference).

    ``configured`` answers for names relative to, or inside, ``docker_repo_prefix``;
    ``repository_for(prefix)`` builds a client for any other registry (``public.ecr.aws/...``).
    """
    others: dict[str, DockerRepository] = {}
    rows = []
    for image in images:
        try:
            repository, name = _route(image.repository, configured, repository_for, others)
            rows.append(_check_one(image, repository, name))
        except InfraError as err:
            rows.append(CheckRow(image.roles, image.reference, "error", str(err)))
    for repository in others.values():
        repository.close()
    return rows


def _route(
    reference: str,
    configured: DockerRepository,
    repository_for: RepositoryFactory,
    others: dict[str, DockerRepository],
) -> tuple[DockerRepository, str]:
    if is_relative_repository(reference):
        return configured, reference
    host, _ = split_repository(reference)
    if host == configured.prefix.host:
        return configured, reference
    prefix = _registry_prefix(reference)
    if prefix not in others:
        others[prefix] = repository_for(prefix)
    return others[prefix], reference


def _registry_prefix(reference: str) -> str:
    """The part of a full reference that names the registry (GAR includes project and repository)."""
    if infer_registry_type(reference) == "gar":
        parts = reference.split("/")
        gar = parse_gar_prefix("/".join(parts[:3]), key=reference)
        return f"{gar.host}/{gar.project}/{gar.repository}"
    return parse_prefix(reference.split("/", 1)[0], key=reference).host


def _check_one(image: ImageRef, repository: DockerRepository, name: str) -> CheckRow:
    if image.tag is not None:
        found = repository.image_exists(image.tag, name)
        detail = "" if found else "not in the registry: mirror it (model-engine-infra images mirror)"
        return CheckRow(image.roles, repository.get_image_url(image.tag, name), "found" if found else "missing", detail)
    url = repository.get_image_url("latest", name).rsplit(":", 1)[0] + ":*"
    try:
        latest = repository.get_latest_image_tag(name)
    except ImageNotFoundError as err:
        return CheckRow(image.roles, url, "missing", str(err))
    return CheckRow(image.roles, url, "found", f"no tag given (--tag); newest is {latest}")


def repository_factory(config: InfraConfig) -> RepositoryFactory:
    """Build clients for registries other than ``docker_repo_prefix``, by their host type."""

    def build(prefix: str) -> DockerRepository:
        kind = infer_registry_type(prefix)
        if kind == "ecr":
            from .ecr import ECRDockerRepository

            return ECRDockerRepository(
                prefix, region=config.default_region, profile=config.aws_profile, endpoint_url=config.ecr_endpoint_url
            )
        if kind == "acr":
            from .acr import ACRDockerRepository

            return ACRDockerRepository(prefix, ca_bundle=config.registry_ca_bundle)
        if kind == "gar":
            from .gar import GARDockerRepository

            return GARDockerRepository(prefix, ca_bundle=config.registry_ca_bundle)
        from .oci import repository_for_prefix

        return repository_for_prefix(prefix, config)

    return build
