"""The local broker's transport: a consumer never sees a message before it is whole."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import kombu
import pytest

from model_engine_infra.queues.local import broker_paths_for, ensure_broker_dirs, message_file_queue
from model_engine_infra.tasks.local_transport import Transport


def _connection(tmp_path: Path) -> kombu.Connection:
    paths = broker_paths_for(tmp_path / "data")
    ensure_broker_dirs(paths)
    options = {k: v for k, v in paths.items() if k != "meta_folder"}
    return kombu.Connection(transport=Transport, transport_options=options)


def test_a_message_appears_under_its_final_name_only_when_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    connection = _connection(tmp_path)
    channel = connection.channel()
    folder = Path(channel.data_folder_out)
    seen_at_rename: list[tuple[list[str], bytes]] = []
    real_replace = os.replace

    def replace(src: Any, dst: Any) -> None:
        # the moment before the message becomes visible: only the hidden partial file exists, complete
        seen_at_rename.append(([n for n in os.listdir(folder) if message_file_queue(n) == "q"], Path(src).read_bytes()))
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    channel._put("q", {"body": "x" * 10_000})
    assert len(seen_at_rename) == 1
    visible, written = seen_at_rename[0]
    assert visible == []  # kombu's own matcher (and our counter) ignore the partial file
    assert written.endswith(b"}")
    names = os.listdir(folder)
    assert len(names) == 1
    assert message_file_queue(names[0]) == "q"
    assert channel._get("q") == {"body": "x" * 10_000}
    connection.close()


def test_a_failed_write_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from kombu.exceptions import ChannelError

    connection = _connection(tmp_path)
    channel = connection.channel()
    folder = Path(channel.data_folder_out)

    def refuse(src: Any, dst: Any) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(ChannelError, match="Cannot add file"):
        channel._put("q", {"body": 1})
    assert os.listdir(folder) == []
    connection.close()
