"""Service Bus message sizes from config: the tier, the limit a sender enforces, the queues' setting.

Standard namespaces cap a message at 256 KB and refuse a queue's ``max_message_size_in_kilobytes``
(HTTP 400); Premium accepts 1,024 .. 102,400 KB per queue (1 MB by default). The reference system
creates queues with a 20 MB maximum, which only a Premium namespace accepts. Here the limit is
``servicebus_max_message_size_kb``; the tier is ``servicebus_tier`` or, unset, inferred from the size
(above 256 KB means Premium). No SDK is imported: ``load_config`` runs `check_message_size`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import ConfigError

if TYPE_CHECKING:
    from ..config.model import InfraConfig

__all__ = [
    "PREMIUM_MAX_KB",
    "PREMIUM_MIN_QUEUE_KB",
    "STANDARD_MAX_KB",
    "check_message_size",
    "max_message_bytes",
    "queue_max_message_size_kb",
    "servicebus_tier",
]

STANDARD_MAX_KB = 256
PREMIUM_MIN_QUEUE_KB = 1024
PREMIUM_MAX_KB = 102400
KIB = 1024


def servicebus_tier(config: InfraConfig) -> str:
    """``standard`` or ``premium``: the configured tier, else premium exactly when the size needs it."""
    if config.servicebus_tier is not None:
        return config.servicebus_tier
    return "premium" if config.servicebus_max_message_size_kb > STANDARD_MAX_KB else "standard"


def check_message_size(config: InfraConfig) -> None:
    """The size fits the tier; a `ConfigError` naming both keys otherwise."""
    from ..config.validation import key_path

    size = config.servicebus_max_message_size_kb
    key = key_path(config, "servicebus_max_message_size_kb")
    if size < 1:
        raise ConfigError("must be a positive number of KB", key=key, value=size, fix="use 256 on standard")
    if size > PREMIUM_MAX_KB:
        raise ConfigError(
            f"is above Service Bus's largest message ({PREMIUM_MAX_KB} KB, premium tier)",
            key=key,
            value=size,
            fix=f"use at most {PREMIUM_MAX_KB}, and send references to larger payloads",
        )
    if servicebus_tier(config) == "standard" and size > STANDARD_MAX_KB:
        raise ConfigError(
            f"is above the standard tier's {STANDARD_MAX_KB} KB (servicebus_tier is standard)",
            key=key,
            value=size,
            fix=f"use at most {STANDARD_MAX_KB}, or set servicebus_tier: premium on a premium namespace",
        )


def max_message_bytes(config: InfraConfig) -> int:
    """The largest message a sender may send, in bytes."""
    return config.servicebus_max_message_size_kb * KIB


def queue_max_message_size_kb(config: InfraConfig) -> int | None:
    """What endpoint queues are created with: the size on premium (at least the tier's 1,024), None on standard."""
    if servicebus_tier(config) != "premium":
        return None
    return max(config.servicebus_max_message_size_kb, PREMIUM_MIN_QUEUE_KB)
