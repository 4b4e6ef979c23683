"""Storage URIs: one parser for every store, so each gateway says exactly what it accepts."""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from ..errors import InvalidURIError
from ..redact import redact_url

_ABS_HTTPS = re.compile(r"^(?P<account>[a-z0-9]{3,24})\.blob\.core\.windows\.net\Z")


@dataclass(frozen=True)
class StorageURI:
    """``scheme`` is one of s3, az, gs, file; ``bucket`` is the bucket or container."""

    scheme: str
    bucket: str
    key: str
    account: str | None = None
    original: str = ""

    def child(self, relative: str) -> StorageURI:
        key = f"{self.key.rstrip('/')}/{relative}" if self.key else relative
        return StorageURI(self.scheme, self.bucket, key, self.account, "")

    def __str__(self) -> str:
        if self.scheme == "file":
            return "file://" + self.key
        return f"{self.scheme}://{self.bucket}/{self.key}"


def parse_uri(uri: str, *, accepts: tuple[str, ...], store: str) -> StorageURI:
    """Parse ``uri``; raise `InvalidURIError` unless its scheme is one of ``accepts``."""
    if not isinstance(uri, str) or not uri:
        raise InvalidURIError(f"empty URI; {store} accepts {_describe(accepts)}")
    if "\0" in uri:  # no file system takes it, and an SDK would send %00 where nobody meant one
        raise InvalidURIError(f"{store} cannot serve {shown(uri)!r}: it contains a NUL character")
    parsed = _parse(uri)
    if parsed is None or parsed.scheme not in accepts:
        raise InvalidURIError(f"{store} cannot serve {shown(uri)!r}: it accepts {_describe(accepts)}")
    return parsed


def shown(uri: str) -> str:
    """``uri`` as messages show it: an http(s) URL may be a presigned or SAS URL, so its signature is masked.

    ``s3://``/``gs://``/``az://`` keys are left as written: a ``?`` there is part of the key.
    """
    return redact_url(uri) if uri[:8].lower().startswith(("http://", "https://")) else uri


def _parse(uri: str) -> StorageURI | None:
    if "://" not in uri:
        return StorageURI("file", "", uri, original=uri)
    try:
        parts = urlsplit(uri)
    except ValueError:  # e.g. an unclosed '[' read as an IPv6 host
        return None
    scheme = parts.scheme.lower()
    path = unquote(parts.path)
    if scheme == "file":
        if parts.netloc not in ("", "localhost"):
            return None
        return StorageURI("file", "", path, original=uri)
    if scheme in ("s3", "gs", "az", "azure"):
        # Keys are taken as written (like the AWS CLI and gsutil): no percent-decoding, and '?' or '#'
        # are part of the key, not a query or fragment.
        bucket, _, key = uri.split("://", 1)[1].partition("/")
        if not bucket or any(c in bucket for c in "?#@:"):
            return None
        return StorageURI("az" if scheme == "azure" else scheme, bucket, key, original=uri)
    if scheme == "https":
        match = _ABS_HTTPS.match(parts.hostname or "")
        container, _, key = path.lstrip("/").partition("/")
        if match is None or not container:
            return None
        return StorageURI("az", container, key, account=match["account"], original=uri)
    return None


_DESCRIPTIONS = {
    "s3": "s3://bucket/key",
    "az": "az://container/path, azure://container/path, https://{account}.blob.core.windows.net/{container}/{path}",
    "gs": "gs://bucket/key",
    "file": "file:///path and plain paths",
}


def _describe(accepts: tuple[str, ...]) -> str:
    return "; ".join(_DESCRIPTIONS.get(a, a) for a in accepts)
