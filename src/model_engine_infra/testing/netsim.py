"""A TCP proxy on loopback that makes a local server behave like one across a network.

Local servers answer in microseconds and at memory speed, so on loopback a parallel client looks
no better than a sequential one, and a download is never cut in the middle. Put this proxy between
a client and a local server to add latency and a bandwidth cap, and to inject faults:

- ``latency_ms``: added once before the first byte of each response, i.e. once after every client
  write (a request, or a pipeline of requests sent together), like a round trip;
- ``rate_mbps``: a per-connection cap on server-to-client bytes, in megabytes per second (the
  download direction; requests and uploads are not slowed);
- ``reset_after``: abort each connection (TCP RST) after that many server-to-client bytes -- a
  download cut in the middle; ``reset_every=N`` cuts only every Nth connection;
- ``refuse``: accept and close at once, a server that is down while its port stays open.

From Python, `netsim` runs the proxy in a child process (so it never competes with the code under
test for the GIL) and yields its port::

    with netsim(server.port, latency_ms=20, rate_mbps=50) as port:
        client = make_client(f"http://127.0.0.1:{port}")

From a shell::

    python -m model_engine_infra.testing.netsim --listen 127.0.0.1:15000 --target 127.0.0.1:5000 \\
        --latency-ms 20 --rate-mbps 50

It prints ``listening on HOST:PORT`` once it accepts connections (``--listen 127.0.0.1:0`` lets the
OS choose the port) and stops on SIGTERM or SIGINT. Only loopback addresses are accepted: this is a
test tool, not a relay. Standard library only.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import selectors
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

__all__ = ["READY_PREFIX", "Conditions", "NetsimError", "main", "netsim", "serve"]

HOST = "127.0.0.1"
CHUNK = 256 * 1024
READY_PREFIX = "listening on "


class NetsimError(RuntimeError):
    """The proxy could not start (bad arguments, port taken); the message carries its stderr."""


@dataclass(frozen=True)
class Conditions:
    """What the proxy does to each connection; the defaults change nothing."""

    latency_ms: float = 0.0
    rate_mbps: float = 0.0
    reset_after: int = 0
    reset_every: int = 1
    refuse: bool = False

    def __post_init__(self) -> None:
        for name in ("latency_ms", "rate_mbps", "reset_after"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)!r}")
        if self.reset_every < 1:
            raise ValueError(f"reset_every must be >= 1, got {self.reset_every!r}")

    def argv(self) -> list[str]:
        """These conditions as command-line flags."""
        args = [
            "--latency-ms",
            repr(float(self.latency_ms)),
            "--rate-mbps",
            repr(float(self.rate_mbps)),
            "--reset-after",
            str(self.reset_after),
            "--reset-every",
            str(self.reset_every),
        ]
        return [*args, "--refuse"] if self.refuse else args


def parse_address(text: str) -> tuple[str, int]:
    """``host:port`` (host defaults to 127.0.0.1) -> (host, port); only loopback hosts are accepted."""
    host, sep, port_text = text.rpartition(":")
    host = host.strip("[]") or HOST
    if not sep or not port_text.isdigit() or int(port_text) > 65535:
        raise ValueError(f"{text!r}: expected HOST:PORT, e.g. 127.0.0.1:15000")
    if host != "localhost":
        try:
            loopback = ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = False
        if not loopback:
            raise ValueError(f"{text!r}: only loopback addresses (127.0.0.0/8, ::1, localhost) are allowed")
    return host, int(port_text)


class _Exchange:
    """One client connection and its upstream connection, shaped by `Conditions`."""

    def __init__(self, conditions: Conditions, cut: int) -> None:
        self.conditions = conditions
        self.cut = cut
        self.request_pending = False  # set by a client write, cleared before the response's first byte

    async def upstream(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        """Client -> server, unshaped; every write marks a request that the next response pays latency for."""
        while data := await src.read(CHUNK):
            self.request_pending = True
            dst.write(data)
            await dst.drain()
        if dst.can_write_eof():
            dst.write_eof()  # half-close: the server still answers what it was sent

    async def downstream(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        """Server -> client: latency before each response, the rate cap, and the cut."""
        latency = self.conditions.latency_ms / 1000
        rate = self.conditions.rate_mbps * 1_000_000
        sent = 0
        window_start, window_bytes = time.monotonic(), 0
        while data := await src.read(CHUNK):
            if latency and self.request_pending:
                self.request_pending = False
                await asyncio.sleep(latency)
                window_start, window_bytes = time.monotonic(), 0
            if self.cut and sent + len(data) >= self.cut:
                dst.write(data[: self.cut - sent])
                await dst.drain()
                dst.transport.abort()
                return
            dst.write(data)
            await dst.drain()
            sent += len(data)
            if rate:
                window_bytes += len(data)
                ahead = window_bytes / rate - (time.monotonic() - window_start)
                if ahead > 0:
                    await asyncio.sleep(ahead)
        if dst.can_write_eof():
            dst.write_eof()


class _Proxy:
    def __init__(self, target: tuple[str, int], conditions: Conditions) -> None:
        self.target = target
        self.conditions = conditions
        self.connections = 0
        self.writers: set[asyncio.StreamWriter] = set()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        if self.conditions.refuse:
            writer.close()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()  # the target is down: so is the proxy, for this client
            return
        every = self.conditions.reset_every
        cut = self.conditions.reset_after if self.connections % every == 0 else 0
        exchange = _Exchange(self.conditions, cut)
        self.writers.update((writer, up_writer))
        try:
            down = asyncio.ensure_future(exchange.downstream(up_reader, writer))
            up = asyncio.ensure_future(exchange.upstream(reader, up_writer))
            done, _ = await asyncio.wait({down, up}, return_when=asyncio.FIRST_COMPLETED)
            if up in done and up.exception() is None:
                # The client half-closed; the server may still be answering.
                await asyncio.wait({down})
            for task in (down, up):
                task.cancel()
            await asyncio.gather(down, up, return_exceptions=True)
        finally:
            for w in (writer, up_writer):
                self.writers.discard(w)
                if w.transport.is_closing():
                    continue
                w.close()

    def abort_all(self) -> None:
        for writer in list(self.writers):
            writer.transport.abort()


async def serve(
    listen: tuple[str, int],
    target: tuple[str, int],
    conditions: Conditions,
    *,
    stop: asyncio.Event,
) -> None:
    """Proxy ``listen`` -> ``target`` until ``stop`` is set; print the ready line once listening."""
    proxy = _Proxy(target, conditions)
    server = await asyncio.start_server(proxy.handle, *listen)
    host, port = server.sockets[0].getsockname()[:2]
    print(f"{READY_PREFIX}{host}:{port}", flush=True)
    async with server:
        await stop.wait()
        server.close()
        proxy.abort_all()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m model_engine_infra.testing.netsim",
        description="A loopback TCP proxy that adds latency and a bandwidth cap, cuts or refuses connections.",
    )
    parser.add_argument("--listen", required=True, help="HOST:PORT to accept on (port 0: the OS picks one)")
    parser.add_argument("--target", required=True, help="HOST:PORT of the server behind the proxy")
    parser.add_argument("--latency-ms", type=float, default=0.0, help="added before each response (default 0)")
    parser.add_argument("--rate-mbps", type=float, default=0.0, help="server->client MB/s per connection (0 = none)")
    parser.add_argument("--reset-after", type=int, default=0, help="abort after N server->client bytes (0 = never)")
    parser.add_argument("--reset-every", type=int, default=1, help="cut only every Nth connection (default 1)")
    parser.add_argument("--refuse", action="store_true", help="accept and close every connection at once")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """The command line; returns the exit code (2 for bad arguments, as argparse does)."""
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        listen, target = parse_address(args.listen), parse_address(args.target)
        conditions = Conditions(args.latency_ms, args.rate_mbps, args.reset_after, args.reset_every, args.refuse)
    except ValueError as err:
        parser.error(str(err))

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await serve(listen, target, conditions, stop=stop)

    try:
        asyncio.run(run())
    except OSError as err:  # the listen port is taken, or not ours to bind
        print(f"netsim: cannot listen on {args.listen}: {err}", file=sys.stderr)
        return 1
    return 0


def _read_ready_line(process: subprocess.Popen[str], timeout: float) -> int | None:
    """The port from the child's ready line, or None if it exited or stayed silent for ``timeout``."""
    assert process.stdout is not None
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        while (left := deadline - time.monotonic()) > 0:
            if not selector.select(left):
                continue
            line = process.stdout.readline()
            if not line:
                return None  # EOF: the child exited
            if line.startswith(READY_PREFIX):
                return int(line.strip().rpartition(":")[2])
    return None


def _stop(process: subprocess.Popen[str], grace: float = 10.0) -> None:
    process.terminate()
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@contextlib.contextmanager
def netsim(
    target_port: int,
    *,
    latency_ms: float = 0.0,
    rate_mbps: float = 0.0,
    reset_after: int = 0,
    reset_every: int = 1,
    refuse: bool = False,
    target_host: str = HOST,
    ready_timeout: float = 30.0,
    port: int | None = None,
) -> Iterator[int]:
    """A proxy to ``target_host:target_port`` in a child process; yields the port it listens on.

    The port is chosen by the OS and read from the child's ready line, so there is no race for a
    free port and no probe connection counted against ``reset_every``. The child is stopped by its
    pid when the block ends, whether or not it raised. ``port`` asks for a given port instead, for
    a server that must know its proxy's address before the proxy starts (fake-gcs-server's
    ``public_host``).
    """
    conditions = Conditions(latency_ms, rate_mbps, reset_after, reset_every, refuse)
    argv = [
        sys.executable,
        "-m",
        "model_engine_infra.testing.netsim",
        "--listen",
        f"{HOST}:{port or 0}",
        "--target",
        f"{target_host}:{target_port}",
        *conditions.argv(),
    ]
    with tempfile.TemporaryFile("w+") as errors:  # a file, not a pipe: a chatty child never blocks on it
        process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=errors, text=True)
        try:
            port = _read_ready_line(process, ready_timeout)
            if port is None:
                _stop(process)
                errors.seek(0)
                raise NetsimError(
                    f"netsim did not start within {ready_timeout:g} s (exit code {process.returncode}): "
                    f"{errors.read().strip()}"
                )
            yield port
        finally:
            _stop(process)
            if process.stdout is not None:
                process.stdout.close()


if __name__ == "__main__":
    sys.exit(main())
