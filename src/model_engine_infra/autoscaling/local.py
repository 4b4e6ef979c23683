"""Autoscaling metrics as files under ``{local_data_dir}/autoscaling/`` (the local provider).

No KEDA runs on one machine, but the control plane still emits on every request, and a local
autoscaler (or a test) can read what it would see. One small JSON file per endpoint,
``launch-endpoint-autoscaling.{endpoint_id}.json``, holds when the signal expires; an emit never
moves that time earlier. Writes go to a temporary file renamed into place, under a lock on the
folder (``fcntl.flock``), so two processes never shorten each other's expiry and a reader never
sees half a file. Calls run in a thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from ..errors import BrokerUnavailableError
from .base import SERVICEBUS_QUEUE_PREFIX, AutoscalingMetric, InferenceAutoscalingMetricsGateway

if TYPE_CHECKING:
    from ..config.model import InfraConfig
    from ..infra import Infra

__all__ = ["FOLDER", "KEYS", "LocalInferenceAutoscalingMetricsGateway", "build_gateway"]

#: The config keys this backend reads.
KEYS = ("local_data_dir",)
FOLDER = "autoscaling"
_LOCK_FILE = ".lock"
_T = TypeVar("_T")


class LocalInferenceAutoscalingMetricsGateway(InferenceAutoscalingMetricsGateway):
    """Autoscaling signals as files in ``folder``; ``clock`` (seconds since the epoch) is injectable."""

    backend_name: ClassVar[str] = "local files"
    # 255 bytes per file name, less the prefix, ".json" and the temporary name's extra characters.
    max_endpoint_id_length: ClassVar[int] = 180

    def __init__(self, folder: str | os.PathLike[str], *, clock: Callable[[], float] = time.time) -> None:
        self.folder = Path(folder).expanduser().absolute()
        self._clock = clock

    def __repr__(self) -> str:
        return f"LocalInferenceAutoscalingMetricsGateway({str(self.folder)!r})"

    def _path(self, endpoint_id: str) -> Path:
        return self.folder / f"{SERVICEBUS_QUEUE_PREFIX}{self.check(endpoint_id)}.json"

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.folder.mkdir(parents=True, exist_ok=True)
        with open(self.folder / _LOCK_FILE, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _expires_at(self, path: Path) -> float | None:
        try:
            document: Any = json.loads(path.read_text())
        except (FileNotFoundError, ValueError):
            return None
        value = document.get("expires_at") if isinstance(document, dict) else None
        return float(value) if isinstance(value, (int, float)) else None

    async def _run(self, action: str, path: Path, call: Callable[[], _T]) -> _T:
        try:
            return await asyncio.to_thread(call)
        except OSError as err:
            raise BrokerUnavailableError(
                f"local autoscaling folder {self.folder} is unusable to {action} {path.name!r} "
                f"({type(err).__name__}: {err.strerror}); check local_data_dir points at a writable folder"
            ) from err

    async def emit_metric(self, endpoint_id: str, expiry_seconds: int) -> None:
        path = self._path(endpoint_id)
        if expiry_seconds <= 0:
            raise ValueError(f"expiry_seconds must be positive, not {expiry_seconds}")

        def emit() -> None:
            with self._locked():
                now = self._clock()
                current = self._expires_at(path)
                wanted = now + expiry_seconds
                if current is not None and current >= wanted:
                    return  # a longer signal (a prewarm) is live: never shorten it
                temporary = self.folder / f".{uuid.uuid4().hex}.tmp"
                try:
                    temporary.write_text(json.dumps({"endpoint_id": endpoint_id, "pending": 1, "expires_at": wanted}))
                    os.replace(temporary, path)
                finally:
                    temporary.unlink(missing_ok=True)

        await self._run("emit", path, emit)

    async def create_or_update_resources(self, endpoint_id: str) -> None:
        path = self._path(endpoint_id)
        await self._run("create", path, lambda: self.folder.mkdir(parents=True, exist_ok=True))

    async def delete_resources(self, endpoint_id: str) -> None:
        path = self._path(endpoint_id)

        def delete() -> None:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()

        await self._run("delete", path, delete)

    async def read_metric(self, endpoint_id: str) -> AutoscalingMetric | None:
        path = self._path(endpoint_id)
        expires_at = await self._run("read", path, lambda: self._expires_at(path))
        if expires_at is None:
            return None
        remaining = expires_at - self._clock()
        return AutoscalingMetric(pending=1, expires_in=remaining) if remaining > 0 else None


def build_gateway(config: InfraConfig, infra: Infra) -> LocalInferenceAutoscalingMetricsGateway:
    return LocalInferenceAutoscalingMetricsGateway(Path(config.local_data_dir) / FOLDER)
