"""Rules of the autoscaling metrics backends, light enough for ``load_config`` (no SDK imported).

A missing Service Bus namespace is a finding here, not a load error: a deployment that never builds
``infra.autoscaling_metrics`` (a worker, a tool) still loads. Building the gateway without one
raises `ConfigError` naming the key.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from ..rules import Finding, Rule, Severity, finding_rule

if TYPE_CHECKING:
    from ..config.model import InfraConfig


@finding_rule("autoscaling-servicebus-namespace", "servicebus_namespace")
def _namespace(config: InfraConfig) -> Iterable[Finding]:
    """KEDA's queues live in a Service Bus namespace: without one, no endpoint scales from zero."""
    from ..config.keys import key_path

    if (config.servicebus_namespace or "").strip():
        return []
    return [
        Finding(
            Severity.HIGH,
            key_path(config, "servicebus_namespace"),
            "is not set, but the autoscaling metrics (KEDA's scale-from-zero signal) live in Service Bus queues: "
            "every inference request would fail to emit it. Set azure.servicebus_namespace "
            "(env SERVICEBUS_NAMESPACE), or autoscaling_metrics_backend: redis",
        )
    ]


SERVICEBUS_RULES: tuple[Rule, ...] = (_namespace,)
