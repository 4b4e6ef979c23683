"""S3 and S3-compatible stores (MinIO): one boto3 client per deployment.

Downloads are ranged ``GetObject`` calls pinned to the listed ETag (``If-Match``; no extra HEAD,
the listing gave size and ETag), streamed into the file by the shared engine (`storage.transfer`),
whose one pool serves small files and the parts of large ones. ``upload_files`` goes through
s3transfer, whose one pool serves files and parts. ``open(uri, "wb")`` is our own multipart
upload so that a failed or abandoned write is aborted, and so that SHA-256 part checksums reach
``CompleteMultipartUpload`` when ``celery_enable_sha256`` asks for them.
"""

from __future__ import annotations

import builtins
import contextlib
import dataclasses
import http.client
from collections.abc import Callable, Iterator
from typing import IO, TYPE_CHECKING, Any, BinaryIO
from urllib.parse import urlsplit

import boto3
import botocore.exceptions as bexc
import urllib3.exceptions
from boto3.s3.transfer import TransferConfig, create_transfer_manager
from botocore.config import Config as BotoConfig
from s3transfer.exceptions import RetriesExceededError  # type: ignore[import-untyped]
from s3transfer.subscribers import BaseSubscriber  # type: ignore[import-untyped]

from ..errors import (
    ConfigError,
    ObjectNotFoundError,
    StorageError,
    StoragePermissionError,
    StorageUnavailableError,
)
from ..redact import redact_text, redact_url
from .base import FilesystemGateway, LLMArtifactGateway, ObjectInfo, Progress, too_large
from .local import check_signing
from .pump import SocketBody
from .store import Store
from .streams import DEFAULT_PART_SIZE, ChunkedReader, parse_mode, reader_stream, upload_stream
from .transfer import RangeOpener, RangeReader, RangeSink, TransferSettings, part_size_for, read_whole
from .uploads import UploadItem
from .uri import StorageURI, parse_uri

if TYPE_CHECKING:
    from ..config.model import InfraConfig

STORE = "S3"
MIB = 1024 * 1024
POOL_CONNECTIONS = 64
MIN_UPLOAD_PART = 5 * MIB  # S3's smallest part (but the last)
#: Bytes per `body.read` where the socket cannot be read directly (see `_socket_reader`).
READ_BLOCK = 256 * 1024
#: The buffer `_read_socket` fills, one per request. 64 x 4 MiB at 32 connections: 4.7-5.0 MiB of
#: growth and 1.04-1.16x s5cmd's time this way, against 5.0 MiB and 1.26-1.37x with 64 KiB
#: `body.read` calls and 12.7 MiB with 256 KiB ones (docs/performance.md).
SOCKET_BLOCK = 64 * 1024
_NOT_FOUND = {"NoSuchKey", "NoSuchBucket", "NotFound", "404", "NoSuchUpload"}
_FORBIDDEN = {"403", "AccessDenied", "Forbidden", "InvalidAccessKeyId", "SignatureDoesNotMatch", "AllAccessDisabled"}
_UNAVAILABLE = {"SlowDown", "ServiceUnavailable", "InternalError", "RequestTimeout", "503", "500"}
_CHECKSUM_FIELDS = ("ChecksumCRC32", "ChecksumCRC32C", "ChecksumCRC64NVME", "ChecksumSHA1", "ChecksumSHA256")


def make_client(config: InfraConfig) -> Any:
    """The one S3 client: region ``default_region``, ``s3_endpoint_url`` with path-style addressing.

    The endpoint is checked first (no user-info, a host botocore accepts), so a URL with a password
    never reaches botocore, its errors or its DEBUG log.
    """
    from ..config.first_use import check_sdk_endpoint

    check_sdk_endpoint(config, "s3_endpoint_url")
    style = config.s3_addressing_style or ("path" if config.s3_endpoint_url else None)
    boto_config = BotoConfig(
        region_name=config.default_region,
        signature_version="s3v4",
        s3={"addressing_style": style} if style else {},
        max_pool_connections=max(POOL_CONNECTIONS, config.storage_max_concurrency),
        retries={"mode": "standard", "max_attempts": 3},
    )
    try:
        session = boto3.session.Session(profile_name=config.aws_profile, region_name=config.default_region)
    except bexc.ProfileNotFound as err:
        raise ConfigError(
            "no such AWS profile", key="aws_profile", value=config.aws_profile, fix="name a profile in ~/.aws/config"
        ) from err
    try:
        return session.client(
            "s3",
            endpoint_url=config.s3_endpoint_url,
            config=boto_config,
            # a static key pair (MinIO) when configured; else the session's chain (IRSA, profile, env)
            aws_access_key_id=config.s3_access_key_id,
            aws_secret_access_key=config.secret("s3_secret_access_key"),
        )
    except ValueError as err:  # botocore's own endpoint and region checks (InvalidRegionError is one)
        raise ConfigError(
            f"botocore refused the S3 client settings: {redact_text(str(err))}",
            key="s3_endpoint_url" if config.s3_endpoint_url else "default_region",
            fix="set s3_endpoint_url to http(s)://host[:port] with a DNS host name, and default_region like us-east-1",
        ) from None


def credentials_hint(endpoint: str | None) -> str:
    """Where credentials come from, for the store actually in use: IRSA exists only on AWS (EKS)."""
    host = (urlsplit(endpoint).hostname or "") if endpoint else ""
    if endpoint is None or host.endswith((".amazonaws.com", ".amazonaws.com.cn")):
        return (
            "S3: use the pod's IAM role (IRSA on EKS), AWS_PROFILE/aws_profile, or "
            "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY"
        )
    return (
        f"the S3-compatible store at {redact_url(endpoint)}: set its access key as AWS_ACCESS_KEY_ID and "
        "AWS_SECRET_ACCESS_KEY (or a profile in AWS_PROFILE/aws_profile)"
    )


def translate(err: BaseException, uri: str, endpoint: str | None = None) -> StorageError | None:
    """The storage error for a botocore/s3transfer error, or None if it is not one of theirs."""
    if isinstance(err, StorageError):
        return err
    if isinstance(err, bexc.ClientError):
        error = err.response.get("Error", {})
        code = str(error.get("Code", ""))
        status = err.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if code in _NOT_FOUND or status == 404:
            what = "bucket" if code == "NoSuchBucket" else "object"
            return ObjectNotFoundError(f"{uri}: no such {what} ({code or status})")
        if code == "PreconditionFailed" or status == 412:
            return StorageError(f"{uri}: the object changed (new ETag) while it was being read; retry")
        if code in _FORBIDDEN or status == 403:
            return StoragePermissionError(
                f"{uri}: access denied ({code or status}); check the credentials and the bucket policy"
            )
        if code in _UNAVAILABLE or (isinstance(status, int) and status >= 500):
            return StorageUnavailableError(f"{uri}: S3 is unavailable ({code or status}); retry later")
        return StorageError(f"{uri}: S3 refused the request ({code or status})")
    if isinstance(err, (bexc.NoCredentialsError, bexc.PartialCredentialsError)):
        return StoragePermissionError(f"{uri}: no credentials found for {credentials_hint(endpoint)}")
    if isinstance(err, _CUT) or (isinstance(err, bexc.BotoCoreError) and "stream" in type(err).__name__.lower()):
        # IncompleteReadError, ResponseStreamingError, urllib3's errors: a connection cut mid-body.
        where = f" at {redact_url(endpoint)}" if endpoint else ""
        return StorageUnavailableError(f"{uri}: could not reach S3{where} ({type(err).__name__}); retry later")
    return None


# Everything a dropped or stalled connection raises, while connecting or while reading a body.
_CUT = (
    bexc.ConnectionError,
    bexc.HTTPClientError,
    bexc.IncompleteReadError,
    RetriesExceededError,
    ConnectionError,
    TimeoutError,
    urllib3.exceptions.HTTPError,
    http.client.HTTPException,  # IncompleteRead: the socket read directly (`_read_socket`) ended early
)


@contextlib.contextmanager
def _errors(uri: str, client: Any) -> Iterator[None]:
    try:
        yield
    except Exception as err:
        mapped = translate(err, uri, client.meta.endpoint_url)
        if mapped is None or mapped is err:
            raise
        raise mapped from err


def _location(uri: str) -> StorageURI:
    return parse_uri(uri, accepts=("s3",), store=STORE)


def _socket_reader(body: Any) -> Callable[[memoryview], int] | None:
    """The ``readinto`` of the stdlib response under botocore's body, or None where there is none.

    Reading the socket into one buffer per request skips a copy and two allocations per block in
    urllib3 and http.client, and four layers of Python calls per block. Another HTTP stack (moto's
    in-process mock, a body urllib3 decodes) keeps botocore's ``read``.
    """
    raw: Any = getattr(body, "_raw_stream", None)
    stream = getattr(raw, "_fp", None)
    if not isinstance(stream, http.client.HTTPResponse) or getattr(raw, "_decoder", None) is not None:
        return None
    if (raw.headers.get("content-encoding") or "identity").lower() != "identity":
        return None
    reader: Callable[[memoryview], int] = stream.readinto
    return reader


def _read_socket(
    reader: Callable[[memoryview], int], body: Any, response: dict[str, Any], sink: RangeSink, uri: str
) -> None:
    """The body through ``reader`` into ``sink``, with the checks botocore's ``read`` makes.

    Content-Length: a short body raises ``IncompleteRead`` (http.client's ``readinto`` just ends), and
    ``RangeSink`` refuses a long one. A body botocore would check against an ``x-amz-checksum-*`` header (its
    ``checksum`` attribute) is hashed here block by block and checked at the end (`_Checksum`).
    """
    checksum = _Checksum.of(body, response, uri)
    expected_length = int(response.get("ContentLength") or 0)
    received = 0
    with memoryview(bytearray(SOCKET_BLOCK)) as block:
        while count := reader(block):
            piece = block[:count]
            if checksum is not None:
                checksum.update(piece)
            sink.write(piece)
            received += count
    if received < expected_length:  # the stdlib's readinto ends quietly on a cut connection
        raise http.client.IncompleteRead(b"", expected_length - received)
    raw = body._raw_stream
    raw.release_conn()  # the stdlib response is at its end; urllib3 only learns it here
    if checksum is not None:
        checksum.verify()


class _Checksum:
    """The ``x-amz-checksum-*`` check botocore makes in ``body.read``, for a body read around it."""

    def __init__(self, hasher: Any, expected: set[str], uri: str) -> None:
        self._hasher, self._expected, self._uri = hasher, expected, uri

    @classmethod
    def of(cls, body: Any, response: dict[str, Any], uri: str) -> _Checksum | None:
        """None when botocore would check nothing (no ``checksum`` on the body)."""
        hasher = getattr(body, "checksum", None)
        if hasher is None:
            return None
        headers = response.get("ResponseMetadata", {}).get("HTTPHeaders", {})
        expected = {
            value
            for name, value in headers.items()
            if name.startswith("x-amz-checksum-") and name != "x-amz-checksum-type"
        }
        return cls(hasher, expected, uri)

    def update(self, data: memoryview) -> None:
        self._hasher.update(data)

    def verify(self) -> None:
        if self._hasher.b64digest() not in self._expected:
            expected = ", ".join(sorted(self._expected))
            raise StorageError(
                f"{self._uri}: the bytes read do not match the object's checksum ({expected}); "
                "the download was discarded: retry it"
            )


def _range_request(obj: ObjectInfo, start: int, stop: int) -> dict[str, Any]:
    """GetObject's arguments for ``[start, stop)``, pinned to the listed ETag; no Range for the whole object."""
    loc = _location(obj.uri)
    request: dict[str, Any] = {"Bucket": loc.bucket, "Key": loc.key}
    if obj.version:
        request["IfMatch"] = obj.version
    if not (start == 0 and stop == obj.size):
        request["Range"] = f"bytes={start}-{stop - 1}"
    return request


def _read_body(body: Any, sink: RangeSink) -> None:
    """botocore's ``read`` to the end (it then checks Content-Length and any checksum)."""
    while chunk := body.read(READ_BLOCK):
        sink.write(chunk)
        del chunk  # not held while the next one is read: one block per connection, not two


def _list(client: Any, folder_uri: str) -> Iterator[ObjectInfo]:
    loc = _location(folder_uri)
    prefix = loc.key if loc.key not in ("", "/") else ""
    with _errors(folder_uri, client):
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=loc.bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                key = item["Key"]
                yield ObjectInfo(
                    f"s3://{loc.bucket}/{key}",
                    key[len(prefix) :],
                    item["Size"],
                    item.get("ETag"),
                    item.get("LastModified"),
                )


class _S3Upload:
    """A multipart upload started only once a full part exists; small objects are one PutObject."""

    def __init__(self, client: Any, bucket: str, key: str, uri: str, sha256: bool) -> None:
        self._client, self._bucket, self._key, self._uri = client, bucket, key, uri
        self._checksum = {"ChecksumAlgorithm": "SHA256"} if sha256 else {}
        self._upload_id: str | None = None
        self._parts: list[dict[str, Any]] = []

    def upload_part(self, data: bytes) -> None:
        with _errors(self._uri, self._client):
            if self._upload_id is None:
                created = self._client.create_multipart_upload(Bucket=self._bucket, Key=self._key, **self._checksum)
                self._upload_id = created["UploadId"]
            number = len(self._parts) + 1
            answer = self._client.upload_part(
                Bucket=self._bucket,
                Key=self._key,
                UploadId=self._upload_id,
                PartNumber=number,
                Body=data,
                **self._checksum,
            )
        part = {"ETag": answer["ETag"], "PartNumber": number}
        part.update({name: answer[name] for name in _CHECKSUM_FIELDS if answer.get(name)})
        self._parts.append(part)

    def finish(self, data: bytes) -> None:
        if self._upload_id is None:
            with _errors(self._uri, self._client):
                self._client.put_object(Bucket=self._bucket, Key=self._key, Body=data, **self._checksum)
            return
        if data:
            self.upload_part(data)
        with _errors(self._uri, self._client):
            self._client.complete_multipart_upload(
                Bucket=self._bucket,
                Key=self._key,
                UploadId=self._upload_id,
                MultipartUpload={"Parts": self._parts},
            )

    def abort(self) -> None:
        if self._upload_id is not None:
            upload_id, self._upload_id = self._upload_id, None
            with _errors(self._uri, self._client):
                self._client.abort_multipart_upload(Bucket=self._bucket, Key=self._key, UploadId=upload_id)


class S3Filesystem(FilesystemGateway):
    """``s3://bucket/key`` through one reused client; writes commit on close, else are aborted."""

    def __init__(self, client: Any, *, sha256: bool = False, part_size: int = DEFAULT_PART_SIZE) -> None:
        self.client = client
        self._sha256 = sha256
        self._part_size = max(part_size, 5 * MIB)  # S3's smallest part

    def __repr__(self) -> str:
        return f"S3Filesystem(endpoint={redact_url(self.client.meta.endpoint_url)!r})"

    def open(self, uri: str, mode: str = "rb", **kwargs: Any) -> IO[Any]:
        writing, binary = parse_mode(mode, kwargs)
        loc = _location(uri)
        if writing:
            upload = _S3Upload(self.client, loc.bucket, loc.key, uri, self._sha256)
            return upload_stream(upload, binary, kwargs, uri, self._part_size)
        with _errors(uri, self.client):
            body = self.client.get_object(Bucket=loc.bucket, Key=loc.key)["Body"]

        drained = [False]

        def read(size: int) -> bytes:
            with _errors(uri, self.client):
                data: bytes = body.read(size)
            drained[0] = drained[0] or (size > 0 and not data)
            return data

        def close() -> None:
            # A drained body has already gone back to the pool; close() would drop the connection.
            if not drained[0]:
                body.close()

        return reader_stream(ChunkedReader(read, close), binary, kwargs, 256 * 1024, uri)

    def generate_signed_url(self, uri: str, expiration: int = 3600, method: str = "GET") -> str:
        """A SigV4 presigned URL; PUT URLs take the body as is (no checksum header required)."""
        operation = "get_object" if check_signing(expiration, method) == "GET" else "put_object"
        loc = _location(uri)
        with _errors(uri, self.client):
            url: str = self.client.generate_presigned_url(
                operation, Params={"Bucket": loc.bucket, "Key": loc.key}, ExpiresIn=expiration
            )
        return url

    def exists(self, uri: str) -> bool:
        loc = _location(uri)
        try:
            with _errors(uri, self.client):
                self.client.head_object(Bucket=loc.bucket, Key=loc.key)
        except ObjectNotFoundError:
            return False
        return True

    def list(self, uri: str) -> list[str]:
        folder = uri.rstrip("/") + "/" if _location(uri).key else uri
        return [obj.uri for obj in _list(self.client, folder)]

    def stat(self, uri: str) -> ObjectInfo | None:
        loc = _location(uri)
        try:
            with _errors(uri, self.client):
                head = self.client.head_object(Bucket=loc.bucket, Key=loc.key)
        except ObjectNotFoundError:
            return None
        name = loc.key.rsplit("/", 1)[-1]
        return ObjectInfo(uri, name, head.get("ContentLength"), head.get("ETag"), head.get("LastModified"))

    def list_info(self, uri: str) -> builtins.list[ObjectInfo]:
        return list(_list(self.client, uri.rstrip("/") + "/" if _location(uri).key else uri))

    def delete(self, uri: str) -> None:
        loc = _location(uri)
        with contextlib.suppress(ObjectNotFoundError), _errors(uri, self.client):
            self.client.delete_object(Bucket=loc.bucket, Key=loc.key)

    def close(self) -> None:
        self.client.close()


class _Progress(BaseSubscriber):  # type: ignore[misc]
    """Forwards s3transfer's byte counts."""

    def __init__(self, progress: Progress) -> None:
        self._progress = progress

    def on_progress(self, future: Any, bytes_transferred: int, **kwargs: Any) -> None:
        self._progress(bytes_transferred)


class S3Artifacts(LLMArtifactGateway):
    """Model artifacts in S3: ranged GETs in the shared download pool, uploads through s3transfer."""

    def __init__(
        self,
        client: Any,
        *,
        fine_tuned_weights_prefix: str,
        transfer: TransferSettings | None = None,
        owns_client: bool = False,
    ) -> None:
        super().__init__(fine_tuned_weights_prefix=fine_tuned_weights_prefix, transfer=transfer)
        self.client = client
        self._owns_client = owns_client
        self.upload_part_threshold = 2 * self.transfer.min_part_size

    def _iter_objects(self, folder_uri: str) -> Iterator[ObjectInfo]:
        return _list(self.client, folder_uri)

    def _object_size(self, uri: str) -> int | None:
        loc = _location(uri)
        try:
            with _errors(uri, self.client):
                size: int = self.client.head_object(Bucket=loc.bucket, Key=loc.key)["ContentLength"]
        except ObjectNotFoundError:
            return None
        return size

    def _range_reader(self) -> RangeReader:
        return self._read_range

    def _range_opener(self) -> RangeOpener:
        return self._open_range

    def _read_range(self, obj: ObjectInfo, start: int, stop: int, sink: RangeSink) -> None:
        """One GET of bytes ``[start, stop)`` (the whole object when that is all of it), streamed to ``sink``."""
        with _errors(obj.uri, self.client):
            response = self.client.get_object(**_range_request(obj, start, stop))
            body = response["Body"]
            try:
                socket_reader = _socket_reader(body)
                if socket_reader is None:
                    _read_body(body, sink)
                else:
                    _read_socket(socket_reader, body, response, sink, obj.uri)
            except BaseException:
                body.close()
                raise

    def _open_range(self, obj: ObjectInfo, sink: RangeSink) -> SocketBody | None:
        """The GET of the sink's bytes, its body left on the socket for `pump.Pump` (checksum included);
        a body under another HTTP stack is read here."""
        with _errors(obj.uri, self.client):
            response = self.client.get_object(**_range_request(obj, sink.position, sink.stop))
            body = response["Body"]
            try:
                found = None
                if _socket_reader(body) is not None:
                    found = SocketBody.of(body._raw_stream, _Checksum.of(body, response, obj.uri))
                if found is None:
                    _read_body(body, sink)
                return found
            except BaseException:
                body.close()
                raise

    def _download_object(self, obj: ObjectInfo, fileobj: BinaryIO, progress: Progress | None) -> None:
        if obj.size is None:
            size = self._object_size(obj.uri)
            if size is None:
                raise ObjectNotFoundError(f"{obj.uri}: no such object")
            obj = dataclasses.replace(obj, size=size)
        read_whole(self._read_range, obj, fileobj, progress)

    def _read_bytes(self, uri: str, limit: int | None = None) -> bytes:
        loc = _location(uri)
        with _errors(uri, self.client):
            response = self.client.get_object(Bucket=loc.bucket, Key=loc.key)
        body = response["Body"]
        try:
            size = int(response.get("ContentLength") or 0)
            if limit is not None and size > limit:
                raise too_large(uri, limit, size)  # not read at all
            with _errors(uri, self.client):
                data: bytes = body.read() if limit is None else body.read(limit + 1)
        finally:
            body.close()
        return data

    def _upload_object(self, item: UploadItem, part_concurrency: int, progress: Progress | None) -> None:
        self._upload_many([item], part_concurrency, progress)

    def _upload_many(self, items: list[UploadItem], max_concurrency: int, progress: Progress | None) -> None:
        """One s3transfer manager for the call: its one pool of ``max_concurrency`` threads serves files and parts.

        Large files are multipart uploads (completed last, aborted on failure), small ones a
        single PutObject, so no object is visible before it is whole. The first failure cancels
        the transfers not yet done.
        """
        largest = max((item.size for item in items), default=0)
        config = TransferConfig(
            multipart_threshold=self.upload_part_threshold,
            multipart_chunksize=max(MIN_UPLOAD_PART, part_size_for(largest, max_concurrency, self.transfer)),
            max_concurrency=max_concurrency,
        )
        subscribers = [_Progress(progress)] if progress is not None else []
        with create_transfer_manager(self.client, config) as manager:
            futures = []
            for item in items:
                loc = _location(item.uri)
                futures.append((item.uri, manager.upload(str(item.path), loc.bucket, loc.key, subscribers=subscribers)))
            for current, future in futures:
                with _errors(current, self.client):
                    future.result()

    def close(self) -> None:
        if self._owns_client:
            self.client.close()


def build_store(config: InfraConfig) -> Store:
    """The ``s3`` store: one client (``s3_endpoint_url`` for MinIO) shared by files and artifacts."""
    from .routing import weights_prefix

    filesystem = S3Filesystem(make_client(config), sha256=bool(config.celery_enable_sha256))
    artifacts = S3Artifacts(
        filesystem.client,
        fine_tuned_weights_prefix=weights_prefix(config),
        transfer=TransferSettings.from_config(config),
    )
    return Store(filesystem, artifacts)
