"""Run one Python block of the docs in a fresh interpreter: ``python tests/docs_runner.py SPEC.json``.

Called by tests/test_docs.py. The block runs as a user would run it -- a new process, its own
working folder, no state from other tests -- after the block's setup (an HTML comment above it).
Top-level ``await`` is allowed: such a block runs in an event loop. Tracebacks point at the doc's
own file and line.

SPEC (JSON): ``path`` and ``line`` of the block, ``code``, ``setup``, ``world`` ("local" or "aws")
and ``servers`` (what the parent started: name -> url, host, port, extra, settings, sdk_env).
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
import inspect
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

AWS_CONFIG = """\
cloud_provider: aws
default_region: us-east-1
s3_bucket: llm-engine
hf_user_fine_tuned_weights_prefix: s3://llm-engine/fine_tuned_weights
docker_repo_prefix: 123456789012.dkr.ecr.us-east-1.amazonaws.com
redis_host: unused.invalid
"""


def run_source(source: str, filename: str, first_line: int, namespace: dict[str, Any]) -> None:
    """Compile ``source`` as if it started at ``first_line`` of ``filename``; await it if it awaits."""
    padded = "\n" * (first_line - 1) + source
    code = compile(padded, filename, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT, dont_inherit=True)
    result = eval(code, namespace)
    if inspect.iscoroutine(result):
        asyncio.run(result)


@contextlib.contextmanager
def world(name: str) -> Iterator[None]:
    """``local``: nothing to add. ``aws``: moto in this process, a config file, the bucket it names."""
    if name == "local":
        yield
        return
    if name != "aws":
        raise SystemExit(f"unknown docs-test world {name!r}: use local or aws")
    import boto3
    from moto import mock_aws

    os.environ.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_DEFAULT_REGION="us-east-1")
    config = Path("infra-config.yaml").resolve()
    config.write_text(AWS_CONFIG)
    os.environ["ML_INFRA_SERVICES_CONFIG_PATH"] = str(config)
    with mock_aws():
        boto3.client("s3", region_name="us-east-1").create_bucket(Bucket="llm-engine")
        yield


def servers(facts: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The servers the parent test started, as `RunningServer` objects (their process stays the parent's)."""
    from model_engine_infra.testing.servers import RunningServer

    return {
        name: RunningServer(
            name=fact["name"],
            host=fact["host"],
            port=fact["port"],
            url=fact["url"],
            pid=0,
            data_dir=Path("."),
            sdk_env=fact["sdk_env"],
            extra=fact["extra"],
            settings=fact["settings"],
        )
        for name, fact in facts.items()
    }


def main() -> None:
    spec = json.loads(Path(sys.argv[1]).read_text())
    from model_engine_infra.testing.images import push_test_image

    namespace: dict[str, Any] = {
        "__name__": "__main__",
        "servers": servers(spec["servers"]),
        "push_test_image": push_test_image,
    }
    with world(spec["world"]):
        if spec["setup"]:
            run_source(spec["setup"], f"{spec['path']} (setup of the block at line {spec['line']})", 1, namespace)
        if spec["code"]:
            run_source(spec["code"], spec["path"], spec["line"] + 1, namespace)


if __name__ == "__main__":
    main()
