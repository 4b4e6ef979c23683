"""Azure Blob Storage: one `BlobServiceClient` per deployment, streamed both ways.

Downloads are ranged GETs pinned to the listed ETag, each streamed into the file by the shared
engine (`storage.transfer`) in the SDK's 256 KiB body blocks. The SDK's own ``download_blob``
reads every chunk whole into memory before writing it (chunks x threads of buffering: the memory
of a parallel download grew with its concurrency), so the range is read through the SDK's
generated ``Download`` operation instead, on the same client and pipeline (authentication,
retries, the shared connection pool); `_stream_range` falls back to ``download_blob`` if an SDK
release no longer has it. Writes stage blocks and commit the block list only on a successful
close, so an abandoned write leaves nothing.
"""

from __future__ import annotations

import base64
import builtins
import contextlib
import dataclasses
import threading
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import IO, TYPE_CHECKING, Any, BinaryIO

import requests
import urllib3.exceptions
from azure.core import MatchConditions
from azure.core.credentials import AzureNamedKeyCredential
from azure.core.exceptions import (
    AzureError,
    ClientAuthenticationError,
    HttpResponseError,
    IncompleteReadError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.core.pipeline.transport import RequestsTransport
from azure.storage.blob import BlobSasPermissions, BlobServiceClient, ExponentialRetry, generate_blob_sas

from ..errors import (
    ConfigError,
    InvalidURIError,
    ObjectNotFoundError,
    StorageError,
    StoragePermissionError,
    StorageUnavailableError,
)
from ..redact import redact_url
from .base import FilesystemGateway, LLMArtifactGateway, ObjectInfo, Progress
from .errors import translated
from .local import check_signing
from .pump import SocketBody
from .store import Store
from .streams import DEFAULT_PART_SIZE, ChunkedReader, parse_mode, reader_stream, upload_stream
from .transfer import RangeOpener, RangeReader, RangeSink, TransferSettings, read_whole
from .uploads import UploadItem
from .uri import StorageURI, parse_uri, shown

if TYPE_CHECKING:
    from ..config.model import InfraConfig

STORE = "Azure Blob Storage"
MIB = 1024 * 1024
POOL_CONNECTIONS = 64
#: Bytes per body read. 64 KiB pieces stay under malloc's mmap threshold and are reused per thread:
#: 256 KiB pieces grew a 512 MiB download by 5 MiB, 64 KiB ones by 2 MiB (rclone: 0-1.5 MiB), no slower.
DOWNLOAD_BLOCK = 64 * 1024
_CLOCK_SKEW = timedelta(minutes=5)
_MAX_DELEGATION = timedelta(days=7)


def make_client(config: InfraConfig, **client_kwargs: Any) -> BlobServiceClient:
    """The one client: account key when configured (Azurite, tests), else `DefaultAzureCredential`.

    Chunks of 2 MiB (after a first GET of 4 MiB) keep ``open(uri).read()`` small in memory;
    ``download_files`` streams its ranges (see the module docstring).
    """
    account = config.abs_account_name
    if not account:
        raise ConfigError(
            "Azure Blob Storage needs the storage account name",
            key="abs_account_name",
            fix="set azure.abs_account_name in the Helm values or ABS_ACCOUNT_NAME",
        )
    url = config.abs_endpoint_url or f"https://{account}.blob.core.windows.net"
    key = config.secret("abs_account_key")
    credential: Any
    if key:
        credential = AzureNamedKeyCredential(account, key)
    else:
        from azure.identity import DefaultAzureCredential

        client_id = config.azure_client_id
        credential = DefaultAzureCredential(managed_identity_client_id=client_id, workload_identity_client_id=client_id)
    session = requests.Session()
    adapter = requests.adapters.HTTPAdapter(
        pool_connections=4, pool_maxsize=max(POOL_CONNECTIONS, config.storage_max_concurrency)
    )
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    options: dict[str, Any] = {
        # The SDK reads bodies 4 KiB at a time by default: a CPU bottleneck at hundreds of MB/s.
        "transport": RequestsTransport(session=session, session_owner=True, connection_data_block_size=DOWNLOAD_BLOCK),
        "retry_policy": ExponentialRetry(initial_backoff=1, increment_base=2, retry_total=3),
        "max_single_get_size": 4 * MIB,
        "max_chunk_get_size": 2 * MIB,
        "max_single_put_size": 8 * MIB,
        "max_block_size": 8 * MIB,
    }
    options.update(client_kwargs)
    return BlobServiceClient(url, credential=credential, **options)


def translate(err: BaseException, uri: str) -> StorageError | None:
    """The storage error for an Azure SDK error, or None if it is not one of theirs."""
    if isinstance(err, StorageError):
        return err
    status = getattr(err, "status_code", None)
    if isinstance(err, ResourceNotFoundError) or status == 404:
        return ObjectNotFoundError(f"{uri}: no such blob or container")
    if isinstance(err, ClientAuthenticationError) or status == 403:
        return StoragePermissionError(
            f"{uri}: access denied; check the identity's Storage Blob Data role or the account key"
        )
    if status == 412:
        return StorageError(f"{uri}: the blob changed while it was being read; retry")
    if isinstance(err, (ServiceRequestError, ServiceResponseError, IncompleteReadError)) or (
        isinstance(status, int) and status >= 500
    ):
        return StorageUnavailableError(f"{uri}: could not reach Azure Blob Storage ({type(err).__name__}); retry later")
    if isinstance(err, HttpResponseError) and isinstance(err.__cause__, (IncompleteReadError, ServiceResponseError)):
        return StorageUnavailableError(f"{uri}: the connection broke mid-transfer; retry later")
    if isinstance(err, _CUT):  # below the SDK's own types: requests/urllib3 while streaming a body
        return StorageUnavailableError(f"{uri}: the connection broke mid-transfer ({type(err).__name__}); retry later")
    if isinstance(err, AzureError):
        return StorageError(f"{uri}: Azure Blob Storage refused the request ({type(err).__name__})")
    return None


_CUT = (requests.RequestException, urllib3.exceptions.HTTPError, ConnectionError, TimeoutError)


def _errors(uri: str) -> contextlib.AbstractContextManager[None]:
    return translated(translate, shown(uri))


class _Blobs:
    """URI handling and listing shared by the filesystem and artifact gateways."""

    def __init__(self, client: BlobServiceClient) -> None:
        self.client = client
        self.account: str = client.account_name or ""

    def location(self, uri: str) -> StorageURI:
        loc = parse_uri(uri, accepts=("az",), store=STORE)
        if loc.account is not None and loc.account != self.account:
            raise InvalidURIError(
                f"{STORE} cannot serve {shown(uri)!r}: it is configured for the account {self.account!r}, "
                f"not {loc.account!r}"
            )
        return loc

    def blob(self, uri: str) -> Any:
        loc = self.location(uri)
        return self.client.get_blob_client(loc.bucket, loc.key)

    def iter_objects(self, folder_uri: str) -> Iterator[ObjectInfo]:
        loc = self.location(folder_uri)
        prefix = loc.key if loc.key not in ("", "/") else ""
        container = self.client.get_container_client(loc.bucket)
        with _errors(folder_uri):
            for item in container.list_blobs(name_starts_with=prefix or None):
                uri = _uri_like(folder_uri, loc.bucket, item.name)
                yield ObjectInfo(uri, item.name[len(prefix) :], item.size, item.etag, item.last_modified)


def _uri_like(folder_uri: str, container: str, name: str) -> str:
    """An object URI in the style of the folder's URI (``az://`` or the https form)."""
    if folder_uri.startswith("https://"):
        host = folder_uri.split("/", 3)[2]
        return f"https://{host}/{container}/{name}"
    return f"az://{container}/{name}"


class _BlockUpload:
    """Staged blocks committed on finish; a blob smaller than one block is a single PutBlob."""

    def __init__(self, blob: Any, uri: str) -> None:
        self._blob, self._uri = blob, uri
        self._blocks: list[str] = []

    def upload_part(self, data: bytes) -> None:
        block_id = base64.b64encode(uuid.uuid4().hex.encode()).decode()
        with _errors(self._uri):
            self._blob.stage_block(block_id, data, length=len(data))
        self._blocks.append(block_id)

    def finish(self, data: bytes) -> None:
        if not self._blocks:
            with _errors(self._uri):
                self._blob.upload_blob(data, overwrite=True, length=len(data))
            return
        if data:
            self.upload_part(data)
        with _errors(self._uri):
            self._blob.commit_block_list(self._blocks)

    def abort(self) -> None:
        """Uncommitted blocks are never visible and the service drops them within 7 days."""
        self._blocks = []


class AzureBlobFilesystem(FilesystemGateway):
    """``az://container/path`` (and the https form) through one reused `BlobServiceClient`."""

    def __init__(self, client: BlobServiceClient, *, account_key: str | None = None) -> None:
        self._blobs = _Blobs(client)
        self.client = client
        self._account_key = account_key
        self._delegation: tuple[Any, datetime] | None = None
        self._delegation_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"AzureBlobFilesystem(account={self._blobs.account!r}, url={redact_url(self.client.url)!r})"

    def open(self, uri: str, mode: str = "rb", **kwargs: Any) -> IO[Any]:
        writing, binary = parse_mode(mode, kwargs)
        blob = self._blobs.blob(uri)
        if writing:
            return upload_stream(_BlockUpload(blob, uri), binary, kwargs, shown(uri), DEFAULT_PART_SIZE)
        with _errors(uri):
            downloader = blob.download_blob()

        def read(size: int) -> bytes:
            with _errors(uri):
                data: bytes = downloader.read(size)
                return data

        return reader_stream(ChunkedReader(read), binary, kwargs, 256 * 1024, uri)

    def generate_signed_url(self, uri: str, expiration: int = 3600, method: str = "GET") -> str:
        """A blob SAS: signed with the account key when one is configured, else a user-delegation key.

        Azurite accepts only account-key SAS; production with Entra ID uses user-delegation keys.
        """
        upper = check_signing(expiration, method)
        loc = self._blobs.location(uri)
        permission = BlobSasPermissions(read=True) if upper == "GET" else BlobSasPermissions(create=True, write=True)
        now = datetime.now(timezone.utc)
        expiry = now + timedelta(seconds=expiration)
        signing: dict[str, Any]
        if self._account_key:
            signing = {"account_key": self._account_key}
        else:
            signing = {"user_delegation_key": self._delegation_key(now, expiry)}
        sas = generate_blob_sas(
            self._blobs.account,
            loc.bucket,
            loc.key,
            permission=permission,
            expiry=expiry,
            start=now - _CLOCK_SKEW,
            **signing,
        )
        return f"{self._blobs.blob(uri).url}?{sas}"

    def _delegation_key(self, now: datetime, expiry: datetime) -> Any:
        """One user-delegation key reused while it outlives the URL being signed (at most 7 days)."""
        with self._delegation_lock:
            if self._delegation is None or self._delegation[1] < expiry:
                key_expiry = min(now + _MAX_DELEGATION, max(expiry, now + timedelta(hours=1)) + _CLOCK_SKEW)
                with _errors(f"user delegation key for {self._blobs.account}"):
                    key = self.client.get_user_delegation_key(now - _CLOCK_SKEW, key_expiry)
                self._delegation = (key, key_expiry)
            return self._delegation[0]

    def exists(self, uri: str) -> bool:
        with _errors(uri):
            found: bool = self._blobs.blob(uri).exists()
            return found

    def list(self, uri: str) -> list[str]:
        folder = uri.rstrip("/") + "/" if self._blobs.location(uri).key else uri
        return [obj.uri for obj in self._blobs.iter_objects(folder)]

    def stat(self, uri: str) -> ObjectInfo | None:
        blob = self._blobs.blob(uri)
        try:
            with _errors(uri):
                props = blob.get_blob_properties()
        except ObjectNotFoundError:
            return None
        return ObjectInfo(uri, props.name.rsplit("/", 1)[-1], props.size, props.etag, props.last_modified)

    def list_info(self, uri: str) -> builtins.list[ObjectInfo]:
        return list(self._blobs.iter_objects(uri.rstrip("/") + "/" if self._blobs.location(uri).key else uri))

    def delete(self, uri: str) -> None:
        blob = self._blobs.blob(uri)
        with contextlib.suppress(ObjectNotFoundError), _errors(uri):
            blob.delete_blob()

    def close(self) -> None:
        self.client.close()


def _stream_range(blob: Any, start: int, stop: int, whole: bool, etag: str | None) -> Iterator[bytes]:
    """Bytes ``[start, stop)`` of ``blob`` as the response body arrives (64 KiB blocks), nothing buffered.

    Uses the generated ``Download`` operation the SDK itself calls (``BlobClient._client.blob``);
    with an SDK that no longer has it, the public ``download_blob`` (which buffers each chunk).
    """
    download = _download_operation(blob)
    if download is None:
        pinned: dict[str, Any] = {"etag": etag, "match_condition": MatchConditions.IfNotModified} if etag else {}
        span = {} if whole else {"offset": start, "length": stop - start}
        yield from blob.download_blob(max_concurrency=1, **span, **pinned).chunks()
        return
    yield from download(**_range_options(start, stop, whole, etag))


def _download_operation(blob: Any) -> Any:
    operations = getattr(getattr(blob, "_client", None), "blob", None)
    return getattr(operations, "download", None)


def _range_options(start: int, stop: int, whole: bool, etag: str | None) -> dict[str, Any]:
    from azure.storage.blob._generated.models import ModifiedAccessConditions

    options: dict[str, Any] = {}
    if etag:
        options["modified_access_conditions"] = ModifiedAccessConditions(if_match=etag)
    if not whole:
        options["range"] = f"bytes={start}-{stop - 1}"
    return options


def _open_socket_range(blob: Any, sink: RangeSink, etag: str | None) -> SocketBody | None:
    """The ranged Get Blob of the sink's bytes, its body left on its socket (`pump.SocketBody`).

    The SDK sends the request and checks the status and headers; its ``cls`` hook hands back the
    pipeline response with the body iterator, so the requests transport's urllib3 response is
    reached as ``internal_response.raw``. Another transport's body is read here, into ``sink``.
    """
    start, stop = sink.position, sink.stop
    download = _download_operation(blob)
    if download is None:  # an SDK without the generated operation: its public, buffering download
        for chunk in _stream_range(blob, start, stop, False, etag):
            sink.write(chunk)
        return None
    pipeline_response, chunks = download(
        **_range_options(start, stop, False, etag), cls=lambda response, body, _headers: (response, body)
    )
    raw = getattr(getattr(pipeline_response.http_response, "internal_response", None), "raw", None)
    body = SocketBody.of(raw) if raw is not None else None
    if body is None:
        for chunk in chunks:
            sink.write(chunk)
            del chunk
    return body


class AzureBlobArtifacts(LLMArtifactGateway):
    """Model artifacts in Blob Storage: ranged GETs streamed into the file by the shared download pool."""

    def __init__(
        self,
        client: BlobServiceClient,
        *,
        fine_tuned_weights_prefix: str,
        transfer: TransferSettings | None = None,
        owns_client: bool = False,
    ) -> None:
        super().__init__(fine_tuned_weights_prefix=fine_tuned_weights_prefix, transfer=transfer)
        self._blobs = _Blobs(client)
        self.client = client
        self._owns_client = owns_client

    def _iter_objects(self, folder_uri: str) -> Iterator[ObjectInfo]:
        return self._blobs.iter_objects(folder_uri)

    def _object_size(self, uri: str) -> int | None:
        try:
            with _errors(uri):
                size: int = self._blobs.blob(uri).get_blob_properties().size
        except ObjectNotFoundError:
            return None
        return size

    def _range_reader(self) -> RangeReader:
        return self._read_range

    def _read_range(self, obj: ObjectInfo, start: int, stop: int, sink: RangeSink) -> None:
        whole = start == 0 and stop == obj.size
        with _errors(obj.uri):
            blocks = _stream_range(self._blobs.blob(obj.uri), start, stop, whole, obj.version)
            while (block := next(blocks, None)) is not None:
                sink.write(block)
                del block  # not held while the next one is read: one block per connection, not two

    def _range_opener(self) -> RangeOpener:
        return self._open_range

    def _open_range(self, obj: ObjectInfo, sink: RangeSink) -> SocketBody | None:
        with _errors(obj.uri):
            return _open_socket_range(self._blobs.blob(obj.uri), sink, obj.version)

    def _download_object(self, obj: ObjectInfo, fileobj: BinaryIO, progress: Progress | None) -> None:
        if obj.size is None:
            size = self._object_size(obj.uri)
            if size is None:
                raise ObjectNotFoundError(f"{obj.uri}: no such blob or container")
            obj = dataclasses.replace(obj, size=size)
        read_whole(self._read_range, obj, fileobj, progress)

    def _read_bytes(self, uri: str, limit: int | None = None) -> bytes:
        blob = self._blobs.blob(uri)
        with _errors(uri):
            if limit is None:
                data: bytes = blob.download_blob().readall()
                return data
            try:  # the first limit + 1 bytes: enough to tell a blob over the cap
                data = blob.download_blob(offset=0, length=limit + 1).readall()
            except HttpResponseError as err:
                if err.status_code != 416:  # an empty blob has no range
                    raise
                data = blob.download_blob().readall()
            return data

    def _upload_object(self, item: UploadItem, part_concurrency: int, progress: Progress | None) -> None:
        """One Put Blob up to the client's ``max_single_put_size``, else blocks in parallel and one commit."""
        with _errors(item.uri), open(item.path, "rb") as source:
            self._blobs.blob(item.uri).upload_blob(
                source,
                length=item.size,
                overwrite=True,
                max_concurrency=part_concurrency,
                progress_hook=_deltas(progress),
            )

    def close(self) -> None:
        if self._owns_client:
            self.client.close()


def _deltas(progress: Progress | None) -> Any:
    """The SDK reports running totals (from several threads); callers want bytes as they arrive."""
    if progress is None:
        return None
    lock = threading.Lock()
    seen = [0]

    def hook(current: int, total: int | None) -> None:
        with lock:
            delta, seen[0] = current - seen[0], max(seen[0], current)
        if delta > 0:
            progress(delta)

    return hook


def build_store(config: InfraConfig) -> Store:
    """The ``az`` store (``az://``, ``azure://``, blob ``https://`` URLs): one client for files and artifacts."""
    from .routing import weights_prefix

    filesystem = AzureBlobFilesystem(make_client(config), account_key=config.secret("abs_account_key"))
    artifacts = AzureBlobArtifacts(
        filesystem.client,
        fine_tuned_weights_prefix=weights_prefix(config),
        transfer=TransferSettings.from_config(config),
    )
    return Store(filesystem, artifacts)
