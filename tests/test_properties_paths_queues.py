"""Property tests (hypothesis) over the parsers that face input: storage URIs, object key -> local path,
queue names per broker. For every generated input the answer is a value or one of our typed errors;
a download never writes outside its target; an accepted queue name is never rewritten by kombu.

Fixed seed (``derandomize``), bounded examples, no example database: the same inputs run everywhere.
"""

from __future__ import annotations

import os
import string
import tempfile
from pathlib import Path
from typing import Any, BinaryIO

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from model_engine_infra.errors import DownloadConflictError, InvalidQueueNameError, InvalidURIError, StorageError
from model_engine_infra.queues.names import (
    LOCAL_MAX_LENGTH,
    QUEUE_NAME_RULES,
    REDIS_RESERVED_NAMES,
    REDIS_RESERVED_PREFIXES,
    REDIS_RESERVED_SUFFIXES,
    SERVICEBUS_MAX_LENGTH,
    SQS_MAX_LENGTH,
)
from model_engine_infra.storage.base import ObjectInfo, download_all
from model_engine_infra.storage.landing import plan_download
from model_engine_infra.storage.uri import StorageURI, parse_uri

FIXED = settings(
    max_examples=300, derandomize=True, database=None, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
FEW = settings(max_examples=60, derandomize=True, database=None, deadline=None)

# Text that hits the edges: separators, dots, punctuation kombu rewrites, controls, non-ASCII, surrogates.
EDGY = st.sampled_from(["/", "\\", ".", "..", ":", "\x00", "\n", " ", "-", "_", "é", "\ud800", "?", "#", "@", "%2e"])
NAME_TEXT = st.lists(st.one_of(EDGY, st.text(min_size=0, max_size=12)), max_size=8).map("".join)
KEY_TEXT = st.one_of(
    NAME_TEXT,
    st.lists(st.sampled_from(["a", "b", "..", ".", "", "c d", "x" * 256, "é" * 130]), max_size=6).map("/".join),
)


# --- URIs ------------------------------------------------------------------------------------------------


@FIXED
@given(
    st.one_of(
        NAME_TEXT,
        st.builds(
            lambda s, rest: s + rest,
            st.sampled_from(
                ["s3://", "gs://", "az://", "azure://", "file://", "https://", "http://", "ftp://", "s3:/"]
            ),
            NAME_TEXT,
        ),
    )
)
def test_uri_parsing_gives_a_uri_or_invalid_uri(text: str) -> None:
    try:
        parsed = parse_uri(text, accepts=("s3", "az", "gs", "file"), store="test")
    except InvalidURIError:
        return
    assert isinstance(parsed, StorageURI)
    assert parsed.scheme in ("s3", "az", "gs", "file")
    if parsed.scheme != "file":
        assert parsed.bucket
        assert not any(c in parsed.bucket for c in "?#@:")


# --- object keys -> local paths ------------------------------------------------------------------------------


def fill(obj: ObjectInfo, fileobj: BinaryIO, progress: Any) -> None:
    fileobj.write(b"k")


def every_path(folder: Path) -> set[str]:
    found = set()
    for directory, dirs, files in os.walk(folder):
        for name in dirs + files:
            found.add(os.path.join(directory, name))
    return found


@FIXED
@given(st.lists(KEY_TEXT, min_size=1, max_size=4))
def test_planning_any_keys_gives_paths_inside_the_target_or_a_typed_error(keys: list[str]) -> None:
    target = Path("/nonexistent-target-for-planning")
    objects = [ObjectInfo(f"mem://{i}", key, 1) for i, key in enumerate(keys)]
    try:
        plan = plan_download(objects, target)
    except StorageError:  # UnsafeObjectKeyError, DownloadConflictError
        return
    for planned in plan.files:
        assert all(part not in ("", ".", "..") and "/" not in part and "\x00" not in part for part in planned.parts)
        joined = os.path.normpath(target.joinpath(*planned.parts))
        assert joined.startswith(str(target) + os.sep)


@FEW
@given(st.lists(KEY_TEXT, min_size=1, max_size=4))
def test_downloading_any_keys_never_writes_outside_the_target(keys: list[str]) -> None:
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        target = root / "target"
        (root / "outside").mkdir()
        before = every_path(root)
        objects = [ObjectInfo(f"mem://{i}", key, 1) for i, key in enumerate(keys)]
        try:
            download_all(objects, target, fill, overwrite=False, max_concurrency=2, progress=None)
        except StorageError:
            pass
        written = every_path(root) - before
        assert all(path == str(target) or path.startswith(str(target) + os.sep) for path in written), written
        assert list((root / "outside").iterdir()) == []


@FIXED
@given(st.lists(st.sampled_from(["a", "a/b", "a/b/c", "b", "a/c", "b/a"]), min_size=1, max_size=5, unique=True))
def test_file_folder_collisions_are_always_found_when_planning(keys: list[str]) -> None:
    objects = [ObjectInfo(f"mem://{i}", key, 1) for i, key in enumerate(keys)]
    collides = any(other.startswith(key + "/") for key in keys for other in keys)
    try:
        plan_download(objects, Path("/nonexistent-target-for-planning"))
    except DownloadConflictError:
        assert collides
        return
    assert not collides


# --- queue names, per broker ----------------------------------------------------------------------------------


def kombu_sqs(name: str) -> str:
    from kombu.transport.SQS import Channel

    return str(Channel.entity_name(None, name))


def kombu_servicebus(name: str) -> str:
    from kombu.transport.azureservicebus import Channel

    return str(Channel.entity_name(None, name))


QUEUE_TEXT = st.one_of(NAME_TEXT, st.text(alphabet=string.ascii_letters + string.digits + "._-:/ ", max_size=90))


@FIXED
@given(st.sampled_from(sorted(QUEUE_NAME_RULES)), QUEUE_TEXT)
def test_any_queue_name_is_accepted_unchanged_or_refused_typed(broker: str, name: str) -> None:
    try:
        accepted = QUEUE_NAME_RULES[broker](name)
    except InvalidQueueNameError as err:
        message = str(err)
    else:
        message = ""
    assert len(message) < 400  # a hostile name does not make a hostile message
    if message:
        return
    assert accepted == name
    assert name
    assert not any(ord(c) < 32 or ord(c) == 127 for c in name)
    if broker == "sqs":
        assert len(name) <= SQS_MAX_LENGTH
        assert kombu_sqs(name) == name  # one name, one SQS queue
    elif broker == "servicebus":
        assert len(name) <= SERVICEBUS_MAX_LENGTH
        assert kombu_servicebus(name) == name
        assert name == name.lower()  # Service Bus ignores case
    elif broker == "local":
        assert len(name) <= LOCAL_MAX_LENGTH
        assert "/" not in name
        assert not name.startswith(".")
    else:
        assert name not in REDIS_RESERVED_NAMES
        assert not name.startswith(REDIS_RESERVED_PREFIXES)
        assert not name.endswith(REDIS_RESERVED_SUFFIXES)


@FIXED
@given(st.sampled_from(["sqs", "servicebus"]), QUEUE_TEXT, QUEUE_TEXT)
def test_two_accepted_names_never_share_a_queue(broker: str, first: str, second: str) -> None:
    rule = QUEUE_NAME_RULES[broker]
    to_broker = kombu_sqs if broker == "sqs" else (lambda n: kombu_servicebus(n).lower())
    try:
        rule(first)
        rule(second)
    except InvalidQueueNameError:
        return
    assert (first == second) == (to_broker(first) == to_broker(second))
