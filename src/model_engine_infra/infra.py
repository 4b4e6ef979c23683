"""`build_infra(config)` -> `Infra`: the bundle of components, each built on first use.

A service that only touches storage never imports the broker's SDK: every component is built the
first time it is asked for (see `model_engine_infra.components`), from the backends the config
selects — explicit keys, else its provider's profile — then cached.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .errors import AsyncCloseRequiredError, InfraClosedError
from .registry import COMPONENTS, Profile, get_provider, import_target, missing_dependency

if TYPE_CHECKING:
    from .autoscaling.base import InferenceAutoscalingMetricsGateway
    from .config.model import InfraConfig
    from .images.base import DockerRepository
    from .queues.base import QueueEndpointResourceDelegate
    from .redis.base import RedisConnection
    from .secrets.base import SecretStore
    from .storage.base import FilesystemGateway, LLMArtifactGateway
    from .storage.files import FileStorageGateway
    from .tasks.base import TaskQueueGateway


class Infra:
    """The components of one cloud, built lazily from one `InfraConfig`.

    ``overrides`` replaces components by name (tests inject fakes the same way).
    """

    def __init__(self, config: InfraConfig, provider: Profile, *, overrides: Mapping[str, Any] | None = None) -> None:
        self.config = config
        self.provider = provider
        self._built: dict[str, Any] = dict(overrides or {})
        self._overridden = frozenset(overrides or {})
        self._lock = threading.RLock()
        self._closed = False
        # components whose async close could not run inside a running loop; `aclose` finishes them
        self._awaiting_aclose: dict[str, Any] = {}

    def __repr__(self) -> str:
        built = ", ".join(sorted(self._built)) or "none"
        state = ", closed" if self._closed else ""
        return f"Infra(provider={self.provider.name!r}, built=[{built}]{state})"

    @property
    def closed(self) -> bool:
        return self._closed

    def component(self, name: str) -> Any:
        """Build (once) and return the component ``name``; after `close`, `InfraClosedError` (nothing is rebuilt)."""
        if self._closed:
            raise self._closed_error(name)
        built = self._built.get(name)
        if built is not None:
            return built
        with self._lock:
            if self._closed:
                raise self._closed_error(name)
            if name not in self._built:
                self._built[name] = self._build(name)
            return self._built[name]

    def _closed_error(self, name: str) -> InfraClosedError:
        return InfraClosedError(
            f"infra.{name} was asked for after Infra.close(); build a new Infra with build_infra(config)"
        )

    def _build(self, name: str) -> Any:
        if name not in COMPONENTS:
            raise AttributeError(f"no component {name!r}; components are {', '.join(COMPONENTS)}")
        from . import components

        explicit = self.provider.components.get(name)
        if explicit is not None:
            factory, extras, what = explicit.resolve(), explicit.extras, explicit.backend
        else:
            backend = components.backend_of(self.config, name)
            if backend is None:
                raise components.unavailable(self.config, name)
            extras = components.extras_of(self.config, name)
            factory, what = import_target(components.FACTORIES[name], extras=extras), backend
        try:
            return factory(self.config, self)
        except ModuleNotFoundError as err:
            raise missing_dependency(err, f"{self.provider.name} {name} ({what})", extras) from err

    @property
    def queue_delegate(self) -> QueueEndpointResourceDelegate:
        return self.component("queue_delegate")  # type: ignore[no-any-return]

    @property
    def task_queue(self) -> TaskQueueGateway:
        return self.component("task_queue")  # type: ignore[no-any-return]

    @property
    def inference_task_queue(self) -> TaskQueueGateway:
        """Async inference tasks to the endpoints' queues: `task_queue` (on-prem Redis: 24 h, database 3)."""
        return self.task_queue

    @property
    def infra_task_queue(self) -> TaskQueueGateway:
        """Endpoint-creation tasks, on the same broker with llm-engine's 1 h visibility (on Redis: database 0).

        The same object as `inference_task_queue` where the visibilities agree, or where ``task_queue``
        was given as an override and this was not (a fake stands in for both).
        """
        if "infra_task_queue" in self._built:
            return self._built["infra_task_queue"]  # type: ignore[no-any-return]
        from .brokers import broker_for, task_visibility

        infra = task_visibility(self.config, "infra")
        if "task_queue" in self._overridden or infra == task_visibility(self.config, "inference"):
            return self.task_queue
        with self._lock:
            if "infra_task_queue" not in self._built:
                unit = broker_for(self.config)
                if unit is None:
                    return self.task_queue  # the task_queue component says why there is none
                self._built["infra_task_queue"] = unit.task_queue(self.config, self, visibility=infra)
            return self._built["infra_task_queue"]  # type: ignore[no-any-return]

    @property
    def filesystem(self) -> FilesystemGateway:
        return self.component("filesystem")  # type: ignore[no-any-return]

    @property
    def artifacts(self) -> LLMArtifactGateway:
        return self.component("artifacts")  # type: ignore[no-any-return]

    @property
    def docker_repository(self) -> DockerRepository:
        return self.component("docker_repository")  # type: ignore[no-any-return]

    @property
    def redis(self) -> RedisConnection:
        return self.component("redis")  # type: ignore[no-any-return]

    @property
    def secrets(self) -> SecretStore:
        return self.component("secrets")  # type: ignore[no-any-return]

    @property
    def autoscaling_metrics(self) -> InferenceAutoscalingMetricsGateway:
        return self.component("autoscaling_metrics")  # type: ignore[no-any-return]

    @property
    def file_storage(self) -> FileStorageGateway:
        """The Files API's user files (llm-engine's ``FileStorageGateway``), on `filesystem`."""
        return self.component("file_storage")  # type: ignore[no-any-return]

    def built_components(self) -> list[str]:
        return sorted(self._built)

    def close(self) -> None:
        """Close every built component; afterwards every use raises `InfraClosedError`.

        Outside an event loop, async ``close()`` methods run to completion here (``asyncio.run``).
        Inside a running loop nothing can be awaited: synchronous closers run, an async one runs as far
        as it can without waiting, and if any still had to wait, `AsyncCloseRequiredError` names them
        (``await infra.aclose()`` finishes them; ``async with build_infra(...)`` does it all).
        """
        import inspect

        running = _running_loop()
        results, errors = self._close_all()
        unfinished: list[str] = []
        for name, component, result in results:
            if not inspect.iscoroutine(result):
                continue
            if running is None:
                import asyncio  # not at import time: it costs a service that never closes ~15 ms at start-up

                try:
                    asyncio.run(result)
                except Exception as err:
                    errors.append(err)
            elif not _finish_without_waiting(result, errors):
                unfinished.append(name)
                self._awaiting_aclose[name] = component
        if unfinished:
            errors.insert(
                0,
                AsyncCloseRequiredError(
                    f"Infra.close() ran inside a running event loop, and {', '.join(unfinished)} can only finish "
                    "closing asynchronously: use `async with build_infra(config) as infra:` or `await infra.aclose()` "
                    "(everything else is closed)"
                ),
            )
        if errors:
            raise errors[0]

    async def aclose(self) -> None:
        """Close every built component, awaiting the async ones (and any `close` left unfinished)."""
        import inspect

        results, errors = self._close_all(prefer="aclose")
        for _name, _component, result in results:
            if inspect.isawaitable(result):
                try:
                    await result
                except Exception as err:
                    errors.append(err)
        if errors:
            raise errors[0]

    def _close_all(self, prefer: str = "close") -> tuple[list[tuple[str, Any, Any]], list[Exception]]:
        """Call every closer; one that fails must not leave the others open (the first error is raised).

        ``prefer="aclose"`` uses a component's ``aclose()`` where it has one (its async pools too), and
        also finishes components a `close` inside a running loop could not.
        """
        with self._lock:
            self._closed = True
            components = list(self._built.items())
            self._built.clear()
            if prefer == "aclose":
                components += list(self._awaiting_aclose.items())
                self._awaiting_aclose.clear()
        results: list[tuple[str, Any, Any]] = []
        errors: list[Exception] = []
        for name, component in components:
            close = getattr(component, prefer, None) or getattr(component, "close", None)
            if callable(close):
                try:
                    results.append((name, component, close()))
                except Exception as err:
                    errors.append(err)
        return results, errors

    def __enter__(self) -> Infra:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> Infra:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


def _running_loop() -> Any:
    import asyncio

    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def _finish_without_waiting(coroutine: Any, errors: list[Exception]) -> bool:
    """Run ``coroutine`` until it first waits; True when it finished.

    A coroutine that has to wait is closed, so none is left "never awaited".
    """
    try:
        coroutine.send(None)
    except StopIteration:
        return True
    except Exception as err:
        errors.append(err)
        return True
    coroutine.close()
    return False


def build_infra(config: InfraConfig, *, overrides: Mapping[str, Any] | None = None) -> Infra:
    """Look ``config.cloud_provider`` up in the registry and return its (lazy) components."""
    return Infra(config, get_provider(config.cloud_provider), overrides=overrides)
