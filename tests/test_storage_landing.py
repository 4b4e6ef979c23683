"""Where downloads land: long and deep keys, file/folder collisions, existing files, symlink races, disk errors.

Each test is one reproduced report of issue 14 ("Downloads and files") or a sibling of one. The
race tests are deterministic: `download_all`'s ``after_plan`` hook (or the fetch itself) changes the
disk between the check and the write.
"""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path
from typing import Any, BinaryIO

import pytest
from typer.testing import CliRunner

from model_engine_infra.cli import app
from model_engine_infra.errors import (
    DownloadConflictError,
    StorageError,
    StoragePermissionError,
    UnsafeObjectKeyError,
)
from model_engine_infra.storage.base import ObjectInfo, download_all
from model_engine_infra.storage.landing import DownloadPlan, is_partial_name, partial_name, plan_download
from model_engine_infra.storage.local import LocalArtifacts, LocalFilesystem


def objects(*keys: str, size: int = 4) -> list[ObjectInfo]:
    return [ObjectInfo(f"mem://{key}", key, size) for key in keys]


def fill(obj: ObjectInfo, fileobj: BinaryIO, progress: Any) -> None:
    fileobj.write(b"x" * (obj.size or 0))


def download(objs: list[ObjectInfo], target: Path, **kwargs: Any) -> list[str]:
    return download_all(
        objs, target, kwargs.pop("fetch", fill), overwrite=False, max_concurrency=4, progress=None, **kwargs
    )


def files_in(folder: Path) -> list[str]:
    """Every file and link below ``folder`` (links not followed), as relative paths."""
    found = []
    for directory, dirs, names in os.walk(folder):
        for name in names + [d for d in dirs if Path(directory, d).is_symlink()]:
            found.append(Path(directory, name).relative_to(folder).as_posix())
    return sorted(found)


def remove_deep(folder: Path) -> None:
    """Remove a tree too deep for ``shutil.rmtree`` (it recurses, as pytest's clean-up does): flatten it first."""
    while True:
        subdirs = [e.path for e in os.scandir(folder) if e.is_dir(follow_symlinks=False)]
        if not subdirs:
            break
        for sub in subdirs:
            for inner in [e.path for e in os.scandir(sub) if e.is_dir(follow_symlinks=False)]:
                os.rename(inner, folder / f".flat-{os.urandom(6).hex()}")
            shutil.rmtree(sub)
    shutil.rmtree(folder)


# --- names near the filesystem's limit ---------------------------------------------------------------


def test_temporary_name_is_short_and_fixed() -> None:
    names = {partial_name() for _ in range(100)}
    assert len(names) == 100
    assert {len(name) for name in names} == {29}
    assert all(is_partial_name(name) for name in names)


@pytest.mark.parametrize("length", [240, 250, 255])
def test_last_segment_near_name_max_downloads(tmp_path: Path, length: int) -> None:
    key = "dir/" + "n" * length
    (path,) = download(objects(key), tmp_path / "out")
    assert Path(path).read_bytes() == b"xxxx"
    assert files_in(tmp_path / "out") == [key]


def test_segment_over_name_max_is_refused_before_writing(tmp_path: Path) -> None:
    with pytest.raises(UnsafeObjectKeyError, match="256 bytes") as info:
        download(objects("fine.txt", "dir/" + "n" * 256), tmp_path / "out")
    assert "nothing was written" in str(info.value)
    assert not (tmp_path / "out").exists()


def test_multibyte_segment_counts_bytes(tmp_path: Path) -> None:
    with pytest.raises(UnsafeObjectKeyError, match="258 bytes"):
        download(objects("é" * 129), tmp_path / "out")  # 129 characters, 258 bytes


def test_local_write_of_a_255_byte_name(tmp_path: Path) -> None:
    fs = LocalFilesystem()
    path = tmp_path / ("w" * 255)
    with fs.open(str(path), "wb") as stream:
        stream.write(b"ok")
    assert path.read_bytes() == b"ok"
    assert os.listdir(tmp_path) == [path.name]


# --- deep keys ----------------------------------------------------------------------------------------


def test_very_deep_key_downloads_without_recursion(tmp_path: Path) -> None:
    """3,000 folders deep: deeper than Python's recursion limit and longer than PATH_MAX (4,096)."""
    key = "/".join(["dd"] * 3000) + "/leaf.bin"
    assert len(str(tmp_path / key)) > 4096
    try:
        download(objects(key), tmp_path / "out")
        fd = os.open(tmp_path / "out", os.O_RDONLY)
        try:  # walk down with descriptors: the path is too long to open in one go
            for _ in range(3000):
                child = os.open("dd", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
                os.close(fd)
                fd = child
            assert os.listdir(fd) == ["leaf.bin"]
        finally:
            os.close(fd)
    finally:
        remove_deep(tmp_path / "out")


def test_local_write_deep_path_without_recursion(tmp_path: Path) -> None:
    path = tmp_path.joinpath("top", *["d"] * 1500, "f.txt")
    try:
        with LocalFilesystem().open(str(path), "wb") as stream:
            stream.write(b"deep")
        assert path.read_bytes() == b"deep"
    finally:
        remove_deep(tmp_path / "top")


# --- every OSError typed, naming the key -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "kind", "words"),
    [
        (errno.ENOSPC, StorageError, "disk is full"),
        (errno.EACCES, StoragePermissionError, "owner and mode"),
        (errno.EIO, StorageError, "cannot write"),
        (errno.EMFILE, StorageError, "cannot write"),
    ],
)
def test_os_errors_while_writing_are_typed_and_name_the_key(
    tmp_path: Path, code: int, kind: type[Exception], words: str
) -> None:
    def failing(obj: ObjectInfo, fileobj: BinaryIO, progress: Any) -> None:
        fileobj.write(b"xx")
        raise OSError(code, os.strerror(code))

    with pytest.raises(kind, match=words) as info:
        download(objects("models/w.bin"), tmp_path / "out", fetch=failing)
    assert isinstance(info.value, StorageError)
    assert "'models/w.bin'" in str(info.value)
    assert files_in(tmp_path / "out") == []  # no partial file left behind


def test_unwritable_target_is_typed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_mkdir = os.mkdir

    def denied(path: Any, *args: Any, **kwargs: Any) -> None:
        if kwargs.get("dir_fd") is not None:
            raise PermissionError(errno.EACCES, "Permission denied")
        real_mkdir(path, *args, **kwargs)

    monkeypatch.setattr(os, "mkdir", denied)
    with pytest.raises(StoragePermissionError, match=r"'sub/f\.bin'"):
        download(objects("sub/f.bin"), tmp_path / "out")


def test_local_read_error_is_typed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A disk that fails mid-read (EIO) gives a storage error naming the file, like a cut connection."""
    import model_engine_infra.storage.local as local

    path = tmp_path / "f.bin"
    path.write_bytes(b"z" * 3_000_000)

    class FailingDisk:
        def __init__(self) -> None:
            self.reads = 0

        def read(self, size: int) -> bytes:
            self.reads += 1
            if self.reads > 1:
                raise OSError(errno.EIO, "Input/output error")
            return b"z" * size

        def close(self) -> None:
            pass

    monkeypatch.setattr(local, "open", lambda *args, **kwargs: FailingDisk(), raising=False)
    stream = LocalFilesystem().open(str(path), "rb")
    with pytest.raises(StorageError, match="Input/output error") as info:
        stream.read()
    assert str(path) in str(info.value)


def test_local_write_error_is_typed(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("a file, not a folder")
    with pytest.raises(StorageError):
        LocalFilesystem().open(str(tmp_path / "file" / "below.txt"), "wb")


# --- collisions, found when planning ----------------------------------------------------------------


def test_file_and_folder_keys_collide_before_anything_is_written(tmp_path: Path) -> None:
    with pytest.raises(DownloadConflictError) as info:
        download(objects("a/b", "a", "c"), tmp_path / "out")
    message = str(info.value)
    assert "'a'" in message
    assert "'a/b'" in message
    assert "nothing was written" in message
    assert not (tmp_path / "out").exists()


def test_deeper_collision_and_order(tmp_path: Path) -> None:
    with pytest.raises(DownloadConflictError, match=r"'x/y'.*'x/y/z/w'"):
        download(objects("x/y", "x/y/z/w"), tmp_path / "out")
    with pytest.raises(DownloadConflictError, match=r"'x/y'.*'x/y/z/w'"):
        download(objects("x/y/z/w", "x/y"), tmp_path / "out")


def test_the_same_key_twice_collides(tmp_path: Path) -> None:
    twice = [ObjectInfo("mem://1", "k", 1), ObjectInfo("mem://2", "k", 1)]
    with pytest.raises(DownloadConflictError, match="same local file"):
        download(twice, tmp_path / "out")


def test_collision_from_a_real_store(tmp_path: Path) -> None:
    """S3 happily holds ``m/a`` and ``m/a/b``; the download says so before writing either."""
    import boto3
    from moto import mock_aws

    from model_engine_infra.storage.s3 import S3Artifacts

    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket="bkt")
        client.put_object(Bucket="bkt", Key="m/a", Body=b"file")
        client.put_object(Bucket="bkt", Key="m/a/b", Body=b"below")
        artifacts = S3Artifacts(client, fine_tuned_weights_prefix="s3://bkt/ft")
        with pytest.raises(DownloadConflictError, match=r"'a'.*'a/b'"):
            artifacts.download_files("s3://bkt/m", tmp_path / "out")
        artifacts.close()
    assert not (tmp_path / "out").exists()


def test_existing_file_where_a_folder_is_needed(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "a").write_text("mine")
    with pytest.raises(DownloadConflictError, match="existing file") as info:
        download(objects("z.bin", "a/b"), out)
    assert "'a/b'" in str(info.value)
    assert files_in(out) == ["a"]
    assert (out / "a").read_text() == "mine"


def test_existing_folder_where_a_file_goes(tmp_path: Path) -> None:
    out = tmp_path / "out"
    (out / "a").mkdir(parents=True)
    with pytest.raises(DownloadConflictError, match="existing folder"):
        download(objects("a"), out)


def test_target_that_is_an_existing_file(tmp_path: Path) -> None:
    target = tmp_path / "model.bin"
    target.write_text("keep me")
    with pytest.raises(DownloadConflictError, match="is an existing file") as info:
        download(objects("a", "b"), target)
    assert str(target) in str(info.value)
    assert target.read_text() == "keep me"


def test_artifacts_target_that_is_an_existing_file(tmp_path: Path) -> None:
    store = tmp_path / "store"
    (store / "m").mkdir(parents=True)
    (store / "m" / "w.bin").write_bytes(b"w")
    target = tmp_path / "taken"
    target.write_text("keep me")
    artifacts = LocalArtifacts(fine_tuned_weights_prefix=str(tmp_path / "ft"))
    with pytest.raises(DownloadConflictError):
        artifacts.download_files(str(store / "m"), target)
    assert target.read_text() == "keep me"


def test_cli_cp_folder_onto_an_existing_file_is_one_line(tmp_path: Path) -> None:
    store = tmp_path / "store"
    (store / "m").mkdir(parents=True)
    (store / "m" / "a.bin").write_bytes(b"a")
    (store / "m" / "b.bin").write_bytes(b"b")
    target = tmp_path / "taken"
    target.write_text("keep me")
    config = tmp_path / "config.yaml"
    config.write_text(f"cloud_provider: local\nlocal_data_dir: {tmp_path / 'data'}\n")
    result = CliRunner().invoke(app, ["storage", "cp", str(store / "m"), str(target), "-c", str(config)])
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    assert "is an existing file" in result.output
    assert target.read_text() == "keep me"


# --- symlinks: planned, swapped in after planning, swapped in mid-write ---------------------------------------


def test_existing_symlink_on_the_way_is_refused_when_planning(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    out = tmp_path / "out"
    out.mkdir()
    (out / "sub").symlink_to(outside)  # points *outside*; resolving it is not enough, it is a link
    with pytest.raises(UnsafeObjectKeyError, match="symbolic link"):
        download(objects("sub/f.bin"), out)
    assert list(outside.iterdir()) == []


def test_symlink_swapped_in_after_planning_cannot_redirect_the_write(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    out = tmp_path / "out"
    (out / "sub").mkdir(parents=True)

    def swap(plan: DownloadPlan) -> None:  # the attacker's move, between check and write
        assert [p.key for p in plan.files] == ["sub/f.bin"]
        (out / "sub").rmdir()
        (out / "sub").symlink_to(outside)

    with pytest.raises(UnsafeObjectKeyError, match="became a symbolic link"):
        download(objects("sub/f.bin"), out, after_plan=swap)
    assert list(outside.iterdir()) == []


def test_symlink_swapped_in_for_a_new_folder_after_planning(tmp_path: Path) -> None:
    """The folder did not exist when planned; the attacker creates it as a link first."""
    outside = tmp_path / "outside"
    outside.mkdir()
    out = tmp_path / "out"
    out.mkdir()

    def swap(plan: DownloadPlan) -> None:
        (out / "new").symlink_to(outside)

    with pytest.raises(UnsafeObjectKeyError):
        download(objects("new/deeper/f.bin"), out, after_plan=swap)
    assert list(outside.iterdir()) == []


def test_folder_swapped_mid_write_keeps_the_file_inside_the_target(tmp_path: Path) -> None:
    """The write goes through the folder's descriptor: renaming the folder away and linking its name
    elsewhere while bytes arrive still lands the file in the real folder, inside the target."""
    outside = tmp_path / "outside"
    outside.mkdir()
    out = tmp_path / "out"

    def fetch(obj: ObjectInfo, fileobj: BinaryIO, progress: Any) -> None:
        fileobj.write(b"ab")
        (out / "sub").rename(out / "moved")
        (out / "sub").symlink_to(outside)
        fileobj.write(b"cd")

    download(objects("sub/f.bin"), out, fetch=fetch)
    assert list(outside.iterdir()) == []
    assert (out / "moved" / "f.bin").read_bytes() == b"abcd"


def test_symlink_at_the_file_name_is_replaced_not_followed(tmp_path: Path) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    out = tmp_path / "out"
    out.mkdir()
    (out / "f.bin").symlink_to(victim)
    download(objects("f.bin"), out)
    assert victim.read_text() == "precious"
    assert not (out / "f.bin").is_symlink()
    assert (out / "f.bin").read_bytes() == b"xxxx"


def test_symlink_of_the_right_size_is_not_taken_as_complete(tmp_path: Path) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("four")  # 4 bytes, the listed size
    out = tmp_path / "out"
    out.mkdir()
    (out / "f.bin").symlink_to(victim)
    paths = download(objects("f.bin"), out)
    assert Path(paths[0]).read_bytes() == b"xxxx"
    assert victim.read_text() == "four"


def test_plan_is_pure(tmp_path: Path) -> None:
    plan = plan_download(objects("a/b/c", "d"), tmp_path / "out")
    assert [p.parts for p in plan.files] == [("a", "b", "c"), ("d",)]
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("uri", ["s3://[", "gs://[bucket/x", "https://[::1/x", "az://]/x"])
def test_uris_python_cannot_split_are_invalid_uri(uri: str) -> None:
    """Found by the property tests: ``urlsplit`` raised a raw ValueError for an unclosed '['."""
    from model_engine_infra.errors import InvalidURIError
    from model_engine_infra.storage.uri import parse_uri

    with pytest.raises(InvalidURIError):
        parse_uri(uri, accepts=("s3", "gs", "az", "file"), store="test")


# --- the read-only HTTPS store ------------------------------------------------------------------------


def test_https_store_never_follows_a_redirect_to_plain_http() -> None:
    import httpx

    from model_engine_infra.storage.https import HttpsArtifacts, HttpsFilesystem, make_client

    reached: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        reached.append(str(request.url))
        if request.url.scheme == "https":
            return httpx.Response(302, headers={"Location": "http://mirror.example/weights.bin"})
        return httpx.Response(200, content=b"tampered")

    client = make_client(transport=httpx.MockTransport(handler))
    fs = HttpsFilesystem(client)
    with pytest.raises(StoragePermissionError, match="plain HTTP"):
        fs.open("https://files.example/weights.bin", "rb")
    artifacts = HttpsArtifacts(client, fine_tuned_weights_prefix="https://files.example/ft")
    with pytest.raises(StoragePermissionError, match="plain HTTP"):
        artifacts.get_model_config("https://files.example/model")
    assert all(url.startswith("https://") for url in reached)
    fs.close()


def test_https_store_read_cut_mid_body_is_typed() -> None:
    import httpx

    from model_engine_infra.errors import StorageUnavailableError
    from model_engine_infra.storage.https import HttpsFilesystem, make_client

    class Cut(httpx.SyncByteStream):
        def __iter__(self) -> Any:
            yield b"x" * 300_000
            raise httpx.RemoteProtocolError("peer closed connection without sending complete message body")

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"Content-Length": "3000000"}, stream=Cut())

    fs = HttpsFilesystem(make_client(transport=httpx.MockTransport(handler)))
    with pytest.raises(StorageUnavailableError, match="weights"):
        fs.open("https://files.example/weights.bin", "rb").read()
    fs.close()
