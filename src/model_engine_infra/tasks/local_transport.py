"""kombu's filesystem transport, with worker wake-ups short enough for a quick shutdown.

Celery's blocking worker loop drains the broker for 2 s per cycle and runs one more cycle after
a shutdown signal, so a worker on kombu's filesystem transport takes ~3.5 s to stop. The local
provider's worker is started and stopped by demos and tests, so here a drain that was given a
timeout returns within `MAX_DRAIN_SECONDS`; the loop simply cycles again. Messages are read
exactly as kombu reads them (the folder is still polled every ``polling_interval``).
"""

from __future__ import annotations

from typing import Any

from kombu.transport import filesystem

MAX_DRAIN_SECONDS = 0.25


class Transport(filesystem.Transport):  # type: ignore[misc]
    @property
    def default_connection_params(self) -> dict[str, Any]:
        """Folders, not a host: without this kombu warns "No hostname was supplied" on every start."""
        return {}

    def drain_events(self, connection: Any, timeout: Any = None, **kwargs: Any) -> Any:
        if timeout is not None:
            timeout = min(timeout, MAX_DRAIN_SECONDS)
        return super().drain_events(connection, timeout=timeout, **kwargs)  # type: ignore[no-untyped-call]
