"""Google Cloud Storage: one `storage.Client` per deployment, generation-pinned ranged reads.

Every read after the first is pinned to the generation the first one saw (or the listing gave),
so an object replaced mid-download fails with a clear error instead of mixing two versions.
Downloads are ranged reads streamed into the file by the shared engine (`storage.transfer`),
whose one pool serves small files and the parts of large ones; writes use a resumable upload
session finalised only on a successful close.
"""

from __future__ import annotations

import builtins
import contextlib
import dataclasses
import threading
from collections.abc import Iterator
from datetime import timedelta
from typing import IO, TYPE_CHECKING, Any, BinaryIO

import google.auth
import requests
import urllib3.exceptions
from google.api_core import exceptions as gexc
from google.auth import exceptions as auth_exc
from google.auth.credentials import AnonymousCredentials, Signing
from google.auth.transport.requests import AuthorizedSession
from google.auth.transport.requests import Request as AuthRequest
from google.cloud import storage
from google.cloud.storage import exceptions as gcs_exc
from google.cloud.storage.retry import DEFAULT_RETRY

from ..errors import ObjectNotFoundError, StorageError, StoragePermissionError, StorageUnavailableError
from ..redact import redact_url
from .base import FilesystemGateway, LLMArtifactGateway, ObjectInfo, Progress
from .errors import translated
from .local import check_signing
from .pump import SocketBody
from .store import Store
from .streams import DEFAULT_PART_SIZE, ChunkedReader, parse_mode, reader_stream, upload_stream
from .transfer import GATHER, RangeOpener, RangeReader, RangeSink, TransferSettings, read_whole
from .uploads import UploadItem
from .uri import StorageURI, parse_uri

if TYPE_CHECKING:
    from ..config.model import InfraConfig

STORE = "GCS"
MIB = 1024 * 1024
POOL_CONNECTIONS = 64
#: Seconds for a connection and for each read of a ranged GET: the SDK's own download timeout.
READ_TIMEOUT = 60
_SCOPES = ("https://www.googleapis.com/auth/devstorage.read_write",)


def make_client(config: InfraConfig) -> storage.Client:
    """The one client: anonymous against an emulator (``gcs_endpoint_url``), else ADC."""
    session: requests.Session
    if config.gcs_endpoint_url:
        credentials: Any = AnonymousCredentials()  # type: ignore[no-untyped-call]
        project: Any = config.gcp_project_id or "emulator"
        session = requests.Session()
        options: dict[str, Any] = {"api_endpoint": config.gcs_endpoint_url}
    else:
        try:
            credentials, default_project = google.auth.default(scopes=_SCOPES)
        except auth_exc.DefaultCredentialsError as err:
            raise StoragePermissionError(
                "no Google credentials found; use Workload Identity or GOOGLE_APPLICATION_CREDENTIALS"
            ) from err
        project = config.gcp_project_id or default_project
        session = AuthorizedSession(credentials)  # type: ignore[no-untyped-call]
        options = {}
    adapter = requests.adapters.HTTPAdapter(
        pool_connections=4, pool_maxsize=max(POOL_CONNECTIONS, config.storage_max_concurrency)
    )
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return storage.Client(project=project, credentials=credentials, client_options=options or None, _http=session)


def translate(err: BaseException, uri: str) -> StorageError | None:
    """The storage error for a google-cloud-storage / requests error, or None if it is not one of theirs."""
    if isinstance(err, StorageError):
        return err
    if isinstance(err, gexc.NotFound):
        return ObjectNotFoundError(f"{uri}: no such object or bucket")
    if isinstance(err, (gexc.Forbidden, gexc.Unauthorized, auth_exc.RefreshError, auth_exc.DefaultCredentialsError)):
        return StoragePermissionError(f"{uri}: access denied; check the service account's storage roles")
    if isinstance(err, gexc.PreconditionFailed):
        return StorageError(f"{uri}: the object changed (new generation) while it was being read; retry")
    transient = (
        gexc.ServerError,
        gexc.TooManyRequests,
        gexc.RetryError,  # the retry budget ran out on transient errors
        requests.ConnectionError,
        requests.Timeout,
        requests.exceptions.ChunkedEncodingError,
        requests.exceptions.ContentDecodingError,
        auth_exc.TransportError,
        urllib3.exceptions.HTTPError,  # a body cut mid-read, below requests
        ConnectionError,
        TimeoutError,
    )
    if isinstance(err, transient):
        return StorageUnavailableError(f"{uri}: could not reach GCS ({type(err).__name__}); retry later")
    if isinstance(err, gcs_exc.DataCorruption):
        return StorageUnavailableError(f"{uri}: the download arrived corrupted (checksum mismatch); retry")
    if isinstance(err, gcs_exc.InvalidResponse):
        status = getattr(getattr(err, "response", None), "status_code", None)
        if status == 404:
            return ObjectNotFoundError(f"{uri}: no such object or bucket")
        if status in (401, 403):
            return StoragePermissionError(f"{uri}: access denied; check the service account's storage roles")
        return StorageUnavailableError(f"{uri}: GCS answered {status} mid-transfer; retry later")
    if isinstance(err, (gexc.GoogleAPICallError, requests.RequestException)):
        return StorageError(f"{uri}: GCS refused the request ({type(err).__name__})")
    return None


def _errors(uri: str) -> contextlib.AbstractContextManager[None]:
    return translated(translate, uri)


def _check(response: requests.Response, uri: str, ok: tuple[int, ...]) -> None:
    if response.status_code not in ok:
        raise gexc.from_http_response(response)  # type: ignore[no-untyped-call]


class _Objects:
    """URI handling and listing shared by the filesystem and artifact gateways."""

    def __init__(self, client: storage.Client, retry: Any) -> None:
        self.client = client
        self.retry = retry

    def location(self, uri: str) -> StorageURI:
        return parse_uri(uri, accepts=("gs",), store=STORE)

    def blob(self, uri: str, generation: int | None = None) -> storage.Blob:
        loc = self.location(uri)
        return self.client.bucket(loc.bucket).blob(loc.key, generation=generation)

    def iter_objects(self, folder_uri: str) -> Iterator[ObjectInfo]:
        loc = self.location(folder_uri)
        prefix = loc.key if loc.key not in ("", "/") else ""
        with _errors(folder_uri):
            for item in self.client.list_blobs(loc.bucket, prefix=prefix or None, retry=self.retry):
                version = str(item.generation) if item.generation is not None else None
                yield ObjectInfo(
                    f"gs://{loc.bucket}/{item.name}", item.name[len(prefix) :], item.size, version, item.updated
                )


class _RangeReads:
    """``read(n)`` as ranged GETs; the first answer's generation pins the ones after it."""

    def __init__(self, objects: _Objects, uri: str) -> None:
        self._objects, self._uri = objects, uri
        self._blob = objects.blob(uri)
        self._offset = 0
        self._generation: int | None = None
        self._done = False

    def read(self, size: int) -> bytes:
        if self._done or size <= 0:
            return b""
        pinned = {"if_generation_match": self._generation} if self._generation is not None else {}
        with _errors(self._uri):
            try:
                data: bytes = self._blob.download_as_bytes(
                    start=self._offset,
                    end=self._offset + size - 1,
                    checksum=None,
                    raw_download=True,
                    retry=self._objects.retry,
                    **pinned,
                )
            except gexc.RequestRangeNotSatisfiable:  # past the end (or an empty object)
                data = b""
        if self._generation is None and self._blob.generation is not None:
            self._generation = int(self._blob.generation)
        self._offset += len(data)
        self._done = len(data) < size
        return data


class _ResumableUpload:
    """A resumable upload session opened at the first full part; small objects are a single upload."""

    def __init__(self, objects: _Objects, uri: str) -> None:
        self._objects, self._uri = objects, uri
        self._blob = objects.blob(uri)
        self._session_url: str | None = None
        self._offset = 0

    @property
    def _http(self) -> requests.Session:
        session: requests.Session = self._objects.client._http
        return session

    def upload_part(self, data: bytes) -> None:
        with _errors(self._uri):
            if self._session_url is None:
                self._session_url = self._blob.create_resumable_upload_session(checksum=None, retry=self._objects.retry)
            end = self._offset + len(data) - 1
            response = self._http.put(
                self._session_url, data=data, headers={"Content-Range": f"bytes {self._offset}-{end}/*"}
            )
            _check(response, self._uri, (308,))
        self._offset += len(data)

    def finish(self, data: bytes) -> None:
        with _errors(self._uri):
            if self._session_url is None:
                self._blob.upload_from_string(data, retry=self._objects.retry)
                return
            total = self._offset + len(data)
            span = f"bytes {self._offset}-{total - 1}/{total}" if data else f"bytes */{total}"
            response = self._http.put(self._session_url, data=data, headers={"Content-Range": span})
            _check(response, self._uri, (200, 201))

    def abort(self) -> None:
        """Cancel the session (best effort); an unfinished session never becomes an object."""
        if self._session_url is not None:
            url, self._session_url = self._session_url, None
            with contextlib.suppress(requests.RequestException):
                self._http.delete(url, timeout=10)


class GCSFilesystem(FilesystemGateway):
    """``gs://bucket/key`` through one reused `storage.Client`."""

    def __init__(
        self,
        client: storage.Client,
        *,
        endpoint_url: str | None = None,
        signing_credentials: Any = None,
        retry: Any = DEFAULT_RETRY,
    ) -> None:
        self.client = client
        self._objects = _Objects(client, retry)
        self._endpoint_url = endpoint_url
        self._signing_credentials = signing_credentials
        self._signing_lock = threading.Lock()

    def __repr__(self) -> str:
        where = redact_url(self._endpoint_url) if self._endpoint_url else "storage.googleapis.com"
        return f"GCSFilesystem(project={self.client.project!r}, endpoint={where!r})"

    def open(self, uri: str, mode: str = "rb", **kwargs: Any) -> IO[Any]:
        writing, binary = parse_mode(mode, kwargs)
        if writing:
            return upload_stream(_ResumableUpload(self._objects, uri), binary, kwargs, uri, DEFAULT_PART_SIZE)
        reads = _RangeReads(self._objects, uri)
        return reader_stream(ChunkedReader(reads.read), binary, kwargs, 256 * 1024, uri)

    def generate_signed_url(self, uri: str, expiration: int = 3600, method: str = "GET") -> str:
        """A V4 signed URL: with a service-account key, or through IAM signBlob with ADC (Workload Identity)."""
        upper = check_signing(expiration, method)
        credentials = self._credentials_for_signing()
        options: dict[str, Any] = {"version": "v4", "expiration": timedelta(seconds=expiration), "method": upper}
        if self._endpoint_url:
            options["api_access_endpoint"] = self._endpoint_url
        if isinstance(credentials, Signing) and getattr(credentials, "signer", None) is not None:
            options["credentials"] = credentials
        else:
            email = getattr(credentials, "service_account_email", None)
            if not email:
                raise StoragePermissionError(
                    f"cannot sign a URL for {uri} with {type(credentials).__name__} credentials: signing needs a "
                    "service account (Workload Identity, a key in GOOGLE_APPLICATION_CREDENTIALS, or "
                    "`gcloud auth application-default login --impersonate-service-account=...`)"
                )
            with self._signing_lock, _errors(uri):
                if not credentials.valid:
                    credentials.refresh(AuthRequest())
            options["service_account_email"] = credentials.service_account_email
            options["access_token"] = credentials.token
        with _errors(uri):
            url: str = self._objects.blob(uri).generate_signed_url(**options)
            return url

    def _credentials_for_signing(self) -> Any:
        """The client's own credentials, or ADC when the client is anonymous (an emulator)."""
        if self._signing_credentials is None:
            credentials = self.client._credentials
            if isinstance(credentials, AnonymousCredentials):
                with _errors("signing credentials"):
                    credentials, _ = google.auth.default(scopes=_SCOPES)
            self._signing_credentials = credentials
        return self._signing_credentials

    def exists(self, uri: str) -> bool:
        with _errors(uri):
            found: bool = self._objects.blob(uri).exists(retry=self._objects.retry)
            return found

    def list(self, uri: str) -> list[str]:
        folder = uri.rstrip("/") + "/" if self._objects.location(uri).key else uri
        return [obj.uri for obj in self._objects.iter_objects(folder)]

    def stat(self, uri: str) -> ObjectInfo | None:
        blob = self._objects.blob(uri)
        try:
            with _errors(uri):
                blob.reload(retry=self._objects.retry)
        except ObjectNotFoundError:
            return None
        version = str(blob.generation) if blob.generation is not None else None
        return ObjectInfo(uri, blob.name.rsplit("/", 1)[-1], blob.size, version, blob.updated)

    def list_info(self, uri: str) -> builtins.list[ObjectInfo]:
        return list(self._objects.iter_objects(uri.rstrip("/") + "/" if self._objects.location(uri).key else uri))

    def delete(self, uri: str) -> None:
        with contextlib.suppress(ObjectNotFoundError), _errors(uri):
            self._objects.blob(uri).delete(retry=self._objects.retry)

    def close(self) -> None:
        self.client.close()


class _CountingReader:
    """A file whose reads are reported to a progress callback (the SDK's upload has no hook)."""

    def __init__(self, source: BinaryIO, progress: Progress) -> None:
        self._source = source
        self._progress = progress

    def read(self, size: int = -1) -> bytes:
        data = self._source.read(size)
        self._progress(len(data))
        return data

    def __getattr__(self, name: str) -> Any:
        return getattr(self._source, name)


class GCSArtifacts(LLMArtifactGateway):
    """Model artifacts in GCS: generation-pinned ranged reads in the shared download pool."""

    def __init__(
        self,
        client: storage.Client,
        *,
        fine_tuned_weights_prefix: str,
        retry: Any = DEFAULT_RETRY,
        transfer: TransferSettings | None = None,
        owns_client: bool = False,
    ) -> None:
        super().__init__(fine_tuned_weights_prefix=fine_tuned_weights_prefix, transfer=transfer)
        self.client = client
        self._owns_client = owns_client
        self._objects = _Objects(client, retry)

    def _iter_objects(self, folder_uri: str) -> Iterator[ObjectInfo]:
        return self._objects.iter_objects(folder_uri)

    def _object_size(self, uri: str) -> int | None:
        blob = self._objects.blob(uri)
        try:
            with _errors(uri):
                blob.reload(retry=self._objects.retry)
        except ObjectNotFoundError:
            return None
        size: int | None = blob.size
        return size

    def _range_reader(self) -> RangeReader:
        return self._read_range

    def _read_range(self, obj: ObjectInfo, start: int, stop: int, sink: RangeSink) -> None:
        """One read of ``[start, stop)``; the whole object is checksummed (CRC32C), a range cannot be."""
        options: dict[str, Any] = {"if_generation_match": int(obj.version)} if obj.version else {}
        if start == 0 and stop == obj.size:
            options["checksum"] = "auto"
        else:
            options.update(start=start, end=stop - 1, checksum=None)
        with _errors(obj.uri):
            self._objects.blob(obj.uri).download_to_file(sink, raw_download=True, retry=self._objects.retry, **options)

    def _range_opener(self) -> RangeOpener:
        return self._open_range

    def _open_range(self, obj: ObjectInfo, sink: RangeSink) -> SocketBody | None:
        """The media GET of the sink's bytes, pinned to the listed generation, its body left on the socket.

        The request is the one ``download_to_file(raw_download=True)`` sends (the blob's download
        URL, the client's authorized session, the gateway's retry policy for the request); the SDK
        has no call that stops after the headers. A body `pump.SocketBody` cannot read (chunked) is
        read here.
        """
        blob = self._objects.blob(obj.uri)
        client = self._objects.client
        with _errors(obj.uri):
            url = blob._get_download_url(client, if_generation_match=int(obj.version) if obj.version else None)
            headers = {"Range": f"bytes={sink.position}-{sink.stop - 1}", "Accept-Encoding": "identity"}
            session: requests.Session = client._http

            def get() -> requests.Response:
                response = session.get(url, headers=headers, stream=True, timeout=READ_TIMEOUT)
                if response.status_code not in (200, 206):
                    response.close()
                    _check(response, obj.uri, (200, 206))
                return response

            retry = self._objects.retry
            response = retry(get)() if callable(retry) else get()  # a Retry wraps the call; None: once
            try:
                body = SocketBody.of(response.raw)
                if body is None:
                    for chunk in response.raw.stream(GATHER, decode_content=False):
                        sink.write(chunk)
                        del chunk
                    response.close()
                return body
            except BaseException:
                response.close()
                raise

    def _download_object(self, obj: ObjectInfo, fileobj: BinaryIO, progress: Progress | None) -> None:
        if obj.size is None:
            size = self._object_size(obj.uri)
            if size is None:
                raise ObjectNotFoundError(f"{obj.uri}: no such object or bucket")
            obj = dataclasses.replace(obj, size=size)
        read_whole(self._read_range, obj, fileobj, progress)

    def _read_bytes(self, uri: str, limit: int | None = None) -> bytes:
        blob = self._objects.blob(uri)
        with _errors(uri):
            if limit is None:
                data: bytes = blob.download_as_bytes(retry=self._objects.retry)
                return data
            try:  # the first limit + 1 bytes: enough to tell an object over the cap
                data = blob.download_as_bytes(start=0, end=limit, retry=self._objects.retry)
            except gexc.RequestRangeNotSatisfiable:
                data = blob.download_as_bytes(retry=self._objects.retry)  # an empty object has no range
            return data

    def _upload_object(self, item: UploadItem, part_concurrency: int, progress: Progress | None) -> None:
        """One request up to 8 MiB, else a resumable upload (one stream: GCS has no parallel parts
        in its JSON API); either way the object appears only when finalized."""
        with _errors(item.uri), open(item.path, "rb") as source:
            reader: Any = _CountingReader(source, progress) if progress is not None else source
            self._objects.blob(item.uri).upload_from_file(reader, size=item.size, retry=self._objects.retry)

    def close(self) -> None:
        if self._owns_client:
            self.client.close()


def build_store(config: InfraConfig) -> Store:
    """The ``gs`` store: one client (anonymous at ``gcs_endpoint_url``, else ADC) for files and artifacts."""
    from .routing import weights_prefix

    filesystem = GCSFilesystem(make_client(config), endpoint_url=config.gcs_endpoint_url)
    artifacts = GCSArtifacts(
        filesystem.client,
        fine_tuned_weights_prefix=weights_prefix(config),
        transfer=TransferSettings.from_config(config),
    )
    return Store(filesystem, artifacts)
