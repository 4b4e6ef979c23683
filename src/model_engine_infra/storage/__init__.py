"""Files and model artifacts: S3 (and MinIO), Azure Blob Storage, GCS and local disk."""

from .base import FilesystemGateway, LLMArtifactGateway, ObjectInfo
from .paths import safe_join
from .uri import StorageURI, parse_uri

__all__ = ["FilesystemGateway", "LLMArtifactGateway", "ObjectInfo", "StorageURI", "parse_uri", "safe_join"]
