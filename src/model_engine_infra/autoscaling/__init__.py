"""Inference autoscaling metrics: the signal KEDA scales async endpoints from (Redis, Service Bus, local files).

Each backend is its own module (``redis``, ``servicebus``, ``local``), imported only when built.
"""

from .base import (
    EXPIRY_SECONDS,
    PREWARM_EXPIRY_SECONDS,
    AutoscalingMetric,
    InferenceAutoscalingMetricsGateway,
)

__all__ = ["EXPIRY_SECONDS", "PREWARM_EXPIRY_SECONDS", "AutoscalingMetric", "InferenceAutoscalingMetricsGateway"]
