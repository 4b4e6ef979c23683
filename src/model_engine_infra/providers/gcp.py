"""GCP: Redis lists and broker (or Pub/Sub), GCS, Artifact Registry, mounted secrets (or Secret Manager)."""

from ..registry import Profile

PROVIDER = Profile(
    name="gcp",
    description="Google Cloud",
    broker="redis",
    store="gs",
    registry="gar",
    registry_from_prefix=False,  # Artifact Registry whatever the prefix looks like (a bad one is an error)
    secrets="kubernetes",
    result_backend="redis",  # llm-engine: Redis results on gcp (database 1)
    autoscaling_metrics="redis",
    brokers=("redis", "pubsub"),  # Pub/Sub when `broker: pubsub` says so
    cache_redis_keys=("cache_redis_gcp_url",),
    sample_config={"gcp_project_id": "fake-project"},
    labels={
        "queue_delegate": "Redis lists; Pub/Sub with `broker: pubsub`",
        "task_queue": "Celery on Redis; on Pub/Sub with `broker: pubsub`",
        "redis": "Memorystore",
        "secrets": "Kubernetes secret files / env; Secret Manager with `secrets_backend: gcpsecretmanager`",
    },
    tested_with={
        "queue_delegate": "redis-server; Pub/Sub fake",
        "task_queue": "redis-server + real worker; Pub/Sub fake + real worker",
        "filesystem": "fake-gcs-server",
        "artifacts": "fake-gcs-server",
        "docker_repository": "docker-registry + fake ADC tokens",
        "redis": "redis-server",
        "autoscaling_metrics": "fakeredis + redis-server",
        "secrets": "files on disk; Secret Manager fake",
        "file_storage": "fake-gcs-server",
    },
)
