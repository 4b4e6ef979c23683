"""The Redis connection interface: clients built once, credentials through a provider."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # redis is an extra; the interface names its types without importing it
    import redis
    import redis.asyncio

from ..lifecycle import Closeable


class RedisConnection(Closeable, ABC):
    """Hands out the process's Redis clients; never bakes a token into a URL it uses itself."""

    usable_after_close = frozenset({"redacted_url"})  # reprs and error messages show it

    @abstractmethod
    def client(self, db: int | None = None) -> redis.Redis:
        """A ``redis.Redis`` on the component's pool for database ``db`` (default: the configured one)."""

    @abstractmethod
    def async_client(self, db: int | None = None) -> redis.asyncio.Redis:
        """A ``redis.asyncio.Redis`` on the component's async pool for database ``db`` (default: the configured one).

        Other databases share host, port, TLS and credentials: the Celery broker keeps its queues in
        the database of each task visibility, apart from the cache's.
        """

    @property
    @abstractmethod
    def credential_provider(self) -> redis.CredentialProvider | None:
        """The ``redis.CredentialProvider`` (None when the server needs no credentials)."""

    @abstractmethod
    def url(self) -> str:
        """A URL with credentials as of now, for tools that need one: a snapshot that will expire."""

    @abstractmethod
    def redacted_url(self) -> str:
        """The URL with the password replaced by ``***``, safe for logs."""

    def close(self) -> None:
        """Disconnect pools; the default holds none."""
