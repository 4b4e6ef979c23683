"""On-prem: Redis lists and broker (24 h visibility), S3-compatible storage (MinIO), any OCI registry."""

from ..registry import Profile

PROVIDER = Profile(
    name="onprem",
    description="On-premises (Redis, MinIO, OCI registry)",
    broker="redis",
    store="s3",
    registry="oci",
    secrets="kubernetes",
    result_backend="s3",  # llm-engine: S3-compatible results on onprem, as on aws
    autoscaling_metrics="redis",
    brokers=("redis",),
    redis_visibility="VISIBILITY_24H",
    cache_redis_keys=("cache_redis_aws_url",),  # llm-engine: else redis://REDIS_HOST:redis_port/0
    registry_prefix_required=True,
    sample_config={"s3_endpoint_url": "http://minio.fake.internal:9000"},
    labels={
        "queue_delegate": "Redis lists",
        "task_queue": "Celery on Redis (24 h)",
        "filesystem": "S3-compatible (MinIO)",
        "artifacts": "S3-compatible (MinIO)",
        "redis": "Redis URL",
    },
    tested_with={
        "queue_delegate": "redis-server",
        "task_queue": "redis-server + real worker",
        "filesystem": "moto server (MinIO path)",
        "artifacts": "moto server (MinIO path)",
        "docker_repository": "docker-registry",
        "redis": "redis-server",
        "secrets": "files on disk",
        "autoscaling_metrics": "fakeredis + redis-server",
        "file_storage": "moto server (MinIO path)",
    },
)
