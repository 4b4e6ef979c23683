"""Storage benchmarks: parallel and ranged downloads vs the SDK used one stream at a time.

On loopback a local server answers at memory speed, so downloads go through
``model_engine_infra.testing.netsim`` (20 ms per request, 50 MB/s per connection by default).

1. ``download_files`` of N objects vs the same reused SDK client fetching them one after another
   (moto server, Azurite, fake-gcs-server). Target: >= 4x.
2. One big object (Azurite, fake-gcs-server): peak RSS growth during ``download_files``
   (target <= 64 MiB) and time vs a single-stream SDK download (target <= 0.5x).
3. R reads of a 1 KiB object through ``infra.filesystem.open`` vs raw reused SDK reads, on
   loopback without the proxy. Target: <= 1.3x.

    python benchmarks/storage_download.py                      # the full run (1 GiB object)
    python benchmarks/storage_download.py --quick              # small sizes, a minute or less
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from model_engine_infra import InfraConfig, build_infra
from model_engine_infra.infra import Infra
from model_engine_infra.testing.netsim import netsim
from model_engine_infra.testing.servers import RunningServer, start_azurite, start_fake_gcs, start_moto

MIB = 1024 * 1024
SERVERS = {"moto": start_moto, "azurite": start_azurite, "gcs": start_fake_gcs}


# --- plumbing ------------------------------------------------------------------------------------------
@contextlib.contextmanager
def through_netsim(target: RunningServer, latency_ms: float, rate_mbps: float) -> Iterator[str]:
    with netsim(target.port, latency_ms=latency_ms, rate_mbps=rate_mbps) as port:
        yield f"http://127.0.0.1:{port}"


def config_for(kind: str, server: RunningServer, endpoint: str | None = None) -> InfraConfig:
    if kind == "moto":
        return InfraConfig(cloud_provider="onprem", s3_endpoint_url=endpoint or server.url)
    if kind == "azurite":
        account = server.extra["account_name"]
        return InfraConfig(
            cloud_provider="azure",
            abs_account_name=account,
            abs_account_key=SecretStr(server.extra["account_key"]),
            abs_endpoint_url=f"{endpoint}/{account}" if endpoint else server.extra["blob_endpoint"],
        )
    return InfraConfig(cloud_provider="gcp", gcp_project_id="bench", gcs_endpoint_url=endpoint or server.url)


def root_for(kind: str) -> str:
    return {"moto": "s3://bench-bucket", "azurite": "az://bench", "gcs": "gs://bench-bucket"}[kind]


def create_bucket(kind: str, infra: Infra) -> None:
    client: Any = infra.filesystem.client  # type: ignore[attr-defined]
    with contextlib.suppress(Exception):
        if kind == "moto":
            client.create_bucket(Bucket="bench-bucket")
        elif kind == "azurite":
            client.create_container("bench")
        else:
            client.create_bucket("bench-bucket")


def upload(infra: Infra, uri: str, size: int, block: bytes) -> None:
    with infra.filesystem.open(uri, "wb") as stream:
        left = size
        while left:
            piece = block[: min(left, len(block))]
            stream.write(piece)
            left -= len(piece)


def raw_fetcher(kind: str, infra: Infra) -> Callable[[str, Path], None]:
    """The SDK's plain one-stream download with the gateway's own (reused) client."""
    client: Any = infra.filesystem.client  # type: ignore[attr-defined]

    def split(uri: str) -> tuple[str, str]:
        bucket, _, key = uri.split("://", 1)[1].partition("/")
        return bucket, key

    def fetch(uri: str, dest: Path) -> None:
        bucket, key = split(uri)
        with open(dest, "wb") as out:
            if kind == "moto":
                body = client.get_object(Bucket=bucket, Key=key)["Body"]
                for chunk in body.iter_chunks(1024 * 1024):
                    out.write(chunk)
            elif kind == "azurite":
                client.get_blob_client(bucket, key).download_blob(max_concurrency=1).readinto(out)
            else:
                client.bucket(bucket).blob(key).download_to_file(out)

    return fetch


def raw_reader(kind: str, infra: Infra) -> Callable[[str], bytes]:
    client: Any = infra.filesystem.client  # type: ignore[attr-defined]

    def read(uri: str) -> bytes:
        bucket, _, key = uri.split("://", 1)[1].partition("/")
        if kind == "moto":
            data: bytes = client.get_object(Bucket=bucket, Key=key)["Body"].read()
        elif kind == "azurite":
            data = client.get_blob_client(bucket, key).download_blob().readall()
        else:
            data = client.bucket(bucket).blob(key).download_as_bytes()
        return data

    return read


class PeakRSS:
    """Samples this process's resident set every 10 ms; ``growth`` is peak minus the level at start."""

    def __init__(self) -> None:
        self.start = self.peak = self._rss()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @staticmethod
    def _rss() -> int:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        return 0

    def _run(self) -> None:
        while not self._stop.wait(0.01):
            self.peak = max(self.peak, self._rss())

    def __enter__(self) -> PeakRSS:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._rss())

    @property
    def growth(self) -> int:
        return self.peak - self.start


def timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def verdict(ok: bool) -> str:
    return "ok" if ok else "MISSED"


# --- the three benchmarks ------------------------------------------------------------------------------
def many_files(kind: str, server: RunningServer, args: argparse.Namespace, work: Path, block: bytes) -> str:
    direct = build_infra(config_for(kind, server))
    create_bucket(kind, direct)
    folder = f"{root_for(kind)}/many-{args.objects}x{args.object_mib}"
    for i in range(args.objects):
        upload(direct, f"{folder}/shard-{i:03d}.bin", args.object_mib * MIB, block)
    with through_netsim(server, args.latency_ms, args.rate_mbps) as proxy:
        proxied = build_infra(config_for(kind, server, proxy))
        uris = proxied.artifacts.list_files(folder)
        fetch = raw_fetcher(kind, proxied)
        seq_dir, par_dir = work / f"{kind}-seq", work / f"{kind}-par"
        seq_dir.mkdir()
        sequential = timed(lambda: [fetch(uri, seq_dir / uri.rsplit("/", 1)[1]) for uri in uris])
        parallel = timed(lambda: proxied.artifacts.download_files(folder, par_dir))
        proxied.close()
    direct.close()
    ratio = sequential / parallel
    total = args.objects * args.object_mib
    return (
        f"{kind:8} {args.objects} x {args.object_mib} MiB ({total} MiB): sequential SDK {sequential:6.2f} s, "
        f"download_files {parallel:6.2f} s -> {ratio:4.1f}x faster (target >= 4x: {verdict(ratio >= 4)})"
    )


def big_object(kind: str, server: RunningServer, args: argparse.Namespace, work: Path, block: bytes) -> str:
    direct = build_infra(config_for(kind, server))
    create_bucket(kind, direct)
    uri = f"{root_for(kind)}/big/model-{args.big_mib}.bin"
    upload(direct, uri, args.big_mib * MIB, block)
    direct.close()
    with through_netsim(server, args.latency_ms, args.rate_mbps) as proxy:
        proxied = build_infra(config_for(kind, server, proxy))
        fetch = raw_fetcher(kind, proxied)
        (work / f"{kind}-big-single").mkdir()
        single = timed(lambda: fetch(uri, work / f"{kind}-big-single" / "model.bin"))
        (work / f"{kind}-big-single" / "model.bin").unlink()
        with PeakRSS() as rss:
            ranged = timed(lambda: proxied.artifacts.download_files(uri, work / f"{kind}-big-par"))
        proxied.close()
    ratio = ranged / single
    growth = rss.growth / MIB
    return (
        f"{kind:8} one {args.big_mib} MiB object: single stream {single:6.2f} s, download_files {ranged:6.2f} s "
        f"-> {ratio:4.2f}x the time (target <= 0.5x: {verdict(ratio <= 0.5)}); peak RSS growth {growth:5.1f} MiB "
        f"(target <= 64 MiB: {verdict(growth <= 64)})"
    )


def small_reads(kind: str, server: RunningServer, args: argparse.Namespace) -> str:
    infra = build_infra(config_for(kind, server))
    create_bucket(kind, infra)
    uri = f"{root_for(kind)}/small/one-kib.json"
    upload(infra, uri, 1024, b"k" * 1024)
    read = raw_reader(kind, infra)

    def ours() -> None:
        for _ in range(args.reads):
            with infra.filesystem.open(uri, "rb") as stream:
                stream.read()

    def raw() -> None:
        for _ in range(args.reads):
            read(uri)

    ours(), raw()  # warm both paths (connections, imports)
    raw_time = min(timed(raw) for _ in range(2))
    our_time = min(timed(ours) for _ in range(2))
    infra.close()
    ratio = our_time / raw_time
    return (
        f"{kind:8} {args.reads} reads of 1 KiB: raw SDK {raw_time:5.2f} s, filesystem.open {our_time:5.2f} s "
        f"-> {ratio:4.2f}x (target <= 1.3x: {verdict(ratio <= 1.3)})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--servers", default="moto,azurite,gcs", help="Comma-separated: moto, azurite, gcs.")
    parser.add_argument("--objects", type=int, default=64)
    parser.add_argument("--object-mib", type=int, default=4)
    parser.add_argument("--big-mib", type=int, default=1024, help="Size of the one big object (0 skips it).")
    parser.add_argument("--reads", type=int, default=1000)
    parser.add_argument("--latency-ms", type=float, default=20)
    parser.add_argument("--rate-mbps", type=float, default=50)
    parser.add_argument("--quick", action="store_true", help="16 x 1 MiB, a 128 MiB object, 200 reads.")
    args = parser.parse_args()
    if args.quick:
        args.objects, args.object_mib, args.big_mib, args.reads = 16, 1, 128, 200
    kinds = [k.strip() for k in args.servers.split(",") if k.strip()]
    block = os.urandom(8 * MIB)
    print(f"netsim: {args.latency_ms:g} ms first-byte latency, {args.rate_mbps:g} MB/s per connection")
    with tempfile.TemporaryDirectory(prefix="storage-bench-") as tmp:
        work = Path(tmp)
        servers = {kind: SERVERS[kind](work / f"server-{kind}") for kind in kinds}
        if "moto" in servers:  # boto3 reads its credentials from the environment, as in a pod
            os.environ.update({k: v for k, v in servers["moto"].sdk_env.items() if k != "AWS_ENDPOINT_URL"})
        try:
            lines = [many_files(kind, servers[kind], args, work, block) for kind in kinds]
            if args.big_mib:
                lines += [big_object(kind, servers[kind], args, work, block) for kind in kinds if kind != "moto"]
                for leftover in work.glob("*-big-*"):
                    shutil.rmtree(leftover, ignore_errors=True)
            lines += [small_reads(kind, servers[kind], args) for kind in kinds]
        finally:
            for server in servers.values():
                server.stop()
    print("\n".join(lines))


if __name__ == "__main__":
    main()
