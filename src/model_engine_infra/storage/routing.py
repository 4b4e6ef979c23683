"""`infra.filesystem` and `infra.artifacts`: every URI goes to the store of its scheme.

``s3://`` to S3, ``gs://`` to GCS, ``az://`` and blob ``https://`` URLs to Blob Storage,
``file://`` to local disk, other ``https://`` URLs to the read-only HTTPS store, and a plugin's
scheme to its store. Each scheme's store is built once, on first use, from the one config
(endpoint overrides and credentials included); a URI without a scheme goes to the profile's
default store. A scheme whose extra is missing fails when used, naming the extra.
"""

from __future__ import annotations

import builtins
import threading
from collections.abc import Iterable
from typing import IO, TYPE_CHECKING, Any, BinaryIO
from urllib.parse import urlsplit

from ..errors import InvalidURIError
from .base import FilesystemGateway, LLMArtifactGateway, ObjectInfo, Progress, read_bytes
from .store import Store
from .uploads import UploadItem
from .uri import _parse, shown

if TYPE_CHECKING:
    from ..config.model import InfraConfig
    from ..infra import Infra


def scheme_of(uri: str) -> str | None:
    """The store a URI belongs to (``azure://`` and blob ``https://`` URLs are ``az``); None without a scheme."""
    if not isinstance(uri, str) or "://" not in uri:
        return None
    parsed = _parse(uri)
    if parsed is not None:
        return parsed.scheme
    return urlsplit(uri).scheme.lower() or None


class Stores:
    """The stores of one config, one per scheme, each built on first use and shared by both gateways."""

    def __init__(self, config: InfraConfig, default_scheme: str | None) -> None:
        self.config = config
        self.default_scheme = default_scheme
        self._built: dict[str, Store] = {}
        self._lock = threading.Lock()
        self._closed = False

    def __repr__(self) -> str:
        return f"Stores(default={self.default_scheme!r}, built={sorted(self._built)})"

    def for_uri(self, uri: str) -> Store:
        scheme = scheme_of(uri) or self.default_scheme
        if scheme is None:
            raise InvalidURIError(f"{shown(uri)!r} names no scheme and this provider has no default store")
        return self.get(scheme, uri)

    def default(self) -> Store | None:
        return None if self.default_scheme is None else self.get(self.default_scheme, "")

    def get(self, scheme: str, uri: str = "") -> Store:
        store = self._built.get(scheme)
        if store is not None:
            return store
        from ..registry import available_backends, resolve_backend

        known = available_backends("store")
        if scheme not in known:
            raise InvalidURIError(
                f"no store serves {shown(uri)!r}: this deployment accepts {', '.join(s + '://' for s in known)} "
                "URIs (and paths without a scheme)"
            )
        with self._lock:
            if scheme not in self._built:
                built = resolve_backend("store", scheme)(self.config)
                if not isinstance(built, Store):
                    raise TypeError(f"the {scheme} store backend returned {built!r}, not a Store")
                self._built[scheme] = built
            return self._built[scheme]

    def close(self) -> None:
        with self._lock:
            stores, self._built = list(self._built.values()), {}
        errors = []
        for store in stores:
            try:
                store.close()
            except Exception as err:
                errors.append(err)
        if errors:
            raise errors[0]


class _DefaultAttributes:
    """Unknown attributes (``client``, ...) come from the default store's gateway: code for one store still works."""

    _stores: Stores

    def _default_gateway(self) -> Any:
        raise NotImplementedError

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self._default_gateway(), name)


class RoutingFilesystem(_DefaultAttributes, FilesystemGateway):
    def __init__(self, stores: Stores) -> None:
        self._stores = stores

    def __repr__(self) -> str:
        default = self._stores.default_scheme
        shown_default = repr(self._stores.get(default).filesystem) if default in self._stores._built else default
        return f"RoutingFilesystem(default={shown_default})"

    def _default_gateway(self) -> Any:
        store = self._stores.default()
        return None if store is None else store.filesystem

    def open(self, uri: str, mode: str = "rb", **kwargs: Any) -> IO[Any]:
        return self._stores.for_uri(uri).filesystem.open(uri, mode, **kwargs)

    def generate_signed_url(self, uri: str, expiration: int = 3600, method: str = "GET") -> str:
        return self._stores.for_uri(uri).filesystem.generate_signed_url(uri, expiration, method)

    def exists(self, uri: str) -> bool:
        return self._stores.for_uri(uri).filesystem.exists(uri)

    def list(self, uri: str) -> list[str]:
        return self._stores.for_uri(uri).filesystem.list(uri)

    def delete(self, uri: str) -> None:
        self._stores.for_uri(uri).filesystem.delete(uri)

    def stat(self, uri: str) -> ObjectInfo | None:
        return self._stores.for_uri(uri).filesystem.stat(uri)

    def list_info(self, uri: str) -> builtins.list[ObjectInfo]:
        return self._stores.for_uri(uri).filesystem.list_info(uri)

    def close(self) -> None:
        self._stores.close()


class RoutingArtifacts(_DefaultAttributes, LLMArtifactGateway):
    def __init__(self, stores: Stores, *, fine_tuned_weights_prefix: str) -> None:
        super().__init__(fine_tuned_weights_prefix=fine_tuned_weights_prefix)
        self._stores = stores

    def __repr__(self) -> str:
        return f"RoutingArtifacts(default={self._stores.default_scheme!r}, prefix={self.fine_tuned_weights_prefix!r})"

    def _default_gateway(self) -> Any:
        store = self._stores.default()
        return None if store is None else store.artifacts

    def _of(self, uri: str) -> LLMArtifactGateway:
        return self._stores.for_uri(uri).artifacts

    # the public methods go to the scheme's store whole, so a store's own faster paths are kept
    def list_objects(self, path: str) -> list[ObjectInfo]:
        return self._of(path).list_objects(path)

    def list_files(self, path: str) -> list[str]:
        return self._of(path).list_files(path)

    def download_files(self, path: str, target_path: Any, overwrite: bool = False, **kwargs: Any) -> list[str]:
        return self._of(path).download_files(path, target_path, overwrite, **kwargs)

    def download_objects(
        self, objects: list[ObjectInfo], target_path: Any, overwrite: bool = False, **kwargs: Any
    ) -> list[str]:
        if not objects:
            return []
        return self._of(objects[0].uri).download_objects(objects, target_path, overwrite, **kwargs)

    def get_model_config(self, path: str) -> dict[str, Any]:
        return self._of(path).get_model_config(path)

    def upload_files(self, local_path: Any, uri: str, **kwargs: Any) -> list[str]:
        return self._of(uri).upload_files(local_path, uri, **kwargs)

    # the primitives, for completeness (the base class's shared engine calls them)
    def _iter_objects(self, folder_uri: str) -> Iterable[ObjectInfo]:
        return self._of(folder_uri)._iter_objects(folder_uri)

    def _object_size(self, uri: str) -> int | None:
        return self._of(uri)._object_size(uri)

    def _download_object(self, obj: ObjectInfo, fileobj: BinaryIO, progress: Progress | None) -> None:
        self._of(obj.uri)._download_object(obj, fileobj, progress)

    def _read_bytes(self, uri: str, limit: int | None = None) -> bytes:
        return read_bytes(self._of(uri), uri, limit)

    def _upload_object(self, item: UploadItem, part_concurrency: int, progress: Progress | None) -> None:
        self._of(item.uri)._upload_object(item, part_concurrency, progress)

    def close(self) -> None:
        self._stores.close()


def _stores(config: InfraConfig, infra: Infra) -> Stores:
    """The one `Stores` both gateways of ``infra`` share (built by whichever is asked for first)."""
    from ..selection import profile_of

    with infra._lock:
        stores = getattr(infra, "_stores", None)
        if stores is None:
            stores = Stores(config, profile_of(config).store)
            infra._stores = stores  # type: ignore[attr-defined]
        return stores


def weights_prefix(config: InfraConfig) -> str:
    """``hf_user_fine_tuned_weights_prefix``, or the profile's default for it when it was not set."""
    from pathlib import Path

    from ..selection import profile_of

    name = "hf_user_fine_tuned_weights_prefix"
    template = profile_of(config).path_defaults.get(name)
    if template is not None and not config.is_set(name):
        return str(Path(template.format(local_data_dir=config.local_data_dir)))
    return config.hf_user_fine_tuned_weights_prefix


def build_filesystem(config: InfraConfig, infra: Infra) -> RoutingFilesystem:
    return RoutingFilesystem(_stores(config, infra))


def build_artifacts(config: InfraConfig, infra: Infra) -> RoutingArtifacts:
    return RoutingArtifacts(_stores(config, infra), fine_tuned_weights_prefix=weights_prefix(config))
