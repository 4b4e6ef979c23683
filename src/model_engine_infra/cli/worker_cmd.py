"""``worker``: a Celery worker for the configuration, with the same ``-c/--config`` as every command."""

from __future__ import annotations

import io
import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Literal, Optional, TextIO

import typer

from . import exit_codes
from .guard import BadParameter
from .options import ConfigOption, JsonOption, load_cli_config, provider_of

Pool = Literal["threads", "solo", "prefork"]
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]


def worker(
    queues: Annotated[str, typer.Option("--queues", "-Q", help="Comma-separated queue names to consume.")],
    config_path: ConfigOption = None,
    include: Annotated[
        Optional[list[str]],  # noqa: UP045  (typer reads the annotation at run time)
        typer.Option("--include", "-I", help="Extra task module to import (repeatable)."),
    ] = None,
    pool: Annotated[Pool, typer.Option(help="Execution pool.")] = "threads",
    concurrency: Annotated[int, typer.Option("--concurrency", min=1, max=1024, help="Tasks run at once.")] = 2,
    loglevel: Annotated[
        LogLevel,
        typer.Option(
            "--loglevel", "-l", case_sensitive=False, help="WARNING or above is quiet: no banner, no start-up messages."
        ),
    ] = "INFO",
    hostname: Annotated[Optional[str], typer.Option("--hostname", "-n", help="Worker node name.")] = None,  # noqa: UP045
    ready_file: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option("--ready-file", help="Write the worker's pid to this file once it consumes."),
    ] = None,
    redis_url: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option("--redis-url", help="Redis broker/backend URL (default: the config's)."),
    ] = None,
    sqs_endpoint_url: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option("--sqs-endpoint-url", help="SQS endpoint (tests: a moto server)."),
    ] = None,
    task_visibility: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(
            "--task-visibility",
            help="VISIBILITY_1M/10M/1H/24H (on Redis: its database), as llm-engine's forwarder; default: inference's.",
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Run a Celery worker on QUEUES until stopped (SIGTERM, Ctrl-C).

    It builds the same Celery app as the task gateway, with model_engine_infra.tasks.demo_tasks
    plus --include modules, and no gossip, mingle, heartbeats or remote control. With --json it is
    quiet and prints one JSON line when it starts consuming and one when it stops.
    Exit 0 after a clean stop, 1 on a config or start-up failure, 2 for a bad command line.
    """
    from ..tasks.worker import run_worker

    names = [q.strip() for q in queues.split(",") if q.strip()]
    if not names:
        raise BadParameter("name at least one queue", param_hint="--queues")
    config = load_cli_config(config_path)
    provider = provider_of(config)
    with _json_stdout(as_json) as stream:

        def event(name: str, **fields: object) -> None:
            stream.write(json.dumps({"event": name, **fields}) + "\n")
            stream.flush()

        def started() -> None:
            event("ready", pid=os.getpid(), queues=names, provider=provider["name"], hostname=hostname)

        code = run_worker(
            config,
            names,
            include=include or (),
            pool=pool,
            concurrency=concurrency,
            loglevel=loglevel.upper(),
            hostname=hostname,
            ready_file=ready_file,
            redis_url=redis_url,
            sqs_endpoint_url=sqs_endpoint_url,
            task_visibility=task_visibility,
            on_started=started if as_json else None,
            quiet=True if as_json else None,  # stdout carries only the JSON lines
        )
        code = exit_codes.OK if code == 0 else exit_codes.FAILURE
        if as_json:
            event("stopped", ok=code == exit_codes.OK, exit_code=code)
    raise typer.Exit(code)


@contextmanager
def _json_stdout(as_json: bool) -> Iterator[TextIO]:
    """With --json, a private copy of stdout for the JSON lines, and the real stdout sent to stderr.

    Celery prints its shutdown notice straight to the process's stdout (``sys.__stdout__``) and
    redirects ``sys.stdout`` to its logger, so only a file descriptor of our own stays clean.
    """
    try:
        fd = sys.stdout.fileno()
    except (OSError, ValueError, io.UnsupportedOperation):  # not a real file (a test runner's buffer)
        yield sys.stdout
        return
    if not as_json:
        yield sys.stdout
        return
    sys.stdout.flush()
    saved = os.dup(fd)
    stream = os.fdopen(os.dup(saved), "w", encoding="utf-8")
    os.dup2(sys.stderr.fileno(), fd)
    try:
        yield stream
    finally:
        stream.close()
        os.dup2(saved, fd)
        os.close(saved)
