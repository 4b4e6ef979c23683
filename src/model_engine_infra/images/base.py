"""The image-registry interface; relative repository names resolve against ``docker_repo_prefix``."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any, NoReturn

from ..errors import ImageBuildNotSupportedError, InvalidImageReferenceError
from ..lifecycle import Closeable
from .reference import (
    is_relative_repository,
    parse_prefix,
    split_repository,
    validate_repository_name,
    validate_tag,
)


class DockerRepository(Closeable, ABC):
    """Answers whether an image exists — never guessing: unreachable or unauthorised raise."""

    def __init__(self, docker_repo_prefix: str) -> None:
        self.docker_repo_prefix = docker_repo_prefix.strip().rstrip("/")
        self.prefix = parse_prefix(self.docker_repo_prefix)

    def get_image_url(self, image_tag: str, repository_name: str) -> str:
        validate_tag(image_tag)
        if is_relative_repository(repository_name):
            validate_repository_name(repository_name)
            return f"{self.docker_repo_prefix}/{repository_name}:{image_tag}"
        return f"{repository_name}:{image_tag}"

    def repository_path(self, repository_name: str) -> str:
        """The repository's path inside this registry; a full reference must name this registry."""
        host, path = split_repository(repository_name)
        if host is None:
            path = self.prefix.repository(repository_name)
        elif host != self.prefix.host:
            raise InvalidImageReferenceError(
                f"repository {repository_name!r} is in registry {host!r}, not in {self.prefix.host!r} "
                "(docker_repo_prefix): use a name relative to docker_repo_prefix or a repository there"
            )
        return validate_repository_name(path)

    @abstractmethod
    def image_exists(self, image_tag: str, repository_name: str) -> bool: ...

    @abstractmethod
    def get_latest_image_tag(self, repository_name: str) -> str: ...

    def build_image(self, image_params: Mapping[str, Any]) -> NoReturn:
        raise ImageBuildNotSupportedError(
            f"{type(self).__name__} cannot build images: build them in CI (docker buildx / kaniko), push them "
            f"to {self.docker_repo_prefix}, and reference them by tag"
        )

    def close(self) -> None:
        """Release HTTP sessions; the default holds none."""
