"""The image-registry interface; relative repository names resolve against ``docker_repo_prefix``."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any

from ..errors import ImageBuildNotSupportedError
from .reference import is_relative_repository, validate_repository_name, validate_tag


class DockerRepository(ABC):
    """Answers whether an image exists — never guessing: unreachable or unauthorised raise."""

    def __init__(self, docker_repo_prefix: str) -> None:
        self.docker_repo_prefix = docker_repo_prefix.rstrip("/")

    def get_image_url(self, image_tag: str, repository_name: str) -> str:
        validate_tag(image_tag)
        if is_relative_repository(repository_name):
            validate_repository_name(repository_name)
            return f"{self.docker_repo_prefix}/{repository_name}:{image_tag}"
        return f"{repository_name}:{image_tag}"

    @abstractmethod
    def image_exists(self, image_tag: str, repository_name: str) -> bool: ...

    @abstractmethod
    def get_latest_image_tag(self, repository_name: str) -> str: ...

    def build_image(self, image_params: Mapping[str, Any]) -> Any:
        raise ImageBuildNotSupportedError(
            f"{type(self).__name__} cannot build images: build them in CI (docker buildx / kaniko), push them "
            f"to {self.docker_repo_prefix}, and reference them by tag"
        )

    def close(self) -> None:
        """Release HTTP sessions; the default holds none."""
