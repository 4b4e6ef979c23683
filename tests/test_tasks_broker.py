"""Which broker a configuration means: the deployment docs' table, cell by cell, and bad input."""

from __future__ import annotations

from pathlib import Path

import pytest

from model_engine_infra import load_config
from model_engine_infra.config import InfraConfig
from model_engine_infra.errors import ConfigError
from model_engine_infra.tasks import BrokerType, broker_type_for
from model_engine_infra.tasks.app import celery_conf
from model_engine_infra.tasks.settings import check_broker_for_cloud, coerce_broker_type

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "deploy"

S, SB, R, R24, L = BrokerType.SQS, BrokerType.SERVICEBUS, BrokerType.REDIS, BrokerType.REDIS_24H, BrokerType.LOCAL

# (cloud_provider, celeryBrokerType, celery_broker_type_redis) -> broker
CLOUD_BROKERS = [("aws", S), ("azure", SB), ("gcp", R), ("onprem", R24), ("local", L)]
TABLE = [
    # the cloud decides when nothing else is said
    ("aws", None, None, S),
    ("azure", None, None, SB),
    ("gcp", None, None, R),
    ("onprem", None, None, R24),
    ("local", None, None, L),
    # celery_broker_type_redis: true forces Redis everywhere; on-prem keeps its 24 h visibility
    ("aws", None, True, R),
    ("azure", None, True, R),
    ("gcp", None, True, R),
    ("onprem", None, True, R24),
    ("aws", "sqs", True, R),
    ("azure", "servicebus", True, R),
    # false is the same as unset
    ("aws", None, False, S),
    ("azure", None, False, SB),
    # an explicit celeryBrokerType wins over the cloud
    ("aws", "sqs", None, S),
    ("azure", "servicebus", None, SB),
    ("gcp", "elasticache", None, R),
    ("onprem", "elasticache", None, R24),
    ("onprem", "redis", None, R24),
    ("aws", "elasticache", None, R),
    # elasticache on azure is the Redis broker, not Service Bus (the docs' trap)
    ("azure", "elasticache", None, R),
    ("azure", "redis", None, R),
    # wrong brokers are still *selected*; building them is refused (below)
    ("azure", "sqs", None, S),
    ("gcp", "servicebus", None, SB),
]


@pytest.mark.parametrize(("cloud", "chart", "force_redis", "expected"), TABLE)
def test_broker_table(cloud: str, chart: str | None, force_redis: bool | None, expected: BrokerType) -> None:
    config = InfraConfig(cloud_provider=cloud, celery_broker_type=chart, celery_broker_type_redis=force_redis)
    assert broker_type_for(config) is expected


@pytest.mark.parametrize(
    ("example", "expected"),
    [(f"{cloud}/{name}", broker) for cloud, broker in CLOUD_BROKERS for name in ("values.yaml", "infra-config.yaml")],
)
def test_real_deployment_files(example: str, expected: BrokerType) -> None:
    config = load_config(EXAMPLES / example, env={})
    assert broker_type_for(config) is expected
    broker, conf = celery_conf(config)  # every real file builds a complete Celery configuration
    assert broker.broker_type is expected
    assert conf["broker_url"] == broker.url


@pytest.mark.parametrize(
    ("cloud", "broker"),
    [("azure", S), ("gcp", S), ("onprem", S), ("local", S), ("aws", SB), ("gcp", SB), ("aws", L), ("onprem", L)],
)
def test_wrong_broker_for_the_cloud_is_refused(cloud: str, broker: BrokerType) -> None:
    config = InfraConfig(cloud_provider=cloud, servicebus_namespace="ns", redis_host="r")
    with pytest.raises(ConfigError) as err:
        check_broker_for_cloud(config, broker)
    assert cloud in str(err.value)
    assert err.value.fix


def test_wrong_broker_from_the_chart_fails_at_build() -> None:
    config = InfraConfig(cloud_provider="azure", celery_broker_type="sqs", servicebus_namespace="ns")
    with pytest.raises(ConfigError, match="does not exist on cloud_provider 'azure'") as err:
        celery_conf(config)
    assert "servicebus" in (err.value.fix or "")


@pytest.mark.parametrize("cloud", ["aws", "azure", "gcp", "onprem", "local"])
def test_redis_is_allowed_everywhere(cloud: str) -> None:
    check_broker_for_cloud(InfraConfig(cloud_provider=cloud), R)


@pytest.mark.parametrize("name", ["kafka", "", "SQS2"])
def test_unknown_broker_type(name: str) -> None:
    with pytest.raises(ConfigError, match="unknown broker type"):
        coerce_broker_type(name)


def test_broker_type_accepts_names() -> None:
    assert coerce_broker_type("SQS") is S
    assert coerce_broker_type("redis_24h") is R24
    assert coerce_broker_type(SB) is SB
