"""Property tests over the parsers that face config input and the URL masking (issue 14, "siblings").

For every generated input the result is a value or one of our typed errors (`InfraError`), never
another exception, and a generated password never shows. Fixed seed (``derandomize``) and a bounded
number of examples, so CI runs the same cases every time.
"""

from __future__ import annotations

import string
import tempfile
import warnings
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from model_engine_infra import load_config
from model_engine_infra.cli.render import config_rows
from model_engine_infra.config import ConfigWarning
from model_engine_infra.config.limits import MAX_CONFIG_BYTES
from model_engine_infra.config.schema import FIELDS, helm_index
from model_engine_infra.errors import MAX_MESSAGE_CHARS, InfraError, clip, quote
from model_engine_infra.redact import has_userinfo, redact_text, redact_url

FIXED = settings(
    derandomize=True,
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
CANARY = "Pw7Canary"

# --- config files ------------------------------------------------------------------------------------

KEYS = st.sampled_from(sorted(FIELDS) + sorted(helm_index()) + ["config", "values", "azure", "image", "redis"])
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=40),
    st.sampled_from(["aws", "azure", "gcp", "onprem", "local", "http://u:p@h:1", "redis://:x@r:6379/0", "0", "-5"]),
)
VALUES = st.recursive(
    SCALARS,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12) | KEYS, children, max_size=4)
    ),
    max_leaves=20,
)


def nest(doc: dict[str, Any]) -> dict[str, Any]:
    """Turn dotted Helm keys into nested mappings, as a values file writes them."""
    out: dict[str, Any] = {}
    for key, value in doc.items():
        node = out
        *parents, leaf = key.split(".")
        for part in parents:
            child = node.get(part)
            if not isinstance(child, dict):
                child = node[part] = {}
            node = child
        node[leaf] = value
    return out


def load_file(data: bytes, env: dict[str, str] | None = None) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "values.yaml"
        path.write_bytes(data)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConfigWarning)  # near-miss hints on generated keys
                config = load_config(path, env=env or {})
        except InfraError as err:
            message = str(err)
        else:
            message = ""
            config_rows(config)  # what `config show` prints must build too
            repr(config)
        assert len(message) <= MAX_MESSAGE_CHARS


@FIXED
@given(st.dictionaries(KEYS, VALUES, max_size=8))
def test_structured_documents_give_a_config_or_a_typed_error(doc: dict[str, Any]) -> None:
    load_file(yaml.safe_dump(nest(doc), allow_unicode=True).encode())


@FIXED
@given(st.binary(max_size=2000))
def test_arbitrary_bytes_give_a_config_or_a_typed_error(data: bytes) -> None:
    load_file(data)


YAML_PIECES = st.sampled_from(
    [
        "cloud_provider: ",
        "local",
        "config:\n  values:\n    infra:\n      ",
        "&a ",
        "*a",
        "[",
        "]",
        "{",
        "}",
        ", ",
        "- ",
        "\n",
        "  ",
        "<<: ",
        "? ",
        ": ",
        "!!python/object:os.system ",
        "!!binary ",
        "'",
        '"',
        "\t",
        "#",
        "redis_port: ",
        "insecure_registries: ",
        "1e999",
        ".nan",
        "---\n",
        "%YAML 1.1\n",
        "\x00",
        "\ufeff",
    ]
)


@FIXED
@given(st.lists(YAML_PIECES | st.text(max_size=5), max_size=60).map("".join))
def test_yaml_shaped_text_gives_a_config_or_a_typed_error(text: str) -> None:
    load_file(text.encode("utf-8", "surrogatepass"))


ENV_VARS = sorted({var for info in FIELDS.values() for var in info.all_env})


@FIXED
@given(st.dictionaries(st.sampled_from(ENV_VARS), st.text(max_size=30).filter(lambda v: "\x00" not in v), max_size=6))
def test_environment_values_give_a_config_or_a_typed_error(env: dict[str, str]) -> None:
    try:
        load_config(env=env)
    except InfraError:
        pass


def test_the_size_cap_holds_for_generated_sizes() -> None:
    load_file(b"#" * (MAX_CONFIG_BYTES + 1))


# --- URL masking -----------------------------------------------------------------------------------------

URL_CHARS = string.ascii_letters + string.digits + "-._~!$&'()*+,;=:@/?#[]% "
WHITESPACE = st.sampled_from(["", " ", "\n", "\t", "\r\n", " \n\t "])
DROPPED = st.sampled_from(["", "\n", "\t", "\r\n"])  # what URL parsers remove anywhere in a URL


def spaced(text: str, data: st.DataObject) -> str:
    """``text`` with characters URL parsers silently drop inserted somewhere."""
    at = data.draw(st.integers(min_value=0, max_value=len(text)))
    return text[:at] + data.draw(DROPPED) + text[at:]


@FIXED
@given(st.data())
def test_a_password_in_a_url_never_shows(data: st.DataObject) -> None:
    scheme = data.draw(st.sampled_from(["http", "https", "redis", "rediss", "HTTP", "s3", ""]))
    user = data.draw(st.text(alphabet=string.ascii_letters + string.digits + "-_.", max_size=8))
    password = CANARY + data.draw(st.text(alphabet=URL_CHARS, max_size=12))
    host = data.draw(st.sampled_from(["host", "my_minio.svc", "10.0.0.1", "[::1]", "h:9000", "a.b.c:1"]))
    tail = data.draw(st.text(alphabet=URL_CHARS, max_size=15))
    prefix = f"{scheme}://" if scheme else ""
    url = data.draw(WHITESPACE) + spaced(f"{prefix}{user}:{password}@{host}{tail}", data) + data.draw(WHITESPACE)
    shown = "".join(redact_url(url).split())
    assert CANARY not in shown
    assert has_userinfo(url)


@FIXED
@given(st.data())
def test_a_url_quoted_in_free_text_never_shows_its_password(data: st.DataObject) -> None:
    """An SDK's message quoting a URL; a password holding spaces or quotes cannot be found in free text."""
    password = CANARY + data.draw(st.text(alphabet=URL_CHARS.replace(" ", "").replace("'", ""), max_size=12))
    host = data.draw(st.sampled_from(["host", "my_minio.svc:9000", "[::1]:1"]))
    url = f"http://user:{password}@{host}/p"
    template = data.draw(st.sampled_from(["Invalid endpoint: {}", "'{}' failed", "<{}>", "{}", "a {} b {}"]))
    assert CANARY not in redact_text(template.format(url, url))


@FIXED
@given(st.data())
def test_a_token_in_a_query_or_fragment_never_shows(data: st.DataObject) -> None:
    name = data.draw(st.sampled_from(["token", "access_token", "sig", "X-Amz-Signature", "password", "client_secret"]))
    value = CANARY + data.draw(st.text(alphabet=string.ascii_letters + string.digits, max_size=8))
    mark = data.draw(st.sampled_from(["?", "#", "?a=1&", "#x=2&"]))
    url = f"https://host/path{mark}{name}={value}"
    assert CANARY not in redact_url(spaced(url, data))


@FIXED
@given(st.text(alphabet=URL_CHARS, max_size=40))
def test_redact_url_never_raises_and_is_stable(text: str) -> None:
    once = redact_url(text)
    assert redact_url(once) == once  # masking a masked URL changes nothing


@FIXED
@given(st.text(max_size=3000), st.integers(min_value=10, max_value=500))
def test_clip_and_quote_bound_their_output(text: str, limit: int) -> None:
    assert len(clip(text, limit)) <= max(limit, 40)
    assert len(quote(text, limit)) <= max(limit, 40) + 2


SECRET_PATHS = sorted(path for path, name in helm_index().items() if FIELDS[name].secret)
URL_PATHS = sorted(
    path for path, name in helm_index().items() if name.endswith(("_url", "_address")) and not FIELDS[name].secret
)


@FIXED
@given(
    st.dictionaries(
        st.sampled_from(SECRET_PATHS), st.sampled_from(["{c}", "redis://u:{c}@r:6379/0", "x{c}y"]), min_size=1
    ),
    st.dictionaries(st.sampled_from(URL_PATHS), st.sampled_from(["http://u:{c}@h:1\n", " http://{c}@h", "http://h"])),
    st.dictionaries(KEYS, VALUES, max_size=4),
)
def test_secrets_in_a_file_never_show_in_config_output_or_errors(
    secrets: dict[str, str], urls: dict[str, str], noise: dict[str, Any]
) -> None:
    doc = {**noise, **{k: v.format(c=CANARY) for k, v in {**urls, **secrets}.items()}}
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "values.yaml"
        path.write_text(yaml.safe_dump(nest(doc), allow_unicode=True))
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConfigWarning)
                config = load_config(path, env={})
        except InfraError as err:
            shown = str(err) + repr(err)
        else:
            shown = "".join(f"{row}" for row in config_rows(config)) + repr(config) + str(config)
        assert CANARY not in "".join(shown.split())
