"""Redaction: the one way secrets are shown (``redis://user:***@host:6380/0``)."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

MASK = "***"


def redact_url(url: str) -> str:
    """Replace the password (and token-like query values) in a URL with ``***``."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return MASK
    netloc = parts.netloc
    rest = url.split("://", 1)[1] if "://" in url else ""
    if "@" not in netloc and ":" in netloc and "@" in rest[len(netloc) :]:
        # An unencoded '/', '?' or '#' in a password ends the netloc early: 'u:pa/ss@host' would
        # show 'pa' as a port and 'ss' as a path. Mask everything up to the last '@'.
        user = netloc.split(":", 1)[0]
        return f"{parts.scheme}://{user}:{MASK}@{rest.rpartition('@')[2]}"
    if "@" in netloc:
        userinfo, _, hostport = netloc.rpartition("@")
        user = userinfo.split(":", 1)[0]
        netloc = f"{user}:{MASK}@{hostport}" if user else f":{MASK}@{hostport}"
    query = "&".join(_redact_query_item(item) for item in parts.query.split("&")) if parts.query else ""
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


SENSITIVE_QUERY_KEYS = (
    "password",
    "token",
    "sig",
    "secret",
    "credential",
    "x-amz-signature",
    "x-goog-signature",
)


def _redact_query_item(item: str) -> str:
    name, sep, _ = item.partition("=")
    if sep and any(word in name.lower() for word in SENSITIVE_QUERY_KEYS):
        return f"{name}={MASK}"
    return item
