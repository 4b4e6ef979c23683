"""GCP: Redis (Memorystore) lists and broker, GCS, Artifact Registry, mounted secrets."""

from ..registry import Profile

PROVIDER = Profile(
    name="gcp",
    description="Google Cloud",
    broker="redis",
    store="gs",
    registry="gar",
    registry_from_prefix=False,  # Artifact Registry whatever the prefix looks like (a bad one is an error)
    secrets="kubernetes",
    result_backend="gcs",
    autoscaling_metrics="redis",
    brokers=("redis",),
    sample_config={"gcp_project_id": "fake-project"},
    labels={
        "queue_delegate": "Redis lists",
        "task_queue": "Celery on Redis",
        "redis": "Memorystore",
    },
    tested_with={
        "queue_delegate": "redis-server",
        "task_queue": "redis-server + real worker",
        "filesystem": "fake-gcs-server",
        "artifacts": "fake-gcs-server",
        "docker_repository": "docker-registry + fake ADC tokens",
        "redis": "redis-server",
        "secrets": "files on disk",
        "autoscaling_metrics": "fakeredis + redis-server",
    },
)
