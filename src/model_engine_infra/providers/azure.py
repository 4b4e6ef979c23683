"""Azure: Service Bus, Blob Storage, ACR, Azure Cache for Redis (Entra ID), Key Vault."""

from ..registry import Component, ProviderSpec

PROVIDER = ProviderSpec(
    name="azure",
    description="Microsoft Azure",
    components={
        "queue_delegate": Component(
            "model_engine_infra.queues.servicebus:build_delegate",
            "Service Bus",
            ("azure",),
            tested_with="Service Bus fake",
        ),
        "task_queue": Component(
            "model_engine_infra.tasks.gateway:build_task_queue",
            "Celery on Service Bus",
            ("celery", "azure"),
            tested_with="Service Bus fake + real worker",
        ),
        "filesystem": Component(
            "model_engine_infra.storage.abs:build_filesystem", "Blob Storage", ("azure",), tested_with="Azurite"
        ),
        "artifacts": Component(
            "model_engine_infra.storage.abs:build_artifacts", "Blob Storage", ("azure",), tested_with="Azurite"
        ),
        "docker_repository": Component(
            "model_engine_infra.images.acr:build_repository",
            "ACR",
            ("azure",),
            tested_with="docker-registry + token-exchange fake",
        ),
        "redis": Component(
            "model_engine_infra.redis.connection:build_redis",
            "Azure Cache (Entra ID)",
            ("redis", "azure"),
            tested_with="redis-server + fake Entra tokens",
        ),
        "secrets": Component(
            "model_engine_infra.secrets.azure:build_store", "Key Vault", ("azure",), tested_with="Key Vault fake"
        ),
    },
)
