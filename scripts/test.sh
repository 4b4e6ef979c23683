#!/usr/bin/env bash
# Install everything the tests need (Python deps into .venv; redis-server, docker-registry, Azurite,
# moto server and fake-gcs-server per ../shared/services.md), then run lint, types, unit and
# integration tests. Servers are started and stopped by the tests themselves, on free ports.
# Under CI=true an integration test whose server is missing fails instead of skipping.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh dev
PYTHON=.venv/bin/python scripts/install-test-servers.sh
export PATH="$PWD/.venv/bin:$PATH"
.venv/bin/nox -s lint typecheck
.venv/bin/python -m pytest tests integration -q -p no:cacheprovider "$@"
