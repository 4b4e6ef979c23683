"""SQS policy and tag templates: ``${placeholder}`` substitution that always yields valid JSON.

Values are JSON-escaped before they are put in, so an endpoint name with a quote cannot break
the document. Used by the config check (offline, with sample values) and by the SQS delegate.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from ..errors import ConfigError

# ``team`` comes from the endpoint's ``team`` label, as llm-engine fills it.
PLACEHOLDERS = ("queue_name", "endpoint_id", "endpoint_name", "endpoint_created_by", "team")
_PLACEHOLDER = re.compile(r"\$\{([^}]*)\}")
SAMPLE_VALUES = {
    "queue_name": "launch-endpoint-id-sample",
    "endpoint_id": "sample",
    "endpoint_name": 'sample "name"',
    "endpoint_created_by": "sample-user",
    "team": "sample-team",
}


def placeholders_in(template: str) -> list[str]:
    return _PLACEHOLDER.findall(template)


def render_template(template: str, values: Mapping[str, str], *, key: str) -> Any:
    """Substitute placeholders and parse the result as JSON; errors name ``key``."""
    unknown = sorted({name for name in placeholders_in(template) if name not in PLACEHOLDERS})
    if unknown:
        raise ConfigError(
            f"unknown placeholder(s) {', '.join('${' + n + '}' for n in unknown)}",
            key=key,
            value=unknown[0],
            fix="use only " + ", ".join("${" + p + "}" for p in PLACEHOLDERS),
        )

    def substitute(match: re.Match[str]) -> str:
        return json.dumps(str(values[match.group(1)]))[1:-1]

    rendered = _PLACEHOLDER.sub(substitute, template)
    try:
        return json.loads(rendered)
    except RecursionError:
        raise ConfigError(
            "is nested too deeply to parse",
            key=key,
            value=template.strip()[:80],
            fix="write the template as a JSON document of a few levels (a policy or a tag object)",
        ) from None
    except json.JSONDecodeError as err:
        raise ConfigError(
            f"not valid JSON after placeholder substitution: {err.msg} at line {err.lineno}, column {err.colno}",
            key=key,
            value=template.strip()[:80],
            fix="write the template as a JSON document with ${...} placeholders inside strings",
        ) from None
