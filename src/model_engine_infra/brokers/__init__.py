"""Brokers: one unit per broker, one broker per deployment, and the rules about choosing one.

`broker_for(config)` is the one choice: the endpoint queue delegate and every task queue come
from the unit it returns, so they cannot end up on different brokers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import ConfigError
from ..rules import Finding, Rule, Severity, error_rule, finding_rule
from ..selection import CHART_DEFAULT_BROKER, broker_name, chart_broker, profile_of
from .base import BrokerSettings, BrokerType, BrokerUnit, RedisBroker, TaskVisibility

if TYPE_CHECKING:
    from ..config.model import InfraConfig

__all__ = [
    "SELECTION_RULES",
    "BrokerSettings",
    "BrokerType",
    "BrokerUnit",
    "RedisBroker",
    "TaskVisibility",
    "broker_for",
    "broker_type_for",
    "check_fits",
    "fits",
    "get_unit",
    "task_visibility",
    "unit_for",
]


def get_unit(name: str) -> BrokerUnit:
    """The broker unit registered as ``name`` (imports only its light unit module)."""
    from ..registry import resolve_backend

    unit = resolve_backend("broker", name)
    if not isinstance(unit, BrokerUnit):
        raise TypeError(f"the broker backend {name!r} resolves to {unit!r}, not a BrokerUnit")
    return unit


def unit_for(broker_type: BrokerType | str) -> BrokerUnit:
    """The unit behind a `BrokerType` (``redis_24h`` is the Redis broker with a long visibility)."""
    name = broker_type.value if isinstance(broker_type, BrokerType) else str(broker_type).lower()
    return get_unit("redis" if name == BrokerType.REDIS_24H.value else name)


def broker_for(config: InfraConfig) -> BrokerUnit | None:
    """The deployment's one broker, or None when neither the config nor its profile names one."""
    name = broker_name(config)
    return None if name is None else get_unit(name)


def broker_type_for(config: InfraConfig) -> BrokerType | str:
    """The `BrokerType` the config selects (``redis_24h`` where the profile keeps Redis tasks 24 h)."""
    unit = broker_for(config)
    if unit is None:
        raise ConfigError(
            f"the {config.cloud_provider} provider names no broker and none is configured",
            key="broker",
            value=None,
            fix="set broker (or celeryBrokerType) to one of the registered brokers",
        )
    return unit.broker_type(config)


#: llm-engine's two task queues: async inference on the endpoints' queues, and endpoint creation.
TASK_QUEUE_ROLES = ("inference", "infra")


def task_visibility(config: InfraConfig, role: str = "inference") -> TaskVisibility:
    """The visibility llm-engine gives each task queue: endpoint creation ("infra") 1 h everywhere;
    inference the profile's Redis visibility on Redis (24 h on-prem), else 1 h. On Redis it names the database."""
    if role not in TASK_QUEUE_ROLES:
        raise ValueError(f"unknown task queue role {role!r}; use one of {', '.join(TASK_QUEUE_ROLES)}")
    if role == "inference" and broker_for(config) is not None and broker_type_for(config) == BrokerType.REDIS_24H:
        return TaskVisibility.VISIBILITY_24H
    return TaskVisibility.VISIBILITY_1H


def _offered_by(name: str) -> list[str]:
    from ..registry import available_providers, get_provider

    return [p for p in available_providers() if name in get_provider(p).brokers]


def fits(config: InfraConfig, name: str) -> bool:
    """False for a broker that exists only where other profiles run (SQS off AWS, Service Bus off Azure).

    A profile lists the brokers its cloud offers; a broker no profile lists (a plugin's) fits anywhere.
    """
    profile = profile_of(config)
    return not profile.brokers or name in profile.brokers or not _offered_by(name)


def check_fits(config: InfraConfig, unit: BrokerUnit) -> None:
    """Refuse a broker that does not exist on the config's cloud (the finding `broker-fits-cloud` warns first)."""
    if fits(config, unit.name):
        return
    default = profile_of(config).broker or "none"
    where = " or ".join(_offered_by(unit.name))
    raise ConfigError(
        f"the {unit.name} broker does not exist on cloud_provider {config.cloud_provider!r} "
        f"(it needs {where}); every async endpoint would fail",
        key="celeryBrokerType",
        value=unit.name,
        fix=f"remove celeryBrokerType to follow the cloud ({default}), or set celery_broker_type_redis: true for Redis",
    )


def _chart_choices(instead_of: str) -> str:
    """What celeryBrokerType should say on each other cloud (e.g. "elasticache (Redis) on gcp/onprem")."""
    from ..registry import available_providers, get_provider

    clouds: dict[str, list[str]] = {}
    for name in available_providers():
        default = get_provider(name).broker
        if default is not None and default != instead_of:
            clouds.setdefault(default, []).append(name)
    choices = []
    for broker, names in clouds.items():
        unit = get_unit(broker)
        if unit.chart_name is not None:
            label = unit.chart_name if unit.chart_name == unit.name else f"{unit.chart_name} ({unit.label})"
            choices.append(f"{label} on {'/'.join(names)}")
    return ", ".join(choices) or "the provider's own broker"


def _chart_key(config: InfraConfig) -> str:
    from ..config.keys import key_path

    return key_path(config, "celery_broker_type")


def _selecting_key(config: InfraConfig) -> str:
    from ..config.keys import key_path

    return key_path(config, "broker" if config.broker is not None else "celery_broker_type")


@error_rule("broker-agrees-with-chart", "broker", "celery_broker_type", "celery_broker_type_redis")
def _agrees_with_chart(config: InfraConfig) -> None:
    """``broker`` and the chart's keys must not disagree: llm-engine's services read the chart's."""
    from ..config.keys import fail, key_path

    chart = chart_broker(config)
    if config.broker is None or chart is None or chart == config.broker:
        return
    chart_key = "celery_broker_type_redis" if config.celery_broker_type_redis else "celery_broker_type"
    raise fail(
        config,
        "broker",
        f"says {config.broker} but {key_path(config, chart_key)} selects {chart}; the queue delegate and the "
        "services' Celery would use different brokers",
        "make them agree, or remove one of them",
    )


@finding_rule("broker-fits-cloud", "broker", "celery_broker_type")
def _fits_cloud(config: InfraConfig) -> list[Finding]:
    from ..registry import available_backends

    name = broker_name(config)
    if name is None or name not in available_backends("broker") or fits(config, name):
        return []
    profile = profile_of(config)
    unit = get_unit(name)
    chart = config.celery_broker_type or name
    where = " or ".join(_offered_by(name))
    return [
        Finding(
            Severity.HIGH,
            _selecting_key(config),
            f"celeryBrokerType is {chart} but cloud_provider is {config.cloud_provider}: {unit.label} exists only "
            f"on {where}, so every async endpoint is broken (brokers on {config.cloud_provider}: "
            f"{', '.join(profile.brokers)}). Use {_chart_choices(name)}",
        )
    ]


@finding_rule("chart-broker-unset", "celery_broker_type")
def _chart_unset(config: InfraConfig) -> list[Finding]:
    """The chart defaults celeryBrokerType to sqs: wrong wherever the profile's broker is another."""
    profile = profile_of(config)
    if chart_broker(config) is not None or not profile.cluster or profile.broker in (None, CHART_DEFAULT_BROKER):
        return []
    unit = get_unit(profile.broker)
    if unit.chart_hint is None:
        return []
    return [
        Finding(
            Severity.WARNING,
            _chart_key(config),
            f"celeryBrokerType is not set here; the Helm chart defaults it to {CHART_DEFAULT_BROKER}, which is "
            f"wrong on {config.cloud_provider} (all async endpoints broken). Set celeryBrokerType: {unit.chart_hint}",
        )
    ]


@finding_rule("redis-instead-of-default", "celery_broker_type")
def _redis_instead(config: InfraConfig) -> list[Finding]:
    """celeryBrokerType elasticache where the profile's broker is another: say what that means."""
    profile = profile_of(config)
    chart = config.celery_broker_type
    if config.celery_broker_type_redis or chart not in ("elasticache", "redis") or profile.broker in (None, "redis"):
        return []
    note = get_unit(profile.broker).replaced_by_redis
    if note is None:
        return []
    severity, text = note
    return [Finding(severity, _selecting_key(config), text.format(chart=chart, cloud=config.cloud_provider))]


SELECTION_RULES: tuple[Rule, ...] = (_agrees_with_chart, _fits_cloud, _chart_unset, _redis_instead)
