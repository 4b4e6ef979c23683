"""kombu's filesystem transport, with whole messages only and wake-ups short enough for a quick shutdown.

kombu writes a message straight under its final name, so a consumer polling the folder can take
the file while it is still empty and drop the message with a JSON error. Here each message is
written under a hidden name no consumer matches and renamed into place once complete (a rename
within one folder is atomic).

Celery's blocking worker loop drains the broker for 2 s per cycle and runs one more cycle after
a shutdown signal, so a worker on kombu's filesystem transport takes ~3.5 s to stop. The local
provider's worker is started and stopped by demos and tests, so here a drain that was given a
timeout returns within `MAX_DRAIN_SECONDS`; the loop simply cycles again. Messages are read
exactly as kombu reads them (the folder is still polled every ``polling_interval``).
"""

from __future__ import annotations

import os
import uuid
from time import monotonic
from typing import Any

from kombu.exceptions import ChannelError
from kombu.transport import filesystem
from kombu.utils.encoding import str_to_bytes
from kombu.utils.json import dumps

MAX_DRAIN_SECONDS = 0.25
# ".<stamp>_<id>.<queue>.msg": kombu matches a queue by what follows the first dot, so no consumer
# takes it; one character longer than the final name, within what the queue-name limit leaves
PARTIAL_PREFIX = "."


class Channel(filesystem.Channel):  # type: ignore[misc]
    def _put(self, queue: Any, payload: Any, **kwargs: Any) -> None:  # type: ignore[override]  # kombu's own two disagree
        """Write the message beside its final name, then rename it into place, whole."""
        name = f"{round(monotonic() * 1000)}_{uuid.uuid4()}.{queue}.msg"
        final = os.path.join(self.data_folder_out, name)
        partial = os.path.join(self.data_folder_out, PARTIAL_PREFIX + name)
        try:
            with open(partial, "wb") as f:
                f.write(str_to_bytes(dumps(payload)))  # type: ignore[no-untyped-call]
            os.replace(partial, final)
        except OSError as exc:
            try:
                os.remove(partial)
            except OSError:
                pass
            raise ChannelError(f"Cannot add file {final!r} to directory") from exc


class Transport(filesystem.Transport):  # type: ignore[misc]
    Channel = Channel

    def drain_events(self, connection: Any, timeout: Any = None, **kwargs: Any) -> Any:
        if timeout is not None:
            timeout = min(timeout, MAX_DRAIN_SECONDS)
        return super().drain_events(connection, timeout=timeout, **kwargs)  # type: ignore[no-untyped-call]
