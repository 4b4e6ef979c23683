#!/usr/bin/env bash
# Create .venv and install model-engine-infra into it with the given extras (default: local).
# Usage: scripts/setup.sh [EXTRAS]      e.g. scripts/setup.sh dev
set -euo pipefail
cd "$(dirname "$0")/.."
EXTRAS="${1:-local}"
PY="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
    "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
.venv/bin/python -m pip install -q -e ".[${EXTRAS}]"
