#!/usr/bin/env bash
# Install everything the tests need (Python deps into .venv; redis-server, docker-registry, Azurite,
# moto server and fake-gcs-server: scripts/install-test-servers.sh), then run lint, types, unit and
# integration tests. Servers are started and stopped by the tests themselves, on free ports.
# Under CI=true an integration test whose server is missing fails instead of skipping.
# Every stage runs even when an earlier one fails; the exit code is non-zero if any failed.
set -uo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh dev || exit 1
PYTHON=.venv/bin/python scripts/install-test-servers.sh || exit 1
export PATH="$PWD/.venv/bin:$PATH"

failed=()
.venv/bin/nox -s lint || failed+=(lint)
.venv/bin/nox -s typecheck || failed+=(typecheck)
.venv/bin/python -m pytest tests integration -q -p no:cacheprovider "$@" || failed+=(pytest)

if [ ${#failed[@]} -gt 0 ]; then
    echo "FAILED: ${failed[*]}"
    exit 1
fi
echo "all stages passed: lint, typecheck, tests + integration"
