"""Azure: Service Bus, Blob Storage, ACR, Azure Cache for Redis (Entra ID), Key Vault."""

from ..registry import Profile

PROVIDER = Profile(
    name="azure",
    description="Microsoft Azure",
    broker="servicebus",
    store="az",
    registry="acr",
    secrets="keyvault",
    result_backend="abs",
    autoscaling_metrics="servicebus",
    brokers=("servicebus", "redis"),
    cache_redis_key="cache_redis_azure_host",
    cache_redis_keys=("cache_redis_azure_host",),
    cache_redis_refused=("cache_redis_aws_url", "cache_redis_aws_secret_name"),  # llm-engine: "only for AWS"
    sample_config={
        "servicebus_namespace": "fake-namespace",
        "keyvault_name": "fake-vault",
        "abs_account_name": "fakeaccount",
        "abs_container_name": "fake-container",
    },
    labels={
        "queue_delegate": "Service Bus",
        "task_queue": "Celery on Service Bus",
        "redis": "Azure Cache (Entra ID)",
    },
    extras={"redis": ("redis", "azure")},
    tested_with={
        "queue_delegate": "Service Bus fake",
        "task_queue": "Service Bus fake + real worker",
        "filesystem": "Azurite",
        "artifacts": "Azurite",
        "docker_repository": "docker-registry + token-exchange fake",
        "redis": "redis-server + fake Entra tokens",
        "secrets": "Key Vault fake",
        "autoscaling_metrics": "Service Bus fake",
        "file_storage": "Azurite",
    },
)
