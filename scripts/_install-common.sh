# Sourced by scripts/install-*.sh: the checks and the root/apt steps every installer repeats.
# Not run on its own (no shebang, not executable).

have() { command -v "$1" >/dev/null 2>&1; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif have sudo; then
        sudo "$@"
    else
        echo "error: need root (or sudo) to run: $*" >&2
        return 1
    fi
}

apt_install() {  # apt_install PACKAGE...: one apt-get update, then install them (nothing when none are given)
    [ "$#" -gt 0 ] || return 0
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}
