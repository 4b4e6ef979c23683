"""GCP: Redis (Memorystore) lists and broker, GCS, Artifact Registry, mounted secrets."""

from ..registry import Component, ProviderSpec

PROVIDER = ProviderSpec(
    name="gcp",
    description="Google Cloud",
    components={
        "queue_delegate": Component(
            "model_engine_infra.queues.redis:build_delegate", "Redis lists", ("redis",)
        ),
        "task_queue": Component(
            "model_engine_infra.tasks.gateway:build_task_queue", "Celery on Redis", ("celery", "redis")
        ),
        "filesystem": Component("model_engine_infra.storage.gcs:build_filesystem", "GCS", ("gcp",)),
        "artifacts": Component("model_engine_infra.storage.gcs:build_artifacts", "GCS", ("gcp",)),
        "docker_repository": Component(
            "model_engine_infra.images.gar:build_repository", "Artifact Registry", ("gcp",)
        ),
        "redis": Component("model_engine_infra.redis.connection:build_redis", "Memorystore", ("redis",)),
        "secrets": Component(
            "model_engine_infra.secrets.kubernetes:build_store", "Kubernetes secret files / env"
        ),
    },
)
