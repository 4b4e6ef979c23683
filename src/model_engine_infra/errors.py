"""One exception hierarchy for the whole package.

Every failure a caller can act on has its own type, and its message says what was wrong and what
to do. SDK exceptions are wrapped with ``raise ... from err`` so the original stays reachable as
``__cause__`` without leaking into our message. Messages never contain secret values.
"""

from __future__ import annotations

import reprlib
from typing import Any

__all__ = [
    "MAX_MESSAGE_CHARS",
    "MAX_VALUE_CHARS",
    "AsyncCloseRequiredError",
    "BackendConflictError",
    "BrokerPermissionError",
    "BrokerUnavailableError",
    "ConfigError",
    "CredentialFetchError",
    "DownloadConflictError",
    "EndpointLabelsError",
    "ImageBuildNotSupportedError",
    "ImageNotFoundError",
    "InfraClosedError",
    "InfraError",
    "InvalidImageReferenceError",
    "InvalidQueueNameError",
    "InvalidURIError",
    "MessageTooLargeError",
    "ObjectDecodeError",
    "ObjectNotFoundError",
    "ObjectTooLargeError",
    "ProviderUnavailableError",
    "QueueError",
    "QueueKeyConflictError",
    "QueueNotFoundError",
    "RedisAuthError",
    "RedisError",
    "RedisUnavailableError",
    "RegistryAuthError",
    "RegistryError",
    "RegistryUnavailableError",
    "SecretError",
    "SecretNotFoundError",
    "StorageError",
    "StoragePermissionError",
    "StorageUnavailableError",
    "TaskArgumentsError",
    "TaskTimeoutError",
    "UnknownBackendError",
    "UnknownProviderError",
    "UnsafeObjectKeyError",
    "clip",
    "quote",
]

#: How much of a bad value a message quotes, and how long any message of ours may get: a 34 MB value
#: must not become a 34 MB log line (or a 34 MB ``config check --json``).
MAX_VALUE_CHARS = 200
MAX_MESSAGE_CHARS = 4000

_REPR = reprlib.Repr()
_REPR.maxstring = MAX_VALUE_CHARS
_REPR.maxother = MAX_VALUE_CHARS
_REPR.maxlist = _REPR.maxtuple = _REPR.maxset = _REPR.maxdict = 10
_REPR.maxlevel = 3


def clip(text: str, limit: int = MAX_VALUE_CHARS) -> str:
    """``text`` cut in the middle to at most about ``limit`` characters, saying how much was cut."""
    if len(text) <= limit:
        return text
    room = max(limit - len(f"…[{len(text)} characters cut]…"), 2)
    head = max(room * 2 // 3, 1)
    tail = max(room - head, 1)
    return f"{text[:head]}…[{len(text) - head - tail} characters cut]…{text[-tail:]}"


def quote(value: Any, limit: int = MAX_VALUE_CHARS) -> str:
    """A bounded ``repr`` of a bad value: long strings cut, big or deep containers elided (never walked whole)."""
    if isinstance(value, str):
        shown = repr(clip(value, limit)) if len(value) > limit else repr(value)
        return clip(shown, limit + 2)  # escapes (\x1f, \U0002ebe1) can make a repr longer than its text
    return clip(_REPR.repr(value), limit)


class InfraError(Exception):
    """Root of every error this package raises on purpose.

    Its text is capped at `MAX_MESSAGE_CHARS` (cut in the middle, so the key and the fix survive).
    """

    def __str__(self) -> str:
        return clip(super().__str__(), MAX_MESSAGE_CHARS)


class InfraClosedError(InfraError, RuntimeError):
    """A component (or the `Infra` that built it) was used after ``close()``; build a new `Infra`."""


class AsyncCloseRequiredError(InfraError, RuntimeError):
    """``Infra.close()`` ran inside an event loop and some components can only close asynchronously.

    Everything that could close synchronously is closed; ``await infra.aclose()`` (or
    ``async with build_infra(...)``) closes the rest.
    """


# --- configuration and providers -------------------------------------------------------------


class ConfigError(InfraError, ValueError):
    """A configuration value is missing, malformed or inconsistent.

    ``key`` is the dotted key path as the user wrote it (``config.values.infra.cloud_provider``
    or an environment variable name); ``value`` is the offending value, or ``"***"`` when the
    key holds a secret; ``source`` says which file or variable it came from, when known.
    """

    def __init__(
        self,
        message: str,
        *,
        key: str | None = None,
        value: Any = None,
        source: str | None = None,
        fix: str | None = None,
    ) -> None:
        self.key = key
        self.value = value
        self.source = source
        self.fix = fix
        parts = []
        if key is not None:
            parts.append(f"{key}: ")
        parts.append(message)
        if value is not None and not _mentions(message, value):
            parts.append(f" (got {quote(value)})")
        if source is not None and source != key:
            parts.append(f" (from {source})")
        if fix:
            parts.append(f". Fix: {fix}")
        super().__init__("".join(parts))


def _mentions(message: str, value: Any) -> bool:
    """Whether ``message`` already shows ``value`` (only asked of scalars: a container is never stringified whole)."""
    if isinstance(value, (str, int, float, bool)):
        text = str(value)
        return text in message or quote(value).strip("'\"") in message
    return False


class UnknownProviderError(ConfigError):
    """``cloud_provider`` names no built-in provider and no registered plugin."""


class UnknownBackendError(ConfigError):
    """A config key or a profile names a backend no built-in and no plugin registers."""


class BackendConflictError(InfraError, ValueError):
    """A plugin tried to take a backend name that is already taken (pass ``replace=True`` to mean it)."""


class ProviderUnavailableError(InfraError, ImportError):
    """A provider or component needs an optional dependency that is not installed."""

    def __init__(self, message: str, *, extra: str | None = None, missing_module: str | None = None) -> None:
        self.extra = extra
        self.missing_module = missing_module
        if extra:
            message = f"{message}. Install it with: pip install 'model-engine-infra[{extra}]'"
        super().__init__(message)


# --- queues and tasks ----------------------------------------------------------------------


class QueueError(InfraError):
    """Base for endpoint-queue and task-queue failures."""


class InvalidQueueNameError(QueueError, ValueError):
    """A queue name (or an endpoint id making one) the broker rejects, would rewrite, or keeps for itself."""


class EndpointLabelsError(QueueError, ValueError):
    """An endpoint's labels lack what the queue templates need (``team`` for a ``${team}`` placeholder)."""


class InvalidQueueSettingError(QueueError, ValueError):
    """A queue setting (e.g. the message timeout) the broker cannot take."""


class QueueNotFoundError(QueueError, LookupError):
    """The endpoint's queue does not exist."""


class BrokerUnavailableError(QueueError, ConnectionError):
    """The broker could not be reached (after the retry policy ran out)."""


class BrokerPermissionError(QueueError, PermissionError):
    """The broker refused the identity a call (a missing IAM action, role or ACL); the message names it."""


class MessageTooLargeError(QueueError, ValueError):
    """A task payload is larger than the broker accepts."""


class TaskArgumentsError(QueueError, ValueError):
    """A task's arguments cannot travel as JSON (a set, bytes, an object), or ``expires`` is out of range."""


class QueueKeyConflictError(QueueError):
    """A key the broker keeps for a queue holds something else (Redis ``WRONGTYPE``): the broker is up."""


class TaskTimeoutError(QueueError, TimeoutError):
    """``wait`` gave up: the task had not finished within the timeout (it may still run)."""

    def __init__(self, task_id: str, timeout: float, status: str) -> None:
        self.task_id = task_id
        self.timeout = timeout
        self.status = status
        super().__init__(
            f"task {task_id!r} is still {status} after {timeout:g} s. Fix: wait longer (timeout=...), or check "
            "that a worker consumes its queue (a PENDING task was never picked up)"
        )


# --- storage ----------------------------------------------------------------------------------


class StorageError(InfraError):
    """Base for file and artifact storage failures."""


class InvalidURIError(StorageError, ValueError):
    """A URI is malformed or names a store the configured provider cannot serve."""


class ObjectNotFoundError(StorageError, FileNotFoundError):
    """The object (or local file) does not exist."""


class StoragePermissionError(StorageError, PermissionError):
    """The store refused access (HTTP 403 or equivalent)."""


class StorageUnavailableError(StorageError, ConnectionError):
    """The store could not be reached."""


class UnsafeObjectKeyError(StorageError, ValueError):
    """An object key would land outside the download's target folder."""


class ObjectDecodeError(StorageError, ValueError):
    """An object read as text is not text in that encoding (open it in ``"rb"``, or pass ``encoding=``)."""


class ObjectTooLargeError(StorageError, ValueError):
    """A document read whole (a model's config.json, a secret's JSON) is larger than its cap."""


class DownloadConflictError(StorageError, ValueError):
    """Keys (or existing local files) need one local path as both a file and a folder, or the target is a file."""


class InvalidFileIdError(StorageError, ValueError):
    """A user file's owner or id could reach outside that owner's folder (or is not a usable name)."""


# --- images -----------------------------------------------------------------------------------


class RegistryError(InfraError):
    """Base for image registry failures."""


class InvalidImageReferenceError(RegistryError, ValueError):
    """A registry prefix, repository name or tag is malformed."""


class RegistryUnavailableError(RegistryError, ConnectionError):
    """The registry could not be reached or throttled us; we cannot say whether an image exists."""


class RegistryAuthError(RegistryError, PermissionError):
    """The registry rejected our credentials."""


class ImageNotFoundError(RegistryError, LookupError):
    """A repository is missing or holds no tagged image (``get_latest_image_tag``)."""


class ImageBuildNotSupportedError(RegistryError, NotImplementedError):
    """This registry/provider cannot build images; the message says what to do instead."""


# --- redis and secrets ------------------------------------------------------------------------


class RedisError(InfraError):
    """Base for Redis connection failures."""


class RedisAuthError(RedisError, PermissionError):
    """Redis rejected the credentials."""


class CredentialFetchError(RedisError):
    """A credential source (token endpoint, secret) failed; names the source, never the secret."""


class RedisUnavailableError(RedisError, ConnectionError):
    """The Redis server could not be reached (after the connection's retries)."""


class SecretError(InfraError):
    """Base for secret store failures."""


class SecretNotFoundError(SecretError, KeyError):
    """The named secret does not exist in the store."""

    def __str__(self) -> str:  # KeyError would quote the whole message
        return clip(str(self.args[0]), MAX_MESSAGE_CHARS) if self.args else ""
