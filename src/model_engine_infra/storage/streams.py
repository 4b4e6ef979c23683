"""Streams every store returns from ``open``: chunked readers, and writers that commit only on close.

A write is an upload that becomes visible only when ``close()`` succeeds. Leaving a ``with`` block
through an exception, or dropping the stream without closing it, discards the upload: the plain
``io`` classes would commit half-written data from ``__exit__`` and ``__del__``, which is why
`WriteStream` wraps them.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Callable, Iterable
from typing import IO, Any, Protocol, cast

from ..errors import ObjectDecodeError

DEFAULT_PART_SIZE = 8 * 1024 * 1024
_TEXT_KWARGS = ("encoding", "errors", "newline")
_MODES = {"rb": (False, True), "r": (False, False), "rt": (False, False), "wb": (True, True), "w": (True, False)}
_MODES["wt"] = (True, False)


def parse_mode(mode: str, kwargs: dict[str, Any]) -> tuple[bool, bool]:
    """``(writing, binary)`` for ``mode``; only text modes take ``encoding``, ``errors``, ``newline``."""
    if mode not in _MODES:
        raise ValueError(f"unsupported mode {mode!r}; use 'rb', 'r', 'wb' or 'w'")
    writing, binary = _MODES[mode]
    unknown = sorted(set(kwargs) - set(() if binary else _TEXT_KWARGS))
    if unknown:
        allowed = "none" if binary else ", ".join(_TEXT_KWARGS)
        raise TypeError(f"open() got unexpected keyword argument(s) {unknown}; mode {mode!r} accepts {allowed}")
    return writing, binary


def text_kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
    return {"encoding": "utf-8", **{k: v for k, v in kwargs.items() if k in _TEXT_KWARGS}}


class ChunkedReader(io.RawIOBase):
    """A raw reader over ``read(n) -> bytes`` (an SDK body or ranged fetches); ``b''`` means the end."""

    def __init__(self, read: Callable[[int], bytes], on_close: Callable[[], None] | None = None) -> None:
        super().__init__()
        self._read = read
        self._on_close = on_close
        self._pending = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        data = self._pending or self._read(len(view))
        self._pending = data[len(view) :]  # a source may hand back more than asked
        data = data[: len(view)]
        view[: len(data)] = data
        return len(data)

    def close(self) -> None:
        if not self.closed:
            try:
                if self._on_close is not None:
                    self._on_close()
            finally:
                super().close()


class TextReader(io.TextIOWrapper):
    """A text stream whose decoding errors are `ObjectDecodeError` naming the object and the fix."""

    def __init__(self, buffer: IO[bytes], name: str, **kwargs: Any) -> None:
        super().__init__(buffer, **kwargs)  # type: ignore[arg-type]
        self._object = name

    def _typed(self, err: UnicodeDecodeError) -> ObjectDecodeError:
        byte = err.object[err.start : err.start + 1].hex() if isinstance(err.object, bytes) else "?"
        return ObjectDecodeError(
            f"{self._object or 'the object'} is not {self.encoding} text (byte 0x{byte} cannot be decoded: "
            f"{err.reason}); open it in 'rb' mode to read bytes, or pass encoding= (and errors=) to open()"
        )

    def read(self, size: int | None = -1) -> str:
        try:
            return super().read(size)
        except UnicodeDecodeError as err:
            raise self._typed(err) from None

    def readline(self, size: int | None = -1) -> str:  # type: ignore[override]
        try:
            return super().readline(-1 if size is None else size)
        except UnicodeDecodeError as err:
            raise self._typed(err) from None

    def __next__(self) -> str:  # type: ignore[override]
        try:
            return super().__next__()
        except UnicodeDecodeError as err:
            raise self._typed(err) from None


def reader_stream(raw: io.RawIOBase, binary: bool, kwargs: dict[str, Any], buffer_size: int, name: str = "") -> IO[Any]:
    """Buffered (and text-decoded) reads; the first chunk is fetched now so a missing object fails in open().

    ``name`` (the object as the caller may see it) goes into the error when text does not decode.
    """
    buffered = io.BufferedReader(raw, buffer_size)
    try:
        buffered.peek(1)
    except BaseException:
        buffered.close()
        raise
    if binary:
        return buffered
    return TextReader(buffered, name, **text_kwargs(kwargs))


class Uploader(Protocol):
    """One upload in parts: a store's multipart upload, staged blocks or resumable session."""

    def upload_part(self, data: bytes) -> None: ...

    def finish(self, data: bytes) -> None:
        """Send the last bytes and make the object visible (a single put if no part was sent)."""

    def abort(self) -> None:
        """Drop whatever was sent; the object under the name stays as it was."""


class PartWriter(io.BufferedIOBase):
    """Buffers writes into parts of ``part_size`` bytes for an `Uploader`; memory stays bounded."""

    def __init__(self, uploader: Uploader, part_size: int = DEFAULT_PART_SIZE) -> None:
        super().__init__()
        self._uploader = uploader
        self._part_size = part_size
        self._buffer = bytearray()
        self._written = 0
        self._aborted = False

    def writable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._written

    def write(self, data: Any) -> int:
        if self._aborted:
            return len(data)
        if self.closed:
            raise ValueError("write to a closed file")
        view = memoryview(data).cast("B")
        self._buffer += view
        self._written += len(view)
        while len(self._buffer) >= self._part_size:
            part = bytes(self._buffer[: self._part_size])
            del self._buffer[: self._part_size]
            self._uploader.upload_part(part)
        return len(view)

    def abort(self) -> None:
        if not self._aborted and not self.closed:
            self._aborted = True
            self._buffer = bytearray()
            self._uploader.abort()

    def close(self) -> None:
        if self.closed:
            return
        try:
            if not self._aborted:
                try:
                    self._uploader.finish(bytes(self._buffer))
                except BaseException:
                    self._aborted = True
                    with contextlib.suppress(Exception):
                        self._uploader.abort()
                    raise
        finally:
            self._buffer = bytearray()
            super().close()


class WriteStream:
    """What ``open(uri, "w"/"wb")`` returns: ``close()`` commits; an exception or abandonment discards."""

    def __init__(self, stream: IO[Any], commit: Callable[[], None], discard: Callable[[], None], name: str) -> None:
        self._stream = stream
        self._commit = commit
        self._discard = discard
        self._done = False
        self.name = name

    def write(self, data: Any) -> int:
        return self._stream.write(data)

    def writelines(self, lines: Iterable[Any]) -> None:
        self._stream.writelines(lines)

    def flush(self) -> None:
        self._stream.flush()

    def writable(self) -> bool:
        return True

    def readable(self) -> bool:
        return False

    def tell(self) -> int:
        return self._stream.tell()

    @property
    def closed(self) -> bool:
        return self._done

    def close(self) -> None:
        """Commit the object; if that fails, discard the upload and re-raise."""
        if self._done:
            return
        self._done = True
        try:
            self._commit()
        except BaseException:
            with contextlib.suppress(Exception):
                self._discard()
            raise

    def discard(self) -> None:
        """Drop the upload; nothing appears under the name (an existing object is left as it was)."""
        if not self._done:
            self._done = True
            self._discard()

    def __enter__(self) -> WriteStream:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *_: object) -> None:
        if exc_type is not None:
            self.discard()
        else:
            self.close()

    def __del__(self) -> None:
        if not getattr(self, "_done", True):
            with contextlib.suppress(Exception):
                self.discard()

    def __repr__(self) -> str:
        state = "closed" if self._done else "open"
        return f"<WriteStream {self.name!r} {state}>"


def upload_stream(uploader: Uploader, binary: bool, kwargs: dict[str, Any], name: str, part_size: int) -> IO[Any]:
    """A `WriteStream` over a `PartWriter` (text-wrapped when not ``binary``)."""
    raw = PartWriter(uploader, part_size)
    stream = cast("IO[Any]", raw if binary else io.TextIOWrapper(raw, write_through=True, **text_kwargs(kwargs)))  # type: ignore[type-var]

    def discard() -> None:
        raw.abort()
        with contextlib.suppress(Exception):
            stream.close()

    return WriteStream(stream, stream.close, discard, name)  # type: ignore[return-value]
