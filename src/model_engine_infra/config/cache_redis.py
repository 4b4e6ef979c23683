"""Which cache-Redis key a deployment uses, in llm-engine's order (its ``common/config.py`` ``cache_redis_url``).

``cache_redis_onprem_url`` wins everywhere; then the profile's ``cache_redis_keys`` in order (aws:
the URL over the secret name; azure: the host; gcp: the gcp URL; onprem: the aws URL, else
``redis_host``). Upstream reads one key and silently ignores the others: here each ignored key is a
finding. Where upstream stops, this stops too: on a key the profile refuses (``cache_redis_refused``,
an AWS key on Azure) always, and on a missing key where the profile requires one
(``cache_redis_key``) unless ``redis_host`` or ``redis_aws_secret_name`` names a Redis, so an
infra-only file that names Redis that way keeps working. Pure: reads the config and its profile.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .model import InfraConfig

__all__ = ["CACHE_REDIS_KEYS", "CacheRedisChoice", "choose_cache_redis", "fails_without_fallback"]

#: Every cache-Redis key; after ``cache_redis_onprem_url``, the order for a profile that names none.
CACHE_REDIS_KEYS = (
    "cache_redis_onprem_url",
    "cache_redis_aws_url",
    "cache_redis_aws_secret_name",
    "cache_redis_gcp_url",
    "cache_redis_azure_host",
)


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


def choose_cache_redis(config: InfraConfig) -> CacheRedisChoice:
    from ..selection import profile_of

    profile = profile_of(config)
    present = [name for name in CACHE_REDIS_KEYS if getattr(config, name) is not None]

    def chosen(key: str | None, **problem: str) -> CacheRedisChoice:
        return CacheRedisChoice(key, tuple(n for n in present if n != key), **problem)

    if "cache_redis_onprem_url" in present:
        return chosen("cache_redis_onprem_url")
    refused = [name for name in profile.cache_redis_refused if name in present]
    if refused:
        usable = " or ".join(profile.cache_redis_keys) or "cache_redis_onprem_url"
        return chosen(
            refused[0],
            problem=f"{refused[0]} is not read on {profile.name} (llm-engine stops on it there too)",
            problem_key=refused[0],
            fix=f"remove {refused[0]}; on {profile.name} use {usable}",
        )
    for name in profile.cache_redis_keys or CACHE_REDIS_KEYS:
        if name in present:
            return chosen(name)
    wanted = profile.cache_redis_key
    if wanted is None:
        return chosen(None)
    usable = ", ".join(profile.cache_redis_keys or (wanted,))
    return chosen(
        None,
        problem=f"no cache Redis is configured for {profile.name}",
        problem_key=wanted,
        fix=f"set one of {usable} (on {profile.name}: {wanted}), or redis_host",
    )


def fails_without_fallback(config: InfraConfig, choice: CacheRedisChoice) -> bool:
    """Whether ``choice.problem`` stops the service: a refused key always; a missing one without a fallback."""
    if choice.problem is None:
        return False
    if choice.key is not None:
        return True
    fallbacks = ("redis_aws_secret_name", "redis_host")
    return not any(getattr(config, name) is not None for name in fallbacks)
