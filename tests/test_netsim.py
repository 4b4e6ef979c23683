"""The network simulator itself: latency, the rate cap, cuts, refusals, and its command line.

Time is checked only from below (a proxy that adds 250 ms cannot answer sooner on any machine);
no test asserts that something is fast.
"""

from __future__ import annotations

import socket
import socketserver
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import pytest

from model_engine_infra.testing.netsim import Conditions, NetsimError, netsim, parse_address


class _BlobHandler(socketserver.StreamRequestHandler):
    """Each line ``N`` asks for N bytes of b"x"; ends when the client half-closes."""

    def handle(self) -> None:
        for line in self.rfile:
            self.wfile.write(b"x" * int(line))
            self.wfile.flush()


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


@pytest.fixture(scope="module")
def blob_port() -> Iterator[int]:
    server = _Server(("127.0.0.1", 0), _BlobHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def ask(sock: socket.socket, size: int) -> bytes:
    """Request ``size`` bytes and read until they all arrived, the peer closed, or it reset."""
    sock.sendall(b"%d\n" % size)
    got = bytearray()
    try:
        while len(got) < size:
            chunk = sock.recv(65536)
            if not chunk:
                break
            got += chunk
    except ConnectionResetError:
        pass
    return bytes(got)


def is_closed(sock: socket.socket) -> bool:
    try:
        sock.sendall(b"10\n")
        return sock.recv(10) == b""
    except OSError:  # reset, broken pipe
        return True


def connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=30)


def test_passes_bytes_through_unchanged(blob_port: int) -> None:
    with netsim(blob_port) as port, connect(port) as sock:
        assert ask(sock, 10) == b"x" * 10
        assert ask(sock, 1_000_000) == b"x" * 1_000_000


def test_client_half_close_still_gets_the_answer(blob_port: int) -> None:
    with netsim(blob_port) as port, connect(port) as sock:
        sock.sendall(b"5000\n")
        sock.shutdown(socket.SHUT_WR)
        got = b""
        while chunk := sock.recv(65536):
            got += chunk
        assert got == b"x" * 5000


def test_latency_is_added_to_every_request(blob_port: int) -> None:
    with netsim(blob_port, latency_ms=250) as port, connect(port) as sock:
        for _ in range(2):
            started = time.monotonic()
            assert ask(sock, 100) == b"x" * 100
            assert time.monotonic() - started >= 0.25


def test_rate_cap_per_connection(blob_port: int) -> None:
    size = 2_000_000
    with netsim(blob_port, rate_mbps=2) as port, connect(port) as sock:
        started = time.monotonic()
        assert len(ask(sock, size)) == size
        # 2 MB at 2 MB/s: every chunk but the last (at most 256 KiB) waits for its share of the second.
        assert time.monotonic() - started >= (size - 256 * 1024) / 2_000_000


def test_reset_after_cuts_the_download(blob_port: int) -> None:
    with netsim(blob_port, reset_after=100_000) as port, connect(port) as sock:
        got = ask(sock, 1_000_000)
        assert 0 < len(got) <= 100_000
        assert is_closed(sock)


def test_reset_every_second_connection(blob_port: int) -> None:
    with netsim(blob_port, reset_after=1000, reset_every=2) as port:
        with connect(port) as first:
            assert len(ask(first, 50_000)) == 50_000
        with connect(port) as second:
            assert len(ask(second, 50_000)) <= 1000
        with connect(port) as third:
            assert len(ask(third, 50_000)) == 50_000


def test_refuse_closes_every_connection(blob_port: int) -> None:
    with netsim(blob_port, refuse=True) as port, connect(port) as sock:
        assert ask(sock, 10) == b""


def test_target_down_closes_the_client() -> None:
    with socket.socket() as placeholder:
        placeholder.bind(("127.0.0.1", 0))
        dead_port = placeholder.getsockname()[1]  # bound, never listening: connections are refused
        with netsim(dead_port) as port, connect(port) as sock:
            assert ask(sock, 10) == b""


def test_bad_arguments_raise_with_the_reason() -> None:
    with pytest.raises(NetsimError, match="only loopback"), netsim(80, target_host="10.1.2.3"):
        pass
    with pytest.raises(ValueError, match="latency_ms"):
        Conditions(latency_ms=-1)
    with pytest.raises(ValueError, match="reset_every"):
        Conditions(reset_every=0)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("127.0.0.1:80", ("127.0.0.1", 80)), (":81", ("127.0.0.1", 81)), ("[::1]:82", ("::1", 82))],
)
def test_parse_address(text: str, expected: tuple[str, int]) -> None:
    assert parse_address(text) == expected


@pytest.mark.parametrize("text", ["example.com:80", "8.8.8.8:53", "127.0.0.1", "127.0.0.1:http"])
def test_parse_address_refuses(text: str) -> None:
    with pytest.raises(ValueError, match=text.split(":")[0] or text):
        parse_address(text)


def test_command_line_runs_and_stops_on_sigterm(blob_port: int) -> None:
    argv = [sys.executable, "-m", "model_engine_infra.testing.netsim", "--listen", "127.0.0.1:0"]
    argv += ["--target", f"127.0.0.1:{blob_port}", "--latency-ms", "1"]
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.startswith("listening on 127.0.0.1:")
        with connect(int(line.rsplit(":", 1)[1])) as sock:
            assert ask(sock, 10) == b"x" * 10
        process.terminate()
        assert process.wait(timeout=30) == 0
    finally:
        process.kill()
        process.wait()
        if process.stdout is not None:
            process.stdout.close()


def test_command_line_usage_error_exits_2() -> None:
    argv = [sys.executable, "-m", "model_engine_infra.testing.netsim", "--listen", "0.0.0.0:0", "--target", ":1"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "only loopback" in done.stderr
