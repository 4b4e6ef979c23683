"""Every fenced block in README.md and docs/*.md is executed, one test per block (``file:line``).

- ``python``: runs in a fresh interpreter with a temporary working folder (tests/docs_runner.py);
  top-level ``await`` runs in an event loop. By default the library sees no config file, so it is
  on the ``local`` provider with its state under that folder.
- ``bash``/``sh``: every ``model-engine-infra`` command (and ``python -m model_engine_infra...``)
  runs, in order, in a temporary folder holding ``values.yaml`` (a copy of
  ``examples/deploy/local/values.yaml`` unless the block says otherwise); each must exit 0. Other
  commands (installing, cloning, running this suite) are not run: the block must pass ``bash -n``
  and every repository path it names must exist.
- ``yaml``: a config file; ``model-engine-infra config check`` must exit 0.
- ``json``/``toml``: must parse. ``text`` (and ``txt``, ``output``): shown, not run.
  A block without a language fails: give it one.

A block may declare what it needs in an HTML comment right above it (invisible on GitHub)::

    <!-- docs-test: servers=registry exit=1 values=examples/deploy/onprem/values.yaml
    push_test_image(servers["registry"], "vllm", "0.6.3")
    -->

Options: ``servers=a,b`` (the testing kit's real servers: redis, moto, azurite, gcs, registry; their
``env()`` is set for the block and ``servers[name]`` is given to setup code), ``world=aws`` (python:
moto in-process, a config naming bucket ``llm-engine``, which exists), ``run=pytest`` (python: the
block is a test module, run by pytest with the package's plugin), ``exit=N`` (shell: the expected exit
code), ``daemon`` (shell: a server command; it must still be running after 3 s and exit 0 on
SIGTERM), ``values=PATH``, ``yaml=data`` (YAML that is not a config file: parsed only),
``yaml=fragment`` (a few config keys shown in context: no error, findings allowed). Lines after
the first are Python setup, run in the block's folder (and namespace) before it.
"""

from __future__ import annotations

import ast
import dataclasses
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
DOC_FILES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
RUNNER = ROOT / "tests" / "docs_runner.py"
DEFAULT_VALUES = "examples/deploy/local/values.yaml"

PYTHON = {"python", "py", "python3"}
SHELL = {"bash", "sh", "shell"}
YAML = {"yaml", "yml"}
PARSED = {"json", "toml"}
INERT = {"text", "txt", "output"}
OPTIONS = {"servers", "world", "run", "exit", "daemon", "values", "yaml", "sub", "env"}
REPO_PATH = re.compile(r"^(?:\./)?(scripts|tests|integration|benchmarks|examples|docs|src)/\S*$")
FENCE = re.compile(r"^(?P<indent>\s*)(?P<fence>`{3,}|~{3,})(?P<info>[^`]*)$")
OPERATORS = {"&&", "||", ";", "&", "|", ";;"}
COMMAND_TIMEOUT = 600
FUNCTIONS = (ast.FunctionDef, ast.AsyncFunctionDef)


@dataclass(frozen=True)
class Block:
    path: Path
    line: int  # the opening fence, 1-based
    lang: str
    code: str
    options: dict[str, str] = field(default_factory=dict)
    setup: str = ""

    @property
    def id(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


# --- extraction ---------------------------------------------------------------------------------------


def _marker(lines: list[str], fence_index: int) -> tuple[dict[str, str], str]:
    """Options and setup code from a ``<!-- docs-test ... -->`` comment right above the fence."""
    end = fence_index - 1
    while end >= 0 and not lines[end].strip():
        end -= 1
    if end < 0 or not lines[end].rstrip().endswith("-->"):
        return {}, ""
    start = end
    while start > 0 and "<!--" not in lines[start]:
        start -= 1
    comment = [line.strip() if n == 0 else line for n, line in enumerate(lines[start : end + 1])]
    first = comment[0]
    if not first.startswith("<!-- docs-test"):
        return {}, ""
    header = first.removeprefix("<!-- docs-test").lstrip(":").strip()
    body = comment[1:]
    if header.endswith("-->"):
        header = header.removesuffix("-->").strip()
    elif body:
        body[-1] = body[-1].rstrip().removesuffix("-->")
    options: dict[str, str] = {}
    for word in shlex.split(header):
        name, _, value = word.partition("=")
        options[name] = value
    return options, textwrap.dedent("\n".join(body)).strip("\n")


def _unindent(line: str, indent: int) -> str:
    """A line of a fence indented by ``indent`` (inside a list item), without that indentation."""
    return line[indent:] if line[:indent].strip() == "" else line.lstrip()


def extract(path: Path) -> list[Block]:
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks: list[Block] = []
    index = 0
    while index < len(lines):
        opening = FENCE.match(lines[index])
        if opening is None:
            index += 1
            continue
        fence, indent = opening["fence"], len(opening["indent"])
        end = index + 1
        while end < len(lines) and not (lines[end].strip().startswith(fence) and set(lines[end].strip()) == {fence[0]}):
            end += 1
        body = [_unindent(line, indent) for line in lines[index + 1 : end]]
        info = opening["info"].strip()
        options, setup = _marker(lines, index)
        blocks.append(Block(path, index + 1, info.split()[0] if info else "", "\n".join(body), options, setup))
        index = end + 1
    return blocks


BLOCKS = [block for path in DOC_FILES for block in extract(path)]
RUNNABLE = [block for block in BLOCKS if block.lang in PYTHON | SHELL | YAML | PARSED]


# --- the environment a block runs in --------------------------------------------------------------------


def base_env() -> dict[str, str]:
    """A clean environment: no deployment variables of the machine running the tests leak in."""
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", os.defpath)])
    env = {"PATH": path, "PYTHONPATH": str(ROOT / "src"), "COLUMNS": "160", "PYTHONDONTWRITEBYTECODE": "1"}
    for name in ("HOME", "LANG", "LC_ALL", "TMPDIR", "CI"):
        if name in os.environ:
            env[name] = os.environ[name]
    return env


@dataclass
class Context:
    block: Block
    folder: Path
    env: dict[str, str]
    servers: dict[str, dict[str, object]]
    placeholders: dict[str, str] = field(default_factory=dict)

    def fill(self, text: str) -> str:
        """``{registry}``, ``{redis.port}``, ``{moto.url}``, ``{cwd}``... replaced; other braces kept."""
        for name, value in self.placeholders.items():
            text = text.replace("{" + name + "}", value)
        return text

    def substitute(self, text: str) -> str:
        """The block's ``sub=OLD=>NEW,...`` replacements (hosts of the docs -> the test's servers)."""
        for pair in filter(None, self.block.options.get("sub", "").split(",")):
            old, arrow, new = pair.partition("=>")
            assert arrow, f"{self.block.id}: write sub=OLD=>NEW"
            text = text.replace(old, self.fill(new))
        return text


@pytest.fixture
def context(request: pytest.FixtureRequest, tmp_path: Path) -> Context:
    block: Block = request.param
    unknown = set(block.options) - OPTIONS
    assert not unknown, f"{block.id}: unknown docs-test option(s) {sorted(unknown)}; known: {sorted(OPTIONS)}"
    env = base_env()
    facts: dict[str, dict[str, object]] = {}
    placeholders = {"cwd": str(tmp_path)}
    for name in filter(None, block.options.get("servers", "").split(",")):
        server = request.getfixturevalue(f"mei_{name}_server")
        env.update(server.env())
        facts[name] = {
            f.name: getattr(server, f.name) for f in dataclasses.fields(server) if not f.name.startswith("_")
        }
        facts[name]["data_dir"] = str(server.data_dir)
        placeholders.update(
            {name: f"{server.host}:{server.port}", f"{name}.port": str(server.port), f"{name}.url": server.url}
        )
    ctx = Context(block, tmp_path, env, facts, placeholders)
    for pair in filter(None, block.options.get("env", "").split(",")):
        variable, _, value = pair.partition("=")
        env[variable] = ctx.fill(value)
    return ctx


def run_python(ctx: Context, code: str) -> None:
    spec = {
        "path": str(ctx.block.path),
        "line": ctx.block.line,
        "code": ctx.substitute(code),
        "setup": ctx.block.setup,
        "world": ctx.block.options.get("world", "local"),
        "servers": ctx.servers,
    }
    spec_path = ctx.folder / ".docs-test-spec.json"
    spec_path.write_text(json.dumps(spec, default=str))
    done = subprocess.run(
        [sys.executable, str(RUNNER), str(spec_path)],
        cwd=ctx.folder,
        env=ctx.env,
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT,
    )
    assert done.returncode == 0, f"{ctx.block.id} failed:\n{done.stdout}\n{done.stderr}"


# --- shell ------------------------------------------------------------------------------------------------


def simple_commands(code: str) -> list[list[str]]:
    """The block's simple commands (operators split them), comments and line continuations removed."""
    commands: list[list[str]] = []
    for line in code.replace("\\\n", " ").splitlines():
        lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        lexer.commenters = "#"
        current: list[str] = []
        for token in lexer:
            if token in OPERATORS:
                if current:
                    commands.append(current)
                current = []
            else:
                current.append(token)
        if current:
            commands.append(current)
    return commands


def expand(word: str, env: dict[str, str]) -> str:
    return re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: env.get(m[1] or m[2], m[0]), word)


def library_argv(words: list[str]) -> list[str] | None:
    """The argv to run for a command of this library, or None for any other command."""
    if Path(words[0]).name == "model-engine-infra":
        return [sys.executable, "-m", "model_engine_infra.cli", *words[1:]]
    is_python = re.fullmatch(r"(?:.*/)?python3?", words[0]) is not None
    if is_python and len(words) > 2 and words[1] == "-m" and words[2].startswith("model_engine_infra"):
        return [sys.executable, *words[1:]]
    return None


def run_command(ctx: Context, argv: list[str], env: dict[str, str]) -> None:
    expected = int(ctx.block.options.get("exit", "0"))
    shown = shlex.join(argv[2:] if argv[1:2] == ["-m"] else argv)
    if "daemon" in ctx.block.options:
        process = subprocess.Popen(argv, cwd=ctx.folder, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        try:
            with pytest.raises(subprocess.TimeoutExpired):
                process.wait(timeout=3)
            process.send_signal(signal.SIGTERM)
            output = process.communicate(timeout=60)[0].decode(errors="replace")
        finally:
            process.kill()
            process.wait()
        assert process.returncode == expected, f"{ctx.block.id}: `{shown}` exited {process.returncode}:\n{output}"
        return
    done = subprocess.run(argv, cwd=ctx.folder, env=env, capture_output=True, text=True, timeout=COMMAND_TIMEOUT)
    assert done.returncode == expected, (
        f"{ctx.block.id}: `{shown}` exited {done.returncode}, expected {expected}:\n{done.stdout}\n{done.stderr}"
    )


def check_repo_paths(block: Block, words: list[str]) -> int:
    checked = 0
    for word in words:
        if REPO_PATH.match(word):
            relative = word.removeprefix("./")
            assert list(ROOT.glob(relative)), f"{block.id}: {word} does not exist in the repository"
            checked += 1
    return checked


def run_shell(ctx: Context) -> None:
    block = ctx.block
    bash = shutil.which("bash")
    assert bash is not None, "bash is needed to check shell blocks"
    syntax = subprocess.run([bash, "-n"], input=block.code, capture_output=True, text=True)
    assert syntax.returncode == 0, f"{block.id}: not valid shell: {syntax.stderr}"
    values = ROOT / block.options.get("values", DEFAULT_VALUES)
    (ctx.folder / "values.yaml").write_text(ctx.substitute(values.read_text()))
    if block.setup:
        run_python(ctx, "")
    env = dict(ctx.env)
    ran = checked = 0
    for command in simple_commands(ctx.substitute(block.code)):
        words = [expand(word, env) for word in command]
        if words[0] == "export":
            env.update(word.split("=", 1) for word in words[1:] if "=" in word)  # type: ignore[misc]
            continue
        local_env = dict(env)
        while words and re.fullmatch(r"\w+=.*", words[0]):
            name, value = words.pop(0).split("=", 1)
            local_env[name] = value
        argv = library_argv(words) if words else None
        if argv is None:
            checked += check_repo_paths(block, words)
            continue
        run_command(ctx, argv, local_env)
        ran += 1
    assert ran or checked, f"{block.id}: runs no model-engine-infra command and names no repository path"


# --- the tests --------------------------------------------------------------------------------------------


def test_every_block_has_a_known_language() -> None:
    known = PYTHON | SHELL | YAML | PARSED | INERT
    unknown = [f"{block.id} ({block.lang or 'no language'})" for block in BLOCKS if block.lang not in known]
    assert unknown == [], (
        "give these blocks a language: python, bash, yaml, json, toml, or text for output that is not run: "
        + ", ".join(unknown)
    )
    assert len(RUNNABLE) >= 20


def test_the_extractor_reads_markers_and_indented_fences(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "Intro\n\n<!-- docs-test: servers=redis exit=2\nx = 1\n-->\n```bash\nmodel-engine-infra providers\n```\n\n"
        "1. step\n\n   ```python\n   print('hi')\n   ```\n\n<!-- a plain comment -->\n```text\nout\n```\n"
    )
    first, second, third = extract(page)
    assert (first.line, first.lang, first.options, first.setup) == (
        6,
        "bash",
        {"servers": "redis", "exit": "2"},
        "x = 1",
    )
    assert (second.line, second.lang, second.code, second.options) == (12, "python", "print('hi')", {})
    assert (third.lang, third.options, third.setup) == ("text", {}, "")


def test_shell_commands_are_split_like_bash() -> None:
    code = (
        "A=1 model-engine-infra doctor --json && echo ok  # note\nmodel-engine-infra images \\\n  check --tag 'a b'\n"
    )
    assert simple_commands(code) == [
        ["A=1", "model-engine-infra", "doctor", "--json"],
        ["echo", "ok"],
        ["model-engine-infra", "images", "check", "--tag", "a b"],
    ]
    assert library_argv([".venv/bin/model-engine-infra", "demo"]) == [
        sys.executable,
        "-m",
        "model_engine_infra.cli",
        "demo",
    ]
    assert library_argv(["python", "-m", "model_engine_infra.testing.netsim"]) == [
        sys.executable,
        "-m",
        "model_engine_infra.testing.netsim",
    ]
    assert library_argv(["pip", "install", "x"]) is None


@pytest.mark.timeout(1800)
@pytest.mark.parametrize("context", RUNNABLE, ids=[block.id for block in RUNNABLE], indirect=True)
def test_doc_block(context: Context) -> None:
    block = context.block
    if block.lang in PYTHON:
        if block.options.get("run") == "pytest":
            test_file = context.folder / "test_doc_block.py"
            test_file.write_text(block.setup + "\n\n" + block.code + "\n")
            done = subprocess.run(
                [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", test_file.name],
                cwd=context.folder,
                env=context.env,
                capture_output=True,
                text=True,
                timeout=COMMAND_TIMEOUT,
            )
            assert done.returncode == 0, f"{block.id}:\n{done.stdout}\n{done.stderr}"
            assert " passed" in done.stdout, done.stdout
        else:
            tests = [
                n.name for n in ast.parse(block.code).body if isinstance(n, FUNCTIONS) and n.name.startswith("test")
            ]
            assert not tests, f"{block.id} defines {tests}: mark it run=pytest so they run"
            run_python(context, block.code)
    elif block.lang in SHELL:
        run_shell(context)
    elif block.lang in YAML:
        document = yaml.safe_load(block.code)
        if block.options.get("yaml") == "data":
            assert document is not None, f"{block.id}: empty YAML"
            return
        assert isinstance(document, dict), f"{block.id}: a config block must be a mapping"
        (context.folder / "values.yaml").write_text(block.code)
        argv = [sys.executable, "-m", "model_engine_infra.cli", "config", "check", "--config", "values.yaml"]
        if block.options.get("yaml") == "fragment":  # a few keys shown in context: no error, findings allowed
            env, folder = context.env, context.folder
            done = subprocess.run([*argv, "--json"], cwd=folder, env=env, capture_output=True, text=True)
            assert json.loads(done.stdout)["errors"] == [], f"{block.id}:\n{done.stdout}\n{done.stderr}"
            return
        run_command(context, argv, context.env)
    elif block.lang == "json":
        json.loads(block.code)
    else:
        import tomllib

        tomllib.loads(block.code)
