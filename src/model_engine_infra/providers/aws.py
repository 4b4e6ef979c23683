"""AWS: SQS, S3, ECR, ElastiCache (URL, Secrets Manager or IAM), Secrets Manager."""

from ..registry import Profile

PROVIDER = Profile(
    name="aws",
    description="Amazon Web Services",
    broker="sqs",
    store="s3",
    registry="ecr",
    secrets="secretsmanager",
    result_backend="s3",
    autoscaling_metrics="redis",
    brokers=("sqs", "redis"),
    cache_redis_key="cache_redis_aws_secret_name",
    cache_redis_keys=("cache_redis_aws_url", "cache_redis_aws_secret_name"),
    sample_config={"default_region": "us-east-1", "ml_account_id": "123456789012"},
    labels={
        "queue_delegate": "SQS",
        "task_queue": "Celery on SQS",
        "redis": "ElastiCache",
    },
    extras={"redis": ("redis", "aws")},
    tested_with={
        "queue_delegate": "moto server",
        "task_queue": "moto server (SQS) + real worker",
        "filesystem": "moto server",
        "artifacts": "moto server",
        "docker_repository": "moto server (ECR API)",
        "redis": "redis-server",
        "secrets": "moto server",
        "autoscaling_metrics": "fakeredis + redis-server",
        "file_storage": "moto server",
    },
)
