"""Preflight doctor: the configuration check, then every live probe at once, within one time limit.

``diagnose(config)`` returns a `DoctorReport`, plain data the CLI renders (``model-engine-infra
doctor``); it imports neither typer nor rich. Every probe goes through `build_infra` like a service
would (see `probes`). A config error stops the run; a high-severity finding fails the config check
but the live probes still run, so one report shows everything to change. The live probes run
concurrently in threads: all of them answer, or are reported as hanging, within ``timeout``
seconds. docs/doctor.md lists every check.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config.model import InfraConfig
from ..errors import ProviderUnavailableError
from ..infra import Infra, build_infra
from ..redact import redact_text, scrub_exception_chain
from . import probes
from .probes import LIVE_PROBES, Probe, ProbeContext, ProbeFailed, Skip, Verdict, Warn

CHECKS = ("config", "dependencies", *(p.name for p in LIVE_PROBES))
DEFAULT_TIMEOUT = 5.0
CLOSE_SECONDS = 5.0  # closing the components after a hung probe must not hang the doctor


@dataclass
class CheckResult:
    """One check: its verdict, what it saw, and (when it failed) what to change."""

    name: str
    verdict: Verdict
    message: str
    fix: str | None = None
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "verdict": self.verdict,
            "message": self.message,
            "fix": self.fix,
            "seconds": round(self.seconds, 3),
        }


@dataclass
class DoctorReport:
    """Every check in `CHECKS` order, and which provider and configuration source were judged."""

    provider: str | None = None
    provider_source: str | None = None
    config_sources: list[str] = field(default_factory=list)
    results: list[CheckResult] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        verdicts = {r.verdict for r in self.results}
        return 1 if "fail" in verdicts else 2 if "warn" in verdicts else 0

    def result(self, name: str) -> CheckResult:
        for result in self.results:
            if result.name == name:
                return result
        raise KeyError(name)

    def as_dict(self) -> dict[str, Any]:
        return {
            "exit_code": self.exit_code,
            "provider": self.provider,
            "provider_source": self.provider_source,
            "config_sources": list(self.config_sources),
            "checks": [r.as_dict() for r in self.results],
        }


OnResult = Callable[[CheckResult], None]


def diagnose(
    config: InfraConfig | str | os.PathLike[str] | None = None,
    *,
    offline: bool = False,
    timeout: float = DEFAULT_TIMEOUT,
    env: Mapping[str, str] | None = None,
    image_tags: Mapping[str, str] | None = None,
    infra_factory: Callable[[InfraConfig], Infra] = build_infra,
    on_result: OnResult | None = None,
) -> DoctorReport:
    """Check ``config`` (an `InfraConfig`, a file path, or None for the deployment's files) and its services.

    ``offline`` runs only the checks that need no network. ``on_result`` is called, in the calling
    thread, with each result as it arrives (the CLI's live progress).
    """
    return Doctor(
        config,
        env=env,
        offline=offline,
        timeout=timeout,
        image_tags=image_tags,
        infra_factory=infra_factory,
        on_result=on_result,
    ).run()


class Doctor:
    """One run of the doctor; `diagnose` is the usual way in."""

    def __init__(
        self,
        config: InfraConfig | str | os.PathLike[str] | None = None,
        *,
        env: Mapping[str, str] | None = None,
        offline: bool = False,
        timeout: float = DEFAULT_TIMEOUT,
        image_tags: Mapping[str, str] | None = None,
        infra_factory: Callable[[InfraConfig], Infra] = build_infra,
        on_result: OnResult | None = None,
    ) -> None:
        self.source = config
        self.env = env
        self.offline = offline
        self.timeout = timeout
        self.image_tags = dict(image_tags or {})
        self.infra_factory = infra_factory
        self.on_result = on_result
        self.report = DoctorReport()

    def run(self) -> DoctorReport:
        config = self._config_check()
        if config is None:
            return self.report
        started = time.perf_counter()
        self._add(_outcome("dependencies", lambda: probes.check_dependencies(config), None, started))
        if self.offline:
            return self.report
        infra = self.infra_factory(config)
        try:
            self._live_probes(config, infra)
        finally:
            _bounded(infra.close, CLOSE_SECONDS)  # a broken component must not hide the report
        return self.report

    # --- config ------------------------------------------------------------------------------------
    def _config_check(self) -> InfraConfig | None:
        """`probes.check_config`; on an error the run stops there (nothing else can be judged)."""
        started = time.perf_counter()
        check = probes.check_config(self.source, env=self.env)
        self._describe_sources(check.config)
        verdict, message = check.verdict()
        fix = "correct the key named above, in the file or variable named" if check.errors else None
        self._add(CheckResult("config", verdict, message, fix, time.perf_counter() - started))
        return None if check.errors else check.config

    def _describe_sources(self, config: InfraConfig | None) -> None:
        report = self.report
        if config is not None:
            report.provider = config.cloud_provider
            report.provider_source = config.source_of("cloud_provider")
        report.config_sources = config_sources(self.source, self.env)

    # --- live probes -------------------------------------------------------------------------------
    def _live_probes(self, config: InfraConfig, infra: Infra) -> None:
        """Every probe in its own daemon thread; results arrive here as they finish, until the deadline."""
        started = time.monotonic()
        deadline = started + self.timeout
        # probes stop their own waits a little early, so their message beats "no answer"
        context = ProbeContext(config, infra, deadline - min(1.0, self.timeout / 10), self.image_tags)
        answers: queue.Queue[CheckResult] = queue.Queue()
        for probe in LIVE_PROBES:
            threading.Thread(
                target=lambda probe=probe: answers.put(_run_probe(probe, context)),  # type: ignore[misc]
                name=f"doctor-{probe.name}",
                daemon=True,  # a probe that hangs must not keep the process alive
            ).start()
        done: dict[str, CheckResult] = {}
        while len(done) < len(LIVE_PROBES):
            try:
                result = answers.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            done[result.name] = result
            if self.on_result is not None:
                self.on_result(result)
        for probe in LIVE_PROBES:  # CHECKS order, whatever order they finished in
            if probe.name not in done:
                hung = CheckResult(
                    probe.name,
                    "fail",
                    f"no answer within {self.timeout:g} s: the service is unreachable or hangs",
                    probe.fix(config),
                    time.monotonic() - started,
                )
                done[probe.name] = hung
                if self.on_result is not None:
                    self.on_result(hung)
            self.report.results.append(done[probe.name])

    def _add(self, result: CheckResult) -> None:
        self.report.results.append(result)
        if self.on_result is not None:
            self.on_result(result)


def _run_probe(probe: Probe, context: ProbeContext) -> CheckResult:
    return _outcome(probe.name, lambda: probe.run(context), probe.fix(context.config), time.perf_counter())


def _outcome(name: str, check: Callable[[], str], fix: str | None, started: float) -> CheckResult:
    """Run ``check``; every exception becomes a verdict, never a crash."""
    verdict: Verdict
    own_fix: str | None = None
    try:
        verdict, message = "ok", check()
    except Skip as why:
        verdict, message = "skip", str(why)
    except Warn as why:
        verdict, message = "warn", str(why)
    except ProbeFailed as err:
        verdict, message, own_fix = "fail", str(err), err.fix
    except ProviderUnavailableError as err:
        # A provider without this component: nothing to check. A missing SDK: the service
        # itself would fail here, so the doctor must too.
        verdict, message = ("fail" if err.extra or err.missing_module else "skip"), str(err)
    except Exception as err:
        scrub_exception_chain(err)  # an SDK's message may quote a URL with its password
        verdict, message = "fail", f"{type(err).__name__}: {err}"
    shown_fix = (own_fix or fix) if verdict == "fail" else None
    return CheckResult(name, verdict, redact_text(message), shown_fix, time.perf_counter() - started)


def _bounded(action: Callable[[], object], seconds: float) -> None:
    """Run ``action`` in a daemon thread for at most ``seconds``; its errors are dropped."""

    def target() -> None:
        try:
            action()
        except Exception:
            pass

    thread = threading.Thread(target=target, name="doctor-close", daemon=True)
    thread.start()
    thread.join(seconds)


def config_sources(source: InfraConfig | str | os.PathLike[str] | None, env: Mapping[str, str] | None) -> list[str]:
    """The files the configuration was read from, or a phrase saying there were none."""
    from ..config.loader import INFRA_FILE_ENV, SERVICE_FILE_ENV

    if isinstance(source, InfraConfig):
        files = _files_in(source)
    elif source is not None:
        files = [str(Path(source))]
    else:  # what load_config reads when given no path
        environ = os.environ if env is None else env
        files = [environ[var] for var in (INFRA_FILE_ENV, SERVICE_FILE_ENV) if environ.get(var)]
    return files or ["no config file (defaults and environment)"]


def _files_in(config: InfraConfig) -> list[str]:
    files: list[str] = []
    for where in config.sources.values():
        if where.startswith(("default", "env:")) or where == "argument":
            continue
        path = where.rsplit(":", 1)[0]
        if path not in files:
            files.append(path)
    return files
