"""llm-engine's gateway interfaces over an `Infra`, by duck typing (``model_engine_server`` is never imported).

Swapping the cloud wiring of upstream's ``api/dependencies.py`` for ours takes a few lines::

    infra = build_infra(load_config())
    queue_delegate = llm_engine.queue_delegate(infra)
    infra_task_queue_gateway, inference_task_queue_gateway = llm_engine.task_queue_gateways(infra)
    filesystem_gateway = llm_engine.filesystem_gateway(infra)
    llm_artifact_gateway = llm_engine.llm_artifact_gateway(infra)
    docker_repository = llm_engine.docker_repository(infra)
    inference_autoscaling_metrics_gateway = llm_engine.autoscaling_metrics_gateway(infra)

Each adapter answers in the shapes upstream's callers read — a ``QueueInfo`` NamedTuple, the dict
upstream's delegate for that broker returns, task responses with ``task_id``, ``status`` and
``status_code`` — and forwards any other attribute to the component it wraps. Failures stay the
typed errors of `model_engine_infra.errors` (a broker that cannot be reached raises; it is never
reported as 0 messages); ``errors=`` maps them onto upstream's exception classes. docs/llm-engine.md
lists every mapping and every difference.
"""

from __future__ import annotations

import asyncio
import enum
import functools
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any, Literal, NamedTuple

from ..errors import QueueNotFoundError
from ..queues.base import QUEUE_NAME_PREFIX
from ..storage.uri import parse_uri

if TYPE_CHECKING:
    from ..autoscaling.base import InferenceAutoscalingMetricsGateway
    from ..images.base import DockerRepository
    from ..infra import Infra
    from ..queues.base import QueueAttributes, QueueEndpointResourceDelegate
    from ..storage.base import FilesystemGateway, LLMArtifactGateway
    from ..tasks.base import TaskQueueGateway

__all__ = [
    "CreateAsyncTaskV1Response",
    "ErrorMap",
    "GetAsyncTaskV1Response",
    "LLMEngineAutoscalingMetricsGateway",
    "LLMEngineDockerRepository",
    "LLMEngineFilesystemGateway",
    "LLMEngineLLMArtifactGateway",
    "LLMEngineQueueDelegate",
    "LLMEngineTaskQueueGateway",
    "QueueInfo",
    "QueueShape",
    "TaskStatus",
    "autoscaling_metrics_gateway",
    "docker_repository",
    "filesystem_gateway",
    "llm_artifact_gateway",
    "model_cache_directory_name",
    "queue_delegate",
    "task_queue_gateways",
]

#: Our exception class -> a callable that builds the exception to raise instead (from the message).
ErrorMap = Mapping[type[BaseException], Callable[[str], BaseException]]
#: Which upstream delegate's answer ``get_queue_attributes`` imitates.
QueueShape = Literal["sqs", "servicebus", "redis", "onprem", "pubsub"]
# upstream's DockerRepository.is_repo_name (ECR's naming rule)
_REPO_NAME = re.compile(r"[a-z0-9\-_/]*")


class _Translate:
    """Re-raise errors listed in an `ErrorMap` as the mapped type, chained to ours."""

    def __init__(self, mapping: ErrorMap | None) -> None:
        self._mapping = tuple((mapping or {}).items())

    @contextmanager
    def __call__(self) -> Iterator[None]:
        try:
            yield
        except Exception as err:
            for kind, make in self._mapping:
                if isinstance(err, kind):
                    raise make(str(err)) from err
            raise


class _Forwarding:
    """Attributes the adapter does not define come from the wrapped component (close, exists, …)."""

    _wrapped: Any

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name == "_wrapped":
            raise AttributeError(name)
        return getattr(self._wrapped, name)


# --- endpoint queues ---------------------------------------------------------------------------


class QueueInfo(NamedTuple):
    """Upstream's ``QueueInfo``: unpacks as ``name, url = await delegate.create_queue_if_not_exists(...)``."""

    queue_name: str
    queue_url: str | None


class LLMEngineQueueDelegate(_Forwarding):
    """Upstream's ``QueueEndpointResourceDelegate`` over one of our delegates.

    ``shape`` picks the upstream delegate whose answers are imitated: ``sqs`` (boto3's
    ``{"Attributes": {...}}``), ``servicebus`` (``name``, ``total_message_count``,
    ``active_message_count``), ``redis`` (``{"name", "Attributes": {"ApproximateNumberOfMessages"}}``),
    ``onprem`` (the Redis answer plus ``QueueName`` and ``ResponseMetadata``; the queue URL is the
    queue name, as upstream's on-prem delegate returns it) or ``pubsub`` (``{"name",
    "num_undelivered_messages"}``, -1 while the count is unknown, as upstream's Pub/Sub delegate).
    """

    def __init__(
        self, delegate: QueueEndpointResourceDelegate, *, shape: QueueShape, errors: ErrorMap | None = None
    ) -> None:
        self._wrapped = delegate
        self.shape = shape
        self._translate = _Translate(errors)

    def __repr__(self) -> str:
        return f"LLMEngineQueueDelegate({self._wrapped!r}, shape={self.shape!r})"

    @staticmethod
    def endpoint_id_to_queue_name(endpoint_id: str) -> str:
        return f"{QUEUE_NAME_PREFIX}{endpoint_id}"

    async def create_queue_if_not_exists(
        self,
        endpoint_id: str,
        endpoint_name: str,
        endpoint_created_by: str,
        endpoint_labels: Mapping[str, Any],
        queue_message_timeout_seconds: int | None = None,
    ) -> QueueInfo:
        labels = {str(k): str(v) for k, v in (endpoint_labels or {}).items()}
        with self._translate():
            info = await self._wrapped.create_queue_if_not_exists(
                endpoint_id, endpoint_name, endpoint_created_by, labels, queue_message_timeout_seconds
            )
        url = info.queue_name if self.shape == "onprem" else info.queue_url
        return QueueInfo(info.queue_name, url)

    async def delete_queue(self, endpoint_id: str) -> None:
        with self._translate():
            await self._wrapped.delete_queue(endpoint_id)

    async def get_queue_attributes(self, endpoint_id: str) -> dict[str, Any]:
        """The upstream delegate's dict; a broker error raises (upstream's Redis delegates answered 0)."""
        with self._translate():
            try:
                attributes = await self._wrapped.get_queue_attributes(endpoint_id)
            except QueueNotFoundError:
                if self.shape not in ("redis", "onprem"):
                    raise
                # On Redis an empty queue and a queue never created are the same empty list (queues
                # made before the swap have no metadata): upstream answers 0 for both, and so do we.
                return self._redis(self.endpoint_id_to_queue_name(endpoint_id), 0, 0)
        return self._shaped(attributes)

    def _shaped(self, attributes: QueueAttributes) -> dict[str, Any]:
        raw = dict(attributes.raw)
        total = attributes.approximate_message_count
        if self.shape == "pubsub" or total is None:  # a broker that cannot count: upstream's "unknown"
            return {"name": attributes.name, "num_undelivered_messages": -1 if total is None else total}
        in_flight = attributes.approximate_in_flight_count or 0
        if self.shape == "sqs":
            sqs = {k: v for k, v in raw.items() if k not in ("QueueUrl", "Tags")}
            sqs.setdefault("ApproximateNumberOfMessages", str(total - in_flight))
            return {"Attributes": sqs}
        if self.shape == "servicebus":
            return {
                "name": raw.get("name", attributes.name),
                "total_message_count": raw.get("total_message_count", total),
                "active_message_count": raw.get("active_message_count", total),
            }
        return self._redis(attributes.name, total - in_flight, in_flight)

    def _redis(self, name: str, waiting: int, in_flight: int) -> dict[str, Any]:
        """Waiting messages in ``ApproximateNumberOfMessages`` (upstream's LLEN); unacked ones beside them."""
        counts = {"ApproximateNumberOfMessages": str(waiting), "ApproximateNumberOfMessagesNotVisible": str(in_flight)}
        if self.shape == "onprem":
            return {
                "name": name,
                "Attributes": {**counts, "QueueName": name},
                "ResponseMetadata": {"HTTPStatusCode": 200},
            }
        return {"name": name, "Attributes": counts}


def queue_shape(delegate: QueueEndpointResourceDelegate, cloud_provider: str) -> QueueShape:
    """The upstream delegate a deployment of ``cloud_provider`` used for this broker."""
    broker = getattr(type(delegate), "broker_name", "")
    if broker == "SQS":
        return "sqs"
    if broker == "Service Bus":
        return "servicebus"
    if broker == "Pub/Sub":
        return "pubsub"
    return "onprem" if cloud_provider == "onprem" else "redis"


def queue_delegate(infra: Infra, *, errors: ErrorMap | None = None) -> LLMEngineQueueDelegate:
    """Upstream's ``queue_delegate`` for the configured broker (``SQSQueueEndpointResourceDelegate`` …)."""
    delegate = infra.queue_delegate
    return LLMEngineQueueDelegate(delegate, shape=queue_shape(delegate, infra.config.cloud_provider), errors=errors)


# --- task queues -------------------------------------------------------------------------------


class TaskStatus(str, enum.Enum):
    """Upstream's task states (``common/dtos/tasks.py``): RETRY reads as PENDING, anything else UNDEFINED."""

    PENDING = "PENDING"
    STARTED = "STARTED"
    SUCCESS = "SUCCESS"
    FAILURE = "FAILURE"
    UNDEFINED = "UNDEFINED"


@dataclass(frozen=True)
class CreateAsyncTaskV1Response:
    task_id: str


@dataclass(frozen=True)
class GetAsyncTaskV1Response:
    task_id: str
    status: TaskStatus
    result: Any = None
    traceback: str | None = None
    status_code: int | None = None


_STATUS = {"PENDING": TaskStatus.PENDING, "RETRY": TaskStatus.PENDING, "STARTED": TaskStatus.STARTED}


class LLMEngineTaskQueueGateway(_Forwarding):
    """Upstream's ``TaskQueueGateway`` over ours.

    ``create_response`` / ``get_response`` build the answers (pass upstream's pydantic DTOs to get
    them exactly); ``tracing_gateway`` is upstream's ``TracingGateway``: each send runs in its
    ``send_task_to_queue`` span and carries its ``encode_trace_kwargs()``, as upstream's gateway does.
    """

    def __init__(
        self,
        gateway: TaskQueueGateway,
        *,
        tracing_gateway: Any = None,
        errors: ErrorMap | None = None,
        create_response: Callable[..., Any] = CreateAsyncTaskV1Response,
        get_response: Callable[..., Any] = GetAsyncTaskV1Response,
    ) -> None:
        self._wrapped = gateway
        self.tracing_gateway = tracing_gateway
        self._translate = _Translate(errors)
        self._create_response = create_response
        self._get_response = get_response

    def __repr__(self) -> str:
        return f"LLMEngineTaskQueueGateway({self._wrapped!r})"

    def send_task(
        self,
        task_name: str,
        queue_name: str,
        args: Sequence[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        expires: int | None = None,
    ) -> Any:
        def send(final_kwargs: dict[str, Any]) -> Any:
            return self._wrapped.send_task(task_name, queue_name, list(args or ()), final_kwargs, expires)

        return self._traced(task_name, queue_name, args, kwargs, send)

    async def send_task_async(
        self,
        task_name: str,
        queue_name: str,
        args: Sequence[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        expires: int | None = None,
    ) -> Any:
        """`send_task` without blocking the event loop (ours natively where the gateway has it)."""
        native = getattr(self._wrapped, "send_task_async", None)
        if native is None:
            call = functools.partial(self.send_task, task_name, queue_name, args, kwargs, expires)
            return await asyncio.to_thread(call)

        async def send(final_kwargs: dict[str, Any]) -> Any:
            return await native(task_name, queue_name, list(args or ()), final_kwargs, expires)

        with self._span(task_name, queue_name, args) as (trace_kwargs, finish):
            with self._translate():
                sent = await send({**(kwargs or {}), **trace_kwargs})
            finish(sent.task_id)
        return self._create_response(task_id=sent.task_id)

    def _traced(
        self,
        task_name: str,
        queue_name: str,
        args: Sequence[Any] | None,
        kwargs: Mapping[str, Any] | None,
        send: Callable[[dict[str, Any]], Any],
    ) -> Any:
        with self._span(task_name, queue_name, args) as (trace_kwargs, finish):
            with self._translate():
                sent = send({**(kwargs or {}), **trace_kwargs})
            finish(sent.task_id)
        return self._create_response(task_id=sent.task_id)

    @contextmanager
    def _span(
        self, task_name: str, queue_name: str, args: Sequence[Any] | None
    ) -> Iterator[tuple[dict[str, Any], Callable[[str], None]]]:
        """Upstream's ``send_task_to_queue`` span and trace kwargs; nothing without a tracing gateway."""
        tracing = self.tracing_gateway
        if tracing is None:
            yield {}, lambda task_id: None
            return
        with tracing.create_span("send_task_to_queue") as span:

            def finish(task_id: str) -> None:
                span.input = {
                    "queue_name": queue_name,
                    "args": list(args or ()),
                    "task_id": task_id,
                    "task_name": task_name,
                }
                span.output = {"task_id": task_id}

            yield dict(tracing.encode_trace_kwargs() or {}), finish

    def get_task(self, task_id: str) -> Any:
        with self._translate():
            state = self._wrapped.get_task(task_id)
        status = getattr(state.status, "value", state.status)
        if status == "SUCCESS":
            result, status_code = state.result, None
            if isinstance(result, dict) and "status_code" in result:  # the forwarder's, as upstream reads it
                result = dict(result)
                status_code = result.pop("status_code")
            return self._get_response(
                task_id=task_id, status=TaskStatus.SUCCESS, result=result, status_code=status_code
            )
        if status == "FAILURE":
            result = None if state.result is None else str(state.result)
            return self._get_response(
                task_id=task_id, status=TaskStatus.FAILURE, result=result, traceback=state.traceback
            )
        return self._get_response(task_id=task_id, status=_STATUS.get(status, TaskStatus.UNDEFINED))


def task_queue_gateways(
    infra: Infra,
    *,
    tracing_gateway: Any = None,
    errors: ErrorMap | None = None,
    create_response: Callable[..., Any] = CreateAsyncTaskV1Response,
    get_response: Callable[..., Any] = GetAsyncTaskV1Response,
) -> tuple[LLMEngineTaskQueueGateway, LLMEngineTaskQueueGateway]:
    """``(infra_task_queue_gateway, inference_task_queue_gateway)``, each from the one broker choice.

    Upstream sends endpoint-creation tasks on the first and async inference on the second (on-prem:
    Redis 1 h and 24 h). Where both are the same component, both adapters are the same object.
    """

    def adapt(gateway: TaskQueueGateway) -> LLMEngineTaskQueueGateway:
        return LLMEngineTaskQueueGateway(
            gateway,
            tracing_gateway=tracing_gateway,
            errors=errors,
            create_response=create_response,
            get_response=get_response,
        )

    inference_native = getattr(infra, "inference_task_queue", None) or infra.task_queue
    infra_native = getattr(infra, "infra_task_queue", None) or inference_native
    inference = adapt(inference_native)
    return (inference if infra_native is inference_native else adapt(infra_native)), inference


# --- files and artifacts -------------------------------------------------------------------------

# Keyword arguments upstream's callers pass that only made sense for upstream's own clients.
_UPSTREAM_ONLY = ("aws_profile",)


def _without_upstream_only(kwargs: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in kwargs.items() if k not in _UPSTREAM_ONLY}


class LLMEngineFilesystemGateway(_Forwarding):
    """Upstream's ``FilesystemGateway``: ``open`` defaults to text mode; ``aws_profile`` is accepted and ignored."""

    def __init__(self, filesystem: FilesystemGateway, *, errors: ErrorMap | None = None) -> None:
        self._wrapped = filesystem
        self._translate = _Translate(errors)

    def __repr__(self) -> str:
        return f"LLMEngineFilesystemGateway({self._wrapped!r})"

    def open(self, uri: str, mode: str = "rt", **kwargs: Any) -> IO[Any]:
        with self._translate():
            stream: IO[Any] = self._wrapped.open(uri, mode, **_without_upstream_only(kwargs))
        return stream

    def generate_signed_url(self, uri: str, expiration: int = 3600, **kwargs: Any) -> str:
        method = str(_without_upstream_only(kwargs).get("method", "GET"))
        with self._translate():
            url: str = self._wrapped.generate_signed_url(uri, expiration, method)
        return url


def model_cache_directory_name(model_name: str) -> str:
    """Where upstream keeps a model's fine-tuned weights: Hugging Face's cache name, ``models--org--name``."""
    return "models--" + model_name.replace("/", "--")


class LLMEngineLLMArtifactGateway(_Forwarding):
    """Upstream's ``LLMArtifactGateway``: keys from ``list_files``, URIs from ``get_model_weights_urls``.

    A path is a folder (``models/llama`` does not match ``models/llama-2/…``, where upstream's prefix
    listing did); downloads are ours (parallel, checked keys, atomic files).
    """

    def __init__(
        self, artifacts: LLMArtifactGateway, *, fine_tuned_weights_prefix: str, errors: ErrorMap | None = None
    ) -> None:
        self._wrapped = artifacts
        self.fine_tuned_weights_prefix = fine_tuned_weights_prefix.rstrip("/")
        self._translate = _Translate(errors)

    def __repr__(self) -> str:
        return f"LLMEngineLLMArtifactGateway({self._wrapped!r})"

    def list_files(self, path: str, **kwargs: Any) -> list[str]:
        """Object keys inside the bucket or container, as upstream's S3, GCS and ABS gateways list them."""
        with self._translate():
            uris = self._wrapped.list_files(path)
        return [parse_uri(uri, accepts=("s3", "gs", "az", "file"), store="artifacts").key for uri in uris]

    def download_files(self, path: str, target_path: str, overwrite: bool = False, **kwargs: Any) -> list[str]:
        """Our options (``max_concurrency``, ``progress``) pass through; ``aws_profile`` is dropped."""
        with self._translate():
            return list(self._wrapped.download_files(path, target_path, overwrite, **_without_upstream_only(kwargs)))

    def get_model_weights_urls(self, owner: str, model_name: str, **kwargs: Any) -> list[str]:
        folder = f"{self.fine_tuned_weights_prefix}/{owner}/{model_cache_directory_name(model_name)}"
        with self._translate():
            return list(self._wrapped.list_files(folder))

    def get_model_config(self, path: str, **kwargs: Any) -> dict[str, Any]:
        with self._translate():
            return dict(self._wrapped.get_model_config(path))


def filesystem_gateway(infra: Infra, *, errors: ErrorMap | None = None) -> LLMEngineFilesystemGateway:
    return LLMEngineFilesystemGateway(infra.filesystem, errors=errors)


def llm_artifact_gateway(infra: Infra, *, errors: ErrorMap | None = None) -> LLMEngineLLMArtifactGateway:
    return LLMEngineLLMArtifactGateway(
        infra.artifacts, fine_tuned_weights_prefix=infra.config.hf_user_fine_tuned_weights_prefix, errors=errors
    )


# --- images ------------------------------------------------------------------------------------------


class LLMEngineDockerRepository(_Forwarding):
    """Upstream's ``DockerRepository``: ``aws_profile`` accepted and ignored; builds refused with a typed error."""

    def __init__(self, repository: DockerRepository, *, errors: ErrorMap | None = None) -> None:
        self._wrapped = repository
        self._translate = _Translate(errors)

    def __repr__(self) -> str:
        return f"LLMEngineDockerRepository({self._wrapped!r})"

    def image_exists(self, image_tag: str, repository_name: str, aws_profile: str | None = None) -> bool:
        with self._translate():
            return bool(self._wrapped.image_exists(image_tag, repository_name))

    def get_image_url(self, image_tag: str, repository_name: str) -> str:
        with self._translate():
            url: str = self._wrapped.get_image_url(image_tag, repository_name)
        return url

    def get_latest_image_tag(self, repository_name: str) -> str:
        with self._translate():
            tag: str = self._wrapped.get_latest_image_tag(repository_name)
        return tag

    def is_repo_name(self, repo_name: str) -> bool:
        """Upstream's rule: lowercase letters, digits, ``-``, ``_`` and ``/`` only."""
        return _REPO_NAME.fullmatch(repo_name) is not None

    def build_image(self, image_params: Any) -> Any:
        with self._translate():
            return self._wrapped.build_image(image_params)


def docker_repository(infra: Infra, *, errors: ErrorMap | None = None) -> LLMEngineDockerRepository:
    return LLMEngineDockerRepository(infra.docker_repository, errors=errors)


# --- inference autoscaling metrics ---------------------------------------------------------------


class LLMEngineAutoscalingMetricsGateway(_Forwarding):
    """Upstream's ``InferenceAutoscalingMetricsGateway`` over ``infra.autoscaling_metrics``.

    The methods and names are upstream's already; the adapter adds only ``errors=``. Where ours
    differs on purpose: an inference metric never shortens a prewarm's hour, Redis is one round trip,
    and Service Bus messages carry their time-to-live (upstream passed it as the send timeout).
    """

    def __init__(self, gateway: InferenceAutoscalingMetricsGateway, *, errors: ErrorMap | None = None) -> None:
        self._wrapped = gateway
        self._translate = _Translate(errors)

    def __repr__(self) -> str:
        return f"LLMEngineAutoscalingMetricsGateway({self._wrapped!r})"

    async def emit_inference_autoscaling_metric(self, endpoint_id: str) -> None:
        with self._translate():
            await self._wrapped.emit_inference_autoscaling_metric(endpoint_id)

    async def emit_prewarm_metric(self, endpoint_id: str) -> None:
        with self._translate():
            await self._wrapped.emit_prewarm_metric(endpoint_id)

    async def create_or_update_resources(self, endpoint_id: str) -> None:
        with self._translate():
            await self._wrapped.create_or_update_resources(endpoint_id)

    async def delete_resources(self, endpoint_id: str) -> None:
        with self._translate():
            await self._wrapped.delete_resources(endpoint_id)


def autoscaling_metrics_gateway(infra: Infra, *, errors: ErrorMap | None = None) -> LLMEngineAutoscalingMetricsGateway:
    """Upstream's ``RedisInferenceAutoscalingMetricsGateway`` / ``ASBInferenceAutoscalingMetricsGateway``."""
    return LLMEngineAutoscalingMetricsGateway(infra.autoscaling_metrics, errors=errors)
