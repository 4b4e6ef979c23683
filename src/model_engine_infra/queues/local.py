"""Local endpoint queues: kombu's filesystem transport under ``{local_data_dir}/broker/``.

Layout (shared with the Celery app, which imports `local_broker_paths`)::

    broker/queue/       message files; data_folder_in == data_folder_out, so a producer and a
                        worker in different processes meet in one folder
    broker/processed/   where kombu moves a message it has read (when store_processed is on)
    broker/control/     kombu's exchange -> queue binding tables
    broker/meta/        one JSON file per endpoint queue: id, name, creator, labels, created time

kombu names a message file ``{monotonic_ms}_{uuid4}.{queue}.msg`` and matches a queue by the
text after the first dot, so the waiting count is the number of such files. Once a worker reads a
message kombu moves the file away and holds it in memory until acked, so messages in flight are
not visible here: ``approximate_in_flight_count`` is None. Filesystem calls run in a thread.
"""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from ..errors import BrokerUnavailableError, QueueNotFoundError
from .base import QueueAttributes, QueueEndpointResourceDelegate, QueueInfo
from .names import local_queue_name

if TYPE_CHECKING:
    from ..config.model import InfraConfig
    from ..infra import Infra

__all__ = [
    "LocalQueueEndpointResourceDelegate",
    "binding_file",
    "broker_paths_for",
    "build_delegate",
    "ensure_broker_dirs",
    "local_broker_paths",
    "local_queue_exists",
    "message_file_queue",
    "meta_folder_for",
]

BROKER_DIR = "broker"


def broker_paths_for(data_dir: str | os.PathLike[str]) -> dict[str, str]:
    """The kombu filesystem transport options (plus ``meta_folder``) for one data folder, absolute."""
    root = Path(data_dir).expanduser().absolute() / BROKER_DIR
    queue = str(root / "queue")
    return {
        "data_folder_in": queue,
        "data_folder_out": queue,
        "processed_folder": str(root / "processed"),
        "control_folder": str(root / "control"),
        "meta_folder": str(root / "meta"),
    }


def local_broker_paths(config: InfraConfig) -> dict[str, str]:
    """Folders of the local broker for ``config.local_data_dir``.

    Pass all keys but ``meta_folder`` as kombu ``broker_transport_options``; the delegate and the
    Celery app must agree on them, so both take them from here.
    """
    return broker_paths_for(config.local_data_dir)


def ensure_broker_dirs(paths: Mapping[str, str]) -> None:
    """Create every folder of the layout; kombu does not create them itself."""
    for folder in set(paths.values()):
        Path(folder).mkdir(parents=True, exist_ok=True)


def meta_folder_for(data_folder_in: Path) -> Path:
    """``broker/meta`` beside ``broker/queue`` (the layout above)."""
    return data_folder_in.parent / "meta"


def binding_file(control_folder: Path, name: str) -> Path:
    """kombu's exchange table for ``name``: written when a worker (or a send) declares the queue."""
    return control_folder / f"{name}.exchange"


def local_queue_exists(data_folder_in: Path, control_folder: Path, name: str) -> bool:
    """Created by the delegate (a metadata file) or declared by a worker (kombu's exchange table).

    A broker folder that is missing or not a folder raises `NotADirectoryError`: the broker is unusable,
    which is not the same as a missing queue.
    """
    if not data_folder_in.is_dir():
        raise NotADirectoryError(f"the local broker folder {data_folder_in} is not a folder")
    return (meta_folder_for(data_folder_in) / f"{name}.json").exists() or binding_file(control_folder, name).exists()


def message_file_queue(filename: str) -> str | None:
    """The queue a kombu message file belongs to (kombu's own rule), or None for other files."""
    rest = filename.partition(".")[2]
    return rest[: -len(".msg")] if rest.endswith(".msg") else None


class LocalQueueEndpointResourceDelegate(QueueEndpointResourceDelegate):
    """Endpoint queues in the kombu filesystem broker folders given by ``paths``."""

    broker_name: ClassVar[str] = "local filesystem broker"
    # kombu adds 51 characters (``{ms}_{uuid}.`` and ``.msg``) to make a file name; most file systems stop at 255.
    max_queue_name_length: ClassVar[int] = 200

    def check_queue_name(self, name: str) -> str:
        return local_queue_name(name)

    def __init__(self, paths: Mapping[str, str]) -> None:
        self.paths = dict(paths)
        self._queue_dir = Path(self.paths["data_folder_in"])
        self._meta_dir = Path(self.paths["meta_folder"])

    def __repr__(self) -> str:
        return f"LocalQueueEndpointResourceDelegate({str(self._queue_dir.parent)!r})"

    def _meta_file(self, name: str) -> Path:
        return self._meta_dir / f"{name}.json"

    async def _run(self, action: str, name: str, call: Any) -> Any:
        try:
            return await asyncio.to_thread(call)
        except OSError as err:
            raise BrokerUnavailableError(
                f"local broker folder {self._queue_dir.parent} is unusable to {action} queue {name!r} "
                f"({type(err).__name__}: {err.strerror}); check local_data_dir points at a writable folder"
            ) from err

    def _message_files(self, name: str) -> list[Path]:
        try:
            entries = os.listdir(self._queue_dir)
        except FileNotFoundError:
            return []
        return [self._queue_dir / entry for entry in entries if message_file_queue(entry) == name]

    async def create_queue_if_not_exists(
        self,
        endpoint_id: str,
        endpoint_name: str,
        endpoint_created_by: str,
        endpoint_labels: Mapping[str, str],
        queue_message_timeout_seconds: int | None = None,
    ) -> QueueInfo:
        name = self.queue_name(endpoint_id)
        document = {
            "queue_name": name,
            "endpoint_id": endpoint_id,
            "endpoint_name": endpoint_name,
            "created_by": endpoint_created_by,
            "labels": dict(endpoint_labels),
            "created_at": datetime.now(timezone.utc).isoformat(),
            "queue_message_timeout_seconds": queue_message_timeout_seconds,
        }

        def create() -> None:
            ensure_broker_dirs(self.paths)
            final = self._meta_file(name)
            try:
                earlier = json.loads(final.read_text())
            except (FileNotFoundError, ValueError):
                earlier = None
            if isinstance(earlier, dict) and earlier.get("created_at"):
                document["created_at"] = earlier["created_at"]  # the request's settings win; creation time stays
            if earlier == document:
                return
            temporary = self._meta_dir / f".{name}.{uuid.uuid4().hex}.tmp"
            try:
                temporary.write_text(json.dumps(document, sort_keys=True))
                os.replace(temporary, final)  # atomic: a reader sees the old file or the new one
            finally:
                temporary.unlink(missing_ok=True)

        await self._run("create", name, create)
        return QueueInfo(queue_name=name, queue_url=None)

    async def delete_queue(self, endpoint_id: str) -> None:
        name = self.queue_name(endpoint_id)

        def delete() -> None:
            binding = binding_file(Path(self.paths["control_folder"]), name)
            for path in [self._meta_file(name), binding, *self._message_files(name)]:
                try:
                    path.unlink()
                except FileNotFoundError:
                    pass  # already gone, or a worker took the message meanwhile

        await self._run("delete", name, delete)

    async def get_queue_attributes(self, endpoint_id: str, *, include_tags: bool = False) -> QueueAttributes:
        name = self.queue_name(endpoint_id)

        def read() -> tuple[dict[str, Any] | None, int]:
            try:
                meta = json.loads(self._meta_file(name).read_text())
            except FileNotFoundError:
                meta = None
            return meta, len(self._message_files(name))

        meta, waiting = await self._run("read", name, read)
        if meta is None and waiting == 0:
            raise QueueNotFoundError(f"local queue {name!r} does not exist in {self._queue_dir.parent}")
        labels = (meta or {}).get("labels")
        return QueueAttributes(
            name=name,
            approximate_message_count=waiting,
            approximate_in_flight_count=None,
            raw={"meta": meta or {}, "message_files": waiting},
            endpoint_labels=labels if isinstance(labels, dict) else None,
            endpoint_created_by=(meta or {}).get("created_by"),
        )


def build_delegate(config: InfraConfig, infra: Infra) -> LocalQueueEndpointResourceDelegate:
    return LocalQueueEndpointResourceDelegate(local_broker_paths(config))
