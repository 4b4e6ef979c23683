"""Mirror an image between two docker-registry instances through netsim: ``mirror`` against ``skopeo copy``.

    python benchmarks/images_mirror.py [--layers 6] [--layer-mib 8] [--rounds 3]

The source registry holds one image (config + N layers of random bytes). Each round starts two
fresh target registries, each behind its own netsim (20 ms per request, 50 MB/s per connection, as
is the source), and copies the image twice into each: ``mirror`` into one, ``skopeo copy
--preserve-digests`` into the other (the order alternates between rounds). The first copy moves
every blob; the second finds them all present. Target: <= 1.1x skopeo on both.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import os
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from _bench import LATENCY_MS, RATE_MBPS, find_tool, run_tool
from model_engine_infra.images import mirror
from model_engine_infra.testing.images import ImagePusher as Pusher
from model_engine_infra.testing.netsim import netsim
from model_engine_infra.testing.servers import start_registry


@contextlib.contextmanager
def registry_behind_netsim(folder: Path) -> Iterator[str]:
    with (
        start_registry(folder) as registry,
        netsim(registry.port, latency_ms=LATENCY_MS, rate_mbps=RATE_MBPS) as port,
    ):
        yield f"127.0.0.1:{port}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--layers", type=int, default=6)
    parser.add_argument("--layer-mib", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    skopeo = find_tool("skopeo")
    timings: dict[str, list[float]] = {
        "mirror, first run": [],
        "skopeo copy, first run": [],
        "mirror, second run": [],
        "skopeo copy, second run": [],
    }
    with tempfile.TemporaryDirectory() as tmp, start_registry(Path(tmp) / "src") as source:
        pusher = Pusher(source.url)
        layers = [os.urandom(args.layer_mib << 20) for _ in range(args.layers)]
        pusher.image("bench/app", "1", created=dt.datetime.now(dt.timezone.utc), layers=layers)
        pusher.close()
        with netsim(source.port, latency_ms=LATENCY_MS, rate_mbps=RATE_MBPS) as src_port:
            src_host = f"127.0.0.1:{src_port}"

            def ours(target: str) -> None:
                [result] = mirror(["app:1"], source=f"{src_host}/bench", target=f"{target}/bench")
                assert result.digest

            def theirs(target: str) -> None:
                run_tool(
                    [
                        skopeo,
                        "copy",
                        "--quiet",
                        "--insecure-policy",
                        "--preserve-digests",
                        "--src-tls-verify=false",
                        "--dest-tls-verify=false",
                        f"docker://{src_host}/bench/app:1",
                        f"docker://{target}/bench/app:1",
                    ]
                )

            tools: dict[str, Callable[[str], None]] = {"mirror": ours, "skopeo copy": theirs}
            for round_index in range(args.rounds):
                order = list(tools) if round_index % 2 == 0 else list(reversed(tools))
                for name in order:
                    with registry_behind_netsim(Path(tmp) / f"dst-{round_index}-{name.split()[0]}") as target:
                        for run in ("first run", "second run"):
                            started = time.perf_counter()
                            tools[name](target)
                            timings[f"{name}, {run}"].append(time.perf_counter() - started)
    print(
        f"image: config + {args.layers} layers x {args.layer_mib} MiB, docker-registry -> docker-registry, "
        f"each behind netsim ({LATENCY_MS:g} ms, {RATE_MBPS:g} MB/s per connection)  "
        f"[median of {args.rounds} interleaved rounds, load {os.getloadavg()[0]:.1f}]"
    )
    for run in ("first run", "second run"):
        ours_median = statistics.median(timings[f"mirror, {run}"])
        anchor = statistics.median(timings[f"skopeo copy, {run}"])
        verdict = "met" if ours_median / anchor <= 1.1 else "NOT met"
        print(
            f"  {run}: mirror {ours_median:6.3f} s, skopeo copy {anchor:6.3f} s, ratio {ours_median / anchor:5.2f}x "
            f"(target <= 1.10x {verdict})"
        )


if __name__ == "__main__":
    main()
