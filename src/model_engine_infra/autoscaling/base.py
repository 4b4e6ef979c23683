"""The inference autoscaling metrics interface, and the names and expiries every backend shares.

KEDA scales an async endpoint from zero on a signal the control plane leaves on every inference
request: a Redis list (``launch-endpoint-autoscaling:{endpoint_id}``) or a Service Bus queue
(``launch-endpoint-autoscaling.{endpoint_id}``). The signal lasts 60 s after an inference request and
an hour after a prewarm; KEDA's ScaledObjects read these exact names, so they never change.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar

from ..errors import InvalidQueueNameError
from ..lifecycle import Closeable

__all__ = [
    "EXPIRY_SECONDS",
    "PREWARM_EXPIRY_SECONDS",
    "REDIS_KEY_PREFIX",
    "SERVICEBUS_QUEUE_PREFIX",
    "AutoscalingMetric",
    "InferenceAutoscalingMetricsGateway",
    "check_endpoint_id",
]

#: How long an inference request keeps its endpoint scaled up, on top of the ScaledObject's cooldown
#: (longer than KEDA's polling interval, so a request is always seen).
EXPIRY_SECONDS = 60
#: How long a prewarm keeps its endpoint scaled up.
PREWARM_EXPIRY_SECONDS = 3600
REDIS_KEY_PREFIX = "launch-endpoint-autoscaling:"
SERVICEBUS_QUEUE_PREFIX = "launch-endpoint-autoscaling."
_ENDPOINT_ID = re.compile(r"[A-Za-z0-9_-]+")  # fullmatch: "$" would accept a trailing newline


def check_endpoint_id(endpoint_id: object, *, backend: str, max_length: int) -> str:
    """``endpoint_id`` unchanged, or `InvalidQueueNameError` before anything reaches the broker."""
    if not isinstance(endpoint_id, str) or not _ENDPOINT_ID.fullmatch(endpoint_id):
        shown = repr(endpoint_id) if len(repr(endpoint_id)) <= 80 else repr(endpoint_id)[:77] + "..."
        raise InvalidQueueNameError(
            f"endpoint_id {shown} cannot name an autoscaling metric on {backend}: use only letters, digits, '-' and '_'"
        )
    if len(endpoint_id) > max_length:
        raise InvalidQueueNameError(
            f"endpoint_id of {len(endpoint_id)} characters is too long for an autoscaling metric on {backend}: "
            f"at most {max_length}"
        )
    return endpoint_id


@dataclass(frozen=True)
class AutoscalingMetric:
    """What the broker holds for one endpoint right now.

    ``pending`` is what KEDA reads (the list's length, the queue's active messages); ``expires_in``
    is the seconds until the longest-lived part of it expires, None where the broker does not say.
    """

    pending: int
    expires_in: float | None


class InferenceAutoscalingMetricsGateway(Closeable, ABC):
    """Emits the signal KEDA scales async endpoints from (llm-engine's interface of the same name).

    Contract: an emit never shortens what an earlier, longer emit set (a prewarm's hour survives
    the inference requests inside it); an unreachable broker raises `BrokerUnavailableError` within
    the backend's timeout, never hangs; an invalid endpoint id raises `InvalidQueueNameError` before
    any call. Every method may be awaited from any event loop. After ``close()`` every call raises
    `InfraClosedError`.
    """

    backend_name: ClassVar[str] = "broker"
    max_endpoint_id_length: ClassVar[int] = 200

    def check(self, endpoint_id: str) -> str:
        return check_endpoint_id(endpoint_id, backend=self.backend_name, max_length=self.max_endpoint_id_length)

    async def emit_inference_autoscaling_metric(self, endpoint_id: str) -> None:
        """On an inference request: keep the endpoint scaled up for `EXPIRY_SECONDS`."""
        await self.emit_metric(endpoint_id, EXPIRY_SECONDS)

    async def emit_prewarm_metric(self, endpoint_id: str) -> None:
        """Scale the endpoint up ahead of traffic and keep it up for `PREWARM_EXPIRY_SECONDS`."""
        await self.emit_metric(endpoint_id, PREWARM_EXPIRY_SECONDS)

    @abstractmethod
    async def emit_metric(self, endpoint_id: str, expiry_seconds: int) -> None:
        """Make the endpoint's signal live for at least ``expiry_seconds`` from now."""

    @abstractmethod
    async def create_or_update_resources(self, endpoint_id: str) -> None:
        """Create what the signal needs (a Service Bus queue); idempotent, a no-op where nothing is needed."""

    @abstractmethod
    async def delete_resources(self, endpoint_id: str) -> None:
        """Remove the endpoint's signal and resources; a no-op when there are none."""

    @abstractmethod
    async def read_metric(self, endpoint_id: str) -> AutoscalingMetric | None:
        """What KEDA would see now; None when no signal is live (or its resources do not exist)."""

    async def close(self) -> None:
        """Release clients; the default holds none."""
