"""The built-in backends of every kind, and the modules each pip extra brings: data only.

Each entry is ``(target, extras, label, rules, keys)`` as `registry.Backend` takes them; the
registry turns them into its table. Beside the profiles (``providers/``), this is the one place
that names the clouds' services.
"""

from __future__ import annotations

from typing import Any

from .providers import BUILTIN_PROVIDER_NAMES

Entry = tuple[Any, ...]  # (target, extras=(), label="", rules=None, keys=())
#: The keys every object store reads for its transfers (`storage.transfer.TransferSettings`).
TRANSFER_KEYS = ("storage_max_concurrency", "storage_part_size_mb")

EXTRA_MODULES = {
    "aws": ("boto3",),
    "azure": ("azure.identity", "azure.servicebus", "azure.storage.blob", "azure.keyvault.secrets"),
    "gcp": (
        "google.cloud.storage",
        "google.auth",
        "google.cloud.pubsub_v1",
        "google.cloud.monitoring_v3",  # kombu's gcpubsub transport imports it
        "google.cloud.secretmanager",
    ),
    "celery": ("celery", "kombu"),
    "redis": ("redis",),
    "local": ("celery", "kombu"),
}


def _broker(module: str, extras: tuple[str, ...], label: str) -> Entry:
    return (f"model_engine_infra.brokers.{module}:BROKER", extras, label, f"model_engine_infra.brokers.{module}:RULES")


BUILTIN_BACKENDS: dict[str, dict[str, Entry]] = {
    "broker": {
        "sqs": _broker("sqs", ("aws",), "SQS"),
        "servicebus": _broker("servicebus", ("azure",), "Service Bus"),
        "redis": _broker("redis", ("redis",), "Redis"),
        "local": _broker("local", ("local",), "kombu filesystem"),
        "pubsub": _broker("pubsub", ("gcp",), "Pub/Sub"),
    },
    "store": {
        "s3": (
            "model_engine_infra.storage.s3:build_store",
            ("aws",),
            "S3",
            None,
            (
                "default_region",
                "aws_profile",
                "s3_endpoint_url",
                "s3_addressing_style",
                "s3_access_key_id",
                "s3_secret_access_key",
                "celery_enable_sha256",
                *TRANSFER_KEYS,
            ),
        ),
        "az": (
            "model_engine_infra.storage.abs:build_store",
            ("azure",),
            "Blob Storage",
            None,
            ("abs_account_name", "abs_account_key", "abs_endpoint_url", "azure_client_id", *TRANSFER_KEYS),
        ),
        "gs": (
            "model_engine_infra.storage.gcs:build_store",
            ("gcp",),
            "GCS",
            None,
            ("gcs_endpoint_url", "gcp_project_id", *TRANSFER_KEYS),
        ),
        "file": ("model_engine_infra.storage.local:build_store", (), "local disk", None, ("storage_max_concurrency",)),
        "https": (
            "model_engine_infra.storage.https:build_store",
            (),
            "HTTPS (read-only)",
            None,
            ("storage_max_concurrency",),
        ),
    },
    "registry": {
        "ecr": (
            "model_engine_infra.images.ecr:ECRDockerRepository.from_config",
            ("aws",),
            "ECR",
            None,
            ("docker_repo_prefix", "default_region", "aws_profile", "ecr_endpoint_url"),
        ),
        "acr": (
            "model_engine_infra.images.acr:ACRDockerRepository.from_config",
            ("azure",),
            "ACR",
            None,
            ("docker_repo_prefix", "registry_endpoint_url", "azure_client_id", "registry_ca_bundle"),
        ),
        "gar": (
            "model_engine_infra.images.gar:GARDockerRepository.from_config",
            ("gcp",),
            "Artifact Registry",
            "model_engine_infra.image_reference:GAR_RULES",
            ("docker_repo_prefix", "registry_endpoint_url", "registry_ca_bundle"),
        ),
        "oci": (
            "model_engine_infra.images.oci:repository_from_config",
            (),
            "OCI registry",
            None,
            (
                "docker_repo_prefix",
                "registry_endpoint_url",
                "registry_username",
                "registry_password",
                "registry_auth_file",
                "insecure_registries",
                "registry_ca_bundle",
            ),
        ),
    },
    "secrets": {
        "secretsmanager": (
            "model_engine_infra.secrets.aws:build_store",
            ("aws",),
            "Secrets Manager",
            None,
            ("default_region", "aws_profile", "secretsmanager_endpoint_url", "secret_cache_ttl_seconds"),
        ),
        "keyvault": (
            "model_engine_infra.secrets.azure:build_store",
            ("azure",),
            "Key Vault",
            None,
            ("keyvault_name", "azure_client_id", "secret_cache_ttl_seconds"),
        ),
        "kubernetes": (
            "model_engine_infra.secrets.kubernetes:build_store",
            (),
            "Kubernetes secret files / env",
            None,
            ("secrets_dir", "env_secrets", "secret_cache_ttl_seconds"),
        ),
        "gcpsecretmanager": (
            "model_engine_infra.secrets.gcp:build_store",
            ("gcp",),
            "Secret Manager",
            None,
            ("gcp_project_id", "secret_cache_ttl_seconds"),
        ),
        "env": (
            "model_engine_infra.secrets.env:build_store",
            (),
            "environment / files",
            None,
            ("env_secrets", "local_data_dir", "secret_cache_ttl_seconds"),
        ),
    },
    "result_backend": {
        "redis": ("model_engine_infra.tasks.result_backends:redis_backend", ("celery", "redis"), "Redis"),
        "s3": (
            "model_engine_infra.tasks.result_backends:s3_backend",
            ("celery", "aws"),
            "S3",
            None,
            (
                "s3_bucket",
                "s3_endpoint_url",
                "default_region",
                "s3_addressing_style",
                "s3_access_key_id",
                "s3_secret_access_key",
                "celery_enable_sha256",
                "celery_result_prefix",
            ),
        ),
        "abs": (
            "model_engine_infra.tasks.result_backends:abs_backend",
            ("celery", "azure"),
            "Blob Storage",
            None,
            (
                "abs_account_name",
                "abs_account_key",
                "abs_endpoint_url",
                "celery_result_container",
                "celery_result_prefix",
            ),
        ),
        "gcs": (
            "model_engine_infra.tasks.result_backends:gcs_backend",
            ("celery", "gcp"),
            "GCS",
            None,
            ("s3_bucket", "gcp_project_id", "gcs_endpoint_url", "celery_result_prefix"),
        ),
        "file": (
            "model_engine_infra.tasks.result_backends:file_backend",
            ("celery",),
            "local files",
            None,
            ("local_data_dir",),
        ),
    },
    "redis_credentials": {
        "elasticache": (
            "model_engine_infra.redis.sources:elasticache_iam",
            ("aws",),
            "ElastiCache IAM",
            None,
            ("redis_iam_user", "redis_iam_cache_name", "default_region"),
        ),
        "memorystore": (
            "model_engine_infra.redis.sources:memorystore_iam",
            ("gcp",),
            "Memorystore IAM",
            None,
            ("redis_iam_user",),
        ),
    },
    "autoscaling_metrics": {
        "redis": (
            "model_engine_infra.autoscaling.redis:build_gateway",
            ("redis",),
            "Redis list",
            None,
            ("redis_socket_timeout",),
        ),
        "servicebus": (
            "model_engine_infra.autoscaling.servicebus:build_gateway",
            ("azure",),
            "Service Bus queue",
            "model_engine_infra.autoscaling.rules:SERVICEBUS_RULES",
            ("servicebus_namespace", "servicebus_keep_alive_interval", "azure_client_id"),
        ),
        "local": ("model_engine_infra.autoscaling.local:build_gateway", (), "local files", None, ("local_data_dir",)),
    },
    "provider": {name: (f"model_engine_infra.providers.{name}:PROVIDER",) for name in BUILTIN_PROVIDER_NAMES},
}
