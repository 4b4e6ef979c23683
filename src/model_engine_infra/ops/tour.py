"""The main job, as a tour of every component through `build_infra` only.

``model-engine-infra demo`` runs it on the local provider (or any configured cloud) and prints a
table of steps with timings; the end-to-end tests run the same tour on every provider. Nothing in
here asks which cloud it is on: only the configuration differs.

The worker is a separate process by default (what a person runs). ``worker="thread"`` runs a real
Celery worker in this process instead: the end-to-end test uses it on every provider, because the
Service Bus fake lives in memory and a child process could not reach it. The component checks
(signed URLs, the image, secrets, Redis) are the doctor's probes (`probes`), so both agree on what
applies: a step that does not apply to the configuration is recorded as skipped.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Coroutine, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

from ..config.model import InfraConfig
from ..errors import InfraError
from ..infra import Infra, build_infra
from ..tasks.base import TaskStatus
from . import probes
from .probes import ProbeContext

T = TypeVar("T")
WorkerMode = Literal["process", "thread"]
SIGNED_URL_SECONDS = 300
PREDICT_TASK = "model_engine_infra.demo.predict"  # tasks.demo_tasks.PREDICT, without importing Celery
PROMPTS = (
    "The quick brown fox",
    "Serve models on any cloud",
    "A message is never lost",
    "Tokens refresh before they expire",
    "Downloads never escape their folder",
    "Wrong config fails at start-up",
)


@dataclass
class Step:
    name: str
    detail: str = ""
    seconds: float = 0.0
    ok: bool = True
    skipped: bool = False


SkipStep = probes.Skip  # raised inside a step that does not apply to this configuration


@dataclass
class TourReport:
    provider: str
    steps: list[Step] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(step.ok for step in self.steps)

    @property
    def total_seconds(self) -> float:
        return sum(step.seconds for step in self.steps)

    def step(self, name: str) -> Step:
        """The first step whose name starts with ``name``."""
        for step in self.steps:
            if step.name.startswith(name):
                return step
        raise KeyError(name)

    @property
    def skipped(self) -> list[str]:
        return [step.name for step in self.steps if step.skipped]


class Tour:
    """Runs the steps in order, timing each; stops at the first failure and always cleans up.

    ``worker``: ``"process"`` starts ``python -m model_engine_infra.tasks.worker`` (``config_path``
    and ``worker_env`` are what it gets); ``"thread"`` runs a Celery worker in this process.
    ``secret_name``: the secret to read (default: the secrets the config names; none: skipped).
    ``image_tags``: ``{"vllm": TAG}`` checks that tag of ``vllm_repository``; without it the newest tag.
    """

    def __init__(
        self,
        config: InfraConfig,
        *,
        config_path: str | None = None,
        worker_env: Mapping[str, str] | None = None,  # the worker's whole environment; None inherits
        n_tasks: int = 5,
        task_timeout: float = 30.0,
        infra: Infra | None = None,
        on_step: Callable[[Step], None] | None = None,
        worker: WorkerMode = "process",
        secret_name: str | None = None,
        image_tags: Mapping[str, str] | None = None,
    ) -> None:
        self.config = config
        self.worker_mode: WorkerMode = worker
        self.secret_names = [secret_name] if secret_name else probes.referenced_secrets(config)
        self.image_tags = dict(image_tags or {})
        self.config_path = config_path
        self.worker_env = dict(worker_env) if worker_env is not None else None
        self.n_tasks = n_tasks
        self.task_timeout = task_timeout
        self.infra = infra or build_infra(config)
        self.on_step = on_step
        self.endpoint_id = f"demo-{uuid.uuid4().hex[:8]}"
        self.report = TourReport(provider=config.cloud_provider)
        self._worker: subprocess.Popen[bytes] | None = None
        self._worker_stack = ExitStack()
        self._worker_app: Any = None
        self._workdir = Path(tempfile.mkdtemp(prefix="model-engine-infra-tour-"))
        self._written: list[str] = []
        self._queue_created = False
        # One loop for every async call, so async clients built on first use stay on their loop.
        self._loop = asyncio.new_event_loop()
        self.queue_name = ""
        self.artifact_prefix = f"{config.hf_user_fine_tuned_weights_prefix.rstrip('/')}/demo/{self.endpoint_id}"

    @contextmanager
    def step(self, name: str) -> Iterator[Step]:
        record = Step(name)
        started = time.perf_counter()
        try:
            yield record
        except SkipStep as why:
            record.skipped = True
            record.detail = f"skipped: {why}"
        except BaseException as err:
            record.ok = False
            record.detail = f"{type(err).__name__}: {err}"
            raise
        finally:
            record.seconds = time.perf_counter() - started
            self.report.steps.append(record)
            if self.on_step is not None:
                self.on_step(record)

    def run(self) -> TourReport:
        try:
            self._create_queue()
            self._start_worker()
            task_ids = self._send_tasks()
            self._queue_attributes()
            self._collect(task_ids)
            self._write_artifacts()
            self._sign_and_fetch()
            self._download_artifacts()
            self._check_image()
            self._read_secret()
            self._use_redis()
        except Exception:  # recorded in the failing step; the report says what broke
            pass
        finally:
            try:
                self._clean_up()
            except Exception:  # recorded in the clean-up step
                pass
        return self.report

    # --- the steps -----------------------------------------------------------------------------------
    def _create_queue(self) -> None:
        with self.step("create endpoint queue") as s:
            info = self._run(
                self.infra.queue_delegate.create_queue_if_not_exists(
                    endpoint_id=self.endpoint_id,
                    endpoint_name="demo",
                    endpoint_created_by="model-engine-infra-demo",
                    endpoint_labels={"team": "demo"},
                    queue_message_timeout_seconds=300,
                )
            )
            self._queue_created = True
            self.queue_name = info.queue_name
            s.detail = info.queue_name + (f" ({info.queue_url})" if info.queue_url else "")

    def _start_worker(self) -> None:
        if self.worker_mode == "thread":
            self._start_worker_thread()
            return
        with self.step("start Celery worker process") as s:
            command = [sys.executable, "-m", "model_engine_infra.tasks.worker", "--queues", self.queue_name]
            if self.config_path:
                command += ["--config", self.config_path]
            log = open(self._workdir / "worker.log", "wb")  # noqa: SIM115  (closed with the process)
            # worker_env None: the worker inherits this process's environment, like any child.
            self._worker = subprocess.Popen(command, env=self.worker_env, stdout=log, stderr=subprocess.STDOUT)
            s.detail = f"pid {self._worker.pid}, queue {self.queue_name}"

    def _start_worker_thread(self) -> None:
        with self.step("start Celery worker thread") as s:
            from ..tasks.gateway import redis_source
            from ..tasks.settings import uses_redis
            from ..tasks.worker import worker_app
            from ..testing.celery_worker import worker_thread

            # the worker reaches Redis exactly as this tour's components do (same credential source)
            redis = redis_source(self.config, self.infra) if uses_redis(self.config) else None
            app = worker_app(self.config, redis=redis)
            options = dict(app.conf.broker_transport_options or {})
            options.setdefault("polling_interval", 0.1)
            # long polls (SQS 20 s, Service Bus 5 s by default) would hold the worker's shutdown
            options["wait_time_seconds"] = 1
            app.conf.broker_transport_options = options
            app.loader.import_default_modules()
            self._worker_app = app
            self._worker_stack.enter_context(worker_thread(app, queues=[self.queue_name], loglevel="WARNING"))
            s.detail = f"in this process, queue {self.queue_name}"

    def _send_tasks(self) -> list[str]:
        with self.step(f"send {self.n_tasks} tasks") as s:
            ids = [
                self.infra.task_queue.send_task(
                    PREDICT_TASK, queue_name=self.queue_name, args=[{"prompt": PROMPTS[i % len(PROMPTS)]}]
                ).task_id
                for i in range(self.n_tasks)
            ]
            s.detail = f"{len(ids)} task ids"
            return ids

    def _queue_attributes(self) -> None:
        with self.step("read queue attributes") as s:
            attrs = self._run(self.infra.queue_delegate.get_queue_attributes(self.endpoint_id))
            in_flight = attrs.approximate_in_flight_count
            count = attrs.approximate_message_count
            s.detail = ("count unknown (the broker cannot count)" if count is None else f"{count} waiting") + (
                f", {in_flight} in flight" if in_flight is not None else ""
            )

    def _collect(self, task_ids: list[str]) -> None:
        with self.step("collect results") as s:
            deadline = time.monotonic() + self.task_timeout
            results: dict[str, Any] = {}
            while len(results) < len(task_ids):
                for task_id in task_ids:
                    if task_id in results:
                        continue
                    state = self.infra.task_queue.get_task(task_id)
                    if state.status is TaskStatus.SUCCESS:
                        results[task_id] = state.result
                    elif state.status is TaskStatus.FAILURE:
                        raise RuntimeError(f"task {task_id} failed: {state.traceback or state.result}")
                if len(results) < len(task_ids):
                    if time.monotonic() > deadline:
                        raise TimeoutError(
                            f"{len(results)}/{len(task_ids)} results after {self.task_timeout:.0f} s; "
                            f"worker log: {self._workdir / 'worker.log'}\n{self._worker_log_tail()}"
                        )
                    time.sleep(0.1)
            sample = next(iter(results.values()))
            s.detail = f"{len(results)} results, e.g. {sample}"

    def _write_artifacts(self) -> None:
        with self.step("write model artifacts") as s:
            files = {
                "config.json": b'{"model_type": "demo", "hidden_size": 64, "num_layers": 2}',
                "model.safetensors": os.urandom(2 * 1024 * 1024),
                "tokenizer/vocab.txt": "\n".join(PROMPTS).encode(),
            }
            for name, data in files.items():
                uri = f"{self.artifact_prefix}/{name}"
                with self.infra.filesystem.open(uri, "wb") as f:
                    f.write(data)
                self._written.append(uri)
            s.detail = f"{len(files)} files under {self.artifact_prefix}"

    def _sign_and_fetch(self) -> None:
        with self.step("sign and fetch an artifact URL") as s:
            uri = next(u for u in self._written if u.endswith("config.json"))
            s.detail = probes.sign_and_fetch(self.infra.filesystem, uri, timeout=30, expiration=SIGNED_URL_SECONDS)

    def _download_artifacts(self) -> None:
        with self.step("download model artifacts") as s:
            received = [0]

            def progress(n: int) -> None:
                received[0] += n

            target = self._workdir / "model"
            paths = self.infra.artifacts.download_files(self.artifact_prefix, target, progress=progress)
            model_config = self.infra.artifacts.get_model_config(self.artifact_prefix)
            s.detail = f"{len(paths)} files, {received[0]:,} bytes; config.json model_type={model_config['model_type']}"

    def _check_image(self) -> None:
        with self.step("check an image") as s:
            from ..images.check import ImageRef

            vllm = ImageRef(("vllm",), self.config.vllm_repository, self.image_tags.get("vllm"))
            s.detail = probes.check_registry(self._probe_context(), images=[vllm])

    def _read_secret(self) -> None:
        with self.step("read a secret") as s:
            s.detail = probes.check_secrets(self._probe_context(), self.secret_names)

    def _use_redis(self) -> None:
        with self.step("use Redis") as s:
            s.detail = probes.check_redis(self._probe_context())

    def _clean_up(self) -> None:
        """Undo everything, each part even when another fails; the step fails if any part did."""
        with self.step("clean up") as s:
            done: list[str] = []
            failed: list[str] = []

            def attempt(label: str, action: Callable[[], object]) -> None:
                try:
                    action()
                    done.append(label)
                except Exception as err:
                    failed.append(f"{label}: {type(err).__name__}: {err}")

            if self._worker_app is not None:
                attempt("worker thread stopped", self._stop_worker_thread)
            if self._worker is not None:
                attempt("worker stopped", self._stop_worker_process)
            if self._queue_created:
                attempt("queue deleted", lambda: self._run(self.infra.queue_delegate.delete_queue(self.endpoint_id)))
            if self._written:
                attempt(f"{len(self._written)} artifacts deleted", self._delete_artifacts)
            shutil.rmtree(self._workdir, ignore_errors=True)
            attempt("components closed", lambda: self._run(self.infra.aclose()))
            self._loop.close()
            s.detail = ", ".join(done)
            if failed:
                raise InfraError("clean-up incomplete: " + "; ".join(failed))

    def _stop_worker_thread(self) -> None:
        try:
            self._worker_stack.close()
        finally:
            self._worker_app.close()

    def _stop_worker_process(self) -> None:
        assert self._worker is not None
        self._worker.terminate()
        try:
            self._worker.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._worker.kill()
            self._worker.wait()

    def _delete_artifacts(self) -> None:
        for uri in self._written:
            self.infra.filesystem.delete(uri)

    def _probe_context(self) -> ProbeContext:
        return ProbeContext(self.config, self.infra, time.monotonic() + self.task_timeout, self.image_tags)

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self._loop.run_until_complete(coro)

    def _worker_log_tail(self) -> str:
        if self.worker_mode == "thread":
            return "(the worker runs in this process: see its log records)"
        try:
            return (self._workdir / "worker.log").read_text(errors="replace")[-2000:]
        except OSError:
            return ""
