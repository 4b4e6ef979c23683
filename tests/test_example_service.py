"""Runs the worked example's own tests (examples/service/test_model_service.py) as part of this suite.

The example is written the way a user's service would be: it imports ``model_service`` from its own
folder and gets ``mei_fake_infra`` from the installed pytest plugin. Importing its test functions here
makes ``pytest tests`` run them; ``pytest examples/service`` runs them on their own.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1] / "examples" / "service"))

from test_model_service import (
    service,
    test_create_endpoint_makes_its_queue,
    test_delete_removes_the_queue,
    test_predict_sends_one_task_to_the_endpoints_queue,
    test_refusals_send_nothing,
    test_weights_upload_and_signed_download,
)

__all__ = [
    "service",
    "test_create_endpoint_makes_its_queue",
    "test_delete_removes_the_queue",
    "test_predict_sends_one_task_to_the_endpoints_queue",
    "test_refusals_send_nothing",
    "test_weights_upload_and_signed_download",
]
