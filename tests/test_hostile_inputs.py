"""A hostile-input campaign over the public API and the CLI (issue 14: the siblings of every case).

Families not covered by the property tests: endpoint ids and labels (unicode, control characters,
huge values), URIs (unicode, spaces, ``?``/``#``, percent-encodings, trailing slashes), image tags
and repository names outside the OCI grammar, secret names with path separators, environment
variables set to empty or blank strings, and the CLI given all of these. For every input the
result is a value or one of our typed errors (`InfraError`), never another exception; a per-test
timeout catches a hang; canary secrets in the config never appear in an error or in CLI output.
Every built-in provider runs in process (`testing.fakes.fake_infra`).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from model_engine_infra import InfraConfig, load_config
from model_engine_infra.cli import app
from model_engine_infra.config.schema import FIELDS
from model_engine_infra.errors import (
    InfraError,
    InvalidImageReferenceError,
    ObjectDecodeError,
    ObjectTooLargeError,
    SecretError,
)
from model_engine_infra.testing.fakes import FAKE_PROVIDERS, FakeInfra, fake_config, fake_infra

pytestmark = pytest.mark.timeout(120)

CANARIES = ("canary-redis-pw-7f3a", "canary-registry-pw-91c2", "canary-prom-pw-55d0")

# Strings that have broken parsers before: empty, blank, unicode (RTL override, ligature,
# combining, astral), control characters, separators, URL syntax, percent-encoding, huge.
ODD = (
    "",
    " ",
    "\t\n",
    "é",
    "日本語",
    "\u202eevil",
    "ﬁ",
    "e\u0301",
    chr(0x1D54F),  # mathematical double-struck X: astral, and NFKC-folds to "X"
    "a\x00b",
    "a\nb",
    "name\n",
    "\x1b[31mred",
    "a b",
    "a/b",
    "../x",
    "a\\b",
    "a?b#c",
    "%2e%2e%2f",
    "a%00b",
    "x" * 81,
    "x" * 100_000,
)
ODD_IDS = [f"{i}:{s[:12]!r}" for i, s in enumerate(ODD)]


def typed_or_value(call: Callable[[], Any]) -> Any:
    """Run ``call``: its value, or our typed error (returned); any other exception fails the test."""
    try:
        return call()
    except InfraError as err:
        typed: InfraError = err
    except Exception as err:  # the point: report which other exception escaped
        pytest.fail(f"{type(err).__name__} escaped (not one of ours): {str(err)[:300]}")
    text = str(typed)
    for canary in CANARIES:
        assert canary not in text, f"{type(typed).__name__} shows a secret: {text[:300]}"
    assert len(text) <= 5000, f"{type(typed).__name__} message of {len(text)} characters"
    return typed


def run_async(coro_factory: Callable[[], Any]) -> Callable[[], Any]:
    return lambda: asyncio.run(coro_factory())


@pytest.fixture(params=FAKE_PROVIDERS)
def infra(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[FakeInfra]:
    config = fake_config(
        request.param,
        tmp_path,
        redis_auth_token=CANARIES[0],
        registry_password=CANARIES[1],
        prometheus_server_address=f"http://admin:{CANARIES[2]}@prom:9090",
    )
    with fake_infra(request.param, tmp_path, config=config) as built:
        yield built


# --- endpoint ids, names and labels -----------------------------------------------------------------


def test_endpoint_ids_names_and_labels(infra: FakeInfra) -> None:
    delegate = infra.queue_delegate
    for odd in ODD:
        typed_or_value(run_async(lambda odd=odd: delegate.create_queue_if_not_exists(odd, "name", "me", {})))
        typed_or_value(run_async(lambda odd=odd: delegate.get_queue_attributes(odd)))
        typed_or_value(run_async(lambda odd=odd: delegate.delete_queue(odd)))
        typed_or_value(run_async(lambda odd=odd: delegate.get_queue_attributes_many(["ok", odd])))
        for name, created_by, labels in (
            (odd, "me", {}),
            ("n", odd, {}),
            ("n", "me", {odd: "v"}),
            ("n", "me", {"k": odd}),
        ):
            typed_or_value(
                run_async(
                    lambda name=name, created_by=created_by, labels=labels: delegate.create_queue_if_not_exists(
                        "e1", name, created_by, labels
                    )
                )
            )
    many = {f"k{i}": "v" * 300 for i in range(200)}
    typed_or_value(run_async(lambda: delegate.create_queue_if_not_exists("e2", "n", "me", many)))
    typed_or_value(run_async(lambda: delegate.create_queue_if_not_exists("e3", "n", "me", {}, -1)))
    typed_or_value(run_async(lambda: delegate.create_queue_if_not_exists("e4", "n", "me", {}, 10**12)))


# --- URIs -------------------------------------------------------------------------------------------

URI_TAILS = (
    "a b",
    "é/ü.bin",
    "a?b",
    "a#b",
    "a%20b",
    "a%2Fb",
    "%zz",
    "dir/",
    "dir//x",
    "",
    "/",
    ".",
    "..",
    "a/../../x",
    "\x00",
    "a\nb",
    "k" * 2000,
)


def uris_for(infra: FakeInfra) -> list[str]:
    root = infra.config.hf_user_fine_tuned_weights_prefix.rstrip("/")
    scheme_roots = [root, "s3://", "s3:///key", "S3://fake-bucket/x", " s3://fake-bucket/x", "file://host/x"]
    scheme_roots += ["gs://", "az://", "nosuch://x", "https://127.0.0.1:1/x", "https://[::1/x", "http://127.0.0.1:1/x"]
    return [f"{root}/{tail}" for tail in URI_TAILS] + scheme_roots + [root + "/"]


def test_uris(infra: FakeInfra, tmp_path: Path) -> None:
    fs, artifacts = infra.filesystem, infra.artifacts
    for uri in uris_for(infra):
        typed_or_value(lambda uri=uri: fs.exists(uri))
        typed_or_value(lambda uri=uri: fs.list(uri))
        typed_or_value(lambda uri=uri: fs.stat(uri))
        typed_or_value(lambda uri=uri: fs.open(uri, "rb").close())
        typed_or_value(lambda uri=uri: fs.generate_signed_url(uri))
        typed_or_value(lambda uri=uri: artifacts.list_files(uri))
        typed_or_value(lambda uri=uri: artifacts.get_model_config(uri))
        typed_or_value(lambda uri=uri: artifacts.download_files(uri, tmp_path / "out"))
        written = typed_or_value(lambda uri=uri: _write(fs, uri))
        if not isinstance(written, InfraError):
            assert typed_or_value(lambda uri=uri: _read(fs, uri)) == b"payload"


def _write(fs: Any, uri: str) -> None:
    with fs.open(uri, "wb") as stream:
        stream.write(b"payload")


def _read(fs: Any, uri: str) -> bytes:
    with fs.open(uri, "rb") as stream:
        data: bytes = stream.read()
        return data


# --- image tags and repository names ------------------------------------------------------------------

BAD_REPOSITORIES = (
    "",
    "UPPER",
    "a..b",
    "-x",
    "x-",
    "a//b",
    "/a",
    "a/",
    "x" * 300,
    "vllm\n",
    "vllm ",
    "é",
    "a:b",
    "a@b",
)
BAD_TAGS = ("", ".x", "-x", "x" * 129, "v1\n", "v1 ", "é", "a:b", "a/b", "a@sha256:00", "\x00")


@pytest.mark.parametrize("provider", ["local", "onprem", "aws", "azure", "gcp"])
def test_image_tags_and_repositories_outside_the_oci_grammar(
    provider: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Refused before any request (the registry is a closed port: a request would be unavailable, typed too)."""
    import google.auth
    from google.auth.credentials import AnonymousCredentials

    from model_engine_infra import build_infra

    # Artifact Registry asks for Application Default Credentials when built
    monkeypatch.setattr(google.auth, "default", lambda **kwargs: (AnonymousCredentials(), "proj"))

    prefixes = {
        "local": "127.0.0.1:1/ml",
        "onprem": "127.0.0.1:1/ml",
        "aws": "123456789012.dkr.ecr.us-east-1.amazonaws.com/ml",
        "azure": "myreg.azurecr.io/ml",
        "gcp": "us-docker.pkg.dev/proj/repo",
    }
    config = fake_config(provider, tmp_path, docker_repo_prefix=prefixes[provider])
    config = config.model_copy(update={"docker_registry_type": None, "registry_password": None})
    repository = build_infra(config).docker_repository
    for repo in BAD_REPOSITORIES:
        for method in (repository.image_exists, repository.get_image_url):
            assert isinstance(typed_or_value(lambda m=method, r=repo: m("v1", r)), InvalidImageReferenceError), repo
    for tag in BAD_TAGS:
        for method in (repository.image_exists, repository.get_image_url):
            assert isinstance(typed_or_value(lambda m=method, t=tag: m(t, "vllm")), InvalidImageReferenceError), tag
    repository.close()


# --- secret names ---------------------------------------------------------------------------------------

SECRET_NAMES = (*ODD, "/etc/passwd", "../outside", "..", ".", "a/../../outside", "sub/", "con", "a:b", "*", "?")


def test_secret_names(infra: FakeInfra, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.write_text("must never be read")
    infra.fakes.put_secret("good", '{"user": "u", "password": "p"}')
    for name in SECRET_NAMES:
        for call in (lambda name=name: infra.secrets.get(name), lambda name=name: infra.secrets.get_json(name)):
            value = typed_or_value(call)
            assert "must never be read" not in str(value), repr(name)
    assert infra.secrets.get_json("good") == {"user": "u", "password": "p"}


def test_secret_values_that_are_huge_or_deep(tmp_path: Path) -> None:
    with fake_infra("onprem", tmp_path) as infra:
        infra.fakes.put_secret("deep", "{" + '"a":[' * 5000)
        assert isinstance(infra.secrets.get("deep"), str)  # not a JSON object: the string itself
        assert isinstance(typed_or_value(lambda: infra.secrets.get_json("deep")), SecretError)
        infra.fakes.put_secret("huge", "x" * (2 * 1024 * 1024))
        error = typed_or_value(lambda: infra.secrets.get("huge"))
        assert isinstance(error, SecretError)
        assert "KiB" in str(error)


# --- environment variables set to empty or blank strings ---------------------------------------------

ENV_VARS = sorted({var for info in FIELDS.values() for var in info.all_env})


def test_every_env_var_blank() -> None:
    """Each variable alone set to a blank; then all of them at once, empty, blank, or a NUL."""
    for var in ENV_VARS:
        config = typed_or_value(
            lambda var=var: load_config(env={var: " ", "MODEL_ENGINE_INFRA_CLOUD_PROVIDER": "local"})
        )
        assert isinstance(config, (InfraConfig, InfraError)), var
    for blank in ("", " ", "\t\n", "\x00"):
        everything = dict.fromkeys(ENV_VARS, blank)
        assert isinstance(typed_or_value(lambda e=everything: load_config(env=e)), (InfraConfig, InfraError))
    error = typed_or_value(
        lambda: load_config(
            env={"MODEL_ENGINE_INFRA_CLOUD_PROVIDER": "local", "MODEL_ENGINE_INFRA_LOCAL_DATA_DIR": "/tmp/a\x00b"}
        )
    )
    assert isinstance(error, InfraError)
    assert "MODEL_ENGINE_INFRA_LOCAL_DATA_DIR" in str(error)


def test_empty_secret_variables(tmp_path: Path) -> None:
    env = {
        "MODEL_ENGINE_INFRA_CLOUD_PROVIDER": "local",
        "MODEL_ENGINE_INFRA_LOCAL_DATA_DIR": str(tmp_path),
        "MODEL_ENGINE_SECRET_": "x",
    }
    env["MODEL_ENGINE_SECRET_EMPTY"] = ""
    from model_engine_infra import build_infra

    infra = build_infra(load_config(env=env))
    assert typed_or_value(lambda: infra.secrets.get("EMPTY")) in ("", {})
    assert isinstance(typed_or_value(lambda: infra.secrets.get("")), InfraError)
    infra.close()


# --- the CLI ---------------------------------------------------------------------------------------------


@pytest.fixture
def cli_config(tmp_path: Path) -> Path:
    path = tmp_path / "values.yaml"
    path.write_text(
        "cloud_provider: local\n"
        f"local_data_dir: {tmp_path / 'data'}\n"
        f"redis_host: localhost\nredis_auth_token: {CANARIES[0]}\n"
        f"registry_password: {CANARIES[1]}\nregistry_username: me\n"
        f"prometheus_server_address: http://admin:{CANARIES[2]}@prom:9090\n"
    )
    return path


CLI_URIS = ("a b", "é", "a?b#c", "%zz", "dir/", "", "nosuch://x", "s3://", "file://host/x", "\x1b[31m", "x" * 5000)


@pytest.mark.parametrize("uri", CLI_URIS, ids=[f"{i}" for i in range(len(CLI_URIS))])
def test_cli_storage_commands(cli_config: Path, tmp_path: Path, uri: str) -> None:
    runner = CliRunner()
    for args in (["storage", "ls", uri], ["storage", "sign", uri], ["storage", "cp", uri, str(tmp_path / "o")]):
        result = runner.invoke(app, [*args, "-c", str(cli_config)])
        assert result.exit_code in (0, 1, 2), (args, result.output[-500:])
        assert "Traceback" not in result.output, result.output[-2000:]
        for canary in CANARIES:
            assert canary not in result.output


@pytest.mark.parametrize(
    "args",
    [
        ["images", "check", "--tag", "v1\n"],
        ["images", "check", "--tag", "é"],
        ["images", "mirror", "UPPER/x:y", "127.0.0.1:1/ml"],
        ["images", "mirror", "a b", "c d"],
        ["config", "show"],
        ["config", "check"],
        ["doctor", "--offline"],
    ],
)
def test_cli_images_config_doctor(cli_config: Path, args: list[str]) -> None:
    result = CliRunner().invoke(app, [*args, "-c", str(cli_config)])
    assert result.exit_code in (0, 1, 2), result.output[-500:]
    assert "Traceback" not in result.output, result.output[-2000:]
    for canary in CANARIES:
        assert canary not in result.output


def test_cli_with_every_env_var_empty(tmp_path: Path) -> None:
    env = {**os.environ, **dict.fromkeys(ENV_VARS, ""), "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run(
        [sys.executable, "-m", "model_engine_infra.cli", "config", "check"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert done.returncode in (0, 1, 2), done.stderr[-500:]
    assert "Traceback" not in done.stdout + done.stderr


# --- stores read whole or as text ------------------------------------------------------------------------


def test_https_store_text_and_capped_reads() -> None:
    """The HTTPS store with a server that streams: a 100 MB "config.json" is cut at the cap, not read."""
    import httpx

    from model_engine_infra.storage import base
    from model_engine_infra.storage.https import HttpsArtifacts, HttpsFilesystem, make_client

    produced = [0]

    def endless() -> Iterator[bytes]:
        for _ in range(100):
            produced[0] += 1024 * 1024
            yield b"x" * (1024 * 1024)

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/big/config.json"):
            return httpx.Response(200, content=endless())  # chunked: no Content-Length
        return httpx.Response(200, content="café".encode("latin-1"))

    client = make_client(transport=httpx.MockTransport(handler))
    artifacts = HttpsArtifacts(client, fine_tuned_weights_prefix="https://h/ft")
    error = typed_or_value(lambda: artifacts.get_model_config("https://h/big"))
    assert isinstance(error, ObjectTooLargeError)
    assert produced[0] <= base.MAX_MODEL_CONFIG_BYTES + 2 * 1024 * 1024  # stopped at the cap
    fs = HttpsFilesystem(client)
    error = typed_or_value(lambda: fs.open("https://h/latin.txt", "r").read())
    assert isinstance(error, ObjectDecodeError)
    assert "https://h/latin.txt" in str(error)


def test_a_store_plugin_written_before_the_limit_still_reads_configs(tmp_path: Path) -> None:
    """``_read_bytes(uri)`` without ``limit``: read whole, then held to the same cap."""
    from model_engine_infra.storage.local import LocalArtifacts

    class OldArtifacts(LocalArtifacts):
        def _read_bytes(self, uri: str) -> bytes:  # type: ignore[override]
            return Path(uri).read_bytes()

    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "config.json").write_text('{"a": 1}')
    assert OldArtifacts(fine_tuned_weights_prefix=str(tmp_path)).get_model_config(str(tmp_path / "m")) == {"a": 1}


def test_docker_config_file_that_is_huge_or_a_device(tmp_path: Path) -> None:
    from model_engine_infra.images.oci import docker_config_login

    big = tmp_path / "config.json"
    big.write_text('{"auths": {}, "pad": "' + "x" * (2 * 1024 * 1024) + '"}')
    for path in (str(big), "/dev/zero"):
        error = typed_or_value(lambda path=path: docker_config_login(path, "registry.example.com"))
        assert isinstance(error, InfraError), path
        assert "registry_auth_file" in str(error)


def test_presence_needs_no_redis_package_on_other_brokers() -> None:
    """A deployment on SQS without the redis extra could not send a task (ModuleNotFoundError)."""
    code = (
        "import sys; sys.modules['redis'] = None\n"
        "from model_engine_infra.config import InfraConfig\n"
        "from model_engine_infra.brokers import broker_for\n"
        "for cloud in ('aws', 'azure', 'local'):\n"
        "    assert broker_for(InfraConfig(cloud_provider=cloud, servicebus_namespace='n')).queue_presence()\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-1000:]


# --- tasks ------------------------------------------------------------------------------------------------


class Opaque:
    """Not JSON: a task argument that cannot be serialized."""


def test_task_names_arguments_and_queues(tmp_path: Path) -> None:
    """On the local broker's real Celery gateway: odd task names, arguments that are not JSON, odd expiries."""
    from model_engine_infra.tasks.gateway import CeleryTaskQueueGateway
    from model_engine_infra.testing.queues import declare_queue

    gateway = CeleryTaskQueueGateway.from_config(InfraConfig(cloud_provider="local", local_data_dir=str(tmp_path)))
    declare_queue(gateway, "q1")
    for odd in ODD:
        typed_or_value(lambda odd=odd: gateway.send_task(odd, "q1"))
        typed_or_value(lambda odd=odd: gateway.send_task("t", odd))
        typed_or_value(lambda odd=odd: gateway.send_task("t", "q1", args=[odd], kwargs={odd: odd}))
        typed_or_value(lambda odd=odd: gateway.get_task(odd))
    for args, kwargs in (([{1, 2}], {}), ([Opaque()], {}), ([b"\xff"], {}), ([], {1: "int key"}), ([float("nan")], {})):
        typed_or_value(lambda args=args, kwargs=kwargs: gateway.send_task("t", "q1", args=args, kwargs=kwargs))
    for expires in (-1, 0, 1.5, 10**12, 2**63, float("nan"), float("inf")):
        typed_or_value(lambda expires=expires: gateway.send_task("t", "q1", expires=expires))
    gateway.close()
