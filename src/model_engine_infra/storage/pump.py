"""The ranges of one object read from one thread: their sockets multiplexed with `selectors`.

Why: a thread per range costs its stack and a malloc arena of its own (about 130 KiB each here,
more than the 64 KiB block it reads into), so eight ranges of a 1 GiB object in eight threads grew
the process by 1.7 MiB, more than rclone's goroutines. Here the store's SDK sends each ranged GET
and reads its headers (authentication, retries, error mapping stay the SDK's); the body is then
read straight from the connection's socket, without blocking, into one 64 KiB block shared by every
range, and written at its offset. `SocketBody` wraps a urllib3 response (what botocore, the Azure
SDK's requests transport and google-cloud-storage's authorized session hold); a response it cannot
read this way the store reads into the range itself, the blocking way, before handing back
(``open_range`` returns None). With it the 1 GiB download grows the process by 0.0-0.2 MiB.

A range cut by the network (a reset, a body ending early or shorter than the range, a connection
silent for its read timeout) is reopened from its last byte after a pause, at most
`transfer.ATTEMPTS` opens in all, as `transfer.read_part` does in a thread.
"""

from __future__ import annotations

import collections
import contextlib
import http.client
import selectors
import socket
import ssl
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from ..errors import StorageUnavailableError

#: Bytes read from a socket at once; one block for every range of the object.
BLOCK = 64 * 1024
#: Reads from one socket before the others get a turn.
READS_PER_TURN = 16
#: How often a range waiting for a free slot (held by other files' requests) looks again.
SLOT_POLL_SECONDS = 0.05
#: How long a connection may stay silent when its socket had no timeout of its own.
DEFAULT_STALL_SECONDS = 60.0

#: ``open_range(sink)``: the ranged GET of ``[sink.position, sink.stop)``; its body, or None once the
#: store has read it into ``sink`` itself.
RangeOpener = Callable[["RangeSinkLike"], "SocketBody | None"]


class BodyCheck(Protocol):
    """A check a store makes on the bytes of a body (S3's ``x-amz-checksum-*``): fed, then verified."""

    def update(self, data: memoryview) -> None: ...

    def verify(self) -> None: ...


class SocketBody:
    """A response body read from its socket without blocking; built by `SocketBody.of`.

    ``read_into`` returns the bytes read, None when the socket has nothing yet, 0 at the end of
    the body; it raises ``http.client.IncompleteRead`` when the peer closes early. `finish` hands
    a fully read connection back to its pool; `abandon` closes one that is not.
    """

    def __init__(
        self, raw: Any, stream: http.client.HTTPResponse, sock: socket.socket, check: BodyCheck | None = None
    ) -> None:
        self._raw, self._stream, self._sock, self._check = raw, stream, sock, check
        self._reader: Any = stream.fp
        self._timeout = sock.gettimeout()
        self._buffer_empty = False
        self.stall_seconds = self._timeout or DEFAULT_STALL_SECONDS
        sock.settimeout(0)

    @classmethod
    def of(cls, raw: Any, check: BodyCheck | None = None) -> SocketBody | None:
        """The body of the urllib3 response ``raw`` read from its socket, or None where that is not possible.

        Needs the stdlib response under it (``_fp``, as the S3 store's socket reads do), a
        Content-Length (no chunked body) and its socket: the one its buffered reader reads
        (``SocketIO._sock``; the connection's ``sock`` is None once a server said
        ``Connection: close``). ``check`` sees every byte and is verified once the body is whole.
        """
        stream = getattr(raw, "_fp", None)
        if not isinstance(stream, http.client.HTTPResponse):
            return None
        sock = getattr(getattr(stream.fp, "raw", None), "_sock", None)
        if not isinstance(sock, socket.socket):
            sock = getattr(getattr(raw, "connection", None), "sock", None)
        if not isinstance(sock, socket.socket):
            return None
        if stream.chunked or stream.length is None or stream.fp is None:
            return None
        return cls(raw, stream, sock, check)

    def fileno(self) -> int:
        return self._sock.fileno()

    @property
    def remaining(self) -> int:
        return self._stream.length or 0

    def read_into(self, block: memoryview) -> int | None:
        remaining = self.remaining
        if not remaining:
            return 0
        try:
            if self._buffer_empty:
                count = self._reader.readinto1(block[:remaining] if remaining < len(block) else block)
            else:
                count = self._read_held(block, remaining)
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
            return None
        if count is None:
            return None
        if count == 0:
            raise http.client.IncompleteRead(b"", remaining)
        self._stream.length = remaining - count
        if self._check is not None:
            self._check.update(block[:count])
        return int(count)

    def _read_held(self, block: memoryview, remaining: int) -> int | None:
        """The body's first bytes, which http.client may hold in its buffer from reading the headers.

        They are taken alone (``peek`` shows them without reading the socket, or reads it once
        into the buffer if empty), so that no socket read follows a copy in one ``readinto1``: on a
        TLS socket with nothing ready that read raises, and the bytes already copied would be lost.
        """
        held = len(self._reader.peek(0))
        if not held:
            self._buffer_empty = True
            return None  # nothing yet, or the end: the next read (when the socket is ready) tells
        take = min(held, remaining, len(block))
        count: int = self._reader.readinto1(block[:take])
        self._buffer_empty = count >= held
        return count

    def finish(self) -> None:
        """The body is read: the connection goes back to its pool in blocking mode; then the check."""
        self._sock.settimeout(self._timeout)
        self._stream.read()  # nothing left: http.client marks the response closed
        self._raw.release_conn()
        if self._check is not None:
            self._check.verify()

    def abandon(self) -> None:
        """Close the connection: part of its body is still unread."""
        with contextlib.suppress(Exception):
            self._raw.close()
        with contextlib.suppress(Exception):
            self._raw.release_conn()


class RangeSinkLike(Protocol):
    """What the pump needs from a range's destination (`transfer.RangeSink`)."""

    @property
    def position(self) -> int: ...

    @property
    def stop(self) -> int: ...

    def put(self, data: memoryview) -> None: ...

    def flush(self) -> None: ...


@dataclass
class _Range:
    sink: RangeSinkLike
    opens: int = 0
    not_before: float = 0.0
    body: SocketBody | None = None
    last_read: float = 0.0


@dataclass(frozen=True)
class Pump:
    """Read ``sinks``' ranges of ``uri``: at most as many open at once as ``slots`` allows.

    ``open_range(sink)`` sends one ranged GET and returns its body (or None: the store read it into
    the sink itself). ``slots`` is the download's budget of requests in flight, shared with the
    other files; one slot is held per open range.
    """

    uri: str
    open_range: RangeOpener
    slots: threading.Semaphore
    attempts: int
    retry_pause: float

    def run(self, sinks: Sequence[RangeSinkLike]) -> None:
        waiting = collections.deque(_Range(sink) for sink in sinks)
        active: dict[int, _Range] = {}
        ready: set[int] = set()  # sockets whose turn ended with bytes possibly left (TLS, buffers)
        block = memoryview(bytearray(BLOCK))
        try:
            with selectors.DefaultSelector() as selector:
                while waiting or active:
                    again = self._open_next(waiting, active, ready, selector)
                    if not active:
                        time.sleep(again or 0.0)  # a range waits out its pause before reopening
                        continue
                    timeout = 0.0 if ready else self._until_stall(active, again)
                    for key, _ in selector.select(timeout):
                        ready.add(key.fd)
                    for fd in list(ready):
                        ready.discard(fd)
                        self._drain(active[fd], fd, active, ready, selector, waiting, block)
                    self._cut_stalled(active, ready, selector, waiting)
        finally:
            for item in active.values():
                self._close(item, abandon=True)
            block.release()

    def _open_next(
        self,
        waiting: collections.deque[_Range],
        active: dict[int, _Range],
        ready: set[int],
        selector: selectors.BaseSelector,
    ) -> float | None:
        """Open the next waiting range if its pause is over and a slot is free (waiting for one if none is
        open). Returns when to try again: 0 after an open, None with nothing waiting."""
        if not waiting:
            return None
        pause = waiting[0].not_before - time.monotonic()
        if pause > 0:
            return pause
        if not self.slots.acquire(blocking=not active):
            return SLOT_POLL_SECONDS
        item = waiting.popleft()
        item.opens += 1
        try:
            body = self.open_range(item.sink)
        except StorageUnavailableError:
            self.slots.release()
            item.sink.flush()  # what the store read before the cut stays read
            self._retry_or_raise(item, waiting)
            return 0.0
        except BaseException:
            self.slots.release()
            raise
        if body is None:  # read into the sink by the store itself
            self.slots.release()
            item.sink.flush()
            self._retry_if_short(item, waiting)
            return 0.0
        item.body, item.last_read = body, time.monotonic()
        fd = body.fileno()
        active[fd] = item
        selector.register(fd, selectors.EVENT_READ)
        ready.add(fd)  # http.client may already hold the first bytes of the body
        return 0.0

    @staticmethod
    def _until_stall(active: dict[int, _Range], again: float | None) -> float:
        """Seconds to wait for a socket: until the first stall deadline, or ``again`` if sooner."""
        now = time.monotonic()
        deadlines = [item.last_read + item.body.stall_seconds - now for item in active.values() if item.body]
        if again is not None:
            deadlines.append(again)
        return max(0.0, min(deadlines, default=0.0))

    def _drain(
        self,
        item: _Range,
        fd: int,
        active: dict[int, _Range],
        ready: set[int],
        selector: selectors.BaseSelector,
        waiting: collections.deque[_Range],
        block: memoryview,
    ) -> None:
        body = item.body
        assert body is not None
        for _ in range(READS_PER_TURN):
            try:
                count = body.read_into(block)
            except (OSError, http.client.HTTPException):  # reset, TLS failure, early end: reopen from here
                self._drop(item, fd, active, selector, abandon=True)
                self._retry_or_raise(item, waiting)
                return
            if count is None:
                return
            if count == 0:
                self._drop(item, fd, active, selector, abandon=False)
                self._retry_if_short(item, waiting)
                return
            item.last_read = time.monotonic()
            item.sink.put(block[:count])
        ready.add(fd)  # its turn is over, not its bytes

    def _cut_stalled(
        self,
        active: dict[int, _Range],
        ready: set[int],
        selector: selectors.BaseSelector,
        waiting: collections.deque[_Range],
    ) -> None:
        now = time.monotonic()
        for fd, item in list(active.items()):
            if item.body is not None and fd not in ready and now - item.last_read > item.body.stall_seconds:
                self._drop(item, fd, active, selector, abandon=True)
                self._retry_or_raise(item, waiting)

    def _drop(
        self, item: _Range, fd: int, active: dict[int, _Range], selector: selectors.BaseSelector, *, abandon: bool
    ) -> None:
        selector.unregister(fd)
        del active[fd]
        self._close(item, abandon=abandon)

    def _close(self, item: _Range, *, abandon: bool) -> None:
        body, item.body = item.body, None
        try:
            if body is not None:
                body.abandon() if abandon else body.finish()
        finally:
            self.slots.release()

    def _retry_if_short(self, item: _Range, waiting: collections.deque[_Range]) -> None:
        """A body that ended where its Content-Length said, before the range's end: ask for the rest."""
        if item.sink.position < item.sink.stop:
            self._retry_or_raise(item, waiting)

    def _retry_or_raise(self, item: _Range, waiting: collections.deque[_Range]) -> None:
        if item.opens >= self.attempts:
            raise StorageUnavailableError(
                f"{self.uri}: the transfer ended at byte {item.sink.position} of {item.sink.stop}; retry later"
            )
        item.not_before = time.monotonic() + self.retry_pause * item.opens
        waiting.append(item)
