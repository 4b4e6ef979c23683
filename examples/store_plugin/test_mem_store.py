"""The memory store, certified: one subclass of the store conformance suite, used as a service uses a store.

Run with the plugin installed (``pip install ./examples/store_plugin``): ``pytest examples/store_plugin``.
The project's own suite runs these tests through ``tests/test_store_plugin.py``, with the entry point
installed into a temporary site folder.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from model_engine_infra import InfraConfig, build_infra
from model_engine_infra.registry import available_backends
from model_engine_infra.testing.conformance import StoreConformance, StoreTarget


def mem_config(tmp_path: Path, root: str) -> InfraConfig:
    """Any provider: the profile's store keeps paths without a scheme, the plugin serves mem://."""
    return InfraConfig(
        cloud_provider="local", local_data_dir=str(tmp_path / "data"), hf_user_fine_tuned_weights_prefix=f"{root}/ft"
    )


class TestMemStore(StoreConformance):
    supports_signed_urls = False  # memory cannot be fetched over HTTP: signing is refused, typed

    @pytest.fixture
    def store_target(self, tmp_path: Path) -> Iterator[StoreTarget]:
        assert "mem" in available_backends("store"), "install the plugin: pip install ./examples/store_plugin"
        root = f"mem://models/conformance-{uuid.uuid4().hex[:8]}"
        infra = build_infra(mem_config(tmp_path, root))

        def put_raw(key: str, data: bytes) -> None:  # the memory store keeps any key, hostile ones too
            with infra.filesystem.open(f"{root}/{key}", "wb") as stream:
                stream.write(data)

        yield StoreTarget("mem", infra, root, put_raw)
        infra.close()


def test_a_service_reads_and_writes_mem_uris_beside_local_paths(tmp_path: Path) -> None:
    infra = build_infra(mem_config(tmp_path, "mem://models/svc"))
    with infra.filesystem.open("mem://models/svc/llama/config.json", "w") as stream:
        stream.write('{"model_type": "llama"}')
    assert infra.artifacts.get_model_config("mem://models/svc/llama") == {"model_type": "llama"}
    local = tmp_path / "weights.bin"
    with infra.filesystem.open(str(local), "wb") as stream:  # no scheme: still the profile's store
        stream.write(b"on disk")
    assert local.read_bytes() == b"on disk"
    assert infra.artifacts.download_files("mem://models/svc/llama", tmp_path / "out") == [
        str(tmp_path / "out" / "config.json")
    ]
    infra.close()
