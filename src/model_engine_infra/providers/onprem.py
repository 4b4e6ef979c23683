"""On-prem: Redis lists and broker (24 h visibility), S3-compatible storage (MinIO), any OCI registry."""

from ..registry import Component, ProviderSpec

PROVIDER = ProviderSpec(
    name="onprem",
    description="On-premises (Redis, MinIO, OCI registry)",
    components={
        "queue_delegate": Component(
            "model_engine_infra.queues.redis:build_delegate", "Redis lists", ("redis",)
        ),
        "task_queue": Component(
            "model_engine_infra.tasks.gateway:build_task_queue", "Celery on Redis (24 h)", ("celery", "redis")
        ),
        "filesystem": Component(
            "model_engine_infra.storage.s3:build_filesystem", "S3-compatible (MinIO)", ("aws",)
        ),
        "artifacts": Component(
            "model_engine_infra.storage.s3:build_artifacts", "S3-compatible (MinIO)", ("aws",)
        ),
        "docker_repository": Component("model_engine_infra.images.oci:build_repository", "OCI registry"),
        "redis": Component("model_engine_infra.redis.connection:build_redis", "Redis URL", ("redis",)),
        "secrets": Component(
            "model_engine_infra.secrets.kubernetes:build_store", "Kubernetes secret files / env"
        ),
    },
)
