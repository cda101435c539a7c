# shellcheck shell=bash
# Shared by Scripts/run, Scripts/test and Scripts/bench: install what is missing, every time.
# Sourced, not run. Never prompts when CI is set or standard input is not a terminal.

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export ROOT

log() { printf '==> %s\n' "$*" >&2; }

# Whether a person can answer a prompt (sudo's password): not under CI, and stdin a terminal.
interactive() { [ -z "${CI:-}" ] && [ -t 0 ]; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null; then
        if interactive; then sudo "$@"; else sudo -n "$@"; fi
    else
        echo "error: need root (or sudo) to run: $*" >&2
        exit 1
    fi
}

# have_package PACKAGE : whether what the Debian package PACKAGE provides is here. Checked by use
# where the scripts know how (so a tool or library installed some other way counts), else with dpkg.
have_package() {
    case "$1" in
        curl | git | pkg-config | python3 | wrk) command -v "$1" >/dev/null 2>&1 ;;
        libsodium-dev) command -v pkg-config >/dev/null 2>&1 && pkg-config --exists libsodium ;;
        libsqlite3-dev) command -v pkg-config >/dev/null 2>&1 && pkg-config --exists sqlite3 ;;
        python3-venv) command -v python3 >/dev/null 2>&1 && python3 -c 'import ensurepip, venv' 2>/dev/null ;;
        python3-pip) command -v python3 >/dev/null 2>&1 && python3 -m pip --version >/dev/null 2>&1 ;;
        *) dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed" ;;
    esac
}

# The names of Debian packages elsewhere, for the message on a machine without apt-get.
other_names() { # dnf|brew PACKAGE...
    local manager="$1" package
    shift
    for package in "$@"; do
        case "$manager:$package" in
            dnf:pkg-config) printf ' pkgconf-pkg-config' ;;
            dnf:libsodium-dev) printf ' libsodium-devel' ;;
            dnf:libsqlite3-dev) printf ' sqlite-devel' ;;
            dnf:python3-venv) ;; # part of python3
            brew:libsodium-dev) printf ' libsodium' ;;
            brew:libsqlite3-dev) printf ' sqlite' ;;
            brew:python3) printf ' python' ;;
            brew:python3-venv | brew:python3-pip) ;; # part of python
            brew:ca-certificates) ;;
            *) printf ' %s' "$package" ;;
        esac
    done
}

APT_UPDATED=0
# ensure_apt PACKAGE... : installs the Debian packages whose contents are missing. Without apt-get,
# says what to install by hand and stops.
ensure_apt() {
    local missing=() package
    for package in "$@"; do
        have_package "$package" || missing+=("$package")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    if ! command -v apt-get >/dev/null 2>&1; then
        {
            echo "error: missing: ${missing[*]} (Debian package names), and this machine has no apt-get to install them."
            echo "       Install them by hand, then run this again; for example"
            echo "         Fedora, RHEL:  sudo dnf install$(other_names dnf "${missing[@]}")"
            echo "         macOS:         brew install$(other_names brew "${missing[@]}")"
        } >&2
        exit 1
    fi
    if [ "$(id -u)" -ne 0 ] && ! command -v sudo >/dev/null; then
        echo "error: missing: ${missing[*]}; install them as root (apt-get install ${missing[*]}), or run this as root" >&2
        exit 1
    fi
    log "installing ${missing[*]}"
    if [ "$APT_UPDATED" -eq 0 ]; then
        as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq \
            || { echo "error: apt-get update failed (as root, or with passwordless sudo when not interactive)" >&2; exit 1; }
        APT_UPDATED=1
    fi
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
        || { echo "error: could not install ${missing[*]}; install them by hand: apt-get install ${missing[*]}" >&2; exit 1; }
}

# The project's Python packages live in a virtual environment under .build, never in the system
# Python. ensure_venv creates it where missing (or broken) and puts it first on PATH, so `python3`
# from then on, in this script and the scripts it runs, is the environment's.
VENV="$ROOT/.build/venv"
ensure_venv() {
    if ! "$VENV/bin/python3" -c '' 2>/dev/null; then
        ensure_apt python3 python3-venv
        log "creating the Python virtual environment $VENV"
        python3 -m venv --clear "$VENV"
    fi
    case ":$PATH:" in
        *":$VENV/bin:"*) ;;
        *) export PATH="$VENV/bin:$PATH" ;;
    esac
}

# ensure_pip MODULE PACKAGE : installs a Python package into .build/venv if the module does not import.
ensure_pip() {
    ensure_venv
    "$VENV/bin/python3" -c "import $1" 2>/dev/null && return 0
    log "installing Python package $2 into $VENV"
    "$VENV/bin/python3" -m pip install --quiet --disable-pip-version-check "$2"
}

ensure_swift() {
    command -v swift >/dev/null || { [ -x /opt/swift/usr/bin/swift ] && export PATH="/opt/swift/usr/bin:$PATH"; }
    command -v swift >/dev/null || {
        echo "error: Swift 6 toolchain not found (expected swift on PATH); install it from https://www.swift.org/install/" >&2
        exit 1
    }
}

# What `swift build` needs besides the toolchain: git (SwiftPM fetches the dependencies with it,
# over HTTPS) and the system libraries the package links, libsodium (CSodium) and SQLite (GRDB).
ensure_build_dependencies() {
    ensure_swift
    have_package git || ensure_apt git ca-certificates
    ensure_apt pkg-config libsodium-dev libsqlite3-dev
}

# A free TCP port on loopback.
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# wait_http URL SECONDS : waits until URL answers 200. Needs curl (ensure_apt curl).
wait_http() {
    local deadline=$((SECONDS + $2))
    until curl -fsS -o /dev/null "$1" 2>/dev/null; do
        [ $SECONDS -ge $deadline ] && return 1
        sleep 0.1
    done
}

# connect_host HOST : the address to reach a listener bound to HOST (the wildcard ones: loopback).
connect_host() {
    case "$1" in
        0.0.0.0 | "" | "::" | "[::]") echo 127.0.0.1 ;;
        *) echo "$1" ;;
    esac
}

# port_taken HOST PORT : whether something already accepts TCP connections on HOST:PORT.
port_taken() {
    local host
    host="$(connect_host "$1")"
    if command -v timeout >/dev/null; then
        timeout 2 bash -c 'exec 3<>"/dev/tcp/$0/$1"' "$host" "$2" 2>/dev/null
    else
        bash -c 'exec 3<>"/dev/tcp/$0/$1"' "$host" "$2" 2>/dev/null
    fi
}

# ensure_port_free HOST PORT WHAT : stops with a clear message if HOST:PORT is taken, so that a
# process left from an earlier run cannot answer in place of the one about to start.
ensure_port_free() {
    [ "$2" = 0 ] && return 0
    port_taken "$1" "$2" || return 0
    {
        echo "error: something already listens on $1 port $2, where $3 would listen."
        if command -v ss >/dev/null; then
            ss -Hltnp "sport = :$2" 2>/dev/null | sed 's/^/         /'
        fi
        echo "       Stop it (a vault or acquirer-sim left from an earlier run?) or choose another port."
    } >&2
    exit 1
}

# wait_listening PID FILE PATTERN SECONDS WHAT : waits until process PID has written a line matching
# PATTERN to FILE (its standard output: `vault serve` and `vault acquirer-sim` print "… listening on
# http://HOST:PORT" once they hold the port). Fails if PID ends first or SECONDS pass.
wait_listening() {
    local pid="$1" file="$2" pattern="$3" deadline=$((SECONDS + $4)) what="$5"
    until grep -q -- "$pattern" "$file" 2>/dev/null; do
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "error: $what exited before it was listening (its messages are above)" >&2
            return 1
        fi
        if [ $SECONDS -ge $deadline ]; then
            echo "error: $what was not listening after $4 seconds" >&2
            return 1
        fi
        sleep 0.1
    done
}

# listening_port FILE PATTERN : the port in the first line of FILE that matches PATTERN and ends
# with http://HOST:PORT.
listening_port() {
    grep -m1 -- "$2" "$1" | sed -n 's|.*http://.*:\([0-9][0-9]*\)$|\1|p'
}
