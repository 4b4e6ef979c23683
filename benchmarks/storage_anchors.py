"""Object transfers against the tools users would otherwise run: s5cmd and rclone, through netsim.

    python benchmarks/storage_anchors.py [--stores s3,azure] [--objects 64] [--object-mib 4] [--big-mib 128]
                                         [--rounds 3]

Every server sits behind netsim (20 ms per request, 50 MB/s per connection). For each store, in
one run with the cases interleaved round by round (medians and ratios printed):

- download N x M MiB: ``download_files`` (default and 32 at once), candidate engines (obstore),
  s5cmd (S3) and rclone, each with its default settings;
- download one large object (moto serves very large ranged reads slowly: keep it <= 256 MiB there;
  the issue's target is for 1 GiB, so read these as ratios at this size);
- upload N x M MiB: ``upload_files`` against ``s5cmd cp`` / ``rclone copy``.

Peak memory: the whole process's peak resident set (``wait4``), for rclone and for a fresh Python
process that imports the library and runs the same download. The Azure client's target is "no
more than rclone".
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from _bench import LATENCY_MS, RATE_MBPS, find_tool, interleave, report, rss_of_command, run_tool
from model_engine_infra import build_infra
from model_engine_infra.testing.netsim import netsim
from model_engine_infra.testing.servers import RunningServer, start_azurite, start_moto
from storage_download import config_for, create_bucket, upload

MIB = 1024 * 1024
BUCKET = {"s3": "bench-bucket", "azure": "bench"}
KIND = {"s3": "moto", "azure": "azurite"}  # storage_download's names for the servers


def fresh(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)


def rclone_env(store: str, server: RunningServer, endpoint: str) -> dict[str, str]:
    if store == "s3":
        return {
            "RCLONE_CONFIG_S3_TYPE": "s3",
            "RCLONE_CONFIG_S3_PROVIDER": "Other",
            "RCLONE_CONFIG_S3_ENDPOINT": endpoint,
            "RCLONE_CONFIG_S3_ACCESS_KEY_ID": "testing",
            "RCLONE_CONFIG_S3_SECRET_ACCESS_KEY": "testing",
            "RCLONE_CONFIG_S3_REGION": "us-east-1",
            "AWS_CA_BUNDLE": "",
        }
    from azure.storage.blob import AccountSasPermissions, ResourceTypes, generate_account_sas

    account = server.extra["account_name"]
    sas = generate_account_sas(
        account,
        server.extra["account_key"],
        resource_types=ResourceTypes(service=True, container=True, object=True),
        permission=AccountSasPermissions(read=True, write=True, list=True, create=True, add=True, delete=True),
        expiry=datetime.now(timezone.utc) + timedelta(hours=2),
    )
    return {
        "RCLONE_CONFIG_AZ_TYPE": "azureblob",
        "RCLONE_CONFIG_AZ_SAS_URL": f"{endpoint}/{account}?{sas}",
    }


def remote(store: str, path: str) -> str:
    """rclone's name for bucket/path."""
    return f"s3:{BUCKET['s3']}/{path}" if store == "s3" else f"az:{BUCKET['azure']}/{path}"


def obstore_reader(store: str, server: RunningServer, endpoint: str) -> Callable[[str, Path], None] | None:
    """A candidate engine: obstore (Rust object_store) downloading one object to a file, None if absent."""
    try:
        import obstore
        from obstore.store import AzureStore, S3Store
    except ImportError:
        return None
    if store == "s3":
        handle: Any = S3Store(
            BUCKET["s3"],
            endpoint=endpoint,
            access_key_id="testing",
            secret_access_key="testing",
            region="us-east-1",
            client_options={"allow_http": True},
        )
    else:
        handle = AzureStore(
            BUCKET["azure"],
            account_name=server.extra["account_name"],
            account_key=server.extra["account_key"],
            endpoint=f"{endpoint}/{server.extra['account_name']}",
            client_options={"allow_http": True},
        )

    def fetch(key: str, dest: Path) -> None:
        with open(dest, "wb") as out:
            for chunk in obstore.get(handle, key).stream(min_chunk_size=8 * MIB):
                out.write(chunk)

    return fetch


def bench_store(store: str, server: RunningServer, args: argparse.Namespace, work: Path, block: bytes) -> None:
    kind = KIND[store]
    direct = build_infra(config_for(kind, server))
    create_bucket(kind, direct)
    root = "s3://bench-bucket" if store == "s3" else "az://bench"
    many = f"many-{args.objects}x{args.object_mib}"
    for i in range(args.objects):
        upload(direct, f"{root}/{many}/shard-{i:03d}.bin", args.object_mib * MIB, block)
    big = f"big/model-{args.big_mib}.bin"
    if args.big_mib:
        upload(direct, f"{root}/{big}", args.big_mib * MIB, block)
    direct.close()
    local = work / "local-many"
    fresh(local)
    for i in range(args.objects):
        (local / f"shard-{i:03d}.bin").write_bytes(block[: args.object_mib * MIB])
    s5cmd, rclone = find_tool("s5cmd"), find_tool("rclone")
    with netsim(server.port, latency_ms=LATENCY_MS, rate_mbps=RATE_MBPS) as port:
        endpoint = f"http://127.0.0.1:{port}"
        infra = build_infra(config_for(kind, server, endpoint))
        artifacts = infra.artifacts
        env = rclone_env(store, server, endpoint)
        s5 = [s5cmd, "--endpoint-url", endpoint]
        out = work / "out"
        candidate = obstore_reader(store, server, endpoint)

        def obstore_many() -> None:
            assert candidate is not None
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(16) as pool:
                list(pool.map(lambda i: candidate(f"{many}/shard-{i:03d}.bin", out / f"{i}.bin"), range(args.objects)))

        downloads: dict[str, Callable[[], Any]] = {
            "download_files (default)": lambda: artifacts.download_files(f"{root}/{many}", out),
            "download_files, max_concurrency=32": lambda: artifacts.download_files(
                f"{root}/{many}", out, max_concurrency=32
            ),
            "rclone copy": lambda: run_tool([rclone, "copy", remote(store, many), str(out)], env),
        }
        if store == "s3":
            downloads["s5cmd cp"] = lambda: run_tool([*s5, "cp", f"s3://bench-bucket/{many}/*", f"{out}/"])
        if candidate is not None:
            downloads["obstore, 16 objects at once"] = obstore_many
        anchor = "s5cmd cp" if store == "s3" else "rclone copy"
        timings = interleave(downloads, args.rounds, before_each=lambda _: fresh(out))
        report(f"{store}: download {args.objects} x {args.object_mib} MiB", timings, anchor=anchor, target=1.2)

        if args.big_mib:
            big_cases: dict[str, Callable[[], Any]] = {
                "download_files (default)": lambda: artifacts.download_files(f"{root}/{big}", out),
                "rclone copy": lambda: run_tool([rclone, "copy", remote(store, big), str(out)], env),
            }
            if store == "s3":
                big_cases["s5cmd cp"] = lambda: run_tool([*s5, "cp", f"s3://bench-bucket/{big}", f"{out}/"])
            if candidate is not None:
                big_cases["obstore, one stream"] = lambda: candidate(big, out / "big.bin")
            timings = interleave(big_cases, args.rounds, before_each=lambda _: fresh(out))
            report(f"{store}: download one {args.big_mib} MiB object", timings, anchor=anchor, target=1.2)

        counter = iter(range(10**6))
        uploads: dict[str, Callable[[], Any]] = {
            "upload_files (default)": lambda: artifacts.upload_files(local, f"{root}/up-{next(counter)}"),
            "rclone copy": lambda: run_tool([rclone, "copy", str(local), remote(store, f"up-{next(counter)}")], env),
        }
        if store == "s3":
            uploads["s5cmd cp"] = lambda: run_tool([*s5, "cp", f"{local}/*", f"s3://bench-bucket/up-{next(counter)}/"])
        timings = interleave(uploads, args.rounds)
        report(f"{store}: upload {args.objects} x {args.object_mib} MiB", timings, anchor=anchor, target=1.2)

        _, idle_rss = ours_in_child(kind, server, endpoint, "", out)
        print(f"{store}: peak RSS of a process that loads the library and its SDK and lists once: {idle_rss:.0f} MiB")
        memory = [(f"{args.objects} x {args.object_mib} MiB", f"{root}/{many}", remote(store, many))]
        if args.big_mib:
            memory.append((f"one {args.big_mib} MiB object", f"{root}/{big}", remote(store, big)))
        for what, uri, theirs in memory:
            fresh(out)
            ours_seconds, ours_rss = ours_in_child(kind, server, endpoint, uri, out)
            fresh(out)
            tool_seconds, tool_rss = rss_of_command([rclone, "copy", theirs, str(out)], env)
            print(
                f"{store}: peak RSS of the whole process, download {what}: download_files {ours_rss:.0f} MiB "
                f"({ours_seconds:.2f} s), rclone {tool_rss:.0f} MiB ({tool_seconds:.2f} s)"
            )
        infra.close()


def ours_in_child(kind: str, server: RunningServer, endpoint: str, uri: str, out: Path) -> tuple[float, float]:
    """(seconds, peak RSS MiB) of a fresh interpreter that imports the library and runs one download."""
    fields = {k: v for k, v in vars(server).items() if not k.startswith("_")}
    fields["data_dir"] = str(fields["data_dir"])
    spec = json.dumps({"kind": kind, "server": fields, "endpoint": endpoint, "uri": uri, "out": str(out)})
    return rss_of_command([sys.executable, __file__, "--child", spec])


def child(spec_json: str) -> None:
    spec = json.loads(spec_json)
    fields = dict(spec["server"])
    fields["data_dir"] = Path(fields["data_dir"])
    server = RunningServer(**fields)
    infra = build_infra(config_for(spec["kind"], server, spec["endpoint"]))
    if spec["uri"]:
        infra.artifacts.download_files(spec["uri"], spec["out"])
    else:
        infra.artifacts.list_objects(f"{'s3://bench-bucket' if spec['kind'] == 'moto' else 'az://bench'}/none/")
    infra.close()


def timed(fn: Callable[[], Any]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


@contextlib.contextmanager
def servers(stores: list[str], work: Path) -> Iterator[dict[str, RunningServer]]:
    started: dict[str, RunningServer] = {}
    try:
        for store in stores:
            started[store] = (start_moto if store == "s3" else start_azurite)(work / f"server-{store}")
        yield started
    finally:
        for server in started.values():
            server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stores", default="s3,azure")
    parser.add_argument("--objects", type=int, default=64)
    parser.add_argument("--object-mib", type=int, default=4)
    parser.add_argument("--big-mib", type=int, default=128, help="the one large object (0 skips it)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--child", help=argparse.SUPPRESS)  # one download in a fresh process, for its RSS
    args = parser.parse_args()
    if args.child:
        child(args.child)
        return
    stores = [s.strip() for s in args.stores.split(",") if s.strip()]
    block = os.urandom(8 * MIB)
    print(f"netsim {LATENCY_MS:g} ms per request, {RATE_MBPS:g} MB/s per connection; medians, interleaved")
    with tempfile.TemporaryDirectory(prefix="storage-anchors-") as tmp, servers(stores, Path(tmp)) as running:
        if "s3" in running:
            os.environ.update({k: v for k, v in running["s3"].env.items() if k != "AWS_ENDPOINT_URL"})
        for store in stores:
            bench_store(store, running[store], args, Path(tmp), block)


if __name__ == "__main__":
    main()
