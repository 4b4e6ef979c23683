"""Image registries: ECR, ACR, Artifact Registry and any OCI (Distribution API) registry."""

from .base import DockerRepository
from .reference import infer_registry_type, parse_gar_prefix

__all__ = ["DockerRepository", "infer_registry_type", "parse_gar_prefix"]
