"""Which Celery broker a configuration means (re-exported from `model_engine_infra.brokers`).

- ``broker`` names it explicitly (it must agree with the chart's keys);
- else ``celery_broker_type_redis: true`` forces Redis on any cloud;
- else an explicit ``celeryBrokerType`` wins: ``sqs``, ``servicebus``, ``elasticache``/``redis``
  (Redis — on Azure too, which is a common mistake that `findings()` points out);
- else the provider's profile decides (aws → SQS, azure → Service Bus, gcp → Redis, onprem →
  Redis with 24 h visibility, local → kombu's filesystem transport).
"""

from __future__ import annotations

from ..brokers import BrokerType, broker_type_for
from ..selection import CHART_BROKERS

__all__ = ["CHART_BROKERS", "BrokerType", "broker_type_for"]
