"""The testing kit's worker thread: bounded start and stop, clean-up on every way out.

Celery's in-memory broker and result cache keep these tests inside the process.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator

import pytest
from celery import Celery

from model_engine_infra.tasks.app import celery_app  # noqa: F401  (Celery's signals and loader are set up)
from model_engine_infra.testing.celery_worker import WorkerStartError, WorkerStopError, worker_thread
from model_engine_infra.testing.servers import free_port


def memory_app() -> Celery:
    app = Celery(f"kit-{uuid.uuid4().hex[:6]}", broker="memory://", backend="cache+memory://", set_as_current=False)
    app.conf.broker_transport_options = {"polling_interval": 0.05}

    @app.task(name="add", shared=False)
    def add(x: int, y: int) -> int:
        return x + y

    @app.task(name="nap", shared=False)
    def nap(seconds: float) -> str:
        time.sleep(seconds)
        return "rested"

    return app


def celery_worker_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("celery-worker-")]


@pytest.fixture(autouse=True)
def no_leftover_workers() -> Iterator[None]:
    from celery.worker import state

    yield
    assert celery_worker_threads() == []
    assert state.should_terminate is None


def test_round_trip_and_clean_stop() -> None:
    app = memory_app()
    with worker_thread(app, queues=["celery"]) as worker:
        assert worker.hostname
        assert app.send_task("add", args=(2, 3)).get(timeout=30) == 5
    assert celery_worker_threads() == []


def test_the_block_failing_still_stops_the_worker() -> None:
    app = memory_app()

    def failing_test() -> None:
        with worker_thread(app):
            assert app.send_task("add", args=(1, 1)).get(timeout=30) == 2
            raise AssertionError("the test failed")

    with pytest.raises(AssertionError, match="the test failed"):
        failing_test()


def test_two_workers_stop_independently() -> None:
    first_app, second_app = memory_app(), memory_app()
    with worker_thread(first_app):
        with worker_thread(second_app):
            assert second_app.send_task("add", args=(1, 2)).get(timeout=30) == 3
        # closing the second worker's consumer left the first one running
        assert first_app.send_task("add", args=(3, 4)).get(timeout=30) == 7


def test_unreachable_broker_fails_the_start_in_time() -> None:
    app = Celery("unreachable", broker=f"redis://127.0.0.1:{free_port()}/0", set_as_current=False)
    started = time.monotonic()
    with (
        pytest.raises(WorkerStartError, match="did not start consuming within 2 s"),
        worker_thread(app, ready_timeout=2, stop_timeout=30),
    ):
        pass
    # bounded: the ready timeout, then the stop (the consumer is retrying its connection, so the
    # process-wide flag stops it)
    assert time.monotonic() - started < 2 + 30


def test_stop_timeout_raises_and_the_next_worker_waits_for_the_straggler() -> None:
    app = memory_app()

    def stop_during_a_long_task() -> None:
        with worker_thread(app, stop_timeout=0.5):
            result = app.send_task("nap", args=(3,))
            deadline = time.monotonic() + 30
            while result.state == "PENDING":  # the solo pool is inside the task now
                assert time.monotonic() < deadline
                time.sleep(0.05)

    with pytest.raises(WorkerStopError, match="still running"):
        stop_during_a_long_task()
    # the straggler finishes its task, sees the terminate flag, and leaves; the next worker starts after it
    again = memory_app()
    with worker_thread(again):
        assert again.send_task("add", args=(5, 5)).get(timeout=30) == 10
