"""Local: everything on one machine under ``local_data_dir``, nothing to install but Celery."""

from ..registry import Component, ProviderSpec

PROVIDER = ProviderSpec(
    name="local",
    description="One machine, no cloud account (embedded default)",
    components={
        "queue_delegate": Component(
            "model_engine_infra.queues.local:build_delegate",
            "kombu filesystem broker",
            ("local",),
            tested_with="local disk",
        ),
        "task_queue": Component(
            "model_engine_infra.tasks.gateway:build_task_queue",
            "Celery on kombu filesystem",
            ("local",),
            tested_with="local disk + real worker",
        ),
        "filesystem": Component(
            "model_engine_infra.storage.local:build_filesystem", "local disk", tested_with="local disk"
        ),
        "artifacts": Component(
            "model_engine_infra.storage.local:build_artifacts", "local disk", tested_with="local disk"
        ),
        "docker_repository": Component(
            "model_engine_infra.images.oci:build_repository", "OCI registry", tested_with="docker-registry"
        ),
        "redis": Component(
            "model_engine_infra.redis.connection:build_redis", "Redis URL", ("redis",), tested_with="redis-server"
        ),
        "secrets": Component(
            "model_engine_infra.secrets.env:build_store", "environment / files", tested_with="environment"
        ),
    },
)
