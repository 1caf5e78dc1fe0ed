#!/usr/bin/env bash
# Install espeak-ng and the MBROLA diphone voices used by scripts/make_tts_corpus.py.
# Debian 12 (bookworm) or later. Idempotent: safe to run again.
set -euo pipefail

VOICE_PACKAGES=(
    mbrola-us1 mbrola-us2 mbrola-us3 mbrola-en1
    mbrola-de1 mbrola-de2 mbrola-de3 mbrola-de4 mbrola-de5 mbrola-de6
    mbrola-fr1 mbrola-fr4 mbrola-af1 mbrola-gr2 mbrola-hu1 mbrola-nl2
    mbrola-pl1 mbrola-ro1 mbrola-sw1 mbrola-sw2
)
PACKAGES=(espeak-ng mbrola "${VOICE_PACKAGES[@]}")

usage() {
    cat <<EOF
Usage: sudo scripts/install_tts_voices.sh [--help]

Installs espeak-ng, the mbrola synthesiser and 20 MBROLA diphone voices from Debian:
  ${PACKAGES[*]}

mbrola is in Debian's 'contrib' component and the voices in 'non-free', so the script first
adds 'contrib non-free' where missing: to the Components: line of every stanza in
/etc/apt/sources.list.d/*.sources (deb822, the Debian 12 default) whose URIs point at a Debian
archive (.../debian or .../debian-security), and to every such 'deb' line of
/etc/apt/sources.list. Each changed file is first saved once as <file>.csc-bak. Then it runs
'apt-get update' and 'apt-get install --no-install-recommends'. Running it again changes
nothing that is already in place.

LICENCE: NON-COMMERCIAL, NON-MILITARY USE ONLY. The MBROLA diphone databases may only be used
with the MBROLA program and may not be sold or incorporated into any product that is sold
without the database owner's permission; mbrola-de4 may not be used for military purposes
(see /usr/share/doc/mbrola-*/copyright after installation). A corpus synthesised with them
(scripts/make_tts_corpus.py) must be treated the same way: research use only, no commercial or
military use, do not redistribute it with a product.
EOF
}

if [[ "${1:-}" == "-h" || "${1:-}" == "--help" ]]; then
    usage
    exit 0
fi
if [[ $# -gt 0 ]]; then
    echo "error: unknown argument '$1' (try --help)" >&2
    exit 2
fi
if [[ "$(id -u)" -ne 0 ]]; then
    echo "error: this script installs Debian packages and must run as root:" >&2
    echo "  sudo $0" >&2
    exit 1
fi

# Rewrite file $1 with awk program $2; replace it only when something changed, keeping the
# original once as $1.csc-bak.
rewrite_if_changed() {
    local f="$1" program="$2"
    awk "$program" "$f" >"$f.csc-tmp"
    if cmp -s "$f" "$f.csc-tmp"; then
        rm -f "$f.csc-tmp"
    else
        [[ -e "$f.csc-bak" ]] || cp -p "$f" "$f.csc-bak"
        cat "$f.csc-tmp" >"$f"  # keeps the original file's owner and mode
        rm -f "$f.csc-tmp"
        echo "enabled contrib non-free in $f"
    fi
}

# awk helper: append the missing ' contrib' / ' non-free' to a line.
AWK_ADD='function add(line) {
    if (line !~ /[ \t]contrib([ \t]|$)/) line = line " contrib"
    if (line !~ /[ \t]non-free([ \t]|$)/) line = line " non-free"
    return line
}'

# deb822 (Debian 12 default): in every stanza whose URIs point at a Debian archive,
# 'Components: main' -> 'Components: main contrib non-free'. Other stanzas are left alone.
AWK_DEB822="$AWK_ADD"'
function flush(   i) {
    for (i = 1; i <= n; i++) {
        if (debian && buf[i] ~ /^Components:/) buf[i] = add(buf[i])
        print buf[i]
    }
    n = 0; debian = 0
}
/^[ \t]*$/ { flush(); print; next }
{ buf[++n] = $0 }
/^URIs:.*\/debian(-security)?\/?([ \t]|$)/ { debian = 1 }
END { flush() }'

# One-line format: 'deb http://deb.debian.org/debian bookworm main' (+ contrib non-free).
AWK_LIST="$AWK_ADD"'
/^deb(-src)?[ \t]+(\[[^]]*\][ \t]+)?[^ \t]*\/debian(-security)?\/?[ \t]/ { print add($0); next }
{ print }'

enable_components() {
    local f
    shopt -s nullglob
    for f in /etc/apt/sources.list.d/*.sources; do
        rewrite_if_changed "$f" "$AWK_DEB822"
    done
    if [[ -f /etc/apt/sources.list ]]; then
        rewrite_if_changed /etc/apt/sources.list "$AWK_LIST"
    fi
}

enable_components
export DEBIAN_FRONTEND=noninteractive
apt-get update
apt-get install -y --no-install-recommends "${PACKAGES[@]}"

echo
echo "installed MBROLA voices known to espeak-ng:"
espeak-ng --voices=mb | awk 'NR > 1 {print "  " $4 " (" $5 ")"}' | grep -E 'mb-(us[123]|en1|[a-z][a-z][0-9]-en)\b' || true
