"""One probe per component, shared by the doctor and the demo tour.

Each probe exercises a component the way a service would, through `Infra` only, and turns what
went wrong into a message plus a fix. This module is the one place that decides whether a
component applies to a configuration (is Redis configured? a registry? which secrets are
named?), so the doctor and the tour cannot disagree about it. Probes ask the configuration and the
components, never which cloud they are on.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
import urllib.request
import uuid
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from ..config.model import InfraConfig
from ..errors import ConfigError, InfraError

if TYPE_CHECKING:
    from ..images.check import ImageRef
    from ..infra import Infra
    from ..storage.base import FilesystemGateway

Verdict = Literal["ok", "warn", "fail", "skip"]
PROBE_TASK = "model_engine_infra.doctor.probe"  # never consumed: the broker probe only checks it arrives
PROBE_FOLDER = ".model-engine-infra-probe"
PAYLOAD = b"model-engine-infra probe"


class Skip(Exception):
    """The probe does not apply to this configuration; the message says why."""


class Warn(Exception):
    """The probe passed with something to review."""


class ProbeFailed(InfraError):
    """A probe found something wrong; ``fix`` says what to change (None: the probe's general advice)."""

    def __init__(self, message: str, *, fix: str | None = None) -> None:
        super().__init__(message)
        self.fix = fix


@dataclass
class ProbeContext:
    """What a probe gets: the configuration, its components, and the time by which it must answer."""

    config: InfraConfig
    infra: Infra
    deadline: float  # time.monotonic() value
    image_tags: Mapping[str, str] = field(default_factory=dict)

    def remaining(self) -> float:
        return max(0.1, self.deadline - time.monotonic())


@dataclass(frozen=True)
class Probe:
    """A live check of one component: ``run`` returns what it saw, or raises."""

    name: str
    run: Callable[[ProbeContext], str]
    #: where to look when the probe fails, for this configuration
    fix: Callable[[InfraConfig], str]


# --- what applies to a configuration ---------------------------------------------------------------


def redis_skip_reason(config: InfraConfig) -> str | None:
    """None when Redis applies: a Redis source is configured, or Celery's broker or results use Redis."""
    from ..redis.sources import source_key
    from ..tasks.settings import uses_redis

    if source_key(config) is not None or uses_redis(config):
        return None
    return "no Redis configured (no Redis key is set, and neither the broker nor the result backend is Redis)"


def registry_skip_reason(config: InfraConfig) -> str | None:
    """None when a registry is configured (``docker_repo_prefix`` given, not left at the chart's placeholder)."""
    if config.is_set("docker_repo_prefix"):
        return None
    return "no registry configured (docker_repo_prefix)"


def referenced_secrets(config: InfraConfig) -> list[str]:
    """The secrets the configuration names: the Redis secrets and the chart's database secret."""
    names = (config.cache_redis_aws_secret_name, config.redis_aws_secret_name, config.cloud_database_secret_name)
    return [name for name in names if name]


def probe_prefix(config: InfraConfig) -> str:
    """Where probes write: a folder of their own under the fine-tuned weights prefix."""
    return f"{config.hf_user_fine_tuned_weights_prefix.rstrip('/')}/{PROBE_FOLDER}"


# --- config ----------------------------------------------------------------------------------------


@dataclass
class ConfigCheck:
    """What ``config check`` found: the loaded config (None on an error), errors and findings as plain data."""

    config: InfraConfig | None
    errors: list[dict[str, Any]] = field(default_factory=list)
    findings: list[dict[str, str]] = field(default_factory=list)

    def verdict(self) -> tuple[Verdict, str]:
        """A config error fails; a high finding fails (it breaks the deployment silently); a warning warns."""
        if self.errors:
            return "fail", "; ".join(e["message"] for e in self.errors)
        serious = [f for f in self.findings if f["severity"] in ("warning", "high")]
        if not serious:
            return "ok", "no errors, no findings"
        message = "; ".join(f"[{f['severity']}] {f['key']}: {f['message']}" for f in serious)
        return ("fail" if any(f["severity"] == "high" for f in serious) else "warn"), message


IN_CLUSTER_ENV = "KUBERNETES_SERVICE_HOST"
IMPLICIT_LOCAL_FIX = (
    "point ML_INFRA_SERVICES_CONFIG_PATH (or DEPLOY_SERVICE_CONFIG_PATH) at the deployment's config file, pass "
    "it explicitly, or set MODEL_ENGINE_INFRA_CLOUD_PROVIDER (to local, if local is meant)"
)


def check_config(
    source: InfraConfig | str | os.PathLike[str] | None, *, env: Mapping[str, str] | None = None
) -> ConfigCheck:
    """Load (unless given an `InfraConfig`) and validate; collect the load warnings and the findings.

    ``env`` (default: the process environment) is what `load_config` reads, and says whether this
    runs inside a cluster, where a provider that fell back to local because nothing named one is an
    error: it would judge the wrong infrastructure.
    """
    from ..config.findings import Severity
    from ..config.loader import ConfigWarning, load_config

    environ = os.environ if env is None else env
    if isinstance(source, InfraConfig):
        check = ConfigCheck(source)
    else:
        check = ConfigCheck(None)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ConfigWarning)
            try:
                check.config = load_config(source, env=environ)
            except ConfigError as err:
                check.errors.append({"key": err.key, "message": str(err)})
        for warning in caught:
            if issubclass(warning.category, ConfigWarning):
                check.findings.append({"severity": Severity.WARNING.value, "key": "-", "message": str(warning.message)})
    if check.config is not None:
        problem = implicit_local_in_cluster(check.config, environ)
        if problem is not None:
            check.errors.append(
                {"key": "cloud_provider", "message": f"cloud_provider: {problem}. Fix: {IMPLICIT_LOCAL_FIX}"}
            )
        check.findings.extend(f.as_dict() for f in check.config.findings())
    return check


def implicit_local_in_cluster(config: InfraConfig, env: Mapping[str, str]) -> str | None:
    """What is wrong with a local provider nobody chose, inside a Kubernetes cluster; None elsewhere."""
    if config.cloud_provider != "local" or config.is_set("cloud_provider") or not env.get(IN_CLUSTER_ENV):
        return None
    return (
        "no config file and no cloud_provider, so the provider fell back to local; but this runs inside a "
        f"Kubernetes cluster ({IN_CLUSTER_ENV} is set), where local is almost certainly not the deployment's "
        "infrastructure"
    )


# --- dependencies ----------------------------------------------------------------------------------


def check_dependencies(config: InfraConfig) -> str:
    """The selected broker's SDK is installed and recent enough (offline); the broker declares the minimum."""
    from importlib.metadata import PackageNotFoundError, version

    from ..brokers import broker_for

    unit = broker_for(config)
    need = unit.sdk_minimum if unit is not None else None
    if unit is None or need is None:
        raise Skip("no version-sensitive SDK for this broker")
    install = f"pip install 'model-engine-infra[{unit.extras[0]}]'" if unit.extras else f"pip install {need.package}"
    try:
        found = version(need.package)
    except PackageNotFoundError:
        raise ProbeFailed(f"{need.package} is not installed", fix=install) from None
    wanted = ".".join(map(str, need.minimum))
    if version_tuple(found) < need.minimum:
        raise ProbeFailed(f"{need.package} {found} is older than {wanted}, {need.why}", fix=f"upgrade it to {wanted}+")
    return f"{need.package} {found}"


def version_tuple(text: str) -> tuple[int, ...]:
    parts = []
    for piece in text.split(".")[:3]:
        digits = "".join(ch for ch in piece if ch.isdigit())
        parts.append(int(digits or 0))
    return tuple(parts)


# --- broker ----------------------------------------------------------------------------------------


def check_broker(ctx: ProbeContext) -> str:
    """Create an endpoint queue, send one task to it, see the queue count it, delete the queue.

    On a broker that cannot count (Pub/Sub: the count is None) the accepted send is the check, and
    the message says arrival was not checked.
    """
    delegate, tasks = ctx.infra.queue_delegate, ctx.infra.task_queue
    endpoint_id = f"probe-{uuid.uuid4().hex[:8]}"
    counted = True
    loop = asyncio.new_event_loop()  # this probe's own: async clients stay on the loop that built them
    try:
        info = loop.run_until_complete(
            delegate.create_queue_if_not_exists(endpoint_id, "probe", "model-engine-infra-probe", {}, 60)
        )
        try:
            tasks.send_task(PROBE_TASK, queue_name=info.queue_name, args=[], expires=60)
            while True:
                attrs = loop.run_until_complete(delegate.get_queue_attributes(endpoint_id))
                if attrs.approximate_message_count is None:
                    counted = False  # the broker cannot count (Pub/Sub): the accepted send is the check
                    break
                if attrs.approximate_message_count + (attrs.approximate_in_flight_count or 0) >= 1:
                    break
                if time.monotonic() > ctx.deadline:
                    raise ProbeFailed(
                        f"a message sent to {info.queue_name} never showed up in its counts: the task "
                        "queue and the queue delegate disagree (region, namespace or Redis database)"
                    )
                time.sleep(0.2)
        finally:
            loop.run_until_complete(delegate.delete_queue(endpoint_id))
    finally:
        loop.run_until_complete(delegate.close())
        loop.close()
    if not counted:
        return (
            f"created {info.queue_name}, sent one message (the broker took it; it cannot count messages, "
            "so arrival was not checked), deleted the queue"
        )
    return f"created {info.queue_name}, sent one message and saw it arrive, deleted the queue"


def broker_fix(config: InfraConfig) -> str:
    """The broker choice, the keys the selected broker reads, and the permission it needs."""
    from ..brokers import broker_for

    unit = broker_for(config)
    keys = f"the keys the {unit.label} broker reads ({', '.join(unit.keys)})" if unit and unit.keys else "its keys"
    return (
        f"check the broker choice (broker, celeryBrokerType, celery_broker_type_redis), {keys}, "
        "and that this identity may create queues"
    )


# --- storage ---------------------------------------------------------------------------------------


def check_storage(ctx: ProbeContext) -> str:
    """Write an object under the weights prefix, read it back, sign a URL and fetch it, delete it."""
    fs = ctx.infra.filesystem
    uri = f"{probe_prefix(ctx.config)}/{uuid.uuid4().hex}.txt"
    with fs.open(uri, "wb") as f:
        f.write(PAYLOAD)
    try:
        with fs.open(uri, "rb") as f:
            if f.read() != PAYLOAD:
                raise ProbeFailed(f"{uri} read back different bytes")
        sign_and_fetch(fs, uri, timeout=ctx.remaining())
    finally:
        fs.delete(uri)
    return f"wrote, read, signed and fetched, deleted {uri}"


def sign_and_fetch(fs: FilesystemGateway, uri: str, *, timeout: float, expiration: int = 60) -> str:
    """Fetch ``uri`` through a signed URL and compare with a direct read; the URL's scheme and size."""
    url = fs.generate_signed_url(uri, expiration=expiration)
    with urllib.request.urlopen(url, timeout=timeout) as response:
        body: bytes = response.read()
    with fs.open(uri, "rb") as f:
        if body != f.read():
            raise ProbeFailed(f"the signed URL for {uri} served different bytes")
    return f"{url.split(':', 1)[0]} URL valid {expiration} s, {len(body)} bytes match"


def storage_fix(config: InfraConfig) -> str:
    return (
        "check that the bucket or container in hf_user_fine_tuned_weights_prefix exists and that this "
        "identity may write, read and sign there"
    )


# --- redis -----------------------------------------------------------------------------------------


def check_redis(ctx: ProbeContext) -> str:
    """Write, read and delete a key through the Redis component; report the credentials' lifetime."""
    reason = redis_skip_reason(ctx.config)
    if reason:
        raise Skip(reason)
    connection = ctx.infra.redis
    client = connection.client()
    key = f"model-engine-infra:probe:{uuid.uuid4().hex}"
    client.set(key, b"1", ex=60)
    value = client.get(key)
    client.delete(key)
    if value != b"1":
        raise ProbeFailed(f"Redis returned {value!r} for the value just written")
    return f"{connection.redacted_url()}: auth and round trip OK; {_token_lifetime(connection.credential_provider)}"


def redis_fix(config: InfraConfig) -> str:
    """Advice for the source actually configured: a URL, a secret, a host, Entra ID or IAM tokens."""
    from ..redis.sources import DEFAULT_URL, source_key

    key = source_key(config)
    if key is None:
        return f"no Redis key is set, so {DEFAULT_URL} is used: set redis_host/REDIS_HOST or a cache Redis URL"
    advice = f"check that {key} points at a reachable Redis server"
    if key == "cache_redis_azure_host":
        return (
            f"{advice}, and the Entra ID identity: the workload identity (AZURE_CLIENT_ID / AZURE_OBJECT_ID) "
            "and its access to the cache"
        )
    if key.endswith("secret_name"):
        advice += f", that the secret {getattr(config, key)!r} holds its current URL and that this identity may read it"
    elif key in ("redis_host", "redis_port", "redis_auth_token", "redis_enable_tls"):
        advice = "check REDIS_HOST/REDIS_PORT (redis_host, redis_port) point at a reachable Redis server"
        advice += ", redis_auth_token, and TLS (redis_enable_tls)"
    else:
        advice += ", with current credentials in the URL"
    if config.redis_iam_auth:
        advice += f"; IAM tokens ({config.redis_iam_auth}): redis_iam_user and this identity's permission to connect"
    return advice


def _token_lifetime(provider: Any) -> str:
    state = getattr(provider, "state", None)
    if provider is None or not callable(state):
        return "credentials in the URL"
    return f"credentials {state()}"


# --- registry --------------------------------------------------------------------------------------


def check_registry(ctx: ProbeContext, images: Sequence[ImageRef] | None = None) -> str:
    """Every image (default: every image the config names, at ``ctx.image_tags``) exists in its registry."""
    from ..images.check import check_images, deployment_images, repository_factory

    reason = registry_skip_reason(ctx.config)
    if reason:
        raise Skip(reason)
    wanted = list(images) if images is not None else deployment_images(ctx.config, ctx.image_tags)
    rows = check_images(wanted, ctx.infra.docker_repository, repository_factory(ctx.config))
    missing = [r.reference for r in rows if r.status == "missing"]
    errors = [f"{r.reference}: {r.detail}" for r in rows if r.status == "error"]
    if missing:
        raise ProbeFailed(
            f"{len(missing)} image(s) missing: {', '.join(missing)}. Endpoints using them hang in INITIALIZING",
            fix="mirror them with `model-engine-infra images mirror`, or point the *_repository keys (and --tag) "
            "at images that exist",
        )
    if errors:
        # Unauthorised or unreachable: the cluster will not pull these either, so this is no pass.
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise ProbeFailed(f"could not check {len(errors)} image(s): {errors[0]}{more}")
    found = ", ".join(f"{r.reference} ({r.detail})" if r.detail else r.reference for r in rows)
    return f"{len(rows)} image(s) found: {found}"


def registry_fix(config: InfraConfig) -> str:
    return (
        "check docker_repo_prefix, that the registry is reachable from here, and its credentials "
        "(registry_username / registry_password or registry_auth_file; the identity's role on a cloud registry)"
    )


# --- secrets ---------------------------------------------------------------------------------------


def check_secrets(ctx: ProbeContext, names: Sequence[str] | None = None) -> str:
    """Read each secret (default: those the config names); the message names them, never a value."""
    wanted = list(names) if names is not None else referenced_secrets(ctx.config)
    if not wanted:
        raise Skip("the configuration names no secret")
    store = ctx.infra.secrets
    shown = []
    for name in wanted:
        value = store.get(name)
        kind = f"{len(value)} field(s)" if isinstance(value, dict) else f"{len(value)} characters"
        shown.append(f"{name} ({kind})")
    return f"read from {store.store_name}: " + ", ".join(shown)


def secrets_fix(config: InfraConfig) -> str:
    return (
        "check the secret names in the config (and secrets_backend), the secret store's location, "
        "and that this identity may read them"
    )


# --- file storage ----------------------------------------------------------------------------------

FILE_OWNER = "model-engine-infra-doctor"


def check_file_storage(ctx: ProbeContext) -> str:
    """Through ``infra.file_storage``: upload a user file, read it, find it listed, fetch its signed URL, delete it."""
    files = ctx.infra.file_storage
    owner, file_id = FILE_OWNER, f"probe-{uuid.uuid4().hex[:12]}.txt"
    text = PAYLOAD.decode()

    async def probe() -> str:
        await files.upload_file(owner, file_id, PAYLOAD)
        try:
            if await files.get_file_content(owner, file_id) != text:
                raise ProbeFailed(f"user file {owner}/{file_id} read back different text")
            if file_id not in [f.id for f in await files.list_files(owner)]:
                raise ProbeFailed(f"user file {owner}/{file_id} is missing from its owner's listing")
            url = await files.get_url_from_id(owner, file_id)
            if url is None:
                raise ProbeFailed(f"no URL for user file {owner}/{file_id}")
            with urllib.request.urlopen(url, timeout=ctx.remaining()) as response:
                if response.read() != PAYLOAD:
                    raise ProbeFailed("the user file's signed URL served different bytes")
        finally:
            await files.delete_file(owner, file_id)
        return f"wrote, read, listed, signed and fetched, deleted {owner}/{file_id}"

    prefix = getattr(files, "prefix", "")
    return asyncio.run(probe()) + (f" under {prefix}" if prefix else "")  # this probe's own loop, in its thread


def file_storage_fix(config: InfraConfig) -> str:
    return (
        "check that the bucket or folder of file_storage_prefix (default {store}://{s3_bucket}) exists "
        "and that this identity may write, read, list, sign and delete there"
    )


# --- autoscaling metrics -------------------------------------------------------------------------


def check_autoscaling_metrics(ctx: ProbeContext) -> str:
    """Through ``infra.autoscaling_metrics``: a probe endpoint's resources, one inference metric, read back, deleted."""
    from ..selection import selected

    backend = selected(ctx.config, "autoscaling_metrics")
    if backend == "redis":
        reason = redis_skip_reason(ctx.config)
        if reason:
            raise Skip(f"the autoscaling metrics live on Redis, and {reason}")
    metrics = ctx.infra.autoscaling_metrics
    endpoint_id = f"probe-{uuid.uuid4().hex[:8]}"

    async def probe() -> str:
        await metrics.create_or_update_resources(endpoint_id)
        try:
            await metrics.emit_inference_autoscaling_metric(endpoint_id)
            seen = await metrics.read_metric(endpoint_id)
        except BaseException:
            with contextlib.suppress(Exception):  # the first failure is the one to report
                await metrics.delete_resources(endpoint_id)
            raise
        await metrics.delete_resources(endpoint_id)
        if seen is None or seen.pending < 1:
            raise ProbeFailed(f"the autoscaling metric emitted for {endpoint_id} did not show up on {backend}")
        expiry = f", expires in {seen.expires_in:.0f} s" if seen.expires_in is not None else ""
        return f"{backend}: created, emitted (pending {seen.pending}{expiry}), read back and deleted {endpoint_id}"

    return asyncio.run(asyncio.wait_for(probe(), ctx.remaining()))  # this probe's own loop, in its thread


def autoscaling_metrics_fix(config: InfraConfig) -> str:
    from ..selection import selected

    backend = selected(config, "autoscaling_metrics")
    where = {
        "redis": f"{redis_fix(config)}; the Redis user needs EVALSHA, EVAL, LLEN, PTTL and DEL",
        "servicebus": "check servicebus_namespace (SERVICEBUS_NAMESPACE) and that this identity has the "
        "'Azure Service Bus Data Owner' role on it",
        "local": "check that local_data_dir is a writable folder",
    }.get(backend or "", "check the plugin backend's settings")
    return f"KEDA scales async endpoints from these metrics (autoscaling_metrics_backend: {backend}): {where}"


# --- the live probes, in the order they are reported -------------------------------------------------

LIVE_PROBES: tuple[Probe, ...] = (
    Probe("broker", check_broker, broker_fix),
    Probe("storage", check_storage, storage_fix),
    Probe("redis", check_redis, redis_fix),
    Probe("registry", check_registry, registry_fix),
    Probe("secrets", check_secrets, secrets_fix),
    Probe("file_storage", check_file_storage, file_storage_fix),
    Probe("autoscaling_metrics", check_autoscaling_metrics, autoscaling_metrics_fix),
)
