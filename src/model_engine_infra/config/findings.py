"""Values that are valid but risky: the deployment docs' silent failures, found before install."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..images.reference import is_relative_repository
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
    for check in (_broker, _inference_images, _control_plane_images, _prometheus, _sha256, _redis_fallback):
        found.extend(check(config))
    return sorted(found, key=lambda f: -f.severity.rank)


def _k(config: InfraConfig, name: str) -> str:
    from .validation import key_path

    return key_path(config, name)


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
    from .cache_redis import choose_cache_redis

    choice = choose_cache_redis(config)
    found = [
        Finding(
            Severity.WARNING,
            _k(config, name),
            f"{name} is set but not used: {choice.key or 'redis_host'} wins, in llm-engine's order "
            "(cache_redis_onprem_url; on onprem the aws URL; on gcp the gcp URL; the aws URL over the aws "
            "secret; the azure host). Remove it so the file says what runs",
        )
        for name in choice.ignored
    ]
    if choice.key is None and config.cloud_provider == "gcp":
        found.append(
            Finding(
                Severity.WARNING,
                "config.values.launch.cache_redis_gcp_url",
                "cache_redis_gcp_url is not set: llm-engine's own services require it on gcp (this library uses "
                "redis_host). Set it to the Memorystore URL, redis://HOST:6379/0",
            )
        )
    if choice.key is None and config.cloud_provider in ("aws", "azure"):
        found.append(
            Finding(
                Severity.INFO,
                "config.values.launch.cache_redis_aws_url",
                "no cache Redis key is set; the cache falls back to redis_host / redis_aws_secret_name",
            )
        )
    return found
