"""Tasks for demos and tests: an inference-like ``predict`` and a task that always fails.

They are ``shared_task``s, so any app built by `celery_app()` that includes this module (the
worker does by default) registers them under stable names the gateway can send to.
"""

from __future__ import annotations

import time
from typing import Any

from celery import shared_task

PREDICT = "model_engine_infra.demo.predict"
FAIL = "model_engine_infra.demo.fail"


@shared_task(name=PREDICT)  # type: ignore[untyped-decorator,unused-ignore]
def predict(request: dict[str, Any], sleep_seconds: float = 0.0) -> dict[str, Any]:
    """Answer like a text model would: the prompt's words reversed, with a token count."""
    if sleep_seconds:
        time.sleep(sleep_seconds)
    prompt = str(request.get("prompt", ""))
    words = prompt.split()
    return {"output": " ".join(reversed(words)), "num_prompt_tokens": len(words), "model": "demo"}


@shared_task(name=FAIL)  # type: ignore[untyped-decorator,unused-ignore]
def fail(message: str = "demo failure") -> None:
    """Raise, so callers can see a FAILURE state with its traceback."""
    raise ValueError(message)
