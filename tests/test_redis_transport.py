"""The Redis transport: worker connections give a lost connection back to kombu instead of hanging.

The failure it prevents (a worker blocked for ever in a pub/sub read after Redis killed its
connections) is exercised on redis-server by integration/test_redis_rotation.py; here, the wiring.
"""

from __future__ import annotations

import pytest
from kombu.transport import redis as kombu_redis

from model_engine_infra.brokers.redis import REDIS_TRANSPORT_TARGET
from model_engine_infra.config import InfraConfig
from model_engine_infra.tasks.app import celery_app
from model_engine_infra.tasks.redis_transport import Channel, Transport


def test_every_redis_broker_app_uses_it() -> None:
    for cloud in ("gcp", "onprem"):
        config = InfraConfig(cloud_provider=cloud, redis_host="127.0.0.1", gcp_project_id="p")
        app = celery_app("t", config=config)
        assert app.conf.broker_transport == REDIS_TRANSPORT_TARGET
        with app.connection_for_write() as connection:
            assert isinstance(connection.transport, Transport)


def test_worker_pool_does_not_retry_inside_redis_py_but_publishing_does(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kombu_redis.Channel, "_connparams", lambda self, asynchronous=False: {"host": "redis"})
    channel = Channel.__new__(Channel)  # the parameters alone: no server to connect to
    worker = channel._connparams(asynchronous=True)
    assert worker["retry"].get_retries() == 0
    assert worker["host"] == "redis"
    assert "retry" not in channel._connparams(asynchronous=False)  # redis-py's default retries for publishes
