"""Object transfers against the tools users would otherwise run (s5cmd, rclone) and candidate engines.

    python benchmarks/storage_anchors.py [--stores s3,azure,gcs] [--objects 64] [--object-mib 4]
                                         [--big-mib 512] [--rounds 3] [--big-rounds 2]
                                         [--parts many,big,upload,memory] [--part-size-mb N] [--concurrency N]
                                         [--anchors-only]

Every server sits behind netsim (20 ms per request, 50 MB/s per connection): moto server (S3),
Azurite (Blob) and fake-gcs-server (GCS, started with its public host set to the proxy, so that
rclone, which downloads through each object's ``mediaLink``, goes through the proxy too). For each
store, in one run, cases interleaved round by round, medians and ratios printed:

- ``many``: download N x M MiB — ``download_files`` with its defaults, s5cmd (S3) and rclone with
  theirs, and the candidate engines (obstore; per store s3transfer / the Azure SDK's
  ``max_concurrency`` / google-cloud-storage's ``transfer_manager``; s3transfer's CRT manager when
  ``BENCH_AWSCRT_PATH`` names a folder holding awscrt (``pip install --target DIR awscrt``), run in
  a child process: installed beside botocore, awscrt would switch this process's request signing);
- ``big``: download one large object, the same cases (moto reads the whole object for every ranged
  GET, so its time grows with the number of ranges: see docs/performance.md);
- ``upload``: upload N x M MiB and one large file — ``upload_files`` against ``s5cmd cp`` / ``rclone copy``;
- ``memory``: peak resident memory of a fresh process doing each download, and its growth during
  the download (the peak minus the resident set just before it, after imports, client and
  listing); rclone's growth is its peak minus the peak of ``rclone lsf`` on the same remote.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from _bench import LATENCY_MS, RATE_MBPS, find_tool, interleave, report, rss_of_command, run_tool
from model_engine_infra import build_infra
from model_engine_infra.testing.netsim import netsim
from model_engine_infra.testing.servers import RunningServer, free_port, start_azurite, start_fake_gcs, start_moto
from storage_download import config_for, create_bucket, upload

MIB = 1024 * 1024
BUCKET = {"s3": "bench-bucket", "azure": "bench", "gcs": "bench-bucket"}
SCHEME = {"s3": "s3", "azure": "az", "gcs": "gs"}
KIND = {"s3": "moto", "azure": "azurite", "gcs": "gcs"}  # storage_download's names for the servers
REMOTE = {"s3": "s3", "azure": "az", "gcs": "gcs"}
THREADS = 16  # candidates run with the library's default concurrency
CRT_PATH = os.environ.get("BENCH_AWSCRT_PATH", "")  # a folder holding awscrt, kept off this process's path


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
    if store == "gcs":
        return {
            "RCLONE_CONFIG_GCS_TYPE": "google cloud storage",
            "RCLONE_CONFIG_GCS_ANONYMOUS": "true",
            "RCLONE_CONFIG_GCS_ENDPOINT": f"{endpoint}/storage/v1/",
            "RCLONE_CONFIG_GCS_PROJECT_NUMBER": "bench",
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
    return {"RCLONE_CONFIG_AZ_TYPE": "azureblob", "RCLONE_CONFIG_AZ_SAS_URL": f"{endpoint}/{account}?{sas}"}


def remote(store: str, path: str) -> str:
    """rclone's name for bucket/path."""
    return f"{REMOTE[store]}:{BUCKET[store]}/{path}"


# --- candidate engines ---------------------------------------------------------------------------------------


def obstore_reader(store: str, server: RunningServer, endpoint: str) -> Callable[[str, Path], None] | None:
    """obstore (Rust object_store) downloading one object to a file as one stream; None if absent."""
    try:
        import obstore
        from obstore.store import AzureStore, GCSStore, S3Store
    except ImportError:
        return None
    handle: Any
    if store == "s3":
        handle = S3Store(
            BUCKET["s3"],
            endpoint=endpoint,
            access_key_id="testing",
            secret_access_key="testing",
            region="us-east-1",
            client_options={"allow_http": True},
        )
    elif store == "azure":
        handle = AzureStore(
            BUCKET["azure"],
            account_name=server.extra["account_name"],
            account_key=server.extra["account_key"],
            endpoint=f"{endpoint}/{server.extra['account_name']}",
            client_options={"allow_http": True},
        )
    else:
        handle = GCSStore(BUCKET["gcs"], base_url=endpoint, skip_signature=True, client_options={"allow_http": True})

    def fetch(key: str, dest: Path) -> None:
        with open(dest, "wb") as out:
            for chunk in obstore.get(handle, key).stream(min_chunk_size=8 * MIB):
                out.write(chunk)

    return fetch


def sdk_engine(store: str, infra: Any) -> tuple[Callable[[list[str], Path], None], str]:
    """The store SDK's own parallel download, tuned like ours (16 at once, 64 MiB parts), and its name."""
    client: Any = infra.filesystem.client
    if store == "s3":
        from boto3.s3.transfer import TransferConfig

        config = TransferConfig(multipart_threshold=16 * MIB, multipart_chunksize=64 * MIB, max_concurrency=THREADS)

        def s3(keys: list[str], out: Path) -> None:
            with ThreadPoolExecutor(1 if len(keys) == 1 else THREADS) as pool:
                list(
                    pool.map(
                        lambda key: client.download_file(BUCKET["s3"], key, str(out / Path(key).name), Config=config),
                        keys,
                    )
                )

        return s3, "s3transfer (TransferConfig 64 MiB, 16)"
    if store == "azure":

        def azure(keys: list[str], out: Path) -> None:
            def one(key: str) -> None:
                with open(out / Path(key).name, "wb") as target:
                    concurrency = THREADS if len(keys) == 1 else 1
                    blob = client.get_blob_client(BUCKET["azure"], key)
                    blob.download_blob(max_concurrency=concurrency).readinto(target)

            with ThreadPoolExecutor(1 if len(keys) == 1 else THREADS) as pool:
                list(pool.map(one, keys))

        return azure, "Azure SDK download_blob(max_concurrency=16).readinto"
    from google.cloud.storage import transfer_manager

    bucket = client.bucket(BUCKET["gcs"])

    def gcs(keys: list[str], out: Path) -> None:
        if len(keys) == 1:
            transfer_manager.download_chunks_concurrently(
                bucket.blob(keys[0]),
                str(out / Path(keys[0]).name),
                chunk_size=64 * MIB,
                max_workers=THREADS,
                worker_type=transfer_manager.THREAD,
            )
            return
        blobs = [bucket.blob(key) for key in keys]
        pairs = [(blob, str(out / Path(blob.name).name)) for blob in blobs]
        results = transfer_manager.download_many(pairs, max_workers=THREADS, worker_type=transfer_manager.THREAD)
        for result in results:
            if isinstance(result, Exception):
                raise result

    return gcs, "GCS transfer_manager (16 threads, 64 MiB chunks)"


def crt_command(endpoint: str, keys: list[str], out: Path) -> list[str] | None:
    """A child process downloading ``keys`` with boto3's CRT transfer manager, or None without awscrt."""
    if not CRT_PATH:
        return None
    spec = json.dumps({"endpoint": endpoint, "keys": keys, "out": str(out)})
    return [sys.executable, __file__, "--crt-child", spec]


def crt_child(spec_json: str) -> None:
    """s3transfer's CRT manager on an S3 client of awscrt, the way boto3 builds it but at our endpoint.

    boto3's own ``create_crt_transfer_manager`` drops the client's ``endpoint_url`` (it serializes
    requests for AWS itself), so against a local server the CRT client is built here.
    """
    sys.path.insert(0, CRT_PATH)
    import awscrt.auth
    import botocore.session
    from botocore.config import Config
    from s3transfer.crt import BotocoreCRTRequestSerializer, CRTTransferManager, create_s3_crt_client

    spec = json.loads(spec_json)
    session = botocore.session.get_session()
    serializer = BotocoreCRTRequestSerializer(
        session,
        {
            "region_name": "us-east-1",
            "endpoint_url": spec["endpoint"],
            "aws_access_key_id": "testing",
            "aws_secret_access_key": "testing",
            "config": Config(s3={"addressing_style": "path"}),
        },
    )
    credentials = awscrt.auth.AwsCredentialsProvider.new_static("testing", "testing")
    crt_client = create_s3_crt_client(
        "us-east-1", crt_credentials_provider=credentials, part_size=8 * MIB, use_ssl=False
    )
    with CRTTransferManager(crt_client, serializer) as manager:
        futures = [manager.download(BUCKET["s3"], key, str(Path(spec["out"]) / Path(key).name)) for key in spec["keys"]]
        for future in futures:
            future.result()


# --- the benchmark -----------------------------------------------------------------------------------------


def bench_store(
    store: str, server: RunningServer, proxy_port: int, args: argparse.Namespace, work: Path, block: bytes
) -> None:
    kind = KIND[store]
    parts = set(args.parts.split(","))
    direct = build_infra(config_for(kind, server))
    create_bucket(kind, direct)
    root = f"{SCHEME[store]}://{BUCKET[store]}"
    many = f"many-{args.objects}x{args.object_mib}"
    many_keys = [f"{many}/shard-{i:03d}.bin" for i in range(args.objects)]
    big = f"big/model-{args.big_mib}.bin"
    if parts & {"many", "memory"}:
        for key in many_keys:
            upload(direct, f"{root}/{key}", args.object_mib * MIB, block)
    if args.big_mib and parts & {"big", "memory"}:
        upload(direct, f"{root}/{big}", args.big_mib * MIB, block)
    direct.close()
    s5cmd, rclone = find_tool("s5cmd"), find_tool("rclone")
    with netsim(server.port, latency_ms=LATENCY_MS, rate_mbps=RATE_MBPS, port=proxy_port) as port:
        endpoint = f"http://127.0.0.1:{port}"
        infra = build_infra(config_for(kind, server, endpoint))
        artifacts = infra.artifacts
        env = rclone_env(store, server, endpoint)
        s5 = [s5cmd, "--endpoint-url", endpoint]
        out = work / "out"
        candidate = None if args.anchors_only else obstore_reader(store, server, endpoint)
        engine, engine_name = sdk_engine(store, infra)
        anchor: tuple[str, ...] = ("s5cmd cp", "rclone copy") if store == "s3" else ("rclone copy",)

        def obstore_many() -> None:
            assert candidate is not None
            with ThreadPoolExecutor(THREADS) as pool:
                list(pool.map(lambda key: candidate(key, out / Path(key).name), many_keys))

        if "many" in parts:
            cases: dict[str, Callable[[], Any]] = {
                "download_files (default)": lambda: artifacts.download_files(f"{root}/{many}", out),
                "rclone copy": lambda: run_tool([rclone, "copy", remote(store, many), str(out)], env),
            }
            if args.concurrency:
                cases[f"download_files, max_concurrency={args.concurrency}"] = lambda: artifacts.download_files(
                    f"{root}/{many}", out, max_concurrency=args.concurrency
                )
            if not args.anchors_only:
                cases[engine_name] = lambda: engine(many_keys, out)
            if store == "s3":
                cases["s5cmd cp"] = lambda: run_tool([*s5, "cp", f"s3://{BUCKET['s3']}/{many}/*", f"{out}/"])
                crt = None if args.anchors_only else crt_command(endpoint, many_keys, out)
                if crt is not None:
                    cases["boto3 CRT transfer manager (child process)"] = lambda: run_tool(crt)
            if candidate is not None:
                cases["obstore, 16 objects at once"] = obstore_many
            timings = interleave(cases, args.rounds, before_each=lambda _: fresh(out))
            report(f"{store}: download {args.objects} x {args.object_mib} MiB", timings, anchor=anchor, target=1.2)

        if args.big_mib and "big" in parts:
            big_cases: dict[str, Callable[[], Any]] = {
                "download_files (default)": lambda: artifacts.download_files(f"{root}/{big}", out),
            }
            if args.part_size_mb:
                fixed = build_infra(
                    config_for(kind, server, endpoint).model_copy(update={"storage_part_size_mb": args.part_size_mb})
                )
                big_cases[f"download_files, storage_part_size_mb={args.part_size_mb}"] = lambda: (
                    fixed.artifacts.download_files(f"{root}/{big}", out)
                )
            big_cases["rclone copy"] = lambda: run_tool([rclone, "copy", remote(store, big), str(out)], env)
            if not args.anchors_only:
                big_cases[engine_name] = lambda: engine([big], out)
            if store == "s3":
                big_cases["s5cmd cp"] = lambda: run_tool([*s5, "cp", f"s3://{BUCKET['s3']}/{big}", f"{out}/"])
                crt = None if args.anchors_only else crt_command(endpoint, [big], out)
                if crt is not None:
                    big_cases["boto3 CRT transfer manager (child process)"] = lambda: run_tool(crt)
            if candidate is not None:
                big_cases["obstore, one stream"] = lambda: candidate(big, out / "big.bin")
            timings = interleave(big_cases, args.big_rounds, before_each=lambda _: fresh(out))
            report(f"{store}: download one {args.big_mib} MiB object", timings, anchor=anchor, target=1.2)

        if "upload" in parts:
            bench_uploads(store, args, work, block, artifacts, root, env, s5, rclone)

        if "memory" in parts:
            bench_memory(store, server, args, endpoint, env, rclone, out, root, many, big)
        infra.close()


def bench_uploads(
    store: str,
    args: argparse.Namespace,
    work: Path,
    block: bytes,
    artifacts: Any,
    root: str,
    env: dict[str, str],
    s5: list[str],
    rclone: str,
) -> None:
    local = work / "local-many"
    fresh(local)
    for i in range(args.objects):
        (local / f"shard-{i:03d}.bin").write_bytes(block[: args.object_mib * MIB])
    counter = iter(range(10**6))
    uploads: dict[str, Callable[[], Any]] = {
        "upload_files (default)": lambda: artifacts.upload_files(local, f"{root}/up-{next(counter)}"),
        "rclone copy": lambda: run_tool([rclone, "copy", str(local), remote(store, f"up-{next(counter)}")], env),
    }
    if store == "s3":
        uploads["s5cmd cp"] = lambda: run_tool([*s5, "cp", f"{local}/*", f"s3://{BUCKET['s3']}/up-{next(counter)}/"])
    timings = interleave(uploads, args.rounds)
    anchor = "s5cmd cp" if store == "s3" else "rclone copy"  # the anchors for uploads
    report(
        f"{store}: upload {args.objects} x {args.object_mib} MiB",
        timings,
        anchor=anchor,
        target=1.2,
        others=("rclone copy",) if store == "s3" else (),
    )
    if not args.big_mib:
        return
    big_file = work / "local-big" / f"model-{args.big_mib}.bin"
    big_file.parent.mkdir(exist_ok=True)
    with open(big_file, "wb") as target:
        for _ in range(args.big_mib * MIB // len(block)):
            target.write(block)
    big_uploads: dict[str, Callable[[], Any]] = {
        "upload_files (default)": lambda: artifacts.upload_files(big_file, f"{root}/up-big-{next(counter)}/"),
        "rclone copy": lambda: run_tool([rclone, "copy", str(big_file), remote(store, f"up-big-{next(counter)}")], env),
    }
    if store == "s3":
        big_uploads["s5cmd cp"] = lambda: run_tool(
            [*s5, "cp", str(big_file), f"s3://{BUCKET['s3']}/up-big-{next(counter)}/"]
        )
    timings = interleave(big_uploads, args.big_rounds)
    report(
        f"{store}: upload one {args.big_mib} MiB file", timings, anchor="rclone copy", target=1.2, others=("s5cmd cp",)
    )


def bench_memory(
    store: str,
    server: RunningServer,
    args: argparse.Namespace,
    endpoint: str,
    env: dict[str, str],
    rclone: str,
    out: Path,
    root: str,
    many: str,
    big: str,
) -> None:
    kind = KIND[store]
    _, rclone_idle = rss_of_command([rclone, "lsf", remote(store, "none/")], env)
    cases = [(f"{args.objects} x {args.object_mib} MiB", f"{root}/{many}", remote(store, many))]
    if args.big_mib:
        cases.append((f"one {args.big_mib} MiB object", f"{root}/{big}", remote(store, big)))
    for what, uri, theirs in cases:
        fresh(out)
        ours = ours_in_child(kind, server, endpoint, uri, out)
        fresh(out)
        seconds, rclone_peak = rss_of_command([rclone, "copy", theirs, str(out)], env)
        print(
            f"{store}: memory, download {what}: download_files peak {ours['peak']:.0f} MiB, growth "
            f"{ours['peak'] - ours['before']:.1f} MiB (resident before the download {ours['before']:.0f} MiB; "
            f"{ours['seconds']:.2f} s); rclone peak {rclone_peak:.0f} MiB, growth {rclone_peak - rclone_idle:.1f} MiB "
            f"(rclone lsf peaks at {rclone_idle:.0f} MiB; {seconds:.2f} s)"
        )
        sys.stdout.flush()


def ours_in_child(kind: str, server: RunningServer, endpoint: str, uri: str, out: Path) -> dict[str, float]:
    """A fresh interpreter that imports the library, lists, and downloads ``uri``: its resident memory."""
    fields = {k: v for k, v in vars(server).items() if not k.startswith("_")}
    fields["data_dir"] = str(fields["data_dir"])
    with tempfile.NamedTemporaryFile("r", suffix=".json") as result:
        spec = {
            "kind": kind,
            "server": fields,
            "endpoint": endpoint,
            "uri": uri,
            "out": str(out),
            "result": result.name,
        }
        rss_of_command([sys.executable, __file__, "--child", json.dumps(spec)])
        found: dict[str, float] = json.loads(Path(result.name).read_text())
    return found


def _status_mib(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


def child(spec_json: str) -> None:
    spec = json.loads(spec_json)
    fields = dict(spec["server"])
    fields["data_dir"] = Path(fields["data_dir"])
    server = RunningServer(**fields)
    infra = build_infra(config_for(spec["kind"], server, spec["endpoint"]))
    objects = infra.artifacts.list_objects(spec["uri"])
    before = _status_mib("VmRSS")
    started = time.perf_counter()
    infra.artifacts.download_objects(objects, spec["out"])
    seconds = time.perf_counter() - started
    Path(spec["result"]).write_text(json.dumps({"before": before, "peak": _status_mib("VmHWM"), "seconds": seconds}))
    infra.close()


@contextlib.contextmanager
def servers(stores: list[str], work: Path) -> Iterator[dict[str, tuple[RunningServer, int]]]:
    """Each store's server and the port its proxy will listen on (fake-gcs-server must know it first)."""
    started: dict[str, tuple[RunningServer, int]] = {}
    try:
        for store in stores:
            proxy_port = free_port()
            if store == "s3":
                server = start_moto(work / "server-s3")
            elif store == "azure":
                server = start_azurite(work / "server-azure")
            else:
                server = start_fake_gcs(work / "server-gcs", public_host=f"127.0.0.1:{proxy_port}")
            started[store] = (server, proxy_port)
        yield started
    finally:
        for server, _ in started.values():
            server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stores", default="s3,azure,gcs")
    parser.add_argument("--objects", type=int, default=64)
    parser.add_argument("--object-mib", type=int, default=4)
    parser.add_argument("--big-mib", type=int, default=512, help="the one large object (0 skips it)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--big-rounds", type=int, default=2)
    parser.add_argument("--parts", default="many,big,upload,memory")
    parser.add_argument(
        "--part-size-mb", type=int, default=0, help="also download the large object with storage_part_size_mb=N"
    )
    parser.add_argument(
        "--concurrency", type=int, default=0, help="also download the many objects with max_concurrency=N"
    )
    parser.add_argument("--anchors-only", action="store_true", help="ours, s5cmd and rclone; no candidate engines")
    parser.add_argument("--child", help=argparse.SUPPRESS)  # one download in a fresh process, for its memory
    parser.add_argument("--crt-child", help=argparse.SUPPRESS)  # boto3's CRT transfer manager, isolated
    args = parser.parse_args()
    if args.child:
        child(args.child)
        return
    if args.crt_child:
        crt_child(args.crt_child)
        return
    stores = [s.strip() for s in args.stores.split(",") if s.strip()]
    block = os.urandom(8 * MIB)
    print(
        f"netsim {LATENCY_MS:g} ms per request, {RATE_MBPS:g} MB/s per connection; medians, interleaved; "
        f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}"
    )
    print(f"rclone: {subprocess.run(['rclone', 'version'], capture_output=True, text=True).stdout.splitlines()[0]}")
    with tempfile.TemporaryDirectory(prefix="storage-anchors-") as tmp, servers(stores, Path(tmp)) as running:
        if "s3" in running:
            os.environ.update({k: v for k, v in running["s3"][0].sdk_env.items() if k != "AWS_ENDPOINT_URL"})
        for store in stores:
            server, proxy_port = running[store]
            bench_store(store, server, proxy_port, args, Path(tmp), block)


if __name__ == "__main__":
    main()
