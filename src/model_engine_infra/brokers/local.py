"""The local broker: kombu's filesystem transport under ``local_data_dir`` (one machine, no server)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..rules import Rule
from .base import BrokerSettings, BrokerType, BrokerUnit, RedisBroker, TaskVisibility

if TYPE_CHECKING:
    from ..config.model import InfraConfig
    from ..tasks.presence import Presence

LOCAL_TRANSPORT_TARGET = "model_engine_infra.tasks.local_transport:Transport"
LOCAL_POLLING_INTERVAL = 0.05
RULES: tuple[Rule, ...] = ()


class LocalBrokerUnit(BrokerUnit):
    name = "local"
    label = "kombu filesystem"
    extras = ("local",)
    max_message_bytes = None
    counts_in_flight = False  # a delivered message leaves the folder
    per_queue_visibility = False
    delegate_target = "model_engine_infra.queues.local:build_delegate"
    transport = LOCAL_TRANSPORT_TARGET
    keys = ("local_data_dir",)
    rules = RULES

    def check_queue_name(self, name: str) -> str:
        from ..queues.names import local_queue_name

        return local_queue_name(name)

    def queue_presence(self) -> Presence:
        from ..tasks import presence

        return presence.LOCAL

    def settings(
        self,
        config: InfraConfig,
        *,
        broker_type: BrokerType | str,
        visibility: TaskVisibility,
        redis: RedisBroker | str | None = None,
        endpoint_url: str | None = None,
    ) -> BrokerSettings:
        from ..queues.local import ensure_broker_dirs, local_broker_paths

        paths = local_broker_paths(config)  # the queue delegate counts messages in the same folders
        ensure_broker_dirs(paths)
        options: dict[str, Any] = {k: v for k, v in paths.items() if k != "meta_folder"}
        options.update(polling_interval=LOCAL_POLLING_INTERVAL, store_processed=False)
        return BrokerSettings(broker_type, "filesystem://", LOCAL_TRANSPORT_TARGET, options, {}, None, "base64")


BROKER = LocalBrokerUnit()
