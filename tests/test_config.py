"""load_config: the real deployment shapes, precedence, provenance, and every bad-input case."""

from __future__ import annotations

import json
import textwrap
import warnings
from pathlib import Path

import pytest

from model_engine_infra import load_config
from model_engine_infra.config import ConfigWarning, InfraConfig
from model_engine_infra.errors import ConfigError, UnknownProviderError

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "deploy"
EXAMPLE_FILES = sorted(EXAMPLES.glob("*/*.yaml"))


def write(tmp_path: Path, text: str, name: str = "values.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def test_examples_exist() -> None:
    clouds = ("aws", "azure", "gcp", "local", "onprem")
    expected = [EXAMPLES / cloud / name for cloud in clouds for name in ("infra-config.yaml", "values.yaml")]
    assert expected == EXAMPLE_FILES


@pytest.mark.parametrize("path", EXAMPLE_FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_each_example_loads_unchanged(path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConfigWarning)  # no false "did you mean" on real files
        config = load_config(path, env={})
    assert config.cloud_provider == path.parent.name
    assert config.source_of("cloud_provider").startswith(str(path))


@pytest.mark.parametrize("cloud", ["aws", "azure", "gcp", "onprem", "local"])
def test_both_shapes_of_each_example_say_the_same(cloud: str) -> None:
    """values.yaml (the chart's shape) and infra-config.yaml (the flat pod file) describe one deployment."""
    values = load_config(EXAMPLES / cloud / "values.yaml", env={}).model_dump()
    flat = load_config(EXAMPLES / cloud / "infra-config.yaml", env={}).model_dump()
    for template in ("sqs_queue_policy_template", "sqs_queue_tag_template"):  # one JSON, two layouts
        for dump in (values, flat):
            dump[template] = json.loads(dump[template]) if dump[template] else None
    assert values == flat


def test_helm_values_shape_maps_every_block() -> None:
    config = load_config(EXAMPLES / "azure" / "values.yaml", env={})
    assert config.cloud_provider == "azure"
    assert config.servicebus_namespace == "acme-model-engine"
    assert config.abs_account_name == "acmemodelengine"
    assert config.keyvault_name == "acme-model-engine-kv"
    assert config.azure_object_id == "6f1c2a3b-4d5e-4f60-8a7b-9c0d1e2f3a4b"
    assert config.cache_redis_azure_host == "acme-model-engine.redis.cache.windows.net:6380"
    assert config.celery_broker_type == "servicebus"
    assert config.source_of("servicebus_namespace").endswith("values.yaml:azure.servicebus_namespace")
    assert config.source_of("vllm_repository").endswith(":config.values.launch.vllm_repository")


def test_top_level_chart_keys() -> None:
    config = load_config(EXAMPLES / "onprem" / "values.yaml", env={})
    assert config.celery_broker_type_redis is True
    assert config.redis_port == 6379  # "6379" in the file
    assert config.s3_endpoint_url == "http://minio.model-engine.svc.cluster.local:9000"
    assert config.source_of("s3_endpoint_url").endswith(":s3EndpointUrl")
    gcp = load_config(EXAMPLES / "gcp" / "values.yaml", env={})
    assert gcp.redis_host == "10.20.0.3"


def test_flat_file_shape_and_numbers_as_strings(tmp_path: Path) -> None:
    config = load_config(EXAMPLES / "aws" / "infra-config.yaml", env={})
    assert config.ml_account_id == "111122223333"
    assert config.default_region == "us-west-2"
    unquoted = write(tmp_path, "cloud_provider: onprem\nml_account_id: 123456789012\ntag: 1234\n")
    config = load_config(unquoted, env={})
    assert config.ml_account_id == "123456789012"
    assert config.image_tag == "1234"


def test_image_block_and_tag(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        tag: abc123
        image:
          gatewayRepository: reg.internal/model-engine
        config: {values: {infra: {cloud_provider: onprem}}}
        """,
    )
    config = load_config(path, env={})
    assert config.image_tag == "abc123"
    assert config.gateway_repository == "reg.internal/model-engine"


def test_env_files_are_merged_service_file_wins(tmp_path: Path) -> None:
    infra = write(tmp_path, "cloud_provider: onprem\nredis_host: a\ns3_bucket: one\n", "infra.yaml")
    service = write(tmp_path, "s3_bucket: two\nendpoint_namespace: ns\n", "service.yaml")
    config = load_config(env={"ML_INFRA_SERVICES_CONFIG_PATH": str(infra), "DEPLOY_SERVICE_CONFIG_PATH": str(service)})
    assert (config.redis_host, config.s3_bucket, config.endpoint_namespace) == ("a", "two", "ns")
    assert config.source_of("s3_bucket") == f"{service}:s3_bucket"


def test_deployment_env_vars_override_files() -> None:
    env = {
        "SERVICEBUS_NAMESPACE": "from-env",
        "SERVICEBUS_KEEP_ALIVE_INTERVAL": "45",
        "ABS_ACCOUNT_NAME": "acct",
        "ABS_CONTAINER_NAME": "cont",
        "AZURE_OBJECT_ID": "oid",
        "AZURE_CLIENT_ID": "cid",
        "KEYVAULT_NAME": "my-kv",
        "S3_ENDPOINT_URL": "http://minio:9000",
        "REDIS_HOST": "redis.internal",
        "REDIS_PORT": "6380",
        "REDIS_AUTH_TOKEN": "tok",
        "SQS_PROFILE": "sqs-p",
        "AWS_PROFILE": "aws-p",
        "GCP_PROJECT_ID": "proj",
    }
    config = load_config(EXAMPLES / "azure" / "values.yaml", env=env)
    assert config.servicebus_namespace == "from-env"
    assert config.servicebus_keep_alive_interval == 45
    assert (config.abs_account_name, config.abs_container_name) == ("acct", "cont")
    assert (config.azure_object_id, config.azure_client_id, config.keyvault_name) == ("oid", "cid", "my-kv")
    assert config.s3_endpoint_url == "http://minio:9000"
    assert (config.redis_host, config.redis_port) == ("redis.internal", 6380)
    assert config.secret("redis_auth_token") == "tok"
    assert (config.sqs_profile, config.aws_profile, config.gcp_project_id) == ("sqs-p", "aws-p", "proj")
    assert config.source_of("redis_port") == "env:REDIS_PORT"


def test_cloud_swapped_by_env() -> None:
    config = load_config(EXAMPLES / "onprem" / "values.yaml", env={"MODEL_ENGINE_INFRA_CLOUD_PROVIDER": "local"})
    assert config.cloud_provider == "local"
    assert config.source_of("cloud_provider") == "env:MODEL_ENGINE_INFRA_CLOUD_PROVIDER"


def test_generic_env_override_and_lists() -> None:
    config = load_config(env={"MODEL_ENGINE_INFRA_INSECURE_REGISTRIES": "reg.a:5000, reg.b"})
    assert config.insecure_registries == ("reg.a:5000", "reg.b")


def test_defaults_without_files_are_local() -> None:
    config = load_config(env={})
    assert config.cloud_provider == "local"
    assert config.source_of("cloud_provider") == "default"
    assert config.hf_user_fine_tuned_weights_prefix.endswith("fine_tuned_weights")
    assert config.hf_user_fine_tuned_weights_prefix.startswith("/")


def test_file_without_cloud_provider_gets_chart_default(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, "redis_host: r\n"), env={})
    assert config.cloud_provider == "aws"
    assert "Helm chart" in config.source_of("cloud_provider")


def test_config_is_immutable() -> None:
    config = load_config(env={})
    with pytest.raises(Exception, match="frozen"):
        config.cloud_provider = "aws"  # type: ignore[misc]


def test_secrets_are_hidden_in_repr() -> None:
    canary = "canary-pass-8d1f"
    config = load_config(
        env={
            "MODEL_ENGINE_INFRA_CACHE_REDIS_ONPREM_URL": f"redis://u:{canary}@h:6379/0",
            "REDIS_AUTH_TOKEN": canary,
            "MODEL_ENGINE_SECRET_DB": canary,
        }
    )
    assert canary not in repr(config)
    assert canary not in str(config)
    assert canary not in str(config.model_dump())
    assert config.secret("cache_redis_onprem_url") == f"redis://u:{canary}@h:6379/0"
    assert config.env_secrets["DB"].get_secret_value() == canary


def test_near_miss_key_warns_naming_both(tmp_path: Path) -> None:
    path = write(tmp_path, "config:\n  values:\n    infra:\n      cloud_provder: gcp\n      redis_host: r\n")
    with pytest.warns(ConfigWarning, match=r"cloud_provder.*cloud_provider"):
        load_config(path, env={})


def test_unknown_far_keys_are_ignored_silently(tmp_path: Path) -> None:
    path = write(tmp_path, "cloud_provider: onprem\nidentity_service_url: x\nballoons: []\n")
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConfigWarning)
        load_config(path, env={})


# --- bad input: type, key named, value named, fix given ------------------------------------------


def assert_config_error(err: ConfigError, key: str, value: object | None = None) -> None:
    assert err.key == key, (err.key, str(err))
    assert key in str(err)
    if value is not None:
        assert err.value == value
        assert str(value) in str(err)
    assert "Fix:" in str(err)


def test_unknown_provider_lists_known_and_suggests(tmp_path: Path) -> None:
    path = write(tmp_path, "config: {values: {infra: {cloud_provider: azrue}}}\n")
    with pytest.raises(UnknownProviderError) as info:
        load_config(path, env={})
    assert_config_error(info.value, "config.values.infra.cloud_provider", "azrue")
    assert "did you mean 'azure'" in str(info.value)
    for name in ("aws", "azure", "gcp", "onprem", "local"):
        assert name in str(info.value)


def test_unknown_provider_from_env() -> None:
    with pytest.raises(UnknownProviderError) as info:
        load_config(env={"MODEL_ENGINE_INFRA_CLOUD_PROVIDER": "digitalocean"})
    assert_config_error(info.value, "MODEL_ENGINE_INFRA_CLOUD_PROVIDER", "digitalocean")


@pytest.mark.parametrize(
    ("a", "b", "winner"),
    [
        ("cache_redis_aws_url: redis://h:6379/0", "cache_redis_aws_secret_name: s", "cache_redis_aws_url"),
        ("cache_redis_aws_url: redis://h:6379/0", "cache_redis_azure_host: h:6380", "cache_redis_aws_url"),
        ("cache_redis_aws_secret_name: s", "cache_redis_azure_host: h:6380", "cache_redis_aws_secret_name"),
    ],
)
def test_more_than_one_cache_redis_source_is_a_finding(tmp_path: Path, a: str, b: str, winner: str) -> None:
    """llm-engine's order picks one on aws and ignores the rest; the ignored key is reported, not refused."""
    path = write(
        tmp_path,
        f"config:\n  values:\n    infra: {{cloud_provider: aws}}\n    launch:\n      {a}\n      {b}\n",
    )
    config = load_config(path, env={})
    second = b.split(":")[0]
    (finding,) = [f for f in config.findings() if f.key == f"config.values.launch.{second}"]
    assert f"{winner} wins" in finding.message
    assert "redis://h" not in finding.message  # the URL may hold a password


def test_onprem_url_may_accompany_the_exclusive_keys(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "cloud_provider: aws\ncache_redis_onprem_url: redis://a:6379/0\ncache_redis_aws_secret_name: s\n",
    )
    assert load_config(path, env={}).cache_redis_aws_secret_name == "s"


@pytest.mark.parametrize("cloud", ["aws", "azure"])
def test_no_cache_redis_on_aws_or_azure(tmp_path: Path, cloud: str) -> None:
    path = write(tmp_path, f"cloud_provider: {cloud}\nprometheus_server_address: http://p:9090\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    assert info.value.key is not None
    assert info.value.key.startswith("config.values.launch.cache_redis_")
    assert "Fix:" in str(info.value)


@pytest.mark.parametrize("cloud", ["gcp", "onprem"])
def test_no_cache_redis_is_fine_on_gcp_and_onprem(tmp_path: Path, cloud: str) -> None:
    extra = "docker_repo_prefix: us-docker.pkg.dev/p/r\n" if cloud == "gcp" else ""
    assert load_config(write(tmp_path, f"cloud_provider: {cloud}\n{extra}"), env={}).cloud_provider == cloud


@pytest.mark.parametrize(
    "prefix",
    [
        "gcr.io/my-project",
        "us-docker.pkg.dev/my-project",
        "us-docker.pkg.dev/p/r/extra",
        "docker.pkg.dev/p/r",
    ],
)
def test_bad_gar_prefix_on_gcp(tmp_path: Path, prefix: str) -> None:
    path = write(tmp_path, f"config: {{values: {{infra: {{cloud_provider: gcp, docker_repo_prefix: '{prefix}'}}}}}}\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    assert_config_error(info.value, "config.values.infra.docker_repo_prefix", prefix)
    assert "{location}-docker.pkg.dev/{project}/{repository}" in str(info.value)


def test_gcp_with_explicit_oci_registry_is_allowed(tmp_path: Path) -> None:
    path = write(tmp_path, "cloud_provider: gcp\ndocker_repo_prefix: gcr.io/p\ndocker_registry_type: oci\n")
    assert load_config(path, env={}).docker_registry_type == "oci"


@pytest.mark.parametrize("name", ["sqs_queue_policy_template", "sqs_queue_tag_template"])
def test_template_not_json(tmp_path: Path, name: str) -> None:
    path = write(
        tmp_path,
        "config:\n  values:\n    infra: {cloud_provider: aws, redis_host: r}\n    launch:\n"
        f"      {name}: '{{\"a\": ${{queue_name}}}}'\n",
    )
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    assert info.value.key == f"config.values.launch.{name}"
    assert "JSON" in str(info.value)


def test_template_unknown_placeholder(tmp_path: Path) -> None:
    path = write(tmp_path, 'cloud_provider: aws\nredis_host: r\nsqs_queue_tag_template: \'{"a": "${account_id}"}\'\n')
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    assert_config_error(info.value, "sqs_queue_tag_template", "account_id")
    assert "${queue_name}" in str(info.value)


def test_sqs_templates_are_the_sqs_brokers_rule(tmp_path: Path) -> None:
    """The rule runs where SQS is the broker; a deployment on Redis does not read the templates."""
    broken = 'sqs_queue_tag_template: \'{"a": "${account_id}"}\'\n'
    assert load_config(write(tmp_path, "cloud_provider: onprem\n" + broken), env={}).cloud_provider == "onprem"
    with pytest.raises(ConfigError, match="account_id"):
        load_config(write(tmp_path, "cloud_provider: onprem\nbroker: sqs\n" + broken, "b.yaml"), env={})


def test_templates_of_the_examples_render_with_hostile_values() -> None:
    from model_engine_infra.queues.templates import render_template

    config = load_config(EXAMPLES / "aws" / "values.yaml", env={})
    assert config.sqs_queue_policy_template is not None
    doc = render_template(
        config.sqs_queue_policy_template,
        {"queue_name": "q", "endpoint_id": "e", "endpoint_name": 'a"b\\c', "endpoint_created_by": "u"},
        key="k",
    )
    assert doc["Statement"][0]["Resource"].endswith(":q")


@pytest.mark.parametrize(
    ("env_var", "value"),
    [
        ("REDIS_PORT", "abc"),
        ("REDIS_PORT", "0"),
        ("REDIS_PORT", "-1"),
        ("REDIS_PORT", "70000"),
        ("SERVICEBUS_KEEP_ALIVE_INTERVAL", "soon"),
        ("SERVICEBUS_KEEP_ALIVE_INTERVAL", "0"),
    ],
)
def test_bad_ports_and_intervals(env_var: str, value: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(env={env_var: value})
    assert_config_error(info.value, env_var, value)  # the value as written, from pydantic's range check


def test_bad_port_in_file_names_helm_path(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, "cloud_provider: onprem\nredisPort: six\n"), env={})
    assert_config_error(info.value, "redisPort", "six")
    assert "whole number" in str(info.value)


@pytest.mark.parametrize(
    ("env_var", "value"),
    [
        ("S3_ENDPOINT_URL", "minio:9000"),
        ("S3_ENDPOINT_URL", "ftp://minio"),
        ("MODEL_ENGINE_INFRA_PROMETHEUS_SERVER_ADDRESS", "http://"),
        ("MODEL_ENGINE_INFRA_S3_ENDPOINT_URL", "http://h:notaport"),
    ],
)
def test_malformed_urls(env_var: str, value: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(env={env_var: value})
    assert_config_error(info.value, env_var, value)
    assert "malformed URL" in str(info.value)


def test_malformed_secret_url_never_shows_the_password() -> None:
    with pytest.raises(ConfigError) as info:
        load_config(env={"MODEL_ENGINE_INFRA_CACHE_REDIS_ONPREM_URL": "http://u:hunter2@h"})
    assert info.value.key == "MODEL_ENGINE_INFRA_CACHE_REDIS_ONPREM_URL"
    assert "hunter2" not in str(info.value)
    assert info.value.value == "***"


@pytest.mark.parametrize(
    ("env_var", "value"),
    [
        # An unencoded '/' or '#' in the password ends the netloc early: the password becomes the "port".
        ("MODEL_ENGINE_INFRA_CACHE_REDIS_ONPREM_URL", "redis://:hunter2/x@h:6379/0"),
        ("MODEL_ENGINE_INFRA_CACHE_REDIS_ONPREM_URL", "redis://:hunter2#x@h:6379/0"),
        ("MODEL_ENGINE_INFRA_PROMETHEUS_SERVER_ADDRESS", "http://admin:hunter2/x@prom:9090"),
        ("MODEL_ENGINE_INFRA_PROMETHEUS_SERVER_ADDRESS", "ftp://admin:hunter2@prom:9090"),
    ],
)
def test_malformed_url_error_never_shows_a_password(env_var: str, value: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(env={"MODEL_ENGINE_INFRA_CLOUD_PROVIDER": "onprem", env_var: value})
    assert info.value.key == env_var
    assert "hunter2" not in str(info.value)
    assert "hunter2" not in repr(info.value.value)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://app:hunter2@redis:6379/0", "redis://app:***@redis:6379/0"),
        ("redis://:hunter2/x@redis:6379/0", "redis://:***@redis:6379/0"),
        ("http://admin:hunter2#x@prom:9090/api", "http://admin:***@prom:9090/api"),
        (
            "https://acct.blob.core.windows.net/c/k?sv=1&sig=hunter2",
            "https://acct.blob.core.windows.net/c/k?sv=1&sig=***",
        ),
        ("s3://bucket/models/a@b/key", "s3://bucket/models/a@b/key"),
    ],
)
def test_redact_url(url: str, shown: str) -> None:
    from model_engine_infra.redact import redact_url

    assert redact_url(url) == shown


def test_bad_azure_redis_host(tmp_path: Path) -> None:
    path = write(tmp_path, "cloud_provider: azure\ncache_redis_azure_host: my-cache.redis.cache.windows.net\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    assert_config_error(info.value, "cache_redis_azure_host", "my-cache.redis.cache.windows.net")


def test_bad_choice_lists_the_choices(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, "cloud_provider: aws\ncelery_broker_type: rabbit\n"), env={})
    assert_config_error(info.value, "celery_broker_type", "rabbit")
    assert "'servicebus'" in str(info.value)


def test_yaml_that_does_not_parse_names_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, "cloud_provider: aws\nconfig:\n  values: [unclosed\n  other: 1\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    assert "line 4" in str(info.value) or "line 3" in str(info.value)
    assert str(path) in str(info.value)


def test_yaml_root_must_be_mapping(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="mapping"):
        load_config(write(tmp_path, "- a\n- b\n"), env={})


def test_missing_file_explicit_and_from_env(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError) as info:
        load_config(missing, env={})
    assert info.value.value == str(missing)
    with pytest.raises(ConfigError) as info:
        load_config(env={"DEPLOY_SERVICE_CONFIG_PATH": str(missing)})
    assert_config_error(info.value, "DEPLOY_SERVICE_CONFIG_PATH", str(missing))


def test_servicebus_pool_limit_zero_is_refused(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "cloud_provider: azure\ncache_redis_azure_host: h:6380\ncelery_broker_pool_limit: 0\n",
    )
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    assert_config_error(info.value, "celery_broker_pool_limit", 0)
    assert "keep-alive" in str(info.value)
    ok = write(tmp_path, "cloud_provider: onprem\ncelery_broker_pool_limit: 0\n", "ok.yaml")
    assert load_config(ok, env={}).celery_broker_pool_limit == 0


def test_direct_construction_has_defaults() -> None:
    config = InfraConfig(cloud_provider="aws", s3_bucket="b")
    assert config.redis_port == 6379
    assert config.source_of("s3_bucket") == "argument"
    assert config.is_set("s3_bucket")
    assert not config.is_set("redis_port")
    assert config.source_of("redis_port") == "default"


def test_chart_secret_blocks(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "secrets: {cloudDatabaseSecretName: prod/db}\nredis: {auth: canary-redis-auth}\n"
        "config: {values: {infra: {cloud_provider: onprem}}}\n",
    )
    config = load_config(path, env={})
    assert config.cloud_database_secret_name == "prod/db"
    assert config.secret("redis_auth_token") == "canary-redis-auth"
    assert "canary-redis-auth" not in repr(config)


def test_sqs_endpoint_url_reaches_delegate_and_broker() -> None:
    from model_engine_infra import build_infra
    from model_engine_infra.tasks.broker import BrokerType
    from model_engine_infra.tasks.settings import broker_settings

    config = load_config(
        env={
            "MODEL_ENGINE_INFRA_CLOUD_PROVIDER": "aws",
            "REDIS_HOST": "r",
            "AWS_ENDPOINT_URL_SQS": "http://127.0.0.1:4566",
        }
    )
    assert config.sqs_endpoint_url == "http://127.0.0.1:4566"
    assert build_infra(config).queue_delegate.endpoint_url == "http://127.0.0.1:4566"  # type: ignore[attr-defined]
    settings = broker_settings(config, BrokerType.SQS)
    assert "127.0.0.1:4566" in repr(settings)


def test_repr_masks_passwords_in_plain_url_keys() -> None:
    config = load_config(env={"MODEL_ENGINE_INFRA_PROMETHEUS_SERVER_ADDRESS": "http://admin:hunter2@prom:9090"})
    assert "hunter2" not in repr(config)
    assert "http://admin:***@prom:9090" in repr(config)
    assert config.prometheus_server_address == "http://admin:hunter2@prom:9090"
