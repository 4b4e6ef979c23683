"""`InfraConfig`: every key the library honours, its type, default, Helm path and env var.

Defaults are the Helm chart's documented defaults (the llm-engine chart's values reference)
except where the library adds a key of its own. Each field's ``json_schema_extra`` records where it
lives in the Helm values (``helm``) and which environment variables override it (``env``); the
loader, the CLI and the generated configuration reference all read that one table.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, SecretStr, ValidationInfo, field_validator

from ..image_reference import PUBLIC_DEFAULT_REGISTRY, UPSTREAM_OCI_REGISTRY_TYPES
from ..providers import DEFAULT_PROVIDER

if TYPE_CHECKING:
    from ..rules import Finding

INFRA = "config.values.infra."
LAUNCH = "config.values.launch."
ENV_PREFIX = "MODEL_ENGINE_INFRA_"
SECRET_ENV_PREFIX = "MODEL_ENGINE_SECRET_"


def key(
    default: Any,
    doc: str,
    *,
    helm: str | tuple[str, ...] = (),
    env: str | tuple[str, ...] = (),
    secret: bool = False,
    **bounds: Any,
) -> Any:
    """A config field with its Helm path(s) and environment variable(s) attached.

    ``bounds`` are pydantic's numeric constraints (``ge``, ``gt``, ``le``, ``lt``): every numeric key
    has them, so ``-5``, ``0`` or ``nan`` fail at load time naming the key, not at first use.
    """
    helm_paths = (helm,) if isinstance(helm, str) else helm
    env_vars = (env,) if isinstance(env, str) else env
    if bounds:
        bounds.setdefault("allow_inf_nan", False)
    return Field(
        default=default,
        description=doc,
        json_schema_extra={"helm": list(helm_paths), "env": list(env_vars), "secret": secret},
        **bounds,
    )


class InfraConfig(BaseModel):
    """The whole deployment configuration, validated and immutable.

    Build it with :func:`model_engine_infra.load_config`; ``source_of(key)`` says where a value
    came from. Secret values are ``SecretStr`` and never appear in ``repr``.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", validate_default=False, defer_build=True)

    # --- which cloud ---------------------------------------------------------------------------
    cloud_provider: str = key(
        DEFAULT_PROVIDER,
        "Which cloud's components to build: aws, azure, gcp, onprem, local, or a plugin's name. "
        "A deployment file that omits it gets the Helm chart's default, aws.",
        helm=INFRA + "cloud_provider",
        env="MODEL_ENGINE_INFRA_CLOUD_PROVIDER",
    )
    env: str = key("dev", "Deployment environment name, used in names and tags.", helm=INFRA + "env")
    k8s_cluster_name: str = key("main_cluster", "Kubernetes cluster name.", helm=INFRA + "k8s_cluster_name")
    dns_host_domain: str = key(
        "llm-engine.domain.com", "Base domain for endpoint hostnames.", helm=INFRA + "dns_host_domain"
    )
    default_region: str = key(
        "us-east-1", "Cloud region for SQS, ECR and other regional services.", helm=INFRA + "default_region"
    )
    ml_account_id: str = key("000000000000", "Cloud account / subscription / project id.", helm=INFRA + "ml_account_id")
    endpoint_namespace: str = key(
        "llm-engine", "Kubernetes namespace of inference endpoints.", helm=LAUNCH + "endpoint_namespace"
    )
    local_data_dir: str = key(
        "./.model-engine-infra",
        "Folder holding all state of the local provider (broker, results, files, secrets).",
        helm=INFRA + "local_data_dir",
        env="MODEL_ENGINE_INFRA_LOCAL_DATA_DIR",
    )

    # --- images ----------------------------------------------------------------------------------
    docker_repo_prefix: str = key(
        "000000000000.dkr.ecr.us-east-1.amazonaws.com",
        "Registry prefix that relative repository names resolve against.",
        helm=INFRA + "docker_repo_prefix",
    )
    docker_registry_type: str | None = key(
        None,
        "Registry type: ecr, acr, gar, oci, or a plugin's; inferred from docker_repo_prefix when unset "
        "(Artifact Registry on gcp). llm-engine's `onprem` and `generic` read as `oci` (any Distribution-API "
        "registry; images are checked, not assumed present).",
        helm=INFRA + "docker_registry_type",
    )
    insecure_registries: tuple[str, ...] = key(
        (),
        "Registries (host[:port]) allowed over plain HTTP besides localhost and 127.0.0.0/8.",
        helm=INFRA + "insecure_registries",
    )
    registry_trusted_auth_hosts: tuple[str, ...] = key(
        (),
        "Hosts (host[:port]) besides the registry's own that may receive its credentials as a bearer-token "
        "realm (a token server on another host); Docker Hub's auth.docker.io is built in.",
        helm=INFRA + "registry_trusted_auth_hosts",
    )
    registry_ca_bundle: str | None = key(
        None, "CA bundle (PEM path) for registries with a private CA.", helm=INFRA + "registry_ca_bundle"
    )
    registry_endpoint_url: str | None = key(
        None,
        "Where the docker_repo_prefix registry's /v2 API is reached when not at its own host (a private "
        "endpoint or proxy; tests). Image references keep docker_repo_prefix.",
        helm=INFRA + "registry_endpoint_url",
    )
    ecr_endpoint_url: str | None = key(
        None,
        "ECR API endpoint override (moto, LocalStack, a VPC endpoint); unset for AWS.",
        helm=INFRA + "ecr_endpoint_url",
        env="AWS_ENDPOINT_URL_ECR",
    )
    registry_username: str | None = key(
        None,
        "User for an OCI registry with basic or token auth (on-prem, local); cloud registries use IAM.",
        helm=INFRA + "registry_username",
    )
    registry_password: SecretStr | None = key(
        None, "Password or token for registry_username.", helm=INFRA + "registry_password", secret=True
    )
    registry_auth_file: str | None = key(
        None,
        "Docker config JSON (~/.docker/config.json or a mounted .dockerconfigjson) with per-registry logins.",
        helm=INFRA + "registry_auth_file",
    )
    image_tag: str | None = key(None, "The model-engine image tag deployed (chart `tag`).", helm="tag")
    gateway_repository: str = key(
        PUBLIC_DEFAULT_REGISTRY + "/model-engine", "Gateway image repository.", helm="image.gatewayRepository"
    )
    builder_repository: str = key(
        PUBLIC_DEFAULT_REGISTRY + "/model-engine", "Builder image repository.", helm="image.builderRepository"
    )
    cacher_repository: str = key(
        PUBLIC_DEFAULT_REGISTRY + "/model-engine", "Cacher image repository.", helm="image.cacherRepository"
    )
    forwarder_repository: str = key(
        PUBLIC_DEFAULT_REGISTRY + "/model-engine",
        "Forwarder image repository.",
        helm="image.forwarderRepository",
    )
    vllm_repository: str = key("vllm", "vLLM image repository.", helm=LAUNCH + "vllm_repository")
    tensorrt_llm_repository: str = key(
        "tensorrt-llm", "TensorRT-LLM image repository.", helm=LAUNCH + "tensorrt_llm_repository"
    )
    batch_inference_vllm_repository: str = key(
        "llm-engine/batch-infer-vllm",
        "Batch inference image repository.",
        helm=LAUNCH + "batch_inference_vllm_repository",
    )
    tgi_repository: str = key("text-generation-inference", "TGI image repository.", helm=LAUNCH + "tgi_repository")
    lightllm_repository: str = key("lightllm", "LightLLM image repository.", helm=LAUNCH + "lightllm_repository")
    sglang_repository: str | None = key(None, "SGLang image repository.", helm=LAUNCH + "sglang_repository")
    user_inference_base_repository: str = key(
        "launch/inference", "Base repository for user images.", helm=LAUNCH + "user_inference_base_repository"
    )
    user_inference_pytorch_repository: str = key(
        "launch/inference/pytorch",
        "Repository for user PyTorch images.",
        helm=LAUNCH + "user_inference_pytorch_repository",
    )
    user_inference_tensorflow_repository: str = key(
        "launch/inference/tf",
        "Repository for user TensorFlow images.",
        helm=LAUNCH + "user_inference_tensorflow_repository",
    )
    docker_image_layer_cache_repository: str = key(
        "launch-docker-build-cache",
        "Layer-cache repository for image builds.",
        helm=LAUNCH + "docker_image_layer_cache_repository",
    )

    # --- storage ---------------------------------------------------------------------------------
    s3_bucket: str = key("llm-engine", "Bucket (or container) for artifacts.", helm=INFRA + "s3_bucket")
    s3_endpoint_url: str | None = key(
        None,
        "S3-compatible endpoint (MinIO); unset for AWS S3.",
        helm=(INFRA + "s3_endpoint_url", "s3EndpointUrl"),
        env="S3_ENDPOINT_URL",
    )
    s3_addressing_style: Literal["auto", "path", "virtual"] | None = key(
        None,
        "S3 addressing style; path-style is used when s3_endpoint_url is set and this is unset.",
        helm=INFRA + "s3_addressing_style",
    )
    s3_access_key_id: str | None = key(
        None,
        "Access key of an S3-compatible store (MinIO); unset uses the AWS credential chain (IRSA, profile, env).",
        helm=INFRA + "s3_access_key_id",
        env="S3_ACCESS_KEY_ID",
    )
    s3_secret_access_key: SecretStr | None = key(
        None,
        "Secret key paired with s3_access_key_id; inject it from a Kubernetes secret.",
        env="S3_SECRET_ACCESS_KEY",
        secret=True,
    )
    hf_user_fine_tuned_weights_prefix: str = key(
        "s3://llm-engine/fine_tuned_weights",
        "URI prefix of user fine-tuned weights.",
        helm=LAUNCH + "hf_user_fine_tuned_weights_prefix",
    )
    s3_file_llm_fine_tuning_job_repository: str = key(
        "s3://llm-engine/llm-ft-job-repository",
        "URI of fine-tuning job artifacts.",
        helm=LAUNCH + "s3_file_llm_fine_tuning_job_repository",
    )
    cloud_file_llm_fine_tune_repository: str | None = key(
        None,
        "URI of the fine-tune repository file (cloud-neutral name).",
        helm=LAUNCH + "cloud_file_llm_fine_tune_repository",
    )
    abs_account_name: str | None = key(
        None, "Azure storage account.", helm="azure.abs_account_name", env="ABS_ACCOUNT_NAME"
    )
    abs_container_name: str | None = key(
        None, "Azure Blob container.", helm="azure.abs_container_name", env="ABS_CONTAINER_NAME"
    )
    abs_account_key: SecretStr | None = key(
        None,
        "Azure storage account key (tests, Azurite); production uses Entra ID.",
        env="ABS_ACCOUNT_KEY",
        secret=True,
    )
    abs_endpoint_url: str | None = key(
        None,
        "Blob endpoint override (Azurite); default https://{account}.blob.core.windows.net.",
        env="ABS_ENDPOINT_URL",
    )
    gcs_endpoint_url: str | None = key(None, "GCS endpoint override (emulator).", env="STORAGE_EMULATOR_HOST")
    storage_max_concurrency: int = key(
        32,
        "Requests in flight per download_files / upload_files call and `storage cp`, shared by small files and "
        "the parts of large ones (at most 8 per object); a call's max_concurrency overrides it.",
        helm=INFRA + "storage_max_concurrency",
        env="MODEL_ENGINE_INFRA_STORAGE_MAX_CONCURRENCY",
        ge=1,
        le=256,
    )
    storage_part_size_mb: int | None = key(
        None,
        "Part size of ranged downloads and multipart uploads, in MiB. Unset, it adapts to each object: about "
        "min(storage_max_concurrency, 8) parts of 8 to 128 MiB (a 1 GiB object is 8 parts of 128 MiB). "
        "S3 needs 5 MiB or more.",
        helm=INFRA + "storage_part_size_mb",
        env="MODEL_ENGINE_INFRA_STORAGE_PART_SIZE_MB",
        ge=5,
        le=5120,
    )
    file_storage_prefix: str | None = key(
        None,
        "Folder URI of the Files API's user files, kept as {prefix}/{owner}/{file_id} (llm-engine's layout). "
        "Unset: {store}://{s3_bucket} of the provider's store; local: {local_data_dir}/files.",
        helm=INFRA + "file_storage_prefix",
    )

    # --- brokers and Celery ------------------------------------------------------------------------
    broker: str | None = key(
        None,
        "The one broker of endpoint queues and Celery tasks: sqs, servicebus, redis, local, pubsub (gcp), or a "
        "plugin's. "
        "Unset follows celery_broker_type_redis / celeryBrokerType, else the provider's default; set, it must "
        "agree with them.",
        helm=INFRA + "broker",
    )
    autoscaling_metrics_backend: str | None = key(
        None,
        "Where KEDA's scale-from-zero signal for async endpoints lives: redis, servicebus, local, or a plugin's. "
        "Unset follows the provider (Service Bus on azure, local files on local, Redis elsewhere).",
        helm=INFRA + "autoscaling_metrics_backend",
    )
    celery_broker_type: Literal["sqs", "servicebus", "elasticache", "redis"] | None = key(
        None,
        "The chart's celeryBrokerType; unset follows cloud_provider (the chart itself defaults to sqs).",
        helm="celeryBrokerType",
    )
    celery_broker_type_redis: bool | None = key(
        None, "Force the Redis broker whatever the cloud.", helm="celery_broker_type_redis"
    )
    celery_enable_sha256: bool | None = key(
        None,
        "Use SHA-256 for message digests and checksums (FIPS); needs a drained, coordinated rollout.",
        helm="celery_enable_sha256",
    )
    celery_backend_protocol: str | None = key(
        None,
        "Celery result backend: redis, s3, abs, gcs, file, or a plugin's; unset follows the provider.",
        helm=INFRA + "celery_backend_protocol",
    )
    celery_result_prefix: str | None = key(
        None,
        "Where Celery results go inside the bucket or container (s3, abs, gcs); unset is where llm-engine's "
        "workers write them: `tmp/celery/` on s3, none on abs, `celery-results` on gcs.",
        helm=INFRA + "celery_result_prefix",
    )
    celery_result_container: str | None = key(
        None,
        "Blob container of abs results; unset is `celery` (Celery's default, where llm-engine's workers write).",
        helm=INFRA + "celery_result_container",
    )
    celery_broker_pool_limit: int | None = key(
        None,
        "Celery broker_pool_limit; unset keeps Celery's default (10). 0 is refused on Service Bus.",
        helm=INFRA + "celery_broker_pool_limit",
        ge=0,
        le=10_000,
    )
    sqs_profile: str = key("default", "AWS profile for SQS.", helm=LAUNCH + "sqs_profile", env="SQS_PROFILE")
    aws_profile: str | None = key(None, "AWS profile for everything else.", env="AWS_PROFILE")
    sqs_endpoint_url: str | None = key(
        None,
        "SQS endpoint override (moto, LocalStack); unset for AWS. The delegate, the broker and workers all use it.",
        helm=INFRA + "sqs_endpoint_url",
        env="AWS_ENDPOINT_URL_SQS",
    )
    sqs_queue_policy_template: str | None = key(
        None,
        "JSON policy for per-endpoint SQS queues, with ${queue_name}-style placeholders.",
        helm=LAUNCH + "sqs_queue_policy_template",
    )
    sqs_queue_tag_template: str | None = key(
        None,
        "JSON tags for per-endpoint SQS queues, with ${endpoint_id}-style placeholders.",
        helm=LAUNCH + "sqs_queue_tag_template",
    )
    servicebus_namespace: str | None = key(
        None,
        "Service Bus namespace (the part before .servicebus.windows.net).",
        helm="azure.servicebus_namespace",
        env="SERVICEBUS_NAMESPACE",
    )
    servicebus_keep_alive_interval: int = key(
        30,
        "Seconds between AMQP keep-alives; keeps Service Bus from dropping idle connections at 300 s.",
        env="SERVICEBUS_KEEP_ALIVE_INTERVAL",
        ge=1,
        le=3600,
    )
    servicebus_tier: Literal["standard", "premium"] | None = key(
        None,
        "The Service Bus namespace's tier; unset: premium when servicebus_max_message_size_kb is above 256, "
        "else standard.",
        helm="azure.servicebus_tier",
        env="SERVICEBUS_TIER",
    )
    servicebus_max_message_size_kb: int = key(
        256,
        "Largest Service Bus message in KB: at most 256 on standard; up to 102400 (100 MB) on premium, where "
        "endpoint queues are created with it (from 1024 up). A larger task raises MessageTooLargeError.",
        helm="azure.servicebus_max_message_size_kb",
        env="SERVICEBUS_MAX_MESSAGE_SIZE_KB",
        ge=1,
        le=102_400,
    )

    # --- redis -----------------------------------------------------------------------------------
    redis_host: str | None = key(
        None, "Redis host (broker / autoscaler).", helm=(INFRA + "redis_host", "redisHost"), env="REDIS_HOST"
    )
    redis_port: int = key(
        6379, "Redis port.", helm=(INFRA + "redis_port", "redisPort"), env="REDIS_PORT", ge=1, le=65535
    )
    redis_auth_token: SecretStr | None = key(
        None,
        "Redis AUTH password or token (prefer a Kubernetes secret injected as REDIS_AUTH_TOKEN).",
        helm="redis.auth",
        env="REDIS_AUTH_TOKEN",
        secret=True,
    )
    redis_aws_secret_name: str | None = key(
        None,
        "Secrets Manager secret with scheme, host, port, auth_token, query_params.",
        helm=INFRA + "redis_aws_secret_name",
    )
    redis_enable_tls: bool = key(False, "Use TLS to Redis.", helm="redis.enableTLS")
    redis_unsafe_ssl: bool = key(False, "Skip Redis TLS certificate checks (dev only).", helm="redis.unsafeSsl")
    redis_iam_auth: str | None = key(
        None,
        "IAM auth for Redis: elasticache (SigV4 tokens), memorystore (ADC tokens), or a plugin's "
        "redis_credentials backend.",
        helm=INFRA + "redis_iam_auth",
    )
    redis_iam_user: str | None = key(None, "User id for Redis IAM auth.", helm=INFRA + "redis_iam_user")
    redis_iam_cache_name: str | None = key(
        None,
        "ElastiCache replication group / serverless cache name for IAM tokens.",
        helm=INFRA + "redis_iam_cache_name",
    )
    redis_max_connections: int = key(
        50, "Upper bound of each Redis pool.", helm=INFRA + "redis_max_connections", ge=1, le=100_000
    )
    redis_socket_timeout: float = key(
        2.0,
        "Seconds to connect to Redis and to wait for each reply; a command's worst case is "
        "(1 + redis_retries) x (connect + reply) timeouts, see docs/security.md.",
        helm=INFRA + "redis_socket_timeout",
        gt=0,
        le=600,
    )
    redis_retries: int = key(
        1,
        "How many times a Redis command is retried after a connection error or timeout (one budget per "
        "command, shared by reconnects and health checks).",
        helm=INFRA + "redis_retries",
        ge=0,
        le=10,
    )
    redis_health_check_interval: int = key(
        30,
        "Seconds a Redis connection may sit idle before it is PINGed before use; 0 turns the check off.",
        helm=INFRA + "redis_health_check_interval",
        ge=0,
        le=86_400,
    )
    cache_redis_aws_url: SecretStr | None = key(
        None, "Cache Redis URL (AWS).", helm=LAUNCH + "cache_redis_aws_url", secret=True
    )
    cache_redis_aws_secret_name: str | None = key(
        None,
        "Secrets Manager secret whose `cache-url` is the cache Redis URL.",
        helm=LAUNCH + "cache_redis_aws_secret_name",
    )
    cache_redis_azure_host: str | None = key(
        None,
        "Azure Cache for Redis host:port (Entra ID auth).",
        helm=LAUNCH + "cache_redis_azure_host",
    )
    cache_redis_onprem_url: SecretStr | None = key(
        None,
        "Cache Redis URL for on-prem and GCP; wins over every other Redis source.",
        helm=LAUNCH + "cache_redis_onprem_url",
        secret=True,
    )
    cache_redis_gcp_url: SecretStr | None = key(
        None, "Cache Redis URL for GCP.", helm=LAUNCH + "cache_redis_gcp_url", secret=True
    )

    # --- identity, secrets, GCP ----------------------------------------------------------------------
    azure_object_id: str | None = key(
        None, "Managed identity object id (Redis username).", helm="azure.object_id", env="AZURE_OBJECT_ID"
    )
    azure_client_id: str | None = key(
        None, "Workload identity client id.", helm="azure.client_id", env="AZURE_CLIENT_ID"
    )
    keyvault_name: str = key(
        "llm-engine-keyvault",
        "Azure Key Vault name.",
        helm=("keyvaultName", "azure.keyvault_name"),
        env="KEYVAULT_NAME",
    )
    cloud_database_secret_name: str | None = key(
        None,
        "Cloud secret (Secrets Manager / Key Vault) with the database credentials; the doctor checks it is readable.",
        helm="secrets.cloudDatabaseSecretName",
    )
    kubernetes_database_secret_name: str | None = key(
        None,
        "Kubernetes secret with DATABASE_URL (mounted; the alternative to cloud_database_secret_name).",
        helm="secrets.kubernetesDatabaseSecretName",
    )
    secrets_backend: str | None = key(
        None,
        "Where infra.secrets reads secrets: secretsmanager, keyvault, gcpsecretmanager, kubernetes, env, or a "
        "plugin's secrets backend. Unset follows the provider (gcp and onprem: kubernetes secret files).",
        helm=INFRA + "secrets_backend",
    )
    secrets_dir: str | None = key(
        None,
        "Folder of mounted Kubernetes secret files (one file per secret).",
        helm=INFRA + "secrets_dir",
    )
    secretsmanager_endpoint_url: str | None = key(
        None,
        "Secrets Manager endpoint override (moto, LocalStack, a VPC endpoint); unset for AWS.",
        helm=INFRA + "secretsmanager_endpoint_url",
        env="AWS_ENDPOINT_URL_SECRETS_MANAGER",
    )
    secret_cache_ttl_seconds: float = key(
        300.0, "How long a fetched secret is cached.", helm=INFRA + "secret_cache_ttl_seconds", ge=0, le=86_400
    )
    gcp_project_id: str | None = key(None, "GCP project id.", helm=INFRA + "gcp_project_id", env="GCP_PROJECT_ID")
    prometheus_server_address: str | None = key(
        None,
        "Prometheus that KEDA queries; unset silently breaks scale-from-zero.",
        helm=INFRA + "prometheus_server_address",
    )

    # --- database engine (carried through for services that share the file) --------------------------
    db_engine_pool_size: int = key(
        10, "SQLAlchemy pool size (0: no limit).", helm=INFRA + "db_engine_pool_size", ge=0, le=10_000
    )
    db_engine_max_overflow: int = key(
        10, "SQLAlchemy max overflow (-1: no limit).", helm=INFRA + "db_engine_max_overflow", ge=-1, le=10_000
    )
    db_engine_echo: bool = key(False, "Log SQL statements.", helm=INFRA + "db_engine_echo")
    db_engine_echo_pool: bool = key(False, "Log pool events.", helm=INFRA + "db_engine_echo_pool")
    db_engine_disconnect_strategy: Literal["pessimistic", "optimistic"] = key(
        "pessimistic", "Stale-connection detection.", helm=INFRA + "db_engine_disconnect_strategy"
    )

    # --- secrets passed through the environment (local provider) ---------------------------------------
    env_secrets: dict[str, SecretStr] = key(
        {},
        "Secrets from MODEL_ENGINE_SECRET_<NAME> variables, for the env secret store.",
        secret=True,
    )

    _sources: dict[str, str] = PrivateAttr(default_factory=dict)

    @field_validator("docker_registry_type", mode="before")
    @classmethod
    def _upstream_registry_types(cls, value: Any) -> Any:
        """llm-engine names a plain Distribution-API registry ``onprem`` or ``generic``; here it is ``oci``."""
        return "oci" if isinstance(value, str) and value.strip().lower() in UPSTREAM_OCI_REGISTRY_TYPES else value

    @field_validator("*", mode="before")
    @classmethod
    def _no_booleans_as_numbers(cls, value: Any, info: ValidationInfo) -> Any:
        """``redis_socket_timeout: true`` is a mistake, not 1 second: refuse booleans for numeric keys."""
        if isinstance(value, bool) and info.field_name is not None:
            annotation = cls.model_fields[info.field_name].annotation
            if annotation in (int, float, int | None, float | None):
                raise ValueError("expected a number, got true/false")
        return value

    def __repr_args__(self) -> Any:
        """Plain URL values may still carry a password (``http://user:pw@prom``): mask it here too."""
        from ..redact import redact_url

        for name, value in super().__repr_args__():
            if isinstance(value, str) and "@" in value:
                value = redact_url(value)
            yield name, value

    # --- provenance and findings ---------------------------------------------------------------------
    def source_of(self, name: str) -> str:
        """Where ``name``'s value came from: ``file.yaml:key.path``, ``env:VAR``, ``argument`` or ``default``."""
        if name in self._sources:
            return self._sources[name]
        return "argument" if name in self.model_fields_set else "default"

    @property
    def sources(self) -> dict[str, str]:
        return {name: self.source_of(name) for name in type(self).model_fields}

    def is_set(self, name: str) -> bool:
        """True when the value was given (file, environment or constructor) rather than defaulted."""
        return not self.source_of(name).startswith("default")

    def secret(self, name: str) -> str | None:
        """The plain value of a secret field; the one door through which secrets leave the config."""
        value = getattr(self, name)
        if value is None:
            return None
        if isinstance(value, SecretStr):
            return value.get_secret_value()
        raise TypeError(f"{name} is not a secret field")

    def findings(self) -> list[Finding]:
        """Valid but risky values, most severe first: generic rules and the selected backends' rules."""
        from ..checks import findings

        return findings(self)

    def with_sources(self, sources: dict[str, str]) -> InfraConfig:
        self._sources.update(sources)
        return self


__all__ = ["PUBLIC_DEFAULT_REGISTRY", "InfraConfig", "key"]
