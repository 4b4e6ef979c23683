"""Mirror an image between two local docker-registry instances, through netsim, twice.

Prints the first (full) copy, the second (no-op) run, and a baseline in the same run: the
"docker pull + push" equivalent of fetching every blob and pushing it again without skipping
(what the manual steps in the cloud support matrix do when the target already has the image).

    python benchmarks/images_mirror.py --layers 6 --layer-mib 8 --latency-ms 20 --rate-mbps 200
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "integration"))

from model_engine_infra.images import mirror  # noqa: E402
from model_engine_infra.images.distribution import RegistryClient  # noqa: E402
from model_engine_infra.images.oci import fetch_manifest  # noqa: E402
from model_engine_infra.testing.netsim import netsim  # noqa: E402
from model_engine_infra.testing.servers import start_registry  # noqa: E402
from registry_fakes import Pusher  # noqa: E402


def naive_copy(src: RegistryClient, dst: RegistryClient, repo: str, tag: str, target_repo: str) -> int:
    """Baseline: every blob downloaded and uploaded again, no HEAD, no skip (docker pull/tag/push minus cache)."""
    manifest = fetch_manifest(src, repo, tag)
    assert manifest is not None
    moved = 0
    for blob in [manifest.document["config"], *manifest.document["layers"]]:
        data = src.request("GET", f"/v2/{repo}/blobs/{blob['digest']}").content
        start = dst.request("POST", f"/v2/{target_repo}/blobs/uploads/")
        location = start.headers["Location"]
        url = location if location.startswith("http") else dst.base_url + location
        dst.request("PUT", url, params={"digest": blob["digest"]}, content=data)
        moved += len(data)
    return moved


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--layers", type=int, default=6)
    parser.add_argument("--layer-mib", type=int, default=8)
    parser.add_argument("--latency-ms", type=float, default=20)
    parser.add_argument("--rate-mbps", type=float, default=200)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp())
    with start_registry(folder / "src") as source, start_registry(folder / "dst") as target:
        pusher = Pusher(source.url)
        layers = [os.urandom(args.layer_mib << 20) for _ in range(args.layers)]
        pusher.image("bench/app", "1", created=dt.datetime.now(dt.timezone.utc), layers=layers)
        pusher.close()
        conditions = {"latency_ms": args.latency_ms, "rate_mbps": args.rate_mbps}
        with netsim(source.port, **conditions) as src_port, netsim(target.port, **conditions) as dst_port:
            src_host, dst_host = f"127.0.0.1:{src_port}", f"127.0.0.1:{dst_port}"
            timings = {}
            for run in ("first", "second"):
                started = time.perf_counter()
                [result] = mirror(["app:1"], source=f"{src_host}/bench", target=f"{dst_host}/bench")
                timings[run] = (time.perf_counter() - started, result.bytes_copied)
            src, dst = RegistryClient(src_host), RegistryClient(dst_host)
            started = time.perf_counter()
            moved = naive_copy(src, dst, "bench/app", "1", "bench/app")
            timings["baseline re-copy"] = (time.perf_counter() - started, moved)
            src.close()
            dst.close()
    total = args.layers * args.layer_mib
    print(
        f"image: {args.layers} layers x {args.layer_mib} MiB = {total} MiB; netsim {args.latency_ms} ms, "
        f"{args.rate_mbps} MB/s per connection"
    )
    for name, (seconds, moved) in timings.items():
        print(f"{name:>18}: {seconds:6.2f} s, {moved / 2**20:7.1f} MiB moved")
    print(f"second run vs baseline re-copy: {timings['second'][0] / timings['baseline re-copy'][0]:.3f}x time")
    print(f"first run vs baseline re-copy:  {timings['first'][0] / timings['baseline re-copy'][0]:.2f}x time")


if __name__ == "__main__":
    main()
