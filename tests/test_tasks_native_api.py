"""The task queue's native API: Celery's calling habits, `send_task_async`, `wait`, and publish signals.

Tracing is checked end to end with OpenTelemetry's in-memory exporter and
opentelemetry-instrumentation-celery: one producer span per task the gateway sends, and the
worker's span a child of it, exactly as when Celery's own ``app.send_task`` sends.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from celery import signals

from model_engine_infra.config import InfraConfig
from model_engine_infra.errors import TaskTimeoutError
from model_engine_infra.tasks import TaskStatus
from model_engine_infra.tasks.base import TaskState
from model_engine_infra.tasks.demo_tasks import FAIL, PREDICT
from model_engine_infra.tasks.gateway import CeleryTaskQueueGateway
from model_engine_infra.testing.fakes import RecordingTaskQueue
from model_engine_infra.testing.queues import declare_queue


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[CeleryTaskQueueGateway]:
    """kombu's filesystem broker and file results under tmp_path; the demo tasks registered."""
    built = CeleryTaskQueueGateway.from_config(
        InfraConfig(cloud_provider="local", local_data_dir=str(tmp_path)),
        include=["model_engine_infra.tasks.demo_tasks"],
    )
    yield built
    built.close()


def drain(gateway: CeleryTaskQueueGateway, queue: str) -> list[Any]:
    with gateway.app.connection_for_read() as conn:
        simple = conn.SimpleQueue(queue)
        messages = []
        while True:
            try:
                message = simple.get(block=False)
            except simple.Empty:
                return messages
            message.ack()
            messages.append(message)


# --- Celery's calling habits ---------------------------------------------------------------------


def test_celery_order_with_queue_keyword(gateway: CeleryTaskQueueGateway) -> None:
    declare_queue(gateway, "habits-q")
    gateway.send_task("tasks.predict", args=[1, 2], kwargs={"k": "v"}, queue="habits-q")
    gateway.send_task("tasks.predict", [3], {"k": "w"}, queue="habits-q")
    gateway.send_task("tasks.predict", (4,), queue="habits-q")
    gateway.send_task("tasks.predict", "habits-q", [5], {"k": "x"}, 60)
    gateway.send_task("tasks.predict", queue_name="habits-q", args=[6])
    bodies = sorted((message.decode()[:2] for message in drain(gateway, "habits-q")), key=lambda b: b[0][0])
    assert bodies == [[[1, 2], {"k": "v"}], [[3], {"k": "w"}], [[4], {}], [[5], {"k": "x"}], [[6], {}]]


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda g: g.send_task("t", args=[1]), "needs a queue"),
        (lambda g: g.send_task("t", "q1", queue="q2"), "two queues"),
        (lambda g: g.send_task("t", "q", args="abc"), "list or tuple, not str"),
        (lambda g: g.send_task("t", "q", args={"a": 1}), "list or tuple, not dict"),
        (lambda g: g.send_task("t", "q", kwargs=[1]), "must be a mapping"),
        (lambda g: g.send_task("t", [1], {"a": 1}, {"b": 2}, queue="q"), "no fourth positional"),
    ],
)
def test_misuse_is_a_type_error_before_any_send(call: Any, message: str) -> None:
    gateway = RecordingTaskQueue()
    with pytest.raises(TypeError, match=message):
        call(gateway)
    assert gateway.sent == []


def test_same_queue_twice_is_fine() -> None:
    gateway = RecordingTaskQueue()
    gateway.send_task("t", "q", queue="q")
    assert gateway.sent[0].queue == "q"


# --- send_task_async ---------------------------------------------------------------------------------


async def test_send_task_async_runs_off_the_loop(gateway: CeleryTaskQueueGateway) -> None:
    declare_queue(gateway, "async-q")
    sent = await asyncio.gather(
        *(gateway.send_task_async("tasks.predict", args=[i], queue="async-q") for i in range(5))
    )
    assert len({s.task_id for s in sent}) == 5
    assert sorted(m.decode()[0][0] for m in drain(gateway, "async-q")) == [0, 1, 2, 3, 4]


async def test_send_task_async_keeps_the_loop_free() -> None:
    gateway = RecordingTaskQueue()
    loop_ran = asyncio.Event()

    def slow(*args: Any) -> Any:
        time.sleep(0.1)
        assert loop_ran.is_set()  # the loop ran while the send blocked its thread
        return RecordingTaskQueue._send_task(gateway, *args)

    gateway._send_task = slow  # type: ignore[method-assign]

    async def mark() -> None:
        loop_ran.set()

    marker = asyncio.get_running_loop().call_later(0.01, lambda: asyncio.ensure_future(mark()))
    sent = await gateway.send_task_async("t", "q", [1])
    marker.cancel()
    assert gateway.sent[0].task_id == sent.task_id


# --- wait ----------------------------------------------------------------------------------------------


class ScriptedGateway(RecordingTaskQueue):
    """Answers a fixed sequence of states and records when it was asked."""

    def __init__(self, statuses: list[TaskStatus]) -> None:
        super().__init__()
        self.statuses = statuses
        self.asked: list[float] = []

    def get_task(self, task_id: str) -> TaskState:
        self.asked.append(time.monotonic())
        status = self.statuses.pop(0) if len(self.statuses) > 1 else self.statuses[0]
        return TaskState(task_id, status, result="done" if status is TaskStatus.SUCCESS else None)


def test_wait_returns_the_final_state_with_backoff() -> None:
    gateway = ScriptedGateway([TaskStatus.PENDING] * 4 + [TaskStatus.STARTED, TaskStatus.SUCCESS])
    state = gateway.wait("t1", timeout=10, interval=0.01, max_interval=0.04)
    assert (state.status, state.result) == (TaskStatus.SUCCESS, "done")
    gaps = [b - a for a, b in zip(gateway.asked, gateway.asked[1:], strict=False)]
    assert len(gaps) == 5
    assert gaps[2] > gaps[0]  # the pause grows...
    assert max(gaps) < 0.5  # ...up to max_interval


@pytest.mark.parametrize("final", [TaskStatus.FAILURE, TaskStatus.REVOKED])
def test_wait_returns_failure_and_revoked(final: TaskStatus) -> None:
    assert ScriptedGateway([TaskStatus.RETRY, final]).wait("t", timeout=5, interval=0.01).status is final


def test_wait_raises_a_typed_timeout() -> None:
    gateway = ScriptedGateway([TaskStatus.PENDING])
    started = time.monotonic()
    with pytest.raises(TaskTimeoutError, match=r"'t2' is still PENDING after 0.2 s") as caught:
        gateway.wait("t2", timeout=0.2, interval=0.02)
    assert time.monotonic() - started < 2
    assert isinstance(caught.value, TimeoutError)
    assert (caught.value.task_id, caught.value.status) == ("t2", "PENDING")


async def test_wait_async() -> None:
    gateway = ScriptedGateway([TaskStatus.PENDING, TaskStatus.SUCCESS])
    assert (await gateway.wait_async("t3", timeout=5, interval=0.01)).status is TaskStatus.SUCCESS
    with pytest.raises(TaskTimeoutError):
        await ScriptedGateway([TaskStatus.STARTED]).wait_async("t4", timeout=0.1, interval=0.02)


def test_wait_through_a_real_worker(gateway: CeleryTaskQueueGateway) -> None:
    from celery.contrib.testing.worker import start_worker

    declare_queue(gateway, "wait-q")
    ok = gateway.send_task(PREDICT, args=[{"prompt": "a b"}], queue="wait-q")
    bad = gateway.send_task(FAIL, kwargs={"message": "nope"}, queue="wait-q")
    with start_worker(gateway.app, pool="solo", perform_ping_check=False, queues=["wait-q"], shutdown_timeout=10):
        assert gateway.wait(ok.task_id, timeout=20).result == {"output": "b a", "num_prompt_tokens": 2, "model": "demo"}
        assert gateway.wait(bad.task_id, timeout=20).status is TaskStatus.FAILURE


# --- publish signals ------------------------------------------------------------------------------------


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def before(self, sender: Any = None, **kwargs: Any) -> None:
        self.calls.append(("before", {"sender": sender, **kwargs}))

    def after(self, sender: Any = None, **kwargs: Any) -> None:
        self.calls.append(("after", {"sender": sender, **kwargs}))


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    recording = Recorder()
    signals.before_task_publish.connect(recording.before, weak=False)
    signals.after_task_publish.connect(recording.after, weak=False)
    yield recording
    signals.before_task_publish.disconnect(recording.before)
    signals.after_task_publish.disconnect(recording.after)


def _comparable(call: dict[str, Any]) -> dict[str, Any]:
    """The call with per-task values (ids, times, origin host) blanked."""
    # retry_policy: ours is the send budget (tasks/send_budget.py, bounded and typed), Celery's its own default
    shown = {k: v for k, v in call.items() if k not in ("signal", "retry_policy")}
    if "headers" in shown:
        shown["headers"] = {k: v for k, v in shown["headers"].items() if k not in ("id", "root_id", "origin")}
    if "properties" in shown:
        # Celery puts the app's id in reply_to (for the rpc:// backend, which no deployment here uses)
        shown["properties"] = {k: v for k, v in shown["properties"].items() if k not in ("correlation_id", "reply_to")}
    if "declare" in shown:
        shown["declare"] = [(q.name, q.exchange.name, q.exchange.type, q.routing_key) for q in shown["declare"]]
    return shown


def test_signals_fire_with_celerys_arguments(gateway: CeleryTaskQueueGateway, recorder: Recorder) -> None:
    declare_queue(gateway, "sig-q")
    gateway.send_task("tasks.predict", "sig-q", args=[{"p": 1}], kwargs={"k": "v"})
    gateway.app.send_task("tasks.predict", args=[{"p": 1}], kwargs={"k": "v"}, queue="sig-q")
    assert [name for name, _ in recorder.calls] == ["before", "after", "before", "after"]
    ours, celerys = recorder.calls[:2], recorder.calls[2:]
    for (_, mine), (_, theirs) in zip(ours, celerys, strict=True):
        assert set(mine) == set(theirs)
        assert _comparable(mine) == _comparable(theirs)
    assert ours[0][1]["headers"]["id"] == ours[1][1]["headers"]["id"]
    assert ours[0][1]["headers"]["id"] in {m.headers["id"] for m in drain(gateway, "sig-q")}


def test_headers_a_receiver_adds_reach_the_worker(gateway: CeleryTaskQueueGateway) -> None:
    def add(headers: dict[str, Any], **kwargs: Any) -> None:
        headers["traceparent"] = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"

    declare_queue(gateway, "hdr-q")
    signals.before_task_publish.connect(add, weak=False)
    try:
        gateway.send_task("tasks.predict", "hdr-q", args=[1])
    finally:
        signals.before_task_publish.disconnect(add)
    (message,) = drain(gateway, "hdr-q")
    assert message.headers["traceparent"].startswith("00-0af7651916cd43dd")


# --- OpenTelemetry end to end ------------------------------------------------------------------------------


@pytest.fixture
def otel() -> Iterator[Any]:
    from opentelemetry.instrumentation.celery import CeleryInstrumentor
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    instrumentor = CeleryInstrumentor()
    instrumentor.instrument(tracer_provider=provider)
    try:
        yield exporter
    finally:
        instrumentor.uninstrument()


def test_one_producer_span_per_send_and_the_worker_span_is_its_child(
    gateway: CeleryTaskQueueGateway, otel: Any
) -> None:
    from celery.contrib.testing.worker import start_worker
    from opentelemetry.trace import SpanKind

    declare_queue(gateway, "otel-q")
    sent = [gateway.send_task(PREDICT, args=[{"prompt": f"p {i}"}], queue="otel-q") for i in range(3)]
    producers = [s for s in otel.get_finished_spans() if s.kind is SpanKind.PRODUCER]
    assert [s.name for s in producers] == [f"apply_async/{PREDICT}"] * 3
    assert [s.attributes["messaging.message.id"] for s in producers] == [t.task_id for t in sent]
    with start_worker(gateway.app, pool="solo", perform_ping_check=False, queues=["otel-q"], shutdown_timeout=10):
        for task in sent:
            assert gateway.wait(task.task_id, timeout=20).status is TaskStatus.SUCCESS
    consumers = {
        s.attributes["messaging.message.id"]: s for s in otel.get_finished_spans() if s.kind is SpanKind.CONSUMER
    }
    assert len(consumers) == 3
    for producer in producers:
        consumer = consumers[producer.attributes["messaging.message.id"]]
        assert consumer.name == f"run/{PREDICT}"
        assert consumer.parent is not None
        assert consumer.parent.span_id == producer.context.span_id
        assert consumer.context.trace_id == producer.context.trace_id


async def test_async_sends_are_traced_under_the_callers_span(gateway: CeleryTaskQueueGateway, otel: Any) -> None:
    from opentelemetry import trace
    from opentelemetry.trace import SpanKind

    declare_queue(gateway, "otel-async-q")
    tracer = trace.get_tracer("test", tracer_provider=otel_provider(otel))
    with tracer.start_as_current_span("request") as request:
        await gateway.send_task_async(PREDICT, args=[{"prompt": "x"}], queue="otel-async-q")
    (producer,) = [s for s in otel.get_finished_spans() if s.kind is SpanKind.PRODUCER]
    assert producer.parent is not None
    assert producer.parent.span_id == request.get_span_context().span_id


def otel_provider(exporter: Any) -> Any:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider
