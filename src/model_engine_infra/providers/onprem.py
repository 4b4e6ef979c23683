"""On-prem: Redis lists and broker (24 h visibility), S3-compatible storage (MinIO), any OCI registry."""

from ..registry import Component, ProviderSpec

PROVIDER = ProviderSpec(
    name="onprem",
    description="On-premises (Redis, MinIO, OCI registry)",
    components={
        "queue_delegate": Component(
            "model_engine_infra.queues.redis:build_delegate", "Redis lists", ("redis",), tested_with="redis-server"
        ),
        "task_queue": Component(
            "model_engine_infra.tasks.gateway:build_task_queue",
            "Celery on Redis (24 h)",
            ("celery", "redis"),
            tested_with="redis-server + real worker",
        ),
        "filesystem": Component(
            "model_engine_infra.storage.s3:build_filesystem",
            "S3-compatible (MinIO)",
            ("aws",),
            tested_with="moto server (MinIO path)",
        ),
        "artifacts": Component(
            "model_engine_infra.storage.s3:build_artifacts",
            "S3-compatible (MinIO)",
            ("aws",),
            tested_with="moto server (MinIO path)",
        ),
        "docker_repository": Component(
            "model_engine_infra.images.oci:build_repository", "OCI registry", tested_with="docker-registry"
        ),
        "redis": Component(
            "model_engine_infra.redis.connection:build_redis", "Redis URL", ("redis",), tested_with="redis-server"
        ),
        "secrets": Component(
            "model_engine_infra.secrets.kubernetes:build_store",
            "Kubernetes secret files / env",
            tested_with="files on disk",
        ),
    },
)
