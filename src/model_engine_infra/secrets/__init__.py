"""Secret stores: AWS Secrets Manager, Azure Key Vault, Kubernetes secret files, environment."""

from .base import CachedSecretStore, SecretStore

__all__ = ["CachedSecretStore", "SecretStore"]
