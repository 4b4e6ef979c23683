"""Celery settings for a Redis broker and result backend that survive credential rotation.

Why: the reference system baked the token into the broker URL, so a worker broke when the token
rotated. kombu (>= 5.6.1) and Celery's Redis backend instead accept ``?credential_provider=<class
path>`` on the URL and instantiate that class with no arguments once per pool; the path returned
here names a class that reaches this process's shared `RefreshingCredentialProvider`.

kombu 5.7 reads ``credential_provider`` from the URL (or ``kombu.Connection(credential_provider=)``),
not from ``broker_transport_options``, so the URL carries it (the URL holds no secret); the
transport options repeat it for callers that set ``redis_backend_credential_provider`` from them.
"""

from __future__ import annotations

import logging
import ssl
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError
from .connection import ManagedRedisConnection
from .credentials import kombu_class_path

if TYPE_CHECKING:
    from ..config.model import InfraConfig
    from ..infra import Infra

__all__ = ["celery_redis_settings", "celery_settings_for", "celery_ssl_options"]

log = logging.getLogger(__name__)

_CERT_REQS = {"none": ssl.CERT_NONE, "optional": ssl.CERT_OPTIONAL, "required": ssl.CERT_REQUIRED}
_SSL_PATHS = ("ssl_ca_certs", "ssl_certfile", "ssl_keyfile")


def celery_redis_settings(config: InfraConfig, infra: Infra) -> tuple[str, dict[str, Any]]:
    """``(url, transport_options)`` for a Redis broker and result backend that survive rotation.

    ``url`` holds no secret and ends in ``?credential_provider=<class path>``, which kombu and
    Celery's Redis backend both read; use it for ``broker_url`` and ``result_backend``.
    ``transport_options`` (for ``broker_transport_options``) carries the same ``credential_provider``
    path (for ``redis_backend_credential_provider``) plus timeouts, health checks and the pool bound
    from config. For ``rediss`` see `celery_ssl_options`. Calling this registers the process's
    credential provider, so do it before Celery connects.
    """
    connection = infra.redis
    if not isinstance(connection, ManagedRedisConnection):
        log.warning(
            "infra.redis is %s: Celery gets a URL snapshot whose credentials will expire", type(connection).__name__
        )
        return connection.url(), {}
    return celery_settings_for(connection)


def celery_settings_for(connection: ManagedRedisConnection) -> tuple[str, dict[str, Any]]:
    target = connection.source.target
    if target.scheme == "unix":
        raise ConfigError(
            "the Celery Redis broker needs a TCP Redis, not a unix socket",
            key=connection.source.origin,
            fix="point the Redis URL at host:port",
        )
    settings = connection.settings
    provider_path = kombu_class_path(connection.source.key) if connection.credential_provider else None
    extra = {"credential_provider": provider_path} if provider_path else {}
    plain = target.__class__(target.scheme, target.host, target.port, target.db, target.username)
    url = plain.url(username=provider_path is None, extra=extra)
    options: dict[str, Any] = {
        "socket_timeout": settings.socket_timeout,
        "socket_connect_timeout": settings.socket_timeout,
        "health_check_interval": settings.health_check_interval,
        "max_connections": settings.max_connections,
        "retry_on_timeout": True,
        "socket_keepalive": True,
    }
    if provider_path:
        options["credential_provider"] = provider_path
    return url, options


def celery_ssl_options(connection: ManagedRedisConnection) -> dict[str, Any] | None:
    """``broker_use_ssl`` / ``redis_backend_use_ssl`` for a ``rediss`` target (None otherwise)."""
    target = connection.source.target
    if not target.tls:
        return None
    query = dict(target.query)
    reqs = query.get("ssl_cert_reqs", "required").lower().removeprefix("cert_")
    options: dict[str, Any] = {"ssl_cert_reqs": _CERT_REQS.get(reqs, ssl.CERT_REQUIRED)}
    for name in _SSL_PATHS:
        if query.get(name):
            options[name] = query[name]
    if "ssl_check_hostname" in query:
        options["ssl_check_hostname"] = query["ssl_check_hostname"].lower() in ("1", "true", "yes")
    return options
