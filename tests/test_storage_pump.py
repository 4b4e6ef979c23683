"""`pump.Pump` and `pump.SocketBody` against a real HTTP server on loopback, plain and TLS.

The server answers ranged GETs over keep-alive connections, and can cut a response (the peer
closes early) or stall one (headers, some bytes, then silence) on chosen requests, to show that a
range resumes from its last byte, that finished connections go back to their pool, and that every
slot is returned whatever happens.
"""

from __future__ import annotations

import http.server
import os
import re
import ssl
import threading
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import urllib3

from model_engine_infra.errors import StorageError, StorageUnavailableError
from model_engine_infra.storage.pump import Pump, SocketBody
from model_engine_infra.storage.transfer import RangeSink, _Stopped
from model_engine_infra.testing.servers import self_signed_cert

DATA = bytes(range(256)) * 4096 * 3  # 3 MiB


@dataclass
class Faults:
    """Per-request behaviour, consumed in order of arrival: "cut", "stall", "short" or "ok" (the default)."""

    plan: list[str] = field(default_factory=list)
    seen: list[tuple[int, int, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    release: threading.Event = field(default_factory=threading.Event)

    def next(self, start: int, stop: int) -> str:
        with self.lock:
            what = self.plan.pop(0) if self.plan else "ok"
            self.seen.append((start, stop, what))
            return what


class RangeHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: connections are reused when the pump hands them back

    def do_GET(self) -> None:
        match = re.fullmatch(r"bytes=(\d+)-(\d+)", self.headers.get("Range", ""))
        assert match, self.headers
        start, last = int(match[1]), int(match[2])
        body = DATA[start : last + 1]
        faults: Faults = self.server.faults
        what = faults.next(start, last + 1)
        if what == "short":  # a complete response, for less than was asked
            body = body[: len(body) // 2]
        self.send_response(206)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if what == "cut":
            self.wfile.write(body[: len(body) // 3])
            self.wfile.flush()
            self.close_connection = True
            return
        if what == "stall":
            self.wfile.write(body[:1000])
            self.wfile.flush()
            faults.release.wait(10)
            self.close_connection = True
            return
        for offset in range(0, len(body), 16 * 1024):  # paced writes: the ranges overlap, reads are many
            self.wfile.write(body[offset : offset + 16 * 1024])
            time.sleep(0.002)

    def log_message(self, *args: Any) -> None:
        pass


@dataclass
class Server:
    pool: urllib3.HTTPConnectionPool
    faults: Faults
    read_timeout: float = 5.0

    def open(self, sink: Any) -> SocketBody | None:
        return self.open_span(sink.position, sink.stop)

    def open_span(self, start: int, stop: int) -> SocketBody | None:
        response = self.pool.request(
            "GET",
            "/blob",
            headers={"Range": f"bytes={start}-{stop - 1}"},
            preload_content=False,
            timeout=urllib3.Timeout(connect=5, read=self.read_timeout),
            retries=False,
        )
        return SocketBody.of(response)


@pytest.fixture(params=["http", "https"])
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Server]:
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), RangeHandler)
    httpd.daemon_threads = True
    httpd.faults = Faults()
    pool: urllib3.HTTPConnectionPool
    if request.param == "https":
        cert, key = self_signed_cert(tmp_path / "tls")
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cert, key)
        httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
        pool = urllib3.HTTPSConnectionPool("127.0.0.1", httpd.server_address[1], maxsize=8, ca_certs=str(cert))
    else:
        pool = urllib3.HTTPConnectionPool("127.0.0.1", httpd.server_address[1], maxsize=8)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield Server(pool, httpd.faults)
    httpd.faults.release.set()
    httpd.shutdown()
    httpd.server_close()
    pool.close()


def sinks_for(fd: int, parts: int, stopped: tuple[threading.Event, ...] = ()) -> list[RangeSink]:
    step = len(DATA) // parts
    return [RangeSink(fd, i * step, (i + 1) * step, "mem://b/blob", None, stopped) for i in range(parts)]


def pump(server: Server, slots: int = 8, *, open_range: Any = None) -> Pump:
    return Pump(
        uri="mem://b/blob",
        open_range=open_range or server.open,
        slots=threading.BoundedSemaphore(slots),
        attempts=3,
        retry_pause=0.01,
    )


@pytest.fixture
def target(tmp_path: Path) -> Iterator[tuple[Path, int]]:
    path = tmp_path / "blob.part"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    yield path, fd
    os.close(fd)


def test_ranges_are_read_from_one_thread_and_connections_go_back_to_the_pool(
    server: Server, target: tuple[Path, int]
) -> None:
    path, fd = target
    engine = pump(server)
    engine.run(sinks_for(fd, 8))
    assert path.read_bytes() == DATA
    made = server.pool.num_connections
    assert 4 <= made <= 8  # the ranges overlap (a range that ends early frees its connection for the next)
    engine.run(sinks_for(fd, 4))  # a second download reuses those connections, none is left half-read
    assert server.pool.num_connections == made
    assert path.read_bytes() == DATA
    assert engine.slots.acquire(blocking=False)


def test_a_cut_range_resumes_from_its_last_byte(server: Server, target: tuple[Path, int]) -> None:
    path, fd = target
    server.faults.plan = ["ok", "cut", "ok", "ok"]
    pump(server).run(sinks_for(fd, 3))
    assert path.read_bytes() == DATA
    resumed = [(start, stop) for start, stop, what in server.faults.seen[3:]]
    cut_start, cut_stop, _ = server.faults.seen[1]
    assert resumed == [(cut_start + (cut_stop - cut_start) // 3, cut_stop)]  # from the byte it had reached


def test_a_silent_connection_is_cut_after_its_read_timeout_and_resumed(
    server: Server, target: tuple[Path, int]
) -> None:
    path, fd = target
    server.read_timeout = 0.3
    server.faults.plan = ["stall"]
    started = time.monotonic()
    pump(server).run(sinks_for(fd, 2))
    assert path.read_bytes() == DATA
    assert time.monotonic() - started >= 0.3
    assert [what for *_, what in server.faults.seen] == ["stall", "ok", "ok"]


def test_a_range_cut_on_every_attempt_is_storage_unavailable_and_frees_its_slots(
    server: Server, target: tuple[Path, int]
) -> None:
    _, fd = target
    server.faults.plan = ["cut"] * 20
    engine = pump(server, slots=2)
    with pytest.raises(StorageUnavailableError, match="mem://b/blob: the transfer ended at byte"):
        engine.run(sinks_for(fd, 2))
    assert all(engine.slots.acquire(blocking=False) for _ in range(2))


def test_no_more_ranges_open_than_slots(server: Server, target: tuple[Path, int]) -> None:
    path, fd = target
    open_now, most = [0], [0]

    def counting_open(sink: Any) -> SocketBody | None:
        body = server.open(sink)
        assert body is not None
        open_now[0] += 1
        most[0] = max(most[0], open_now[0])
        finish, abandon = body.finish, body.abandon
        body.finish = lambda: (finish(), open_now.__setitem__(0, open_now[0] - 1))  # type: ignore[method-assign]
        body.abandon = lambda: (abandon(), open_now.__setitem__(0, open_now[0] - 1))  # type: ignore[method-assign]
        return body

    pump(server, slots=3, open_range=counting_open).run(sinks_for(fd, 8))
    assert path.read_bytes() == DATA
    assert 2 <= most[0] <= 3  # never more than the slots; more than one at once


def test_a_range_the_store_reads_itself_is_not_read_from_a_socket(server: Server, target: tuple[Path, int]) -> None:
    """A response under another HTTP stack: the store reads it into the sink and returns None."""
    path, fd = target
    read_by_store: list[int] = []

    def every_other(sink: Any) -> SocketBody | None:
        if sink.position // (len(DATA) // 4) not in (1, 3):
            return server.open(sink)
        read_by_store.append(sink.position)
        sink.write(DATA[sink.position : sink.stop])
        return None

    pump(server, open_range=every_other).run(sinks_for(fd, 4))
    assert path.read_bytes() == DATA
    assert read_by_store == [len(DATA) // 4, 3 * len(DATA) // 4]


def test_a_range_the_store_reads_itself_resumes_after_a_cut(server: Server, target: tuple[Path, int]) -> None:
    path, fd = target
    asked: list[int] = []

    def half_then_cut(sink: Any) -> SocketBody | None:
        asked.append(sink.position)
        if len(asked) == 1:
            sink.write(DATA[sink.position : sink.position + 1000])  # gathered, not yet written
            raise StorageUnavailableError("mem://b/blob: the connection broke mid-transfer; retry later")
        sink.write(DATA[sink.position : sink.stop])
        return None

    pump(server, open_range=half_then_cut).run(sinks_for(fd, 1))
    assert path.read_bytes() == DATA
    assert asked == [0, 1000]


def test_a_body_shorter_than_its_range_is_completed_by_another_request(
    server: Server, target: tuple[Path, int]
) -> None:
    path, fd = target
    server.faults.plan = ["short"]
    pump(server).run(sinks_for(fd, 2))
    assert path.read_bytes() == DATA
    first_start, first_stop, _ = server.faults.seen[0]
    assert (first_start + (first_stop - first_start) // 2, first_stop) in [(a, b) for a, b, _ in server.faults.seen]


def test_an_error_opening_a_range_closes_the_others_and_returns_every_slot(
    server: Server, target: tuple[Path, int]
) -> None:
    _, fd = target
    opened: list[SocketBody] = []

    def third_refused(sink: Any) -> SocketBody | None:
        if len(opened) == 2:
            raise StorageError("mem://b/blob: the blob changed while it was being read; retry")
        body = server.open(sink)
        assert body is not None
        opened.append(body)
        return body

    engine = pump(server, slots=4, open_range=third_refused)
    with pytest.raises(StorageError, match="changed"):
        engine.run(sinks_for(fd, 4))
    assert all(body._stream.isclosed() for body in opened)
    assert all(engine.slots.acquire(blocking=False) for _ in range(4))


def test_a_download_failing_elsewhere_stops_the_pump(server: Server, target: tuple[Path, int]) -> None:
    _, fd = target
    failing = threading.Event()
    failing.set()
    engine = pump(server, slots=4)
    with pytest.raises(_Stopped):
        engine.run(sinks_for(fd, 4, (failing,)))
    assert all(engine.slots.acquire(blocking=False) for _ in range(4))


def test_a_server_sending_more_than_the_range_is_refused(server: Server, target: tuple[Path, int]) -> None:
    _, fd = target
    short = [RangeSink(fd, 0, 1000, "mem://b/blob", None, ())]  # asks the server for more than the sink takes

    def whole(sink: Any) -> SocketBody | None:
        return server.open_span(sink.position, len(DATA))

    with pytest.raises(StorageError, match="more bytes than the range asked for"):
        pump(server, open_range=whole).run(short)


def test_only_a_stdlib_response_with_a_length_is_read_from_its_socket() -> None:
    assert SocketBody.of(object()) is None

    class Chunked:
        _fp = None
        connection = None

    assert SocketBody.of(Chunked()) is None


class Crc:
    """A body check like S3's: every byte fed in order, verified at the end."""

    def __init__(self, expected: int) -> None:
        self.expected, self.value, self.fed = expected, 0, 0

    def update(self, data: memoryview) -> None:
        self.value = zlib.crc32(data, self.value)
        self.fed += len(data)

    def verify(self) -> None:
        if self.value != self.expected:
            raise StorageError("mem://b/blob: the bytes read do not match the object's checksum")


@pytest.mark.parametrize("matches", [True, False])
def test_a_body_check_sees_every_byte_and_a_mismatch_is_not_retried(
    server: Server, target: tuple[Path, int], matches: bool
) -> None:
    path, fd = target
    checks: list[Crc] = []

    def checked(sink: Any) -> SocketBody | None:
        span = DATA[sink.position : sink.stop]
        response = server.pool.request(
            "GET", "/blob", headers={"Range": f"bytes={sink.position}-{sink.stop - 1}"}, preload_content=False
        )
        checks.append(Crc(zlib.crc32(span) if matches else 0))
        return SocketBody.of(response, checks[-1])

    engine = pump(server, open_range=checked)
    if matches:
        engine.run(sinks_for(fd, 4))
        assert path.read_bytes() == DATA
    else:
        with pytest.raises(StorageError, match="checksum"):
            engine.run(sinks_for(fd, 4))
    if matches:
        assert sum(check.fed for check in checks) == len(DATA)
    else:  # the first range to end was whole when its check failed
        assert any(check.fed == len(DATA) // 4 for check in checks)
    assert len(server.faults.seen) == (4 if matches else len(checks))  # a mismatch is raised, never reopened
