"""Local: everything on one machine under ``local_data_dir``, nothing to install but Celery."""

from ..registry import Profile

PROVIDER = Profile(
    name="local",
    description="One machine, no cloud account (embedded default)",
    broker="local",
    store="file",
    registry="oci",
    secrets="env",
    result_backend="file",
    autoscaling_metrics="local",
    brokers=("local", "redis"),
    cluster=False,
    registry_prefix_required=True,
    path_defaults={
        "hf_user_fine_tuned_weights_prefix": "{local_data_dir}/fine_tuned_weights",
        "s3_file_llm_fine_tuning_job_repository": "{local_data_dir}/llm-ft-job-repository",
        "file_storage_prefix": "{local_data_dir}/files",
    },
    labels={
        "queue_delegate": "kombu filesystem broker",
        "task_queue": "Celery on kombu filesystem",
        "redis": "Redis URL",
    },
    tested_with={
        "queue_delegate": "local disk",
        "task_queue": "local disk + real worker",
        "filesystem": "local disk",
        "artifacts": "local disk",
        "docker_repository": "docker-registry",
        "redis": "redis-server",
        "secrets": "environment",
        "autoscaling_metrics": "local disk",
        "file_storage": "local disk",
    },
)
