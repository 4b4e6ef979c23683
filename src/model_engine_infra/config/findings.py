"""Values that are valid but risky: the deployment docs' silent failures, found before install.

The rules here read only the config and its profile's facts (is it a cluster, which cache-Redis
key does it use); the rules of a backend live beside that backend. `model_engine_infra.checks`
runs both.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..image_reference import PUBLIC_DEFAULT_REGISTRY, is_relative_repository
from ..rules import Finding, Rule, Severity, finding_rule
from .cache_redis import CACHE_REDIS_KEYS, choose_cache_redis
from .keys import key_path

if TYPE_CHECKING:
    from ..registry import Profile
    from .model import InfraConfig

__all__ = ["CONFIG_RULES", "Finding", "Severity"]


def _profile(config: InfraConfig) -> Profile:
    from ..selection import profile_of

    return profile_of(config)


@finding_rule("inference-images", "vllm_repository", "tensorrt_llm_repository")
def _inference_images(config: InfraConfig) -> list[Finding]:
    if not _profile(config).cluster and not config.is_set("docker_repo_prefix"):
        return []  # no registry in use
    found = []
    for name in ("vllm_repository", "tensorrt_llm_repository"):
        repo = getattr(config, name)
        if repo.startswith(PUBLIC_DEFAULT_REGISTRY):
            found.append(
                Finding(
                    Severity.HIGH,
                    key_path(config, name),
                    f"{repo} is the public default registry: images were not mirrored, endpoints will hang in "
                    "INITIALIZING with no error. Mirror them and point this key at your registry",
                )
            )
        elif is_relative_repository(repo):
            found.append(
                Finding(
                    Severity.WARNING,
                    key_path(config, name),
                    f"{repo!r} is relative and resolves to {config.docker_repo_prefix}/{repo}; if that image was "
                    "not mirrored there, endpoints hang in INITIALIZING. Set the full repository path",
                )
            )
    return found


@finding_rule("control-plane-images", "gateway_repository", "builder_repository", "cacher_repository")
def _control_plane_images(config: InfraConfig) -> list[Finding]:
    if not _profile(config).cluster:
        return []
    defaults = [
        name
        for name in ("gateway_repository", "builder_repository", "cacher_repository", "forwarder_repository")
        if getattr(config, name).startswith(PUBLIC_DEFAULT_REGISTRY)
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


@finding_rule("prometheus", "prometheus_server_address")
def _prometheus(config: InfraConfig) -> list[Finding]:
    if config.prometheus_server_address or not _profile(config).cluster:
        return []
    return [
        Finding(
            Severity.HIGH,
            key_path(config, "prometheus_server_address"),
            "unset: KEDA scale-from-zero is silently broken (sync endpoints with min_workers=0 never scale "
            "up). Set it to your Prometheus server's address",
        )
    ]


@finding_rule("sha256-rollout", "celery_enable_sha256")
def _sha256(config: InfraConfig) -> list[Finding]:
    if not config.celery_enable_sha256:
        return []
    return [
        Finding(
            Severity.WARNING,
            key_path(config, "celery_enable_sha256"),
            "changing the digest algorithm needs a drained, coordinated rollout: workers and producers on "
            "different settings drop each other's tasks silently",
        )
    ]


@finding_rule("cache-redis-precedence", *CACHE_REDIS_KEYS)
def _redis_fallback(config: InfraConfig) -> list[Finding]:
    """Cache-Redis keys llm-engine's order ignores; no key where the profile expects one."""
    choice = choose_cache_redis(config)
    found = [
        Finding(
            Severity.WARNING,
            key_path(config, name),
            f"{name} is set but not used: {choice.key or 'redis_host'} wins, in llm-engine's order "
            f"(cache_redis_onprem_url, then {', '.join(_profile(config).cache_redis_keys) or 'the others'}). "
            "Remove it so the file says what runs",
        )
        for name in choice.ignored
    ]
    wanted = _profile(config).cache_redis_key
    if choice.key is None and wanted is not None:
        found.append(
            Finding(
                Severity.INFO,
                "config.values.launch." + wanted,
                "no cache Redis key is set; the cache falls back to redis_host / redis_aws_secret_name",
            )
        )
    return found


@finding_rule("result-backend-is-the-workers", "celery_backend_protocol")
def _result_backend(config: InfraConfig) -> list[Finding]:
    """llm-engine's workers pick their result backend by cloud and never read celery_backend_protocol."""
    profile = _profile(config)
    chosen, default = config.celery_backend_protocol, profile.result_backend
    if chosen is None or default is None or chosen == default or not profile.cluster:
        return []
    return [
        Finding(
            Severity.WARNING,
            key_path(config, "celery_backend_protocol"),
            f"celery_backend_protocol is {chosen}, but llm-engine's workers on {config.cloud_provider} store "
            f"results with {default} whatever this key says (its own onprem.yaml sets it and never reads it): "
            "get_task would not find them. Remove the key unless every worker is configured the same way",
        )
    ]


CONFIG_RULES: tuple[Rule, ...] = (
    _inference_images,
    _control_plane_images,
    _prometheus,
    _sha256,
    _redis_fallback,
    _result_backend,
)
