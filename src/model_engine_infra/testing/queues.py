"""``declare_queue``: make a queue exist the way a worker consuming it does, for tests and demos.

``send_task`` refuses queues that do not exist (docs/queues.md). Endpoint queues come from the queue
delegate; any other queue (a builder service's, or a test's ad-hoc name) exists once a worker declares
it. This does exactly that declaration, through the gateway's own Celery app, without a worker.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..tasks.gateway import CeleryTaskQueueGateway


def declare_queue(gateway: CeleryTaskQueueGateway, name: str) -> None:
    """Declare ``name`` (queue, direct exchange and binding, as Celery's workers do) on the gateway's broker."""
    from kombu.entity import Exchange, Queue

    queue: Any = Queue(name, Exchange(name, "direct"), routing_key=name)  # type: ignore[no-untyped-call]
    with gateway.app.connection_for_write() as connection:
        queue(connection.default_channel).declare()
