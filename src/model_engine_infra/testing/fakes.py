"""In-process fakes for a service's own tests: a whole `Infra` per provider with nothing to install.

`fake_infra("aws", folder)` builds the provider's components through `build_infra`'s overrides:

- endpoint queues: the broker's real delegate on an in-process backend (SQS on moto's
  ``mock_aws``, Service Bus on `FakeServiceBusNamespace`, Redis lists on fakeredis, the local
  filesystem broker);
- task queue: `RecordingTaskQueue`, which records every task sent (and can run a handler you
  register, to stand in for the worker) — no broker, no Celery worker;
- files and artifacts: S3 on ``mock_aws`` where the profile's store is s3, local disk elsewhere (no
  blob or GCS emulator runs in-process);
- images: `FakeDockerRepository`, in memory; secrets: the selected store on its fake (Secrets
  Manager on moto, `FakeSecretClient`, files, env); Redis: fakeredis;
- autoscaling metrics: the selected backend's real gateway (Redis lists on the fakeredis above,
  Service Bus on the same `FakeServiceBusNamespace`, local files).

Which fake stands in is decided by the backend the config selects, never by the cloud's name.

What this does not cover (use the real-server harness and ``integration/`` tests for it): the
wire protocols, a real Celery worker and result backend, broker message limits as the broker
enforces them, signed URLs of Blob Storage and GCS, registry auth. `patch_azure_sdk` is for those
integration tests: it swaps the Azure SDK names our components import for fakes.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import threading
import traceback
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..config.model import InfraConfig
from ..errors import ImageNotFoundError, InfraError
from ..image_reference import validate_tag
from ..images.base import DockerRepository
from ..infra import Infra
from ..registry import BUILTIN_PROVIDERS, get_provider
from ..selection import selected
from ..tasks.base import SentTask, TaskQueueGateway, TaskState, TaskStatus

if TYPE_CHECKING:
    from .servicebus import FakeServiceBusNamespace

__all__ = [
    "FAKE_PROVIDERS",
    "FakeCloud",
    "FakeDockerRepository",
    "FakeInfra",
    "RecordedTask",
    "RecordingTaskQueue",
    "assert_task_sent",
    "complete_task",
    "fake_config",
    "fake_infra",
    "patch_azure_sdk",
    "sent_tasks",
]

FAKE_PROVIDERS = tuple(BUILTIN_PROVIDERS)  # every built-in profile's backends have a fake below
FAKE_BUCKET = "fake-bucket"
FAKE_REGISTRY = "registry.fake.internal/ml"
# moto's mock_aws needs some credentials and a region; never real ones.
_AWS_TEST_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


# --- task queue ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class RecordedTask:
    """One ``send_task`` call, as the service made it."""

    task_id: str
    name: str
    queue: str
    args: tuple[Any, ...]
    kwargs: Mapping[str, Any]
    expires: float | None
    sent_at: datetime


Handler = Callable[..., Any]


class RecordingTaskQueue(TaskQueueGateway):
    """A `TaskQueueGateway` that records tasks instead of sending them.

    A task stays PENDING until `complete`/`fail` is called, or — when a handler is registered for
    its name with `register` — runs at once in the caller's thread (SUCCESS with the handler's
    return value, or FAILURE with its exception), like a worker that is always idle.
    """

    def __init__(self) -> None:
        self.sent: list[RecordedTask] = []
        self._states: dict[str, TaskState] = {}
        self._handlers: dict[str, Handler] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"RecordingTaskQueue(sent={len(self.sent)})"

    def register(self, task_name: str, handler: Handler) -> None:
        """Run ``handler(*args, **kwargs)`` whenever ``task_name`` is sent."""
        self._handlers[task_name] = handler

    def _send_task(
        self, task_name: str, queue_name: str, args: list[Any], kwargs: dict[str, Any], expires: float | None
    ) -> SentTask:
        if not task_name or not queue_name:
            raise ValueError("send_task needs a task name and a queue name")
        task = RecordedTask(
            task_id=str(uuid.uuid4()),
            name=task_name,
            queue=queue_name,
            args=tuple(args),
            kwargs=dict(kwargs or {}),
            expires=expires,
            sent_at=datetime.now(timezone.utc),
        )
        with self._lock:
            self.sent.append(task)
            self._states[task.task_id] = TaskState(task.task_id, TaskStatus.PENDING)
        handler = self._handlers.get(task_name)
        if handler is not None:
            try:
                self.complete(task.task_id, handler(*task.args, **task.kwargs))
            except Exception as err:  # a failing task is a result, as on a worker
                self.fail(task.task_id, err)
        return SentTask(task_id=task.task_id)

    def get_task(self, task_id: str) -> TaskState:
        with self._lock:
            # Celery answers PENDING for an id it has never seen; so does this.
            return self._states.get(task_id, TaskState(task_id, TaskStatus.PENDING))

    def complete(self, task_id: str, result: Any = None) -> None:
        """Mark a task done with ``result``, as a worker would."""
        with self._lock:
            self._states[task_id] = TaskState(task_id, TaskStatus.SUCCESS, result=result)

    def fail(self, task_id: str, error: BaseException | str) -> None:
        """Mark a task failed; the result reads ``"ValueError: message"`` like the Celery gateway's."""
        shown = f"{type(error).__name__}: {error}" if isinstance(error, BaseException) else error
        trace = "".join(traceback.format_exception(error)) if isinstance(error, BaseException) else None
        with self._lock:
            self._states[task_id] = TaskState(task_id, TaskStatus.FAILURE, result=shown, traceback=trace)

    def clear(self) -> None:
        with self._lock:
            self.sent.clear()
            self._states.clear()


def _recording(infra: Infra) -> RecordingTaskQueue:
    gateway = infra.task_queue
    if not isinstance(gateway, RecordingTaskQueue):
        raise TypeError(
            f"infra.task_queue is {type(gateway).__name__}, not a RecordingTaskQueue: build the Infra with "
            "model_engine_infra.testing.fakes.fake_infra (or the mei_fake_infra fixture)"
        )
    return gateway


def sent_tasks(infra: Infra, name: str | None = None, *, queue: str | None = None) -> list[RecordedTask]:
    """Tasks sent through ``infra.task_queue`` so far, oldest first; filter by task name and queue."""
    return [
        task
        for task in list(_recording(infra).sent)
        if (name is None or task.name == name) and (queue is None or task.queue == queue)
    ]


def assert_task_sent(
    infra: Infra,
    name: str,
    *,
    queue: str | None = None,
    args: Sequence[Any] | None = None,
    kwargs: Mapping[str, Any] | None = None,
    count: int | None = None,
) -> RecordedTask:
    """Assert ``name`` was sent (to ``queue``, with these ``args``/``kwargs``); returns the last match."""
    matches = [
        task
        for task in sent_tasks(infra, name, queue=queue)
        if (args is None or task.args == tuple(args)) and (kwargs is None or dict(task.kwargs) == dict(kwargs))
    ]
    wanted = f"task {name!r}" + (f" to queue {queue!r}" if queue else "")
    if args is not None:
        wanted += f" with args {list(args)!r}"
    if kwargs is not None:
        wanted += f" with kwargs {dict(kwargs)!r}"
    if not matches:
        seen = [
            f"{t.name} -> {t.queue} args={list(t.args)!r} kwargs={dict(t.kwargs)!r}" for t in _recording(infra).sent
        ]
        raise AssertionError(f"no {wanted} was sent; sent: {seen or 'nothing'}")
    if count is not None and len(matches) != count:
        raise AssertionError(f"{wanted} was sent {len(matches)} time(s), expected {count}")
    return matches[-1]


def complete_task(infra: Infra, task_id: str, result: Any = None) -> None:
    """Finish a recorded task as a worker would, so ``infra.task_queue.get_task`` reports SUCCESS."""
    _recording(infra).complete(task_id, result)


# --- images -------------------------------------------------------------------------------------


class FakeDockerRepository(DockerRepository):
    """Images in memory: `push` adds a tag; relative names resolve against the prefix as on a registry."""

    def __init__(self, docker_repo_prefix: str = FAKE_REGISTRY) -> None:
        super().__init__(docker_repo_prefix)
        self._tags: dict[str, dict[str, datetime]] = {}
        self.fail: InfraError | None = None  # raised by every lookup while set (registry down, auth)

    def __repr__(self) -> str:
        return f"FakeDockerRepository({self.docker_repo_prefix!r}, {len(self._tags)} repositories)"

    def push(self, repository_name: str, tag: str, *, pushed_at: datetime | None = None) -> str:
        """Add ``repository_name:tag``; returns its full image URL."""
        validate_tag(tag)
        path = self.repository_path(repository_name)
        self._tags.setdefault(path, {})[tag] = pushed_at or datetime.now(timezone.utc)
        return self.get_image_url(tag, repository_name)

    def image_exists(self, image_tag: str, repository_name: str) -> bool:
        validate_tag(image_tag)
        if self.fail is not None:
            raise self.fail
        return image_tag in self._tags.get(self.repository_path(repository_name), {})

    def get_latest_image_tag(self, repository_name: str) -> str:
        if self.fail is not None:
            raise self.fail
        path = self.repository_path(repository_name)
        tags = self._tags.get(path)
        if not tags:
            raise ImageNotFoundError(f"repository {path!r} in {self.prefix.host} has no tagged image")
        return max(tags, key=lambda tag: (tags[tag], tag))


# --- Azure SDK names ----------------------------------------------------------------------------


@contextlib.contextmanager
def patch_azure_sdk(
    *,
    credential: Any = None,
    servicebus: FakeServiceBusNamespace | None = None,
    secret_client: Any = None,
) -> Iterator[None]:
    """Swap the Azure SDK names our components import when they are built, for fakes; restores on exit.

    ``credential`` (e.g. `FakeTokenCredential`) is what ``DefaultAzureCredential()`` returns — the
    Entra ID tokens of Redis, ACR and Key Vault; ``servicebus`` backs the Service Bus admin client
    and kombu's transport (a Celery worker in this process); ``secret_client`` is what
    ``SecretClient(...)`` returns. Components built inside the block keep what they were given.
    """
    saved: list[tuple[Any, str, Any]] = []

    def swap(module_name: str, name: str, value: Any) -> None:
        module = importlib.import_module(module_name)
        saved.append((module, name, getattr(module, name)))
        setattr(module, name, value)

    with contextlib.ExitStack() as stack:
        if servicebus is not None:
            from .servicebus import patch_kombu_servicebus

            stack.enter_context(patch_kombu_servicebus(servicebus))
            swap(
                "azure.servicebus.management",
                "ServiceBusAdministrationClient",
                servicebus.sdk_classes()["ServiceBusAdministrationClient"],
            )
        if credential is not None:
            swap("azure.identity", "DefaultAzureCredential", lambda *args, **kwargs: credential)
        if secret_client is not None:
            swap("azure.keyvault.secrets", "SecretClient", lambda *args, **kwargs: secret_client)
        try:
            yield
        finally:
            for module, name, original in reversed(saved):
                setattr(module, name, original)


# --- a whole Infra ------------------------------------------------------------------------------


class FakeInfra(Infra):
    """An `Infra` whose components run in this process; ``fakes`` reaches the fakes behind them."""

    def __init__(self, config: InfraConfig, fakes: FakeCloud, overrides: Mapping[str, Any]) -> None:
        super().__init__(config, get_provider(config.cloud_provider), overrides=overrides)
        self.fakes = fakes

    def __repr__(self) -> str:
        return f"FakeInfra(provider={self.provider.name!r})"


@dataclass
class FakeCloud:
    """Handles on what stands behind a `FakeInfra`, for arranging a test and asserting on it."""

    provider: str
    folder: Path
    tasks: RecordingTaskQueue
    registry: FakeDockerRepository
    redis_server: Any  # fakeredis.FakeServer
    servicebus: FakeServiceBusNamespace | None = None
    keyvault: Any = None  # FakeSecretClient on azure
    put_secret: Callable[[str, str], None] = field(default=lambda name, value: None)


def fake_config(provider: str, folder: str | os.PathLike[str], **overrides: Any) -> InfraConfig:
    """A valid configuration of ``provider`` for `fake_infra`, with everything under ``folder``."""
    if provider not in FAKE_PROVIDERS:
        raise ValueError(f"no fake for provider {provider!r}; fakes exist for {', '.join(FAKE_PROVIDERS)}")
    root = Path(folder).absolute()
    profile = get_provider(provider)
    on_s3 = profile.store == "s3"
    values: dict[str, Any] = {
        "cloud_provider": provider,
        "env": "test",
        "local_data_dir": str(root / "state"),
        "s3_bucket": FAKE_BUCKET,
        "hf_user_fine_tuned_weights_prefix": (
            f"s3://{FAKE_BUCKET}/fine_tuned_weights" if on_s3 else str(root / "files" / "fine_tuned_weights")
        ),
        "s3_file_llm_fine_tuning_job_repository": (
            f"s3://{FAKE_BUCKET}/llm-ft-job-repository" if on_s3 else str(root / "files" / "llm-ft-job-repository")
        ),
        "docker_repo_prefix": FAKE_REGISTRY,
        "docker_registry_type": "oci",
        "vllm_repository": "vllm",
        "prometheus_server_address": "http://prometheus.fake.internal:9090",
        "redis_host": "fakeredis",
        "secrets_dir": str(root / "secrets"),
    }
    values.update(profile.sample_config)
    values.update(overrides)
    return InfraConfig(**values)


@contextlib.contextmanager
def _aws_environment() -> Iterator[None]:
    """Test credentials, and no endpoint override that would send moto's calls elsewhere."""
    saved = {name: os.environ.get(name) for name in (*_AWS_TEST_ENV, "AWS_ENDPOINT_URL", "AWS_PROFILE")}
    os.environ.update(_AWS_TEST_ENV)
    os.environ.pop("AWS_ENDPOINT_URL", None)
    os.environ.pop("AWS_PROFILE", None)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@contextlib.contextmanager
def fake_infra(
    provider: str, folder: str | os.PathLike[str], *, config: InfraConfig | None = None
) -> Iterator[FakeInfra]:
    """A `FakeInfra` for ``provider`` with all state under ``folder``; closed (and moto stopped) on exit."""
    import fakeredis

    from .redis import InMemoryRedisConnection

    config = config or fake_config(provider, folder)
    provider = config.cloud_provider
    broker, store, secrets = (selected(config, kind) for kind in ("broker", "store", "secrets"))
    root = Path(folder).absolute()
    # where the selected secret store looks for files (env: under local_data_dir)
    secrets_dir = (
        Path(config.local_data_dir) / "secrets" if secrets == "env" else Path(config.secrets_dir or root / "secrets")
    )
    secrets_dir.mkdir(parents=True, exist_ok=True)
    redis_server = fakeredis.FakeServer()
    cloud = FakeCloud(
        provider=provider,
        folder=root,
        tasks=RecordingTaskQueue(),
        registry=FakeDockerRepository(config.docker_repo_prefix),
        redis_server=redis_server,
    )
    overrides: dict[str, Any] = {
        "task_queue": cloud.tasks,
        "docker_repository": cloud.registry,
        "redis": InMemoryRedisConnection(redis_server),
    }
    with contextlib.ExitStack() as stack:
        if store == "s3" or secrets == "secretsmanager" or broker == "sqs":
            _use_moto(stack, config, overrides, cloud, s3=store == "s3", secrets=secrets == "secretsmanager")
        if store != "s3":
            from ..storage.local import LocalArtifacts, LocalFilesystem
            from ..storage.routing import weights_prefix

            overrides["filesystem"] = LocalFilesystem()
            overrides["artifacts"] = LocalArtifacts(fine_tuned_weights_prefix=weights_prefix(config))
        if broker == "servicebus":
            _use_servicebus(config, overrides, cloud)
        if selected(config, "autoscaling_metrics") == "servicebus":
            _use_servicebus_metrics(config, overrides, cloud)
        if secrets == "keyvault":
            _use_keyvault(config, overrides, cloud)
        if secrets in ("kubernetes", "env"):
            cloud.put_secret = lambda name, value: _write_secret_file(secrets_dir, name, value)
        infra = FakeInfra(config, cloud, overrides)
        stack.callback(infra.close)
        yield infra


def _write_secret_file(folder: Path, name: str, value: str) -> None:
    (folder / name).write_text(value)


def _use_moto(
    stack: contextlib.ExitStack,
    config: InfraConfig,
    overrides: dict[str, Any],
    cloud: FakeCloud,
    *,
    s3: bool,
    secrets: bool,
) -> None:
    """moto's ``mock_aws`` for SQS, and S3 / Secrets Manager when selected."""
    import boto3
    from moto import mock_aws

    stack.enter_context(_aws_environment())
    stack.enter_context(mock_aws())
    region = config.default_region
    if s3:
        # moto answers S3 in memory whatever the endpoint; drop it so no client tries a real MinIO
        storage_config = config.model_copy(update={"s3_endpoint_url": None}) if config.s3_endpoint_url else config
        from ..storage.routing import weights_prefix
        from ..storage.s3 import S3Artifacts, S3Filesystem, make_client

        client = make_client(storage_config)
        bucket_kwargs: dict[str, Any] = {"Bucket": config.s3_bucket}
        if region != "us-east-1":
            bucket_kwargs["CreateBucketConfiguration"] = {"LocationConstraint": region}
        client.create_bucket(**bucket_kwargs)
        overrides["filesystem"] = S3Filesystem(client)
        overrides["artifacts"] = S3Artifacts(client, fine_tuned_weights_prefix=weights_prefix(config))
    if secrets:
        secrets_client = boto3.client("secretsmanager", region_name=region)

        def put(name: str, value: str) -> None:
            try:
                secrets_client.create_secret(Name=name, SecretString=value)
            except secrets_client.exceptions.ResourceExistsException:
                secrets_client.put_secret_value(SecretId=name, SecretString=value)

        cloud.put_secret = put


def _use_servicebus(config: InfraConfig, overrides: dict[str, Any], cloud: FakeCloud) -> None:
    from ..queues.servicebus import ServiceBusQueueEndpointResourceDelegate
    from .servicebus import FakeServiceBusNamespace

    namespace = FakeServiceBusNamespace(config.servicebus_namespace or "fake-namespace")
    cloud.servicebus = namespace
    overrides["queue_delegate"] = ServiceBusQueueEndpointResourceDelegate(
        namespace.fully_qualified_namespace, admin_client=namespace.admin_client()
    )


def _use_servicebus_metrics(config: InfraConfig, overrides: dict[str, Any], cloud: FakeCloud) -> None:
    """KEDA's autoscaling queues in the same fake namespace as the endpoint queues (a new one if none)."""
    from ..autoscaling.servicebus import ServiceBusInferenceAutoscalingMetricsGateway
    from .servicebus import FakeServiceBusNamespace

    if cloud.servicebus is None:
        cloud.servicebus = FakeServiceBusNamespace(config.servicebus_namespace or "fake-namespace")
    namespace = cloud.servicebus
    overrides["autoscaling_metrics"] = ServiceBusInferenceAutoscalingMetricsGateway(
        namespace.fully_qualified_namespace, client=namespace.client(), admin_client=namespace.admin_client()
    )


def _use_keyvault(config: InfraConfig, overrides: dict[str, Any], cloud: FakeCloud) -> None:
    from ..secrets.azure import KeyVaultStore
    from .keyvault import FakeSecretClient

    vault = FakeSecretClient(f"https://{config.keyvault_name}.vault.azure.net")
    cloud.keyvault = vault

    def put(name: str, value: str) -> None:
        vault.set_secret(name, value)

    cloud.put_secret = put
    overrides["secrets"] = KeyVaultStore(
        vault, keyvault_name=config.keyvault_name, ttl_seconds=config.secret_cache_ttl_seconds
    )
