# Shared by Scripts/run, Scripts/test and Scripts/bench: install what is missing, every time.
# Sourced, not run.

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export ROOT

log() { printf '==> %s\n' "$*" >&2; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
        echo "error: need root (or sudo) to run: $*" >&2; exit 1
    fi
}

APT_UPDATED=0
# ensure_apt PACKAGE... : installs the Debian packages that are not installed yet.
ensure_apt() {
    local missing=()
    for package in "$@"; do
        dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    log "installing ${missing[*]}"
    if [ "$APT_UPDATED" -eq 0 ]; then
        as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
        APT_UPDATED=1
    fi
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# ensure_pip MODULE PACKAGE : installs a Python package if the module does not import.
ensure_pip() {
    python3 -c "import $1" 2>/dev/null && return 0
    log "installing Python package $2"
    python3 -m pip install --quiet --disable-pip-version-check "$2" 2>/dev/null \
        || python3 -m pip install --quiet --disable-pip-version-check --break-system-packages "$2"
}

ensure_swift() {
    command -v swift >/dev/null || { [ -x /opt/swift/usr/bin/swift ] && export PATH="/opt/swift/usr/bin:$PATH"; }
    command -v swift >/dev/null || { echo "error: Swift 6 toolchain not found (expected swift on PATH)" >&2; exit 1; }
}

# The system libraries the package links: libsodium (CSodium) and SQLite (GRDB).
ensure_build_dependencies() {
    ensure_swift
    ensure_apt pkg-config libsodium-dev libsqlite3-dev
}

# A free TCP port on loopback.
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# wait_http URL SECONDS : waits until URL answers 200.
wait_http() {
    local deadline=$((SECONDS + $2))
    until curl -fsS -o /dev/null "$1" 2>/dev/null; do
        [ $SECONDS -ge $deadline ] && return 1
        sleep 0.1
    done
}
