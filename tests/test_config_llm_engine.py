"""What llm-engine's own config files contain loads, and means what it means there.

The files in tests/fixtures/llm_engine/ are shaped like upstream's chart values, its rendered
service and infra configs, and its per-cloud defaults. Cache-Redis keys resolve in upstream's
order (``common/config.py`` ``cache_redis_url``); keys it would ignore are findings, and only what
would stop upstream stops here.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from model_engine_infra import build_infra
from model_engine_infra.config import InfraConfig, load_config
from model_engine_infra.config.cache_redis import choose_cache_redis
from model_engine_infra.errors import ConfigError, EndpointLabelsError
from model_engine_infra.queues.sqs import build_delegate
from model_engine_infra.redis.connection import connection_from_config

FIXTURES = Path(__file__).parent / "fixtures" / "llm_engine"


def keys_of(config: InfraConfig) -> dict[str, str]:
    return {finding.key: finding.message for finding in config.findings()}


# --- whole files ----------------------------------------------------------------------------------


def test_chart_values_with_every_cache_key_load() -> None:
    config = load_config(FIXTURES / "values_aws.yaml", env={})
    assert config.cloud_provider == "aws"
    assert config.celery_broker_type == "sqs"
    assert config.image_tag == "e360bfb1d21d9d4e7b7fcb6b29ca752095b4d0f4"
    assert choose_cache_redis(config).key == "cache_redis_aws_url"
    findings = keys_of(config)
    for ignored in ("cache_redis_aws_secret_name", "cache_redis_azure_host"):
        message = findings[f"config.values.launch.{ignored}"]
        assert "cache_redis_aws_url wins" in message
        assert "6379/15" not in message


def test_rendered_service_and_infra_configs_load_together() -> None:
    env = {
        "ML_INFRA_SERVICES_CONFIG_PATH": str(FIXTURES / "infra_service_config.yaml"),
        "DEPLOY_SERVICE_CONFIG_PATH": str(FIXTURES / "launch_service_config.yaml"),
    }
    config = load_config(env=env)
    assert (config.cloud_provider, config.celery_broker_type_redis) == ("aws", True)
    assert config.db_engine_pool_size == 10  # the chart quotes numbers
    assert config.secret("cache_redis_aws_url") == "redis://127.0.0.1:6379/15"
    assert "${team}" in (config.sqs_queue_tag_template or "")


def test_onprem_defaults_empty_strings_mean_unset() -> None:
    config = load_config(FIXTURES / "onprem_defaults.yaml", env={})
    assert config.s3_endpoint_url is None
    assert config.redis_host is None
    assert config.docker_registry_type == "oci"  # upstream's "onprem"
    assert config.s3_addressing_style == "path"
    with_env = load_config(
        FIXTURES / "onprem_defaults.yaml",
        env={"S3_ENDPOINT_URL": "http://minio:9000", "REDIS_HOST": "redis.company.local"},
    )
    assert (with_env.s3_endpoint_url, with_env.redis_host) == ("http://minio:9000", "redis.company.local")
    redis = connection_from_config(with_env)
    assert redis.redacted_url() == "redis://redis.company.local:6379/0"


def test_empty_string_is_kept_where_a_key_has_a_value_of_its_own(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text('cloud_provider: onprem\nenv: ""\nprometheus_server_address: ""\n')
    config = load_config(path, env={})
    assert config.env == ""  # not optional: the file's value stands
    assert config.prometheus_server_address is None


def test_gcp_values_use_the_gcp_url() -> None:
    config = load_config(FIXTURES / "values_gcp.yaml", env={})
    assert choose_cache_redis(config).key == "cache_redis_gcp_url"
    assert connection_from_config(config).redacted_url() == "redis://10.0.0.3:6379/0"
    message = keys_of(config)["config.values.launch.cache_redis_aws_url"]
    assert "cache_redis_gcp_url wins" in message


def test_azure_values_load() -> None:
    config = load_config(FIXTURES / "values_azure.yaml", env={})
    assert choose_cache_redis(config).key == "cache_redis_azure_host"
    assert config.redis_host is None
    assert config.servicebus_namespace == "llm-engine-sb"


@pytest.mark.parametrize(("written", "read"), [("onprem", "oci"), ("generic", "oci"), ("gar", "gar"), ("oci", "oci")])
def test_upstream_registry_types(tmp_path: Path, written: str, read: str) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(
        f"cloud_provider: gcp\ndocker_repo_prefix: us-docker.pkg.dev/p/r\ndocker_registry_type: {written}\n"
    )
    assert load_config(path, env={}).docker_registry_type == read


def test_generic_registry_builds_the_oci_client(tmp_path: Path) -> None:
    from model_engine_infra.images.oci import OCIDockerRepository

    path = tmp_path / "c.yaml"
    path.write_text(
        "cloud_provider: onprem\ndocker_repo_prefix: harbor.company.local/ml\ndocker_registry_type: generic\n"
    )
    with build_infra(load_config(path, env={})) as infra:
        assert type(infra.docker_repository) is OCIDockerRepository


# --- ${team} ------------------------------------------------------------------------------------------


def _sqs_config(**extra: Any) -> InfraConfig:
    template = (FIXTURES / "launch_service_config.yaml").read_text()
    tag_template = json.loads(template.split("sqs_queue_tag_template: ", 1)[1].split("\n", 1)[0])
    return InfraConfig(cloud_provider="aws", default_region="us-east-1", sqs_queue_tag_template=tag_template, **extra)


async def test_team_placeholder_is_filled_from_the_team_label() -> None:
    with mock_aws():
        delegate = build_delegate(_sqs_config(), None)  # type: ignore[arg-type]
        info = await delegate.create_queue_if_not_exists("e1", "my endpoint", "alice", {"team": "ml-infra", "x": "y"})
        tags = boto3.client("sqs", region_name="us-east-1").list_queue_tags(QueueUrl=info.queue_url)["Tags"]
        await delegate.close()
    assert tags["infra.scale.com/team"] == "ml-infra"
    assert tags["Launch-Endpoint-Created-By"] == "alice"


async def test_team_placeholder_without_a_team_label_is_refused_before_any_call() -> None:
    with mock_aws():
        delegate = build_delegate(_sqs_config(), None)  # type: ignore[arg-type]
        with pytest.raises(EndpointLabelsError, match="no 'team' label") as caught:
            await delegate.create_queue_if_not_exists("e2", "n", "alice", {"product": "x"})
        assert "sqs_queue_tag_template" in str(caught.value)
        assert boto3.client("sqs", region_name="us-east-1").list_queues().get("QueueUrls", []) == []
        await delegate.close()


def test_unknown_placeholder_is_still_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text('cloud_provider: aws\nredis_host: r\nsqs_queue_tag_template: \'{"t": "${teem}"}\'\n')
    with pytest.raises(ConfigError, match=r"\$\{teem\}"):
        load_config(path, env={})


# --- cache Redis precedence -------------------------------------------------------------------------------

ONPREM_URL = {"cache_redis_onprem_url": "redis://onprem:6379/0"}
AWS_URL = {"cache_redis_aws_url": "redis://aws:6379/0"}
AWS_SECRET = {"cache_redis_aws_secret_name": "prod/redis"}
GCP_URL = {"cache_redis_gcp_url": "redis://gcp:6379/0"}
AZURE_HOST = {"cache_redis_azure_host": "c.redis.cache.windows.net:6380"}


@pytest.mark.parametrize(
    ("cloud", "keys", "winner"),
    [
        ("aws", {**ONPREM_URL, **AWS_URL, **AWS_SECRET, **GCP_URL, **AZURE_HOST}, "cache_redis_onprem_url"),
        ("gcp", {**ONPREM_URL, **GCP_URL}, "cache_redis_onprem_url"),
        ("onprem", {**AWS_URL, **AWS_SECRET, **GCP_URL}, "cache_redis_aws_url"),
        ("onprem", {**AWS_SECRET, **AZURE_HOST}, None),  # upstream: redis://REDIS_HOST:port/0
        ("gcp", {**AWS_URL, **GCP_URL, **AZURE_HOST}, "cache_redis_gcp_url"),
        ("aws", {**AWS_URL, **AWS_SECRET, **GCP_URL}, "cache_redis_aws_url"),
        ("aws", {**AWS_SECRET, **AZURE_HOST}, "cache_redis_aws_secret_name"),
        ("azure", {**AZURE_HOST, **GCP_URL}, "cache_redis_azure_host"),
        ("local", {**GCP_URL, **AZURE_HOST}, "cache_redis_gcp_url"),
    ],
)
def test_precedence_is_upstreams(cloud: str, keys: dict[str, str], winner: str | None) -> None:
    config = InfraConfig(cloud_provider=cloud, **keys)  # type: ignore[arg-type]
    choice = choose_cache_redis(config)
    assert choice.key == winner
    assert set(choice.ignored) == set(keys) - {winner}
    assert choice.problem is None


@pytest.mark.parametrize(
    ("cloud", "keys", "key", "message"),
    [
        ("azure", AWS_URL, "cache_redis_aws_url", "not read on azure"),
        ("azure", {**AWS_SECRET, **AZURE_HOST}, "cache_redis_aws_secret_name", "not read on azure"),
        ("aws", AZURE_HOST, "cache_redis_aws_secret_name", "no cache Redis is configured for aws"),
    ],
)
def test_where_upstream_stops_we_stop(tmp_path: Path, cloud: str, keys: dict[str, str], key: str, message: str) -> None:
    lines = "\n".join(f"      {name}: {value}" for name, value in keys.items())
    path = tmp_path / "c.yaml"
    path.write_text(f"config:\n  values:\n    infra: {{cloud_provider: {cloud}}}\n    launch:\n{lines}\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path, env={})
    assert caught.value.key == f"config.values.launch.{key}"
    assert message in str(caught.value)
    assert "Fix:" in str(caught.value)
    assert "redis://aws" not in str(caught.value)


def test_gcp_without_the_gcp_url_uses_redis_host(tmp_path: Path) -> None:
    """Upstream stops here; the library is lenient: an infra file naming Redis by redis_host (or nothing) loads."""
    path = tmp_path / "c.yaml"
    path.write_text("cloud_provider: gcp\ndocker_repo_prefix: us-docker.pkg.dev/p/r\nredis_host: 10.0.0.3\n")
    config = load_config(path, env={})
    assert choose_cache_redis(config).key is None
    assert connection_from_config(config).redacted_url() == "redis://10.0.0.3:6379/0"


def test_connection_follows_the_winner() -> None:
    config = InfraConfig(cloud_provider="onprem", **AWS_URL, **GCP_URL)  # type: ignore[arg-type]
    assert connection_from_config(config).redacted_url() == "redis://aws:6379/0"
    config = InfraConfig(cloud_provider="gcp", **AWS_URL, **GCP_URL)  # type: ignore[arg-type]
    assert connection_from_config(config).redacted_url() == "redis://gcp:6379/0"
