"""Redaction: the one way secrets are shown (``redis://user:***@host:6380/0``).

`redact_url` never trusts a URL parser's idea of where the password ends: an unencoded ``/``, ``?``,
``#`` or ``@`` in a password, a missing scheme, or a tab or newline inside the URL (which parsers drop
silently) must not make it print the password. When in doubt it masks more, never less.
"""

from __future__ import annotations

import re

MASK = "***"

SENSITIVE_QUERY_KEYS = (
    "password",
    "token",
    "sig",
    "secret",
    "credential",
    "x-amz-signature",
    "x-goog-signature",
)

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*)://")
_C0_OR_SPACE = "".join(chr(c) for c in range(0x21))
_DELIMITERS = "/?#"


def clean_url(url: str) -> str:
    """What URL parsers actually use: C0 controls and spaces stripped from the ends, tabs and newlines dropped."""
    return url.strip(_C0_OR_SPACE).replace("\t", "").replace("\r", "").replace("\n", "")


def has_userinfo(url: str) -> bool:
    """Whether the URL carries ``user[:password]@`` (judged as `redact_url` does: in doubt, yes)."""
    _, rest = _split_scheme(clean_url(url))
    return _userinfo_end(rest) >= 0


def redact_url(url: str) -> str:
    """The URL with its password (or a bare user token) and token-like query values replaced by ``***``."""
    scheme, rest = _split_scheme(clean_url(url))
    prefix = f"{scheme}://" if scheme is not None else ""
    end = _userinfo_end(rest)
    if end < 0:
        return prefix + _redact_tail(rest)
    userinfo, hostpart = rest[:end], rest[end + 1 :]
    user, colon, _ = userinfo.partition(":")
    # a user name alone may be the token (https://TOKEN@host): it is shown only beside a password
    shown = f"{user}:{MASK}@" if colon and not any(c in user for c in _DELIMITERS + "@") else f"{MASK}@"
    return prefix + shown + _redact_tail(hostpart)


def _split_scheme(text: str) -> tuple[str | None, str]:
    match = _SCHEME.match(text)
    if match is None:
        return None, text
    return match.group(1).lower(), text[match.end() :]


def _userinfo_end(rest: str) -> int:
    """Index of the ``@`` that ends the user-info in ``rest`` (the URL after ``scheme://``), or -1.

    The authority runs to the first ``/``, ``?`` or ``#``; an ``@`` there ends the user-info (at its
    last ``@``). An ``@`` only after such a delimiter is a path or query character, unless a ``:``
    comes before it: then it may be a password holding an unencoded delimiter, and it is masked.
    """
    last = rest.rfind("@")
    if last < 0:
        return -1
    cut = min((i for i in (rest.find(d) for d in _DELIMITERS) if i >= 0), default=len(rest))
    authority_at = rest.rfind("@", 0, cut)
    if authority_at >= 0 and last < cut:
        return authority_at
    if ":" in rest[:last]:
        return last
    return authority_at


def _redact_tail(hostpart: str) -> str:
    """Mask token-like values in the query and the fragment of ``host[:port][/path][?query][#fragment]``."""
    head, hash_mark, fragment = hostpart.partition("#")
    base, question, query = head.partition("?")
    if question:
        base = f"{base}?{_redact_pairs(query)}"
    if hash_mark:
        base = f"{base}#{_redact_pairs(fragment)}"
    return base


def _redact_pairs(text: str) -> str:
    return "&".join(_redact_query_item(item) for item in text.split("&"))


def _redact_query_item(item: str) -> str:
    name, sep, _ = item.partition("=")
    if sep and any(word in name.lower() for word in SENSITIVE_QUERY_KEYS):
        return f"{name}={MASK}"
    return item


_URL_IN_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://[^\s'\"<>]+")


def redact_text(text: str) -> str:
    """Free text (an SDK's error message, a log line) with every ``scheme://`` URL in it redacted."""
    if "://" not in text:
        return text
    return _URL_IN_TEXT.sub(lambda match: redact_url(match.group(0)), text)


def scrub_exception_chain(err: BaseException) -> BaseException:
    """Redact URLs in the messages of ``err`` and every exception it chains (``__cause__``, ``__context__``).

    For the places that print or return a foreign exception's text (the doctor, the CLI): an SDK
    error may quote the URL it was given, password included. Returns ``err``, changed in place.
    """
    seen: set[int] = set()
    pending: list[BaseException | None] = [err]
    while pending and len(seen) < 100:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        try:
            current.args = tuple(redact_text(a) if isinstance(a, str) else a for a in current.args)
        except (AttributeError, TypeError):
            pass  # an exception type with read-only args keeps them
        pending.extend((current.__cause__, current.__context__))
    return err
