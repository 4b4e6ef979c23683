"""Run the rules of a configuration: the generic ones and those of every backend it selects.

``load_config`` calls `check` (error-level rules: a bad value fails at start-up, naming its key);
``config check`` and the doctor call `findings` (the risky-but-valid values). Each rule is defined
once — in ``config.validation`` / ``config.findings`` when generic, beside its backend otherwise
(``brokers.sqs`` for the SQS templates, ``image_reference`` for the Artifact Registry prefix) —
and found here through the registry, so a plugin backend's rules run the same way.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .rules import Finding, Rule, run_errors, run_findings

if TYPE_CHECKING:
    from .config.model import InfraConfig


def backend_rules(config: InfraConfig) -> list[Rule]:
    """The rules of the backends ``config`` selects, then the rules about choosing a broker."""
    from .brokers import SELECTION_RULES
    from .errors import UnknownBackendError
    from .registry import backend_rules as rules_of
    from .selection import RULES as NAMING_RULES
    from .selection import selected_backends

    rules: list[Rule] = [*NAMING_RULES, *SELECTION_RULES]
    for kind, name in selected_backends(config).items():
        if name is None:
            continue
        try:
            rules.extend(rules_of(kind, name))
        except UnknownBackendError:
            continue  # an unknown name is a rule's failure of its own (broker-known), or a profile's bug
    return rules


def check(config: InfraConfig) -> None:
    """Raise the first `ConfigError` among the error-level rules of the selected backends."""
    run_errors(config, backend_rules(config))


def all_rules(config: InfraConfig) -> list[Rule]:
    from .config.findings import CONFIG_RULES

    return [*CONFIG_RULES, *backend_rules(config)]


def findings(config: InfraConfig) -> list[Finding]:
    """Every finding (valid but risky values) of ``config``, most severe first."""
    return run_findings(config, all_rules(config))
