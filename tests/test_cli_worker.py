"""``model-engine-infra worker``: -c is the config file, quiet at WARNING, JSON lines with --json, old entry kept."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from typer.testing import CliRunner

from model_engine_infra.cli import app
from model_engine_infra.config import load_config
from model_engine_infra.infra import build_infra
from model_engine_infra.tasks.base import TaskStatus
from model_engine_infra.tasks.demo_tasks import PREDICT

READY_TIMEOUT = 60.0  # generous: a busy 2-core machine starts Celery slowly


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "local.yaml"
    path.write_text(f"cloud_provider: local\nlocal_data_dir: {tmp_path / 'state'}\n")
    return path


@contextmanager
def worker(argv: list[str], tmp_path: Path, ready: Path | None = None) -> Iterator[subprocess.Popen[str]]:
    """Start ``argv``; wait (bounded) for ``ready`` or the first stdout line; SIGTERM it on exit."""
    env = {k: v for k, v in os.environ.items() if k not in ("ML_INFRA_SERVICES_CONFIG_PATH", "KUBERNETES_SERVICE_HOST")}
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path)
    try:
        deadline = time.monotonic() + READY_TIMEOUT
        while ready is not None and not ready.exists():
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                out, err = process.communicate()
                raise AssertionError(f"the worker did not start:\n{out}\n{err}")
            time.sleep(0.05)
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "model_engine_infra.cli", "worker", *args]


def _run_one_task(config: Path, queue: str) -> None:
    with build_infra(load_config(config, env={})) as infra:
        sent = infra.task_queue.send_task(PREDICT, queue, args=[{"prompt": "a b"}])
        deadline = time.monotonic() + READY_TIMEOUT
        while infra.task_queue.get_task(sent.task_id).status is not TaskStatus.SUCCESS:
            assert time.monotonic() < deadline, "the worker never ran the task"
            time.sleep(0.05)


def test_quiet_at_warning_and_runs_tasks(config: Path, tmp_path: Path) -> None:
    ready = tmp_path / "ready"
    argv = _cli("-c", str(config), "--queues", "cli-q", "--loglevel", "WARNING", "--ready-file", str(ready))
    with worker(argv, tmp_path, ready) as process:
        _run_one_task(config, "cli-q")
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    for noise in ("celery@", "[config]", "SecurityWarning", "superuser", "No hostname was supplied", "[queues]"):
        assert noise not in out + err, (noise, out, err)


def test_json_lines(config: Path, tmp_path: Path) -> None:
    ready = tmp_path / "ready"
    argv = _cli("-c", str(config), "--queues", "cli-json", "--json", "--ready-file", str(ready))
    with worker(argv, tmp_path, ready) as process:
        time.sleep(0.2)  # the ready line is written by the same signal that writes the file
        process.send_signal(signal.SIGTERM)
        out, _ = process.communicate(timeout=30)
    events = [json.loads(line) for line in out.splitlines() if line.strip()]
    assert [e["event"] for e in events] == ["ready", "stopped"], out
    assert events[0]["queues"] == ["cli-json"]
    assert events[0]["provider"] == "local"
    assert events[1] == {"event": "stopped", "ok": True, "exit_code": 0}


def test_old_entry_takes_config_as_c_and_concurrency_long(config: Path, tmp_path: Path) -> None:
    ready = tmp_path / "ready"
    argv = [sys.executable, "-m", "model_engine_infra.tasks.worker", "-c", str(config), "--queues", "old-q"]
    argv += ["--concurrency", "1", "--loglevel", "WARNING", "--ready-file", str(ready)]
    with worker(argv, tmp_path, ready):
        _run_one_task(config, "old-q")
    missing = subprocess.run(
        [sys.executable, "-m", "model_engine_infra.tasks.worker", "-c", "4", "--queues", "q"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert missing.returncode == 1
    assert "config file does not exist" in missing.stderr
    assert "Traceback" not in missing.stderr


def test_help_spells_config_like_every_command() -> None:
    result = CliRunner().invoke(app, ["worker", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    assert "-c, --config" in result.stdout
    assert "--concurrency" in result.stdout
