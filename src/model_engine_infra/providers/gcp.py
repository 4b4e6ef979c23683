"""GCP: Redis (Memorystore) lists and broker, GCS, Artifact Registry, mounted secrets."""

from ..registry import Component, ProviderSpec

PROVIDER = ProviderSpec(
    name="gcp",
    description="Google Cloud",
    components={
        "queue_delegate": Component(
            "model_engine_infra.queues.redis:build_delegate", "Redis lists", ("redis",), tested_with="redis-server"
        ),
        "task_queue": Component(
            "model_engine_infra.tasks.gateway:build_task_queue",
            "Celery on Redis",
            ("celery", "redis"),
            tested_with="redis-server + real worker",
        ),
        "filesystem": Component(
            "model_engine_infra.storage.gcs:build_filesystem", "GCS", ("gcp",), tested_with="fake-gcs-server"
        ),
        "artifacts": Component(
            "model_engine_infra.storage.gcs:build_artifacts", "GCS", ("gcp",), tested_with="fake-gcs-server"
        ),
        "docker_repository": Component(
            "model_engine_infra.images.gar:build_repository",
            "Artifact Registry",
            ("gcp",),
            tested_with="docker-registry + fake ADC tokens",
        ),
        "redis": Component(
            "model_engine_infra.redis.connection:build_redis", "Memorystore", ("redis",), tested_with="redis-server"
        ),
        "secrets": Component(
            "model_engine_infra.secrets.kubernetes:build_store",
            "Kubernetes secret files / env",
            tested_with="files on disk",
        ),
    },
)
