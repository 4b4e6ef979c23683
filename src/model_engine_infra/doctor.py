"""Preflight doctor: the configuration check, then live probes, each with a time limit.

Every probe goes through `build_infra` like a service would, and turns a failure into a verdict
that says what to change. Exit code: 0 healthy, 1 failing, 2 warnings only. A config error stops
the run; a high-severity finding fails the config check but the live probes still run, so one
report shows everything to change. docs/doctor.md lists every check.
"""

from __future__ import annotations

import asyncio
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from .config.model import InfraConfig
from .errors import InfraError, ProviderUnavailableError
from .infra import Infra, build_infra
from .redact import redact_text, scrub_exception_chain

Verdict = Literal["ok", "warn", "fail", "skip"]
PROBE_TASK = "model_engine_infra.doctor.probe"  # never consumed: the probe only checks it arrives
MIN_SERVICEBUS = (7, 14, 3)
REDIS_KEYS = ("redis_host", "cache_redis_onprem_url", "cache_redis_aws_url", "cache_redis_gcp_url")
PROBE_FIXES = {
    "broker": "check the broker settings (cloud_provider, celeryBrokerType, region / SERVICEBUS_NAMESPACE / "
    "REDIS_HOST) and that this identity may create queues",
    "storage": "check that the bucket or container in hf_user_fine_tuned_weights_prefix exists and that this "
    "identity may write, read and sign there",
    "redis": "check the Redis source (cache_redis_* keys, REDIS_HOST/REDIS_PORT) points at a reachable server "
    "and that its credentials are current (the password or secret; for Entra ID or IAM tokens, the workload "
    "identity — AZURE_CLIENT_ID / AZURE_OBJECT_ID — and its access to the cache)",
    "registry": "check docker_repo_prefix and the registry credentials",
    "secrets": "check the secret names in the config (and secrets_backend) and that this identity may read them",
    "file_storage": "check that the bucket or folder of file_storage_prefix (default {store}://{s3_bucket}) exists "
    "and that this identity may write, read, list, sign and delete there",
}


@dataclass
class CheckResult:
    name: str
    verdict: Verdict
    message: str
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "verdict": self.verdict, "message": self.message, "seconds": round(self.seconds, 3)}


@dataclass
class DoctorReport:
    results: list[CheckResult] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        verdicts = {r.verdict for r in self.results}
        return 1 if "fail" in verdicts else 2 if "warn" in verdicts else 0


class Skip(Exception):
    """A probe that does not apply to this configuration."""


class Warn(Exception):
    """A probe that passed with something to review."""


class Doctor:
    def __init__(
        self,
        config_path: str | Path | None = None,
        *,
        env: Mapping[str, str] | None = None,
        offline: bool = False,
        timeout: float = 15.0,
        image_tags: Mapping[str, str] | None = None,
        infra_factory: Callable[[InfraConfig], Infra] = build_infra,
    ) -> None:
        self.config_path = Path(config_path) if config_path is not None else None
        self.env = env
        self.offline = offline
        self.timeout = timeout
        self.image_tags = dict(image_tags or {})
        self.infra_factory = infra_factory
        self.report = DoctorReport()

    def run(self) -> DoctorReport:
        config = self._config_check()
        if config is None:
            return self.report
        self._record("dependencies", lambda: self._dependencies(config))
        if self.offline:
            return self.report
        infra = self.infra_factory(config)
        try:
            for name, probe in (
                ("broker", self._broker),
                ("storage", self._storage),
                ("redis", self._redis),
                ("registry", self._registry),
                ("secrets", self._secrets),
                ("file_storage", self._file_storage),
            ):
                self._record(
                    name,
                    lambda probe=probe: probe(config, infra),  # type: ignore[misc]
                    limit=self.timeout,
                    fix=PROBE_FIXES[name],
                )
        finally:
            try:
                infra.close()
            except Exception:  # a broken component must not hide the report
                pass
        return self.report

    # --- plumbing ------------------------------------------------------------------------------------------
    def _record(
        self, name: str, probe: Callable[[], str], *, limit: float | None = None, fix: str | None = None
    ) -> None:
        started = time.perf_counter()
        verdict, message = _run_with_limit(probe, limit)
        message = redact_text(message)
        if verdict == "fail" and fix:
            # The error may carry its own fix; the probe's hint adds which config keys to look at.
            message = f"{message}. Config: {fix}" if "Fix:" in message else f"{message}. Fix: {fix}"
        self.report.results.append(CheckResult(name, verdict, message, time.perf_counter() - started))

    def _config_check(self) -> InfraConfig | None:
        from .cli.config_cmd import check_report
        from .config.loader import load_config

        started = time.perf_counter()
        report = check_report(self.config_path, env=self.env)
        seconds = time.perf_counter() - started
        if report["errors"]:
            message = "; ".join(e["message"] for e in report["errors"])
            self.report.results.append(CheckResult("config", "fail", message, seconds))
            return None
        serious = [f for f in report["findings"] if f["severity"] in ("warning", "high")]
        if serious:
            # A high finding (wrong broker for the cloud, unmirrored public images, no Prometheus) breaks
            # the deployment silently: a preflight must fail on it, not merely warn.
            verdict: Verdict = "fail" if any(f["severity"] == "high" for f in serious) else "warn"
            message = "; ".join(f"[{f['severity']}] {f['key']}: {f['message']}" for f in serious)
            self.report.results.append(CheckResult("config", verdict, message, seconds))
        else:
            self.report.results.append(CheckResult("config", "ok", "no errors, no findings", seconds))
        return load_config(self.config_path, env=self.env)

    def _dependencies(self, config: InfraConfig) -> str:
        from .tasks.broker import BrokerType, broker_type_for

        if broker_type_for(config) is not BrokerType.SERVICEBUS:
            raise Skip("no version-sensitive SDK for this broker")
        from importlib.metadata import PackageNotFoundError, version

        try:
            found = version("azure-servicebus")
        except PackageNotFoundError:
            raise InfraError("azure-servicebus is not installed: pip install 'model-engine-infra[azure]'") from None
        if _version_tuple(found) < MIN_SERVICEBUS:
            raise InfraError(
                f"azure-servicebus {found} is older than 7.14.3, whose idle-connection regression "
                "(azure-sdk-for-python#34212) causes 503s after idle periods: upgrade it"
            )
        return f"azure-servicebus {found}"

    # --- probes --------------------------------------------------------------------------------------------
    def _broker(self, config: InfraConfig, infra: Infra) -> str:
        delegate, tasks = infra.queue_delegate, infra.task_queue
        endpoint_id = f"doctor-{uuid.uuid4().hex[:8]}"
        counted = True
        loop = asyncio.new_event_loop()
        try:
            info = loop.run_until_complete(
                delegate.create_queue_if_not_exists(endpoint_id, "doctor", "model-engine-infra-doctor", {}, 60)
            )
            try:
                tasks.send_task(PROBE_TASK, queue_name=info.queue_name, args=[], expires=60)
                deadline = time.monotonic() + self.timeout
                while True:
                    attrs = loop.run_until_complete(delegate.get_queue_attributes(endpoint_id))
                    if attrs.approximate_message_count is None:
                        counted = False  # the broker cannot count (Pub/Sub): the accepted send is the check
                        break
                    if attrs.approximate_message_count + (attrs.approximate_in_flight_count or 0) >= 1:
                        break
                    if time.monotonic() > deadline:
                        raise InfraError(
                            f"a message sent to {info.queue_name} never showed up in its counts: the task "
                            "queue and the queue delegate disagree (region, namespace or Redis database)"
                        )
                    time.sleep(0.2)
            finally:
                loop.run_until_complete(delegate.delete_queue(endpoint_id))
        finally:
            loop.run_until_complete(infra.queue_delegate.close())
            loop.close()
        if not counted:
            return (
                f"created {info.queue_name}, sent one message (the broker took it; it cannot count messages, "
                "so arrival was not checked), deleted the queue"
            )
        return f"created {info.queue_name}, sent one message and saw it arrive, deleted the queue"

    def _storage(self, config: InfraConfig, infra: Infra) -> str:
        fs = infra.filesystem
        uri = (
            f"{config.hf_user_fine_tuned_weights_prefix.rstrip('/')}/.model-engine-infra-doctor/{uuid.uuid4().hex}.txt"
        )
        payload = b"model-engine-infra doctor probe"
        with fs.open(uri, "wb") as f:
            f.write(payload)
        try:
            with fs.open(uri, "rb") as f:
                if f.read() != payload:
                    raise InfraError(f"{uri} read back different bytes")
            url = fs.generate_signed_url(uri, expiration=60)
            with urllib.request.urlopen(url, timeout=self.timeout) as response:
                if response.read() != payload:
                    raise InfraError("the signed URL served different bytes")
        finally:
            fs.delete(uri)
        return f"wrote, read, signed and fetched, deleted {uri}"

    def _file_storage(self, config: InfraConfig, infra: Infra) -> str:
        files = infra.file_storage
        owner, file_id = "model-engine-infra-doctor", f"probe-{uuid.uuid4().hex[:12]}.txt"
        payload = "model-engine-infra doctor probe"

        async def probe() -> str:
            await files.upload_file(owner, file_id, payload.encode())
            try:
                if await files.get_file_content(owner, file_id) != payload:
                    raise InfraError(f"user file {owner}/{file_id} read back different text")
                if file_id not in [f.id for f in await files.list_files(owner)]:
                    raise InfraError(f"user file {owner}/{file_id} is missing from its owner's listing")
                url = await files.get_url_from_id(owner, file_id)
                if url is None:
                    raise InfraError(f"no URL for user file {owner}/{file_id}")
                with urllib.request.urlopen(url, timeout=self.timeout) as response:
                    if response.read() != payload.encode():
                        raise InfraError("the user file's signed URL served different bytes")
            finally:
                await files.delete_file(owner, file_id)
            return f"wrote, read, listed, signed and fetched, deleted {owner}/{file_id}"

        prefix = getattr(files, "prefix", "")
        return asyncio.run(probe()) + (f" under {prefix}" if prefix else "")

    def _redis(self, config: InfraConfig, infra: Infra) -> str:
        if config.cloud_provider == "local" and not any(config.is_set(k) for k in REDIS_KEYS):
            raise Skip("no Redis configured (the local provider needs none)")
        connection = infra.redis
        client = connection.client()
        key = f"model-engine-infra:doctor:{uuid.uuid4().hex}"
        client.set(key, b"1", ex=60)
        if client.get(key) != b"1":
            raise InfraError("Redis did not return the value just written")
        client.delete(key)
        lifetime = _token_lifetime(connection.credential_provider)
        return f"{connection.redacted_url()}: auth and round trip OK; {lifetime}"

    def _registry(self, config: InfraConfig, infra: Infra) -> str:
        if config.cloud_provider == "local" and not config.is_set("docker_repo_prefix"):
            raise Skip("no registry configured (docker_repo_prefix)")
        from .images.check import check_images, deployment_images, repository_factory

        rows = check_images(
            deployment_images(config, self.image_tags), infra.docker_repository, repository_factory(config)
        )
        missing = [r.reference for r in rows if r.status == "missing"]
        errors = [f"{r.reference}: {r.detail}" for r in rows if r.status == "error"]
        if missing:
            raise InfraError(
                f"{len(missing)} image(s) missing: {', '.join(missing)}. Endpoints using them hang in "
                "INITIALIZING. Fix: mirror them with `model-engine-infra images mirror`, or point the "
                "*_repository keys (and --tag) at images that exist"
            )
        if errors:
            # Unauthorised or unreachable: the cluster will not pull these either, so this is no pass.
            more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
            raise InfraError(
                f"could not check {len(errors)} image(s): {errors[0]}{more}. Fix: check docker_repo_prefix, "
                "that the registry is reachable from here, and its credentials (registry_username / "
                "registry_password or registry_auth_file; IAM roles on cloud registries)"
            )
        return f"{len(rows)} image(s) found"

    def _secrets(self, config: InfraConfig, infra: Infra) -> str:
        referenced = (
            config.cache_redis_aws_secret_name,
            config.redis_aws_secret_name,
            config.cloud_database_secret_name,
        )
        names = [name for name in referenced if name is not None]
        if not names:
            raise Skip("the configuration references no secret")
        for name in names:
            infra.secrets.get(name)
        return f"{len(names)} secret(s) readable: {', '.join(names)}"


def _run_with_limit(probe: Callable[[], str], limit: float | None) -> tuple[Verdict, str]:
    outcome: list[tuple[Verdict, str]] = []

    def target() -> None:
        try:
            outcome.append(("ok", probe()))
        except Skip as why:
            outcome.append(("skip", str(why)))
        except Warn as why:
            outcome.append(("warn", str(why)))
        except ProviderUnavailableError as err:
            # A provider without this component: nothing to check. A missing SDK: the service
            # itself would fail here, so the doctor must too.
            outcome.append(("fail" if err.extra or err.missing_module else "skip", str(err)))
        except Exception as err:  # every failure becomes a verdict, never a crash
            scrub_exception_chain(err)  # an SDK's message may quote a URL with its password
            outcome.append(("fail", f"{type(err).__name__}: {err}"))

    thread = threading.Thread(target=target, name="doctor-probe", daemon=True)
    thread.start()
    thread.join(limit)
    if not outcome:
        return "fail", f"no answer within {limit:.0f} s: the service is unreachable or hangs"
    return outcome[0]


def _token_lifetime(provider: Any) -> str:
    state = getattr(provider, "state", None)
    if provider is None or not callable(state):
        return "credentials in the URL"
    return f"credentials {state()}"


def _version_tuple(text: str) -> tuple[int, ...]:
    parts = []
    for piece in text.split(".")[:3]:
        digits = "".join(ch for ch in piece if ch.isdigit())
        parts.append(int(digits or 0))
    return tuple(parts)
