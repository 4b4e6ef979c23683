"""Which Celery broker a configuration means, decided exactly as the deployment docs describe.

Pure and free of Celery imports, so the config check can use it offline.

- ``celery_broker_type_redis: true`` forces Redis on any cloud;
- else an explicit ``celeryBrokerType`` wins: ``sqs``, ``servicebus``, ``elasticache``/``redis``
  (Redis — on Azure too, which is a common mistake that `findings()` points out);
- else the cloud decides: aws → SQS, azure → Service Bus, gcp → Redis, onprem → Redis with 24 h
  visibility, local → kombu's filesystem transport.
"""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..config.model import InfraConfig


class BrokerType(str, enum.Enum):
    SQS = "sqs"
    SERVICEBUS = "servicebus"
    REDIS = "redis"
    REDIS_24H = "redis_24h"
    LOCAL = "local"


CLOUD_DEFAULT_BROKER = {
    "aws": BrokerType.SQS,
    "azure": BrokerType.SERVICEBUS,
    "gcp": BrokerType.REDIS,
    "onprem": BrokerType.REDIS_24H,
    "local": BrokerType.LOCAL,
}
CHART_BROKER = {
    "sqs": BrokerType.SQS,
    "servicebus": BrokerType.SERVICEBUS,
    "elasticache": BrokerType.REDIS,
    "redis": BrokerType.REDIS,
}


def broker_type_for(config: InfraConfig) -> BrokerType:
    redis_kind = BrokerType.REDIS_24H if config.cloud_provider == "onprem" else BrokerType.REDIS
    if config.celery_broker_type_redis:
        return redis_kind
    if config.celery_broker_type is not None:
        chosen = CHART_BROKER[config.celery_broker_type]
        return redis_kind if chosen is BrokerType.REDIS else chosen
    return CLOUD_DEFAULT_BROKER.get(config.cloud_provider, BrokerType.REDIS)
