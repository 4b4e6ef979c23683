"""Endpoint labels as Pub/Sub labels, which follow stricter rules than endpoint labels do.

Pub/Sub (like every Google Cloud label) takes at most 64 labels; keys and values of at most 63
characters, lowercase letters, digits, ``_`` and ``-`` only, and a key must start with a letter.
Endpoint labels are free text, so each is sanitised: lowercased, every other character replaced by
``_``, cut to 63, and a key that does not start with a letter gets ``l_`` in front. Two labels that
sanitise to the same key keep the first in sorted order; labels beyond the limit are dropped (in
sorted order) with a warning, never an error: a label must not stop an endpoint from being created.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping

__all__ = [
    "CREATOR_LABEL",
    "ENDPOINT_ID_LABEL",
    "MAX_LABELS",
    "MAX_LABEL_LENGTH",
    "label_key",
    "label_value",
    "queue_labels",
    "split_labels",
]

logger = logging.getLogger(__name__)

MAX_LABELS = 64
MAX_LABEL_LENGTH = 63
# Labels the delegate sets itself (the endpoint labels come back without them).
ENDPOINT_ID_LABEL = "launch_endpoint_id"
CREATOR_LABEL = "launch_created_by"
RESERVED = (ENDPOINT_ID_LABEL, CREATOR_LABEL)
_NOT_ALLOWED = re.compile(r"[^a-z0-9_-]")


def label_value(text: str) -> str:
    """``text`` as a Pub/Sub label value: lowercase ``[a-z0-9_-]``, at most 63 characters (may be empty)."""
    return _NOT_ALLOWED.sub("_", str(text).lower())[:MAX_LABEL_LENGTH]


def label_key(text: str) -> str:
    """``text`` as a Pub/Sub label key: a label value that starts with a letter and is not empty."""
    key = label_value(text)
    if not key or not key[0].isalpha():
        key = ("l_" + key)[:MAX_LABEL_LENGTH]
    return key


def queue_labels(endpoint_id: str, created_by: str, endpoint_labels: Mapping[str, str]) -> dict[str, str]:
    """The labels a topic and its subscription get: the endpoint's (sanitised), its id and its creator."""
    labels: dict[str, str] = {}
    room = MAX_LABELS - len(RESERVED)
    for original in sorted(endpoint_labels, key=str):
        key = label_key(original)
        if key in RESERVED or key in labels:
            logger.warning(
                "endpoint %s: label %r collides with another after sanitising; dropped", endpoint_id, original
            )
            continue
        if len(labels) == room:
            logger.warning("endpoint %s: more than %d labels; %r and later ones dropped", endpoint_id, room, original)
            break
        labels[key] = label_value(endpoint_labels[original])
    labels[ENDPOINT_ID_LABEL] = label_value(endpoint_id)
    labels[CREATOR_LABEL] = label_value(created_by)
    return labels


def split_labels(labels: Mapping[str, str]) -> tuple[dict[str, str], str | None]:
    """The endpoint labels and the creator, from a resource's labels."""
    endpoint_labels = {k: v for k, v in labels.items() if k not in RESERVED}
    return endpoint_labels, labels.get(CREATOR_LABEL)
