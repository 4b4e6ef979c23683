"""Where the Redis URL and its credentials come from: one builder per configuration source.

The order is the deployment docs': ``cache_redis_onprem_url`` wins; then the one of
``cache_redis_aws_url`` / ``cache_redis_aws_secret_name`` / ``cache_redis_azure_host`` that is set
(config validation allows at most one); then ``cache_redis_gcp_url``; then ``redis_aws_secret_name``;
then ``redis_host``/``redis_port`` (+ ``redis_auth_token``); else ``redis://redis:6379/0``.
``redis_iam_auth`` then swaps the password for an ElastiCache or Memorystore IAM token.

A source is split into a `RedisTarget` (no secrets; safe to show) and a `TokenSource`, so that no
password is ever baked into a URL the library itself connects with.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit

from ..errors import ConfigError
from ..redact import MASK
from .tokens import (
    ElastiCacheIamTokenSource,
    EntraIdTokenSource,
    MemorystoreTokenSource,
    SecretTokenSource,
    StaticTokenSource,
    Token,
    TokenSource,
    read_secret_json,
)

if TYPE_CHECKING:
    from ..config.model import InfraConfig
    from ..secrets.base import SecretStore

log = logging.getLogger(__name__)

DEFAULT_URL = "redis://redis:6379/0"
SCHEMES = ("redis", "rediss", "unix")
_CREDENTIAL_QUERY_KEYS = ("password", "username")


@dataclass(frozen=True)
class RedisTarget:
    """Where Redis is: scheme, host, port, db, username and non-secret query options."""

    scheme: str
    host: str
    port: int
    db: int = 0
    username: str | None = None
    path: str = ""
    query: tuple[tuple[str, str], ...] = ()

    @property
    def tls(self) -> bool:
        return self.scheme == "rediss"

    def url(self, password: str | None = None, *, username: bool = True, extra: dict[str, str] | None = None) -> str:
        """The URL; with ``password`` it carries that secret (a snapshot for tools that need one)."""
        user = quote(self.username, safe="") if username and self.username else ""
        auth = ""
        if password is not None:
            auth = f"{user}:{quote(password, safe='')}@"
        elif user:
            auth = f"{user}@"
        query = list(self.query) + list((extra or {}).items())
        if self.scheme == "unix":
            query = [("db", str(self.db)), *query]
            tail = f"?{urlencode(query)}"
            return f"unix://{auth}{self.path}{tail}"
        host = f"[{self.host}]" if ":" in self.host else self.host
        tail = f"?{urlencode(query)}" if query else ""
        return f"{self.scheme}://{auth}{host}:{self.port}/{self.db}{tail}"

    def redacted_url(self, has_password: bool) -> str:
        """``rediss://user:***@host:6380/0`` when a password is in play; safe for logs."""
        if not has_password:
            return self.url()
        return self.url(MASK).replace(quote(MASK, safe=""), MASK)


@dataclass(frozen=True)
class RedisSource:
    """A target plus where its credentials come from; ``key`` identifies the source in this process."""

    target: RedisTarget
    tokens: TokenSource | None
    key: str
    origin: str


# --- parsing -------------------------------------------------------------------------------------


def _bad(origin: str, message: str, fix: str) -> ConfigError:
    return ConfigError(message, key=origin, value=MASK, fix=fix)


def parse_url(url: str, *, origin: str) -> tuple[RedisTarget, str | None]:
    """Split a Redis URL into a secret-free target and its password (None when it has none)."""
    fix = "write it like rediss://user:password@host:6380/0"
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        raise _bad(origin, "malformed Redis URL (bad port)", fix) from None
    if parts.scheme not in SCHEMES:
        raise _bad(origin, "Redis URL needs the scheme redis://, rediss:// or unix://", fix)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True)]
    params = dict(query)
    username = unquote(parts.username) if parts.username else params.get("username") or None
    password = unquote(parts.password) if parts.password is not None else params.get("password")
    kept = tuple((k, v) for k, v in query if k not in (*_CREDENTIAL_QUERY_KEYS, "db"))
    db_text = params.get("db") or (parts.path.lstrip("/") if parts.scheme != "unix" else "") or "0"
    if not db_text.isdigit():
        raise _bad(origin, "the Redis database in the URL must be a whole number", fix)
    if parts.scheme == "unix":
        if not parts.path:
            raise _bad(origin, "a unix:// Redis URL needs a socket path", "write it like unix:///run/redis.sock?db=0")
        target = RedisTarget("unix", "", 0, int(db_text), username, parts.path, kept)
        return target, password or None
    if not parts.hostname:
        raise _bad(origin, "the Redis URL has no host", fix)
    target = RedisTarget(parts.scheme, parts.hostname, port or 6379, int(db_text), username, "", kept)
    return target, password or None


def _port(value: Any, origin: str, field_name: str) -> int:
    text = str(value).strip()
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise _bad(f"{origin} field {field_name!r}", "must be a TCP port from 1 to 65535", "store the port as a number")
    return int(text)


# --- one builder per source ------------------------------------------------------------------------


def from_url(url: str, *, origin: str) -> RedisSource:
    """A plain URL (``cache_redis_*_url``); its password, if any, moves into a static token source."""
    target, password = parse_url(url, origin=origin)
    return _static(target, password, origin)


def _static(target: RedisTarget, password: str | None, origin: str) -> RedisSource:
    if password is None:
        return RedisSource(target, None, f"none:{target.url()}", origin)
    digest = hashlib.sha256(password.encode()).hexdigest()[:12]
    tokens = StaticTokenSource(target.username, password, description=f"the password in {origin}")
    return RedisSource(target, tokens, f"static:{target.url()}#{digest}", origin)


def from_cache_url_secret(store: SecretStore, secret_name: str, *, refresh_in: float) -> RedisSource:
    """``cache_redis_aws_secret_name``: a secret whose ``cache-url`` field is the whole URL."""
    origin = f"secret {secret_name!r} field 'cache-url'"

    def extract(value: dict[str, Any]) -> Token:
        url = value.get("cache-url")
        if not isinstance(url, str) or not url.strip():
            raise _bad(origin, "is missing or empty", "store the cache Redis URL under the key 'cache-url'")
        target, password = parse_url(url, origin=origin)
        return Token(target.username, password or "")

    secret = read_secret_json(store, secret_name)
    first = extract(secret)
    target, _ = parse_url(secret["cache-url"], origin=origin)
    if not first.password:
        return RedisSource(target, None, f"none:{target.url()}", origin)
    tokens = SecretTokenSource(store, secret_name, extract, refresh_in=refresh_in, initial=first)
    return RedisSource(target, tokens, f"secret:{store.store_name}:{secret_name}", origin)


def from_redis_secret(store: SecretStore, secret_name: str, *, refresh_in: float, db: int = 0) -> RedisSource:
    """``redis_aws_secret_name``: a secret with ``scheme``, ``host``, ``port``, ``auth_token``, ``query_params``."""
    origin = f"secret {secret_name!r}"

    def parse(value: dict[str, Any]) -> tuple[RedisTarget, str | None]:
        scheme = str(value.get("scheme") or "redis").strip().removesuffix("://")
        if scheme not in ("redis", "rediss"):
            raise _bad(f"{origin} field 'scheme'", "must be redis or rediss", "store redis:// or rediss://")
        host = value.get("host")
        if not isinstance(host, str) or not host.strip() or "/" in host:
            raise _bad(f"{origin} field 'host'", "is missing or not a host name", "store the Redis host name")
        if "port" not in value:
            raise _bad(f"{origin} field 'port'", "is missing", "store the Redis port")
        port = _port(value["port"], origin, "port")
        raw_query = value.get("query_params") or ""
        if not isinstance(raw_query, str):
            raise _bad(f"{origin} field 'query_params'", "must be a string", "store it like ?ssl_cert_reqs=required")
        query = tuple(parse_qsl(raw_query.strip().lstrip("?"), keep_blank_values=True))
        token = value.get("auth_token")
        if token is not None and not isinstance(token, str):
            raise _bad(f"{origin} field 'auth_token'", "must be a string", "store the AUTH token as a string")
        username = value.get("username") if isinstance(value.get("username"), str) else None
        return RedisTarget(scheme, host.strip(), port, db, username or None, "", query), token or None

    def extract(value: dict[str, Any]) -> Token:
        target, token = parse(value)
        return Token(target.username, token or "")

    secret = read_secret_json(store, secret_name)
    target, token = parse(secret)
    if token is None:
        return RedisSource(target, None, f"none:{target.url()}", origin)
    tokens = SecretTokenSource(store, secret_name, extract, refresh_in=refresh_in, initial=extract(secret))
    return RedisSource(target, tokens, f"secret:{store.store_name}:{secret_name}", origin)


def from_azure_host(
    host_port: str, object_id: str | None, *, credential: Any = None, client_id: str | None = None
) -> RedisSource:
    """``cache_redis_azure_host``: TLS, username ``AZURE_OBJECT_ID``, password an Entra ID token."""
    origin = "cache_redis_azure_host"
    if not object_id:
        raise ConfigError(
            "Azure Cache for Redis with Entra ID needs the identity's object id as the Redis username",
            key="AZURE_OBJECT_ID",
            fix="set azure.object_id in the Helm values (injected as AZURE_OBJECT_ID)",
        )
    host, _, port = host_port.rpartition(":")
    if not host or not port.isdigit():
        raise _bad(origin, "must be host:port", "write it like my-cache.redis.cache.windows.net:6380")
    target = RedisTarget("rediss", host, int(port), 0, object_id)
    tokens = EntraIdTokenSource(object_id, credential=credential, client_id=client_id)
    return RedisSource(target, tokens, f"entra:{object_id}@{host}:{port}", origin)


def from_host(host: str, port: int, auth_token: str | None, *, tls: bool, origin: str) -> RedisSource:
    """``redis_host``/``redis_port`` with an optional ``redis_auth_token``."""
    target = RedisTarget("rediss" if tls else "redis", host, port, 0)
    return _static(target, auth_token, origin)


# --- IAM and TLS overlays ----------------------------------------------------------------------------


def with_iam(
    source: RedisSource, config: InfraConfig, *, aws_session: Any = None, google_credentials: Any = None
) -> RedisSource:
    """Replace the password with a token from the ``redis_credentials`` backend the config selects.

    Built-ins: ``elasticache`` (SigV4 tokens) and ``memorystore`` (ADC tokens), chosen by
    ``redis_iam_auth``; a plugin registers ``(source, config, **clients) -> RedisSource``.
    """
    from ..registry import resolve_backend
    from ..selection import redis_credentials_name

    kind = redis_credentials_name(config)
    if kind is None:
        return source
    if source.origin == "cache_redis_azure_host":
        raise ConfigError(
            "redis_iam_auth applies to ElastiCache and Memorystore, not Azure Cache for Redis",
            key="redis_iam_auth",
            value=kind,
            fix="unset redis_iam_auth; Azure Cache uses Entra ID tokens already",
        )
    overlay = resolve_backend("redis_credentials", kind)
    result: RedisSource = overlay(source, config, aws_session=aws_session, google_credentials=google_credentials)
    return result


def elasticache_iam(source: RedisSource, config: InfraConfig, *, aws_session: Any = None, **_: Any) -> RedisSource:
    """ElastiCache IAM auth: SigV4 tokens for ``redis_iam_user`` on ``redis_iam_cache_name``, over TLS."""
    user, cache = config.redis_iam_user, config.redis_iam_cache_name
    for name, value in (("redis_iam_user", user), ("redis_iam_cache_name", cache)):
        if not value:
            raise ConfigError(
                "ElastiCache IAM auth needs it", key=name, value=None, fix=f"set {name} (see docs/redis.md)"
            )
    assert user is not None
    assert cache is not None
    target = source.target
    if not target.tls:
        log.info("ElastiCache IAM auth needs TLS: using rediss:// for %s", target.host)
    target = replace(target, scheme="rediss", username=user)
    tokens: TokenSource = ElastiCacheIamTokenSource(user, cache, config.default_region, session=aws_session)
    return RedisSource(target, tokens, f"elasticache-iam:{config.default_region}:{cache}:{user}", source.origin)


def memorystore_iam(
    source: RedisSource, config: InfraConfig, *, google_credentials: Any = None, **_: Any
) -> RedisSource:
    """Memorystore IAM auth: ADC access tokens, the user being ``redis_iam_user`` (if any)."""
    target = replace(source.target, username=config.redis_iam_user or None)
    tokens = MemorystoreTokenSource(config.redis_iam_user, credentials=google_credentials)
    return RedisSource(target, tokens, f"memorystore-iam:{config.redis_iam_user}@{target.url()}", source.origin)


def with_tls_defaults(source: RedisSource, *, unsafe_ssl: bool) -> RedisSource:
    """``redis_unsafe_ssl`` turns certificate checks off (dev only) unless the URL already chose."""
    target = source.target
    if not target.tls or not unsafe_ssl or any(k == "ssl_cert_reqs" for k, _ in target.query):
        return source
    query = (*target.query, ("ssl_cert_reqs", "none"), ("ssl_check_hostname", "false"))
    return replace(source, target=replace(target, query=query))


# --- choosing ----------------------------------------------------------------------------------------


def select_source(
    config: InfraConfig,
    *,
    secrets: Callable[[], SecretStore],
    azure_credential: Any = None,
    aws_session: Any = None,
    google_credentials: Any = None,
) -> RedisSource:
    """The Redis source the config names, in the deployment docs' order, with IAM and TLS applied."""
    source = _base_source(config, secrets, azure_credential)
    source = with_iam(source, config, aws_session=aws_session, google_credentials=google_credentials)
    return with_tls_defaults(source, unsafe_ssl=config.redis_unsafe_ssl)


def _base_source(config: InfraConfig, secrets: Callable[[], SecretStore], azure_credential: Any) -> RedisSource:
    from ..config.cache_redis import choose_cache_redis, fails_without_fallback

    ttl = config.secret_cache_ttl_seconds
    choice = choose_cache_redis(config)  # llm-engine's order; the keys it ignores are a config finding
    if fails_without_fallback(config, choice):
        raise ConfigError(choice.problem or "", key=choice.problem_key, fix=choice.fix)
    if choice.key in ("cache_redis_onprem_url", "cache_redis_aws_url", "cache_redis_gcp_url"):
        url = config.secret(choice.key)
        assert url is not None
        return from_url(url, origin=choice.key)
    if choice.key == "cache_redis_aws_secret_name":
        assert config.cache_redis_aws_secret_name is not None
        return from_cache_url_secret(secrets(), config.cache_redis_aws_secret_name, refresh_in=ttl)
    if choice.key == "cache_redis_azure_host":
        assert config.cache_redis_azure_host is not None
        return from_azure_host(
            config.cache_redis_azure_host,
            config.azure_object_id,
            credential=azure_credential,
            client_id=config.azure_client_id,
        )
    if config.redis_aws_secret_name:
        return from_redis_secret(secrets(), config.redis_aws_secret_name, refresh_in=ttl)
    token = config.secret("redis_auth_token")
    if config.redis_host or token or config.is_set("redis_port") or config.redis_enable_tls:
        # The reference system switches to TLS whenever an AUTH token is set; an explicit
        # redis_enable_tls (either way) overrides that.
        tls = config.redis_enable_tls or (bool(token) and not config.is_set("redis_enable_tls"))
        origin = "redis_host" if config.redis_host else "redis_port"
        return from_host(config.redis_host or "redis", config.redis_port, token, tls=tls, origin=origin)
    return from_url(DEFAULT_URL, origin="default (redis://redis:6379/0)")


def source_key(config: InfraConfig) -> str | None:
    """The key that names the Redis source, in `_base_source`'s order; None when the default URL is used."""
    for name in (
        "cache_redis_onprem_url",
        "cache_redis_aws_url",
        "cache_redis_aws_secret_name",
        "cache_redis_azure_host",
        "cache_redis_gcp_url",
        "redis_aws_secret_name",
    ):
        if getattr(config, name):
            return name
    if config.redis_host or config.secret("redis_auth_token"):
        return "redis_host" if config.redis_host else "redis_auth_token"
    if config.is_set("redis_port"):
        return "redis_port"
    return "redis_enable_tls" if config.redis_enable_tls else None
