"""Which cache-Redis key a deployment uses, in llm-engine's order (its ``common/config.py`` ``cache_redis_url``).

Upstream reads one key and silently ignores the others; where it fails (an AWS key on another
cloud, no key at all) it stops the service. Here the same key wins, each ignored key is reported
as a finding, and a failure is a `ConfigError` only where upstream fails too: always for a key of
another cloud; for a missing key on aws or azure only when nothing else names a Redis
(``redis_host``, ``redis_aws_secret_name``), so an infra-only file that names Redis that way keeps
working (on gcp and onprem that is a finding). Pure: reads the config, imports no client.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .model import InfraConfig

__all__ = ["CACHE_REDIS_KEYS", "CacheRedisChoice", "choose_cache_redis"]

#: Every cache-Redis key, in upstream's order of precedence off its cloud checks.
CACHE_REDIS_KEYS = (
    "cache_redis_onprem_url",
    "cache_redis_aws_url",
    "cache_redis_aws_secret_name",
    "cache_redis_gcp_url",
    "cache_redis_azure_host",
)
# Clouds llm-engine knows; elsewhere (local, plugins) its cloud checks do not apply.
UPSTREAM_CLOUDS = ("aws", "azure", "gcp", "onprem")
_ONLY_ON = {"cache_redis_aws_url": "aws", "cache_redis_aws_secret_name": "aws", "cache_redis_azure_host": "azure"}


@dataclass(frozen=True)
class CacheRedisChoice:
    """``key`` is the field used (None: fall back to ``redis_host`` and friends); ``ignored`` were set but lose.

    ``problem`` is set where llm-engine would stop: ``problem_key`` names the key to fix.
    """

    key: str | None
    ignored: tuple[str, ...] = ()
    problem: str | None = None
    problem_key: str | None = None
    fix: str | None = None


def _set(config: InfraConfig) -> list[str]:
    return [name for name in CACHE_REDIS_KEYS if getattr(config, name) is not None]


def choose_cache_redis(config: InfraConfig) -> CacheRedisChoice:
    present = _set(config)

    def chosen(key: str | None, **problem: str) -> CacheRedisChoice:
        return CacheRedisChoice(key, tuple(n for n in present if n != key), **problem)

    cloud = config.cloud_provider
    if "cache_redis_onprem_url" in present:
        return chosen("cache_redis_onprem_url")
    if cloud not in UPSTREAM_CLOUDS:
        return chosen(present[0] if present else None)
    if cloud == "onprem":
        # upstream: the aws URL, else redis://REDIS_HOST:redis_port/0
        return chosen("cache_redis_aws_url" if "cache_redis_aws_url" in present else None)
    if cloud == "gcp":
        # upstream requires cache_redis_gcp_url here; without it the Redis of redis_host serves (a finding)
        return chosen("cache_redis_gcp_url" if "cache_redis_gcp_url" in present else None)
    for name in ("cache_redis_aws_url", "cache_redis_aws_secret_name", "cache_redis_azure_host"):
        if name in present:
            if _ONLY_ON[name] != cloud:
                return chosen(
                    name,
                    problem=f"{name} is only for {_ONLY_ON[name]}, and cloud_provider is {cloud} "
                    "(llm-engine stops on this too)",
                    problem_key=name,
                    fix=f"remove {name}; on {cloud} use "
                    + (
                        "cache_redis_azure_host"
                        if cloud == "azure"
                        else "cache_redis_aws_url or cache_redis_aws_secret_name"
                    ),
                )
            return chosen(name)
    wanted = "cache_redis_azure_host" if cloud == "azure" else "cache_redis_aws_secret_name"
    return chosen(
        None,
        problem=f"no cache Redis is configured for {cloud}",
        problem_key=wanted,
        fix=f"set exactly one of cache_redis_aws_url, cache_redis_aws_secret_name, cache_redis_azure_host "
        f"(on {cloud}: {wanted})",
    )


def fails_without_fallback(config: InfraConfig, choice: CacheRedisChoice) -> bool:
    """Whether ``choice.problem`` stops the service: a wrong-cloud key always; a missing one without a fallback."""
    if choice.problem is None:
        return False
    if choice.key is not None:
        return True
    fallbacks = ("redis_aws_secret_name", "redis_host")
    return not any(getattr(config, name) is not None for name in fallbacks)
