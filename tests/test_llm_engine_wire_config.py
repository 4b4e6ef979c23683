"""What each deployment sends where, as llm-engine's workers and autoscaler expect it (no server needed).

The round trips with a stock worker configured as upstream's are integration/test_llm_engine_wire.py;
here the settings behind them: the two task queues, the Redis database of each visibility, the
queue delegate's databases, the result backends, and the gcp example config building.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr

from model_engine_infra import build_infra
from model_engine_infra.brokers import task_visibility
from model_engine_infra.brokers.base import TaskVisibility
from model_engine_infra.config import InfraConfig, load_config
from model_engine_infra.tasks.gateway import CeleryTaskQueueGateway
from model_engine_infra.testing.fakes import fake_infra

FIXTURES = Path(__file__).parent / "fixtures" / "llm_engine"
CACHE = SecretStr("redis://cache.internal:6379/15")


def _broker(gateway: object) -> tuple[str, int]:
    assert isinstance(gateway, CeleryTaskQueueGateway)
    conf = gateway.app.conf
    return conf.broker_url, conf.broker_transport_options["visibility_timeout"]


def test_onprem_has_two_task_queues_in_two_databases() -> None:
    config = InfraConfig(cloud_provider="onprem", cache_redis_onprem_url=CACHE, s3_endpoint_url="http://minio:9000")
    with build_infra(config) as infra:
        assert infra.inference_task_queue is infra.task_queue
        assert _broker(infra.inference_task_queue) == ("redis://cache.internal:6379/3", 86400)
        assert _broker(infra.infra_task_queue) == ("redis://cache.internal:6379/0", 3600)
        assert infra.infra_task_queue is infra.infra_task_queue  # built once
        results = infra.task_queue.app.conf  # type: ignore[attr-defined]
        assert (results.s3_bucket, results.s3_base_path) == ("llm-engine", "tmp/celery/")


@pytest.mark.parametrize(
    ("config", "broker"),
    [
        (InfraConfig(cloud_provider="gcp", cache_redis_gcp_url=CACHE), ("redis://cache.internal:6379/0", 3600)),
        (InfraConfig(cloud_provider="aws", celery_broker_type_redis=True, cache_redis_aws_url=CACHE), None),
        (InfraConfig(cloud_provider="aws", redis_host="unused"), None),
    ],
    ids=["gcp", "aws-redis", "aws-sqs"],
)
def test_one_task_queue_where_upstream_has_one(config: InfraConfig, broker: tuple[str, int] | None) -> None:
    with build_infra(config) as infra:
        assert infra.infra_task_queue is infra.inference_task_queue
        if broker is not None:
            assert _broker(infra.task_queue) == broker


def test_aws_with_the_redis_flag_uses_database_0() -> None:
    config = InfraConfig(cloud_provider="aws", celery_broker_type_redis=True, cache_redis_aws_url=CACHE)
    with build_infra(config) as infra:
        assert _broker(infra.task_queue) == ("redis://cache.internal:6379/0", 3600)


def test_fakes_stand_in_for_both_task_queues(tmp_path: Path) -> None:
    with fake_infra("onprem", tmp_path) as infra:
        assert infra.infra_task_queue is infra.inference_task_queue is infra.fakes.tasks


@pytest.mark.parametrize(
    ("role", "cloud", "expected"),
    [
        ("inference", "onprem", TaskVisibility.VISIBILITY_24H),
        ("infra", "onprem", TaskVisibility.VISIBILITY_1H),
        ("inference", "gcp", TaskVisibility.VISIBILITY_1H),
        ("inference", "aws", TaskVisibility.VISIBILITY_1H),
        ("inference", "azure", TaskVisibility.VISIBILITY_1H),
    ],
)
def test_task_visibilities_are_upstreams(role: str, cloud: str, expected: TaskVisibility) -> None:
    assert task_visibility(InfraConfig(cloud_provider=cloud), role) is expected


def test_unknown_role() -> None:
    with pytest.raises(ValueError, match="inference, infra"):
        task_visibility(InfraConfig(), "billing")


def test_redis_delegate_reads_the_brokers_databases() -> None:
    config = InfraConfig(cloud_provider="onprem", cache_redis_onprem_url=CACHE)
    with build_infra(config) as infra:
        assert "cache.internal:6379/3 (+db 0)" in repr(infra.queue_delegate)
    with build_infra(InfraConfig(cloud_provider="gcp", cache_redis_gcp_url=CACHE)) as infra:
        assert repr(infra.queue_delegate) == "RedisQueueEndpointResourceDelegate('cache.internal:6379/0')"


def test_gcp_results_are_in_redis_database_1() -> None:
    with build_infra(InfraConfig(cloud_provider="gcp", cache_redis_gcp_url=CACHE)) as infra:
        assert infra.task_queue.app.conf.result_backend == "redis://cache.internal:6379/1"  # type: ignore[attr-defined]


def test_gcp_example_config_builds(tmp_path: Path) -> None:
    """The shape of a gcp chart values file (Memorystore on cache_redis_onprem_url, the Redis flag): no GCS needed."""
    path = tmp_path / "values.yaml"
    path.write_text(
        "config:\n  values:\n    infra:\n      cloud_provider: gcp\n      gcp_project_id: my-project\n"
        "      docker_repo_prefix: us-docker.pkg.dev/my-project/my-repo\n"
        "      redis_host: my-memorystore.redis.cache.googleapis.com\n      s3_bucket: my-bucket\n"
        "    launch:\n      cache_redis_onprem_url: redis://my-memorystore.redis.cache.googleapis.com:6379/0\n"
        'celery_broker_type_redis: true\nredisHost: my-memorystore.redis.cache.googleapis.com\nredisPort: "6379"\n'
    )
    config = load_config(path, env={})
    with build_infra(config) as infra:
        conf = infra.task_queue.app.conf  # type: ignore[attr-defined]
        assert conf.broker_url == "redis://my-memorystore.redis.cache.googleapis.com:6379/0"
        assert conf.result_backend == "redis://my-memorystore.redis.cache.googleapis.com:6379/1"
        assert infra.infra_task_queue is infra.task_queue


def test_azure_results_in_the_celery_container() -> None:
    config = InfraConfig(
        cloud_provider="azure",
        servicebus_namespace="ns",
        abs_account_name="acct",
        abs_container_name="artifacts",
        redis_host="r",
    )
    with build_infra(config) as infra:
        conf = infra.task_queue.app.conf  # type: ignore[attr-defined]
        assert conf.result_backend == "azureblockblob://DefaultAzureCredential@https://acct.blob.core.windows.net"
        assert (conf.azureblockblob_container_name, conf.azureblockblob_base_path) == ("celery", "")


def test_upstreams_onprem_backend_key_is_a_finding() -> None:
    config = load_config(FIXTURES / "onprem_defaults.yaml", env={"REDIS_HOST": "redis"})
    messages = {f.key: f.message for f in config.findings()}
    assert "store results with s3" in messages["celery_backend_protocol"]
    assert config.celery_backend_protocol == "redis"  # honoured: the finding says what that means
