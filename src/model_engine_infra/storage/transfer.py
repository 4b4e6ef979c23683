"""One budget of requests per download: small files whole and the parts of large ones, together.

Part size adapts to the object (`part_size_for`): about ``min(max_concurrency, PARTS_PER_OBJECT)``
parts, never smaller than ``min_part_size`` (a request's latency stays small beside its transfer)
nor larger than ``max_part_size``. A 1 GiB object is 8 parts of 128 MiB, 512 MiB 8 of 64 MiB,
128 MiB 8 of 16 MiB, a 4 MiB object one request; 10 GiB is 80 parts of 128 MiB. Eight streams per
object already exceed what s5cmd (5) and rclone (4) open for one object, and every extra range
costs a request (on servers such as moto, a read of the whole object); several large objects still
fill every connection of the pool. The ``storage_part_size_mb`` key fixes the part size instead (a
server whose cost grows with the number of ranged reads, a network where fewer, longer streams do
better).

`run_download` lands each planned file through `LandingZone.write` (temporary name, no-follow
descriptors, rename when whole) with at most ``max_concurrency`` requests in flight, one budget
for every file and part of the call. A thread per file in flight reads a small file itself, and
all the parts of a large one through `pump.Pump` when the store opens ranges as sockets (S3,
Azure, GCS): no thread per range, one 64 KiB block for all of them. A store that only reads
ranges (``read_range``) gets request threads from the same budget. Each part lands in the
temporary file with ``pwrite`` at its own offset, so memory stays near one block per connection
whatever the object's size. A part cut by the network resumes from the last byte written (pinned
to the listed version by the store), at most `ATTEMPTS` requests in all; the first failure that
remains stops the other files' requests.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any, BinaryIO

from ..errors import ConfigError, StorageError, StorageUnavailableError

if TYPE_CHECKING:
    from ..config.model import InfraConfig
    from .base import ObjectInfo
    from .landing import LandingZone, PlannedFile
    from .pump import SocketBody

MIB = 1024 * 1024
DEFAULT_MAX_CONCURRENCY = 32
MIN_PART_SIZE = 8 * MIB
MAX_PART_SIZE = 128 * MIB
#: Ranges one object is cut into at most (unless ``max_part_size`` needs more): 16 x 64 MiB for
#: 1 GiB took 1.25x rclone's time on moto, 8 x 128 MiB 0.89x (docs/performance.md).
PARTS_PER_OBJECT = 8
#: Tries per part: the first, then resumes after a cut connection (StorageUnavailableError).
ATTEMPTS = 3
_RETRY_PAUSE = 0.2
#: Pieces smaller than this (GCS hands 8 KiB) are gathered into one buffer of this size per request
#: before a ``pwrite``; larger ones (Azure and S3 read 64 KiB) are written as they come. 1 MiB
#: buffers held 24 MiB over 16 connections (fake-gcs-server, 64 x 4 MiB), 256 KiB 6 MiB.
GATHER = 64 * 1024

Progress = Callable[[int], None]
Fetch = Callable[["ObjectInfo", BinaryIO, "Progress | None"], None]
RangeReader = Callable[["ObjectInfo", int, int, "RangeSink"], None]
#: ``open_range(obj, sink)``: the ranged GET of ``[sink.position, sink.stop)``, its body left on its
#: socket for `pump.Pump`; or None once the store has read the range into ``sink`` itself.
RangeOpener = Callable[["ObjectInfo", "RangeSink"], "SocketBody | None"]


@dataclass(frozen=True)
class TransferSettings:
    """How a store's transfers are cut and how many requests run at once (config keys ``storage_*``)."""

    max_concurrency: int = DEFAULT_MAX_CONCURRENCY
    #: A fixed part size (``storage_part_size_mb``), or None: adapt between the two bounds below.
    part_size: int | None = None
    min_part_size: int = MIN_PART_SIZE
    max_part_size: int = MAX_PART_SIZE

    def __post_init__(self) -> None:
        if self.max_concurrency < 1:
            raise ConfigError(
                "must be at least 1",
                key="storage_max_concurrency",
                value=self.max_concurrency,
                fix="set storage_max_concurrency to the requests in flight per transfer, e.g. 32",
            )
        if self.part_size is not None and self.part_size < 1:
            raise ConfigError(
                "must be a positive number of MiB",
                key="storage_part_size_mb",
                value=self.part_size // MIB,
                fix="set storage_part_size_mb to the part size in MiB, e.g. 64, or leave it unset to adapt",
            )

    @classmethod
    def from_config(cls, config: InfraConfig) -> TransferSettings:
        fixed = config.storage_part_size_mb
        return cls(max_concurrency=config.storage_max_concurrency, part_size=fixed * MIB if fixed else None)

    def concurrency(self, requested: int | None) -> int:
        """The call's ``max_concurrency`` when given, else the configured one."""
        if requested is None:
            return self.max_concurrency
        if requested < 1:
            raise StorageError(f"max_concurrency must be at least 1, got {requested}")
        return requested


def part_size_for(size: int, concurrency: int, settings: TransferSettings) -> int:
    """The fixed part size, else ``size / min(concurrency, PARTS_PER_OBJECT)`` rounded up to a MiB, in bounds."""
    if settings.part_size:
        return settings.part_size
    wanted = -(-size // max(1, min(concurrency, PARTS_PER_OBJECT)))
    wanted = -(-wanted // MIB) * MIB
    return max(settings.min_part_size, min(settings.max_part_size, wanted))


def plan_parts(size: int, concurrency: int, settings: TransferSettings) -> list[tuple[int, int]]:
    """``[start, stop)`` ranges covering ``size`` bytes; an object no larger than one part is one range."""
    if size <= (settings.part_size or settings.min_part_size):
        return [(0, size)]
    step = part_size_for(size, concurrency, settings)
    return [(start, min(start + step, size)) for start in range(0, size, step)]


class _Stopped(Exception):
    """Another request of the download failed: this one stops without an error of its own."""


class RangeSink:
    """Where one ranged read lands: ``write`` puts bytes at the next offset of the file (``pwrite``).

    Refuses bytes past ``stop`` (a server that ignored the range), and raises `_Stopped` once the
    download is failing elsewhere, so a store's read loop ends at its next write.
    """

    def __init__(
        self, fd: int, start: int, stop: int, uri: str, progress: Progress | None, stopped: Sequence[threading.Event]
    ) -> None:
        self._fd, self.stop, self._uri = fd, stop, uri
        self._progress = progress
        self._stopped = stopped
        self.flushed = start  # bytes before this offset are in the file
        self._buffer: bytearray | None = None  # allocated once, at the first small piece
        self._filled = 0

    @property
    def position(self) -> int:
        """The offset the next byte belongs at."""
        return self.flushed + self._filled

    @property
    def stopping(self) -> bool:
        return any(event.is_set() for event in self._stopped)

    def write(self, data: bytes | bytearray | memoryview) -> int:
        count = len(data)
        self._check(count)
        if self._filled and (self._filled + count > GATHER or count >= GATHER):
            self.flush()
        if count >= GATHER:
            self._put(memoryview(data))
            return count
        if self._buffer is None:
            self._buffer = bytearray(GATHER)
        self._buffer[self._filled : self._filled + count] = data
        self._filled += count
        return count

    def put(self, data: memoryview) -> None:
        """Write ``data`` now, whatever its size: the caller reuses its buffer (`pump.Pump`)."""
        self._check(len(data))
        self.flush()
        self._put(data)

    def _check(self, count: int) -> None:
        if self.stopping:
            raise _Stopped
        if self.position + count > self.stop:
            raise StorageError(
                f"{self._uri}: the server sent more bytes than the range asked for (ending at {self.stop}); "
                "it may not support ranged reads"
            )

    def flush(self) -> None:
        if self._filled and self._buffer is not None:
            with memoryview(self._buffer) as view:
                self._put(view[: self._filled])
            self._filled = 0

    def _put(self, view: memoryview) -> None:
        count = len(view)
        offset = self.flushed
        while view:
            written = os.pwrite(self._fd, view, offset)
            offset += written
            view = view[written:]
        self.flushed = offset
        if self._progress is not None:
            self._progress(count)


def read_part(read_range: RangeReader, obj: ObjectInfo, sink: RangeSink) -> None:
    """Read ``[sink.position, sink.stop)``, resuming after a cut connection up to `ATTEMPTS` times."""
    for attempt in range(1, ATTEMPTS + 1):
        if sink.stopping:  # queued behind a failure: no request at all
            raise _Stopped
        try:
            read_range(obj, sink.position, sink.stop, sink)
        except StorageUnavailableError:
            sink.flush()
            if attempt == ATTEMPTS or sink.stopping:
                raise
            time.sleep(_RETRY_PAUSE * attempt)
            continue
        sink.flush()
        if sink.position == sink.stop:
            return
    raise StorageUnavailableError(f"{obj.uri}: the transfer ended at byte {sink.position} of {sink.stop}; retry later")


def read_whole(read_range: RangeReader, obj: ObjectInfo, fileobj: BinaryIO, progress: Progress | None) -> None:
    """The whole object into ``fileobj`` with a ranged store's reads (one request, resumed if cut)."""
    if obj.size is None:
        raise StorageError(f"{obj.uri}: the object's size is unknown, so it cannot be read in ranges")
    read_part(read_range, obj, RangeSink(fileobj.fileno(), 0, obj.size, obj.uri, progress, ()))


def run_download(
    zone: LandingZone,
    files: Sequence[PlannedFile],
    *,
    fetch: Fetch,
    read_range: RangeReader | None,
    settings: TransferSettings,
    concurrency: int,
    progress: Progress | None,
    open_range: RangeOpener | None = None,
) -> None:
    """Land every file with at most ``concurrency`` requests in flight, shared by files and parts.

    A thread per file in flight (at most ``concurrency``; the caller's own thread for a single file)
    owns its temporary file. A file in one request is read by that thread. A file in parts is read
    by that thread too when the store opens ranges as sockets (``open_range``: `pump.Pump`
    multiplexes them), else by the request threads. Every request holds one of ``concurrency``
    slots. The first failure is raised after every request still running has stopped, so no
    thread writes to a file that is being removed.
    """
    if not files:
        return
    failing = threading.Event()
    slots = threading.BoundedSemaphore(concurrency)

    def holding_slot(read: Callable[[], None]) -> None:
        with slots:
            read()

    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="download") as requests:

        def land(planned: PlannedFile) -> None:
            if failing.is_set():
                raise _Stopped
            zone.write(planned, lambda fileobj: _fill(fileobj, planned.obj))

        def _fill(fileobj: BinaryIO, obj: ObjectInfo) -> None:
            if read_range is None or obj.size is None:
                holding_slot(lambda: fetch(obj, fileobj, progress))
                return
            failed = threading.Event()
            stopped = (failing, failed)
            fd = fileobj.fileno()
            sinks = [
                RangeSink(fd, start, stop, obj.uri, progress, stopped)
                for start, stop in plan_parts(obj.size, concurrency, settings)
            ]
            if len(sinks) == 1:
                holding_slot(lambda: read_part(read_range, obj, sinks[0]))
            elif open_range is not None:
                _pump(open_range, obj, sinks, slots)
            else:
                parts = [requests.submit(holding_slot, partial(read_part, read_range, obj, sink)) for sink in sinks]
                _settle(parts, failed)

        if len(files) == 1:
            try:
                land(files[0])
            except _Stopped as err:  # pragma: no cover - nothing else can fail first
                raise StorageError("the download stopped before it was complete") from err
            return
        with ThreadPoolExecutor(max_workers=min(concurrency, len(files)), thread_name_prefix="landing") as landing:
            landed = [landing.submit(land, planned) for planned in files]
            _, pending = wait(landed, return_when=FIRST_EXCEPTION)
            if pending:
                failing.set()
                for future in pending:
                    future.cancel()
            wait(landed)
    try:
        _raise_first(landed)
    except _Stopped as err:  # only possible if the failure that set `failing` was itself lost
        raise StorageError("the download stopped before it was complete") from err


def _pump(
    open_range: RangeOpener,
    obj: ObjectInfo,
    sinks: Sequence[RangeSink],
    slots: threading.Semaphore,
) -> None:
    """The parts of ``obj`` read by this thread, their sockets multiplexed (`pump.Pump`)."""
    from .pump import Pump

    Pump(
        uri=obj.uri,
        open_range=partial(open_range, obj),  # type: ignore[arg-type]  # RangeSink is the pump's sink
        slots=slots,
        attempts=ATTEMPTS,
        retry_pause=_RETRY_PAUSE,
    ).run(sinks)


def _settle(parts: list[Future[None]], failed: threading.Event) -> None:
    """Wait for a file's parts; on the first failure stop the others and wait for them before raising."""
    _, pending = wait(parts, return_when=FIRST_EXCEPTION)
    if pending:
        failed.set()
        for future in pending:
            future.cancel()
        wait(parts)
    _raise_first(parts)


def _raise_first(futures: Sequence[Future[Any]]) -> None:
    """The first real error in submission order; `_Stopped` (a request that stopped for it) only if none."""
    stopped: BaseException | None = None
    for future in futures:
        if future.cancelled():
            continue
        error = future.exception()
        if isinstance(error, _Stopped):
            stopped = stopped or error
        elif error is not None:
            raise error
    if stopped is not None:
        raise stopped
