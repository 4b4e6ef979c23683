"""File storage beyond the contract: the name rule (with hypothesis), prefixes per provider, errors, plugin stores."""

from __future__ import annotations

import posixpath
from pathlib import Path
from typing import IO, Any
from urllib.parse import unquote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from model_engine_infra import InfraConfig, build_infra
from model_engine_infra.errors import InvalidFileIdError, StorageUnavailableError
from model_engine_infra.storage.base import FilesystemGateway
from model_engine_infra.storage.file_ids import check_part
from model_engine_infra.storage.files import StoreFileStorage, files_prefix


class Untouchable(FilesystemGateway):
    """A store every call to which fails the test: names must be refused before any is made."""

    def _fail(self, *args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the store was called")

    open = generate_signed_url = exists = list = delete = _fail  # type: ignore[assignment]


class Unreachable(FilesystemGateway):
    def _down(self, uri: str, *args: Any, **kwargs: Any) -> Any:
        raise StorageUnavailableError(f"{uri}: could not reach the store")

    open = generate_signed_url = exists = list = delete = _down  # type: ignore[assignment]


def _decodes_safely(text: str) -> bool:
    for _ in range(6):
        if text in (".", "..") or "/" in text or "\\" in text or any(ord(c) < 32 or ord(c) == 127 for c in text):
            return False
        text, before = unquote(text), text
        if text == before:
            return True
    return True


@given(st.text(max_size=300))
@settings(max_examples=400)
def test_an_accepted_name_is_one_segment_however_it_is_decoded(name: str) -> None:
    try:
        check_part(name, "file_id")
    except InvalidFileIdError:
        return
    uri = f"s3://bucket/owner/{name}"
    assert posixpath.normpath(uri.removeprefix("s3://")).startswith("bucket/owner/")
    assert posixpath.dirname(uri) == "s3://bucket/owner"
    assert _decodes_safely(name)
    assert len(name.encode()) <= 255
    assert not name.endswith(".")


@given(
    st.lists(st.sampled_from(["..", ".", "/", "\\", "%2F", "%2f", "%5C", "%2E", "%25", "%00", "a", "\x00"]), max_size=6)
)
def test_built_escapes_never_pass(parts: list[str]) -> None:
    name = "".join(parts)
    if _decodes_safely(name) and name and not name.endswith("."):
        assert check_part(name, "owner") == name
    else:
        with pytest.raises(InvalidFileIdError):
            check_part(name, "owner")


@pytest.mark.parametrize("value", [None, 3, b"bytes"])
def test_non_strings_are_refused(value: object) -> None:
    with pytest.raises(InvalidFileIdError, match="must be a string"):
        check_part(value, "owner")


@pytest.mark.parametrize("bad", ["..", "a/b", "%2F", "a\\b", "", "x\x00"])
async def test_names_are_refused_before_the_store_is_called(bad: str) -> None:
    files = StoreFileStorage(Untouchable(), "s3://bucket")
    for call in (
        files.get_file(bad, "f"),
        files.get_file("o", bad),
        files.upload_file("o", bad, b""),
        files.list_files(bad),
        files.delete_file("o", bad),
        files.get_url_from_id("o", bad),
        files.get_file_content(bad, "f"),
    ):
        with pytest.raises(InvalidFileIdError):
            await call


async def test_an_unreachable_store_is_an_error_not_a_missing_file() -> None:
    files = StoreFileStorage(Unreachable(), "s3://bucket")
    with pytest.raises(StorageUnavailableError):
        await files.get_file("o", "f.txt")
    with pytest.raises(StorageUnavailableError):
        await files.get_file_content("o", "f.txt")
    with pytest.raises(StorageUnavailableError):
        await files.delete_file("o", "f.txt")


@pytest.mark.parametrize(
    ("config", "prefix"),
    [
        (InfraConfig(cloud_provider="aws", s3_bucket="b1"), "s3://b1"),
        (InfraConfig(cloud_provider="onprem", s3_bucket="b1"), "s3://b1"),
        (InfraConfig(cloud_provider="gcp", s3_bucket="b1"), "gs://b1"),
        (InfraConfig(cloud_provider="azure", s3_bucket="b1"), "az://b1"),
        (InfraConfig(cloud_provider="aws", file_storage_prefix="gs://other/files/"), "gs://other/files/"),
    ],
)
def test_the_prefix_is_llm_engines_bucket_unless_set(config: InfraConfig, prefix: str) -> None:
    assert files_prefix(config) == prefix


def test_local_files_live_under_the_data_dir(tmp_path: Path) -> None:
    config = InfraConfig(cloud_provider="local", local_data_dir=str(tmp_path))
    assert files_prefix(config) == str(tmp_path.resolve() / "files")


async def test_a_prefix_inside_a_bucket_keeps_owner_and_id_below_it(tmp_path: Path) -> None:
    with build_infra(
        InfraConfig(cloud_provider="local", file_storage_prefix=str(tmp_path / "deep" / "files"))
    ) as infra:
        await infra.file_storage.upload_file("o", "f.txt", b"x")
    assert (tmp_path / "deep" / "files" / "o" / "f.txt").read_bytes() == b"x"


class MemoryFilesystem(FilesystemGateway):
    """A plugin-style store that implements only the abstract methods (no stat/list_info)."""

    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}

    def open(self, uri: str, mode: str = "rb", **kwargs: Any) -> IO[Any]:
        import io

        if "w" in mode:
            objects = self.objects

            class Writer(io.BytesIO):
                def close(self) -> None:
                    objects[uri] = self.getvalue()
                    super().close()

            return Writer()
        if uri not in self.objects:
            from model_engine_infra.errors import ObjectNotFoundError

            raise ObjectNotFoundError(uri)
        return io.BytesIO(self.objects[uri])

    def generate_signed_url(self, uri: str, expiration: int = 3600, method: str = "GET") -> str:
        return "mem-signed:" + uri

    def exists(self, uri: str) -> bool:
        return uri in self.objects

    def list(self, uri: str) -> list[str]:
        return sorted(u for u in self.objects if u.startswith(uri.rstrip("/") + "/"))

    def delete(self, uri: str) -> None:
        self.objects.pop(uri, None)


async def test_a_plugin_store_without_metadata_still_serves_files() -> None:
    files = StoreFileStorage(MemoryFilesystem(), "mem://files")
    await files.upload_file("o", "f.txt", b"abc")
    meta = await files.get_file("o", "f.txt")
    assert meta is not None
    assert (meta.id, meta.size, meta.updated_at) == ("f.txt", None, None)
    assert [f.id for f in await files.list_files("o")] == ["f.txt"]
    assert await files.get_url_from_id("o", "f.txt") == "mem-signed:mem://files/o/f.txt"
    assert await files.delete_file("o", "f.txt") is True
