"""What a mirror run reports: one `MirrorProgress` per step and a `MirrorResult` per image.

Its own module so that `transfer` (which does the copying) and `mirror` (which plans it) both use
it without importing each other.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

Event = Literal["blob_copied", "blob_skipped", "blob_mounted", "bytes", "manifest_pushed", "up_to_date"]


@dataclass(frozen=True)
class MirrorProgress:
    """One step of a mirror run; ``size`` is the blob's or manifest's size, ``transferred`` new bytes."""

    image: str
    event: Event
    digest: str
    size: int = 0
    transferred: int = 0


ProgressCallback = Callable[[MirrorProgress], None]


@dataclass
class MirrorResult:
    """What one image's copy did."""

    source: str
    target: str
    digest: str = ""
    up_to_date: bool = False
    manifests_pushed: int = 0
    blobs_copied: int = 0
    blobs_skipped: int = 0
    blobs_mounted: int = 0
    bytes_copied: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, **counts: int) -> None:
        with self._lock:
            for name, value in counts.items():
                setattr(self, name, getattr(self, name) + value)
