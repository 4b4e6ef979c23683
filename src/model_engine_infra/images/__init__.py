"""Image registries: ECR, ACR, Artifact Registry and any OCI (Distribution API) registry.

``mirror`` imports its HTTP machinery on first call, so importing this package stays cheap.
"""

from .base import DockerRepository
from .mirror import mirror
from .reference import infer_registry_type, parse_gar_prefix

__all__ = ["DockerRepository", "infer_registry_type", "mirror", "parse_gar_prefix"]
