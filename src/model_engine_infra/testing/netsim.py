"""Run ``netsim.py`` (shared/tools: latency, bandwidth caps, cut connections) between a client and a server.

One helper for benchmarks and fault tests: picks a free port, waits until the proxy accepts, and
stops it by its pid. Standard library only.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from .servers import HOST, free_port

SCRIPT_RELATIVE = Path("shared") / "tools" / "netsim.py"


def find_netsim(start: Path | None = None) -> Path:
    """``shared/tools/netsim.py`` in ``start`` (default: the working folder) or any parent of it."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        candidate = folder / SCRIPT_RELATIVE
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"no {SCRIPT_RELATIVE} in {here} or its parents; pass script= explicitly")


@contextlib.contextmanager
def netsim(
    target_port: int,
    *,
    latency_ms: float | None = None,
    rate_mbps: float | None = None,
    reset_after: int | None = None,
    refuse: bool = False,
    script: Path | None = None,
    ready_timeout: float = 10.0,
    port: int | None = None,
) -> Iterator[int]:
    """A proxy to ``127.0.0.1:target_port`` with the given conditions; yields the proxy's port.

    ``port`` is where it listens (default: a free one), for a server that must know its proxy's
    address before the proxy starts (fake-gcs-server's ``public_host``).
    """
    port = port or free_port()
    argv = [
        sys.executable,
        str(script or find_netsim()),
        "--listen",
        f"{HOST}:{port}",
        "--target",
        f"{HOST}:{target_port}",
    ]
    for flag, value in (("--latency-ms", latency_ms), ("--rate-mbps", rate_mbps), ("--reset-after", reset_after)):
        if value is not None:
            argv += [flag, str(value)]
    if refuse:
        argv.append("--refuse")
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + ready_timeout
        while True:
            try:
                socket.create_connection((HOST, port), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError(f"netsim did not start listening on {HOST}:{port}") from None
                time.sleep(0.05)
        yield port
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
