#!/usr/bin/env bash
# Install espeak-ng and the MBROLA diphone voices used by scripts/make_tts_corpus.py.
# Debian 12 (bookworm) or later. Idempotent: safe to run again.
set -euo pipefail

# The 62 voices scripts/make_tts_corpus.py uses (VOICES there; tests check the two agree).
VOICE_PACKAGES=(
    mbrola-af1 mbrola-br1 mbrola-br2 mbrola-br3 mbrola-br4 mbrola-ca1 mbrola-ca2 mbrola-cr1
    mbrola-cz2 mbrola-de1 mbrola-de2 mbrola-de3 mbrola-de4 mbrola-de5 mbrola-de6 mbrola-de7
    mbrola-de8 mbrola-ee1 mbrola-en1 mbrola-es1 mbrola-es2 mbrola-es3 mbrola-es4 mbrola-fr1
    mbrola-fr2 mbrola-fr3 mbrola-fr4 mbrola-fr5 mbrola-fr6 mbrola-fr7 mbrola-gr1 mbrola-gr2
    mbrola-hu1 mbrola-id1 mbrola-ir1 mbrola-it1 mbrola-it2 mbrola-it3 mbrola-it4 mbrola-jp1
    mbrola-jp2 mbrola-jp3 mbrola-la1 mbrola-lt1 mbrola-lt2 mbrola-ma1 mbrola-mx1 mbrola-mx2
    mbrola-nl2 mbrola-nl3 mbrola-pl1 mbrola-pt1 mbrola-ro1 mbrola-sw1 mbrola-sw2 mbrola-tl1
    mbrola-tr1 mbrola-tr2 mbrola-us1 mbrola-us2 mbrola-us3 mbrola-vz1
)
PACKAGES=(espeak-ng mbrola "${VOICE_PACKAGES[@]}")

usage() {
    cat <<EOF
Usage: sudo scripts/install_tts_voices.sh [--help]

Installs espeak-ng, the mbrola synthesiser and ${#VOICE_PACKAGES[@]} MBROLA diphone voices from Debian
(about 450 MB to download, 570 MB on disk):
$(printf '%s\n' "${PACKAGES[@]}" | xargs -n 8 echo ' ')

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

echo "==> enabling contrib and non-free in the Debian apt sources (where missing)"
enable_components
export DEBIAN_FRONTEND=noninteractive
echo "==> apt-get update"
apt-get update
echo "==> apt-get install --no-install-recommends espeak-ng mbrola and ${#VOICE_PACKAGES[@]} voices"
apt-get install -y --no-install-recommends "${PACKAGES[@]}"

# Check: every database is where espeak-ng and make_tts_corpus.py look for it.
missing=()
for pkg in "${VOICE_PACKAGES[@]}"; do
    db="${pkg#mbrola-}"
    [[ -f "/usr/share/mbrola/$db/$db" ]] || missing+=("$db")
done
echo
echo "MBROLA databases installed: $((${#VOICE_PACKAGES[@]} - ${#missing[@]})) of ${#VOICE_PACKAGES[@]}"
if [[ ${#missing[@]} -gt 0 ]]; then
    echo "error: missing: ${missing[*]}" >&2
    exit 1
fi
