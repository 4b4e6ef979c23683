"""AWS: SQS, S3, ECR, ElastiCache (URL, Secrets Manager or IAM), Secrets Manager."""

from ..registry import Component, ProviderSpec

PROVIDER = ProviderSpec(
    name="aws",
    description="Amazon Web Services",
    components={
        "queue_delegate": Component(
            "model_engine_infra.queues.sqs:build_delegate", "SQS", ("aws",), tested_with="moto server"
        ),
        "task_queue": Component(
            "model_engine_infra.tasks.gateway:build_task_queue",
            "Celery on SQS",
            ("celery", "aws"),
            tested_with="moto server (SQS) + real worker",
        ),
        "filesystem": Component(
            "model_engine_infra.storage.s3:build_filesystem", "S3", ("aws",), tested_with="moto server"
        ),
        "artifacts": Component(
            "model_engine_infra.storage.s3:build_artifacts", "S3", ("aws",), tested_with="moto server"
        ),
        "docker_repository": Component(
            "model_engine_infra.images.ecr:build_repository", "ECR", ("aws",), tested_with="moto server (ECR API)"
        ),
        "redis": Component(
            "model_engine_infra.redis.connection:build_redis",
            "ElastiCache",
            ("redis", "aws"),
            tested_with="redis-server",
        ),
        "secrets": Component(
            "model_engine_infra.secrets.aws:build_store", "Secrets Manager", ("aws",), tested_with="moto server"
        ),
    },
)
