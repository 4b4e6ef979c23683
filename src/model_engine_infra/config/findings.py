"""Values that are valid but risky: the deployment docs' silent failures, found before install."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..images.reference import is_relative_repository
from .loader import HELM_DEFAULT_SOURCE
from .model import PUBLIC_DEFAULT_REGISTRY

if TYPE_CHECKING:
    from .model import InfraConfig


class Severity(str, enum.Enum):
    INFO = "info"
    WARNING = "warning"
    HIGH = "high"

    @property
    def rank(self) -> int:
        return {"info": 0, "warning": 1, "high": 2}[self.value]


@dataclass(frozen=True)
class Finding:
    severity: Severity
    key: str
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"severity": self.severity.value, "key": self.key, "message": self.message}


def collect_findings(config: InfraConfig) -> list[Finding]:
    found: list[Finding] = []
    for check in (
        _implicit_cloud,
        _broker,
        _inference_images,
        _control_plane_images,
        _prometheus,
        _sha256,
        _redis_fallback,
    ):
        found.extend(check(config))
    return sorted(found, key=lambda f: -f.severity.rank)


def _k(config: InfraConfig, name: str) -> str:
    from .validation import key_path

    return key_path(config, name)


# Keys (or Helm blocks) that only one cloud reads: a file that sets them says which cloud it is for.
CLOUD_HINTS: dict[str, tuple[str, ...]] = {
    "azure": (
        "abs_account_name",
        "abs_container_name",
        "abs_account_key",
        "abs_endpoint_url",
        "servicebus_namespace",
        "cache_redis_azure_host",
        "azure_object_id",
        "azure_client_id",
    ),
    "gcp": ("gcp_project_id", "cache_redis_gcp_url", "gcs_endpoint_url"),
    "onprem": ("cache_redis_onprem_url",),
}
REGISTRY_HINTS = ((".azurecr.io", "azure"), ("-docker.pkg.dev", "gcp"), ("gcr.io", "gcp"))


def suggested_clouds(config: InfraConfig) -> dict[str, list[str]]:
    """Clouds the set keys point at, each with the keys (as written) that point there."""
    found: dict[str, list[str]] = {}
    for cloud, names in CLOUD_HINTS.items():
        keys = [_k(config, n) for n in names if config.is_set(n)]
        if keys:
            found[cloud] = keys
    for name in ("keyvault_name",):
        if config.is_set(name):
            found.setdefault("azure", []).append(_k(config, name))
    if config.celery_broker_type == "servicebus":
        found.setdefault("azure", []).append(_k(config, "celery_broker_type"))
    prefix = config.docker_repo_prefix.split("/", 1)[0].lower()
    if config.is_set("docker_repo_prefix"):
        for suffix, cloud in REGISTRY_HINTS:
            if prefix.endswith(suffix):
                found.setdefault(cloud, []).append(_k(config, "docker_repo_prefix"))
    return found


def implicit_cloud_note(config: InfraConfig) -> str | None:
    """Why an implicit aws may be wrong and what to set, when the file left cloud_provider out."""
    if not config.source_of("cloud_provider").startswith(HELM_DEFAULT_SOURCE):
        return None
    hints = suggested_clouds(config)
    if hints:
        told = "; ".join(f"{cloud} ({', '.join(keys)})" for cloud, keys in hints.items())
        advice = f"this file's other settings suggest {told}: set cloud_provider to that cloud"
    else:
        advice = "set it explicitly (aws, azure, gcp or onprem), even to aws"
    return (
        "cloud_provider is not set, so the Helm chart's default, aws, applies and the AWS clients (SQS, S3, "
        f"ECR, Secrets Manager) are used, and on another cloud nothing works; {advice}"
    )


def _implicit_cloud(config: InfraConfig) -> list[Finding]:
    """A deployment file without cloud_provider gets the chart's aws: right only if that was meant."""
    note = implicit_cloud_note(config)
    return [] if note is None else [Finding(Severity.HIGH, "config.values.infra.cloud_provider", note)]


def _broker(config: InfraConfig) -> list[Finding]:
    cloud, chart = config.cloud_provider, config.celery_broker_type
    if config.celery_broker_type_redis or cloud == "local":
        return []
    key = _k(config, "celery_broker_type")
    if chart is None:
        if cloud in ("azure", "gcp", "onprem"):
            right = "servicebus" if cloud == "azure" else "elasticache (or celery_broker_type_redis: true)"
            return [
                Finding(
                    Severity.WARNING,
                    key,
                    f"celeryBrokerType is not set here; the Helm chart defaults it to sqs, which is wrong on "
                    f"{cloud} (all async endpoints broken). Set celeryBrokerType: {right}",
                )
            ]
        return []
    if chart == "sqs" and cloud != "aws":
        return [
            Finding(
                Severity.HIGH,
                key,
                f"celeryBrokerType is sqs but cloud_provider is {cloud}: SQS exists only on AWS, so every async "
                "endpoint is broken. Use servicebus on azure, elasticache (Redis) on gcp/onprem",
            )
        ]
    if chart == "servicebus" and cloud != "azure":
        return [
            Finding(
                Severity.HIGH,
                key,
                f"celeryBrokerType is servicebus but cloud_provider is {cloud}: Service Bus exists only on Azure",
            )
        ]
    if chart in ("elasticache", "redis") and cloud == "azure":
        return [
            Finding(
                Severity.WARNING,
                key,
                "celeryBrokerType elasticache on azure means the Redis broker, not Service Bus (some docs say "
                "otherwise). Set celeryBrokerType: servicebus for Service Bus, or celery_broker_type_redis: true "
                "to say Redis on purpose",
            )
        ]
    if chart in ("elasticache", "redis") and cloud == "aws":
        return [
            Finding(
                Severity.INFO,
                key,
                "the Redis broker on aws is the legacy path (no dead-letter queue, visibility by key expiry); "
                "sqs is the supported broker",
            )
        ]
    return []


def _inference_images(config: InfraConfig) -> list[Finding]:
    if config.cloud_provider == "local" and not config.is_set("docker_repo_prefix"):
        return []  # no registry in use
    found = []
    for name in ("vllm_repository", "tensorrt_llm_repository"):
        repo = getattr(config, name)
        if repo.startswith(PUBLIC_DEFAULT_REGISTRY):
            found.append(
                Finding(
                    Severity.HIGH,
                    _k(config, name),
                    f"{repo} is the public default registry: images were not mirrored, endpoints will hang in "
                    "INITIALIZING with no error. Mirror them and point this key at your registry",
                )
            )
        elif is_relative_repository(repo):
            found.append(
                Finding(
                    Severity.WARNING,
                    _k(config, name),
                    f"{repo!r} is relative and resolves to {config.docker_repo_prefix}/{repo}; if that image was "
                    "not mirrored there, endpoints hang in INITIALIZING. Set the full repository path",
                )
            )
    return found


def _control_plane_images(config: InfraConfig) -> list[Finding]:
    defaults = [
        name
        for name in ("gateway_repository", "builder_repository", "cacher_repository", "forwarder_repository")
        if getattr(config, name).startswith(PUBLIC_DEFAULT_REGISTRY) and config.cloud_provider != "local"
    ]
    if not defaults:
        return []
    return [
        Finding(
            Severity.INFO,
            "image." + "/".join(n.split("_")[0] + "Repository" for n in defaults),
            f"control-plane images default to {PUBLIC_DEFAULT_REGISTRY}; mirror them unless this cluster can "
            "pull from there",
        )
    ]


def _prometheus(config: InfraConfig) -> list[Finding]:
    if config.prometheus_server_address or config.cloud_provider == "local":
        return []
    return [
        Finding(
            Severity.HIGH,
            _k(config, "prometheus_server_address"),
            "unset: KEDA scale-from-zero is silently broken (sync endpoints with min_workers=0 never scale "
            "up). Set it to your Prometheus server's address",
        )
    ]


def _sha256(config: InfraConfig) -> list[Finding]:
    if not config.celery_enable_sha256:
        return []
    return [
        Finding(
            Severity.WARNING,
            _k(config, "celery_enable_sha256"),
            "changing the digest algorithm needs a drained, coordinated rollout: workers and producers on "
            "different settings drop each other's tasks silently",
        )
    ]


def _redis_fallback(config: InfraConfig) -> list[Finding]:
    if config.cloud_provider not in ("aws", "azure"):
        return []
    chosen = [
        n
        for n in (
            "cache_redis_aws_url",
            "cache_redis_aws_secret_name",
            "cache_redis_azure_host",
            "cache_redis_onprem_url",
        )
        if getattr(config, n) is not None
    ]
    if chosen:
        return []
    return [
        Finding(
            Severity.INFO,
            "config.values.launch.cache_redis_aws_url",
            "no cache Redis key is set; the cache falls back to redis_host / redis_aws_secret_name",
        )
    ]
