#!/bin/sh
# build-corpus.sh — the training and held-out text of the reference language
# model (SPEC.md §11), built from Debian packages only:
#   bible-kjv-text   the King James Bible, one document per chapter (1189)
#   fortunes, fortunes-min   the English fortune files, consecutive fortunes
#                    grouped into documents of about 4 KB
#   /usr/share/common-licenses   the licence texts (base-files), one per file
#   man pages        every MAN_EVERY-th page of /usr/share/man/man1 (sorted),
#                    rendered with groff -Tutf8 -man (no hyphenation) and col -b
#
# usage: scripts/build-corpus.sh [OUT]      (default data/corpus; git-ignored)
#
# Writes OUT/train/SOURCE/NAME.txt and OUT/heldout/SOURCE/NAME.txt, one plain
# UTF-8 document per file.  A document is held out when the first byte of the
# SHA-256 of its name "SOURCE/NAME" is below HELDOUT_BYTE (default 26, about
# 10%), so the split is deterministic and does not move when other documents
# come or go.  File lists are sorted (LC_ALL=C), so the corpus is the same on
# every run on the same packages.  Prints the size of each part at the end.
set -eu
export LC_ALL=C
OUT=${1:-data/corpus}
MAN_EVERY=${MAN_EVERY:-10}
HELDOUT_BYTE=${HELDOUT_BYTE:-26}

for tool in bible groff col sha256sum; do
    command -v "$tool" >/dev/null 2>&1 || {
        echo "build-corpus: '$tool' is missing (run scripts/install-deps.sh)" >&2
        exit 1
    }
done
[ -d /usr/share/games/fortunes ] || { echo "build-corpus: no /usr/share/games/fortunes (install fortunes)" >&2; exit 1; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/tokmark-corpus.XXXXXX")
trap 'rm -rf "$tmp"' EXIT INT TERM
mkdir -p "$tmp/train" "$tmp/heldout"

# place SOURCE NAME < text: store one document in its part (empty ones are dropped).
place() {
    cat >"$tmp/doc"
    [ -s "$tmp/doc" ] || return 0
    byte=$(printf '%s' "$1/$2" | sha256sum | cut -c1-2)
    if [ $((0x$byte)) -lt "$HELDOUT_BYTE" ]; then part=heldout; else part=train; fi
    mkdir -p "$tmp/$part/$1"
    mv "$tmp/doc" "$tmp/$part/$1/$2.txt"
}

# ---- the Bible: one document per chapter, verse numbers removed ----
bible -l1000000 'Gen1:1-Rev22:21' </dev/null | awk -v dir="$tmp/bible" '
    BEGIN { system("mkdir -p " dir) }
    /^[^ ].* [0-9]+$/ {               # "Genesis 1", "I Samuel 3": a chapter heading
        if (f != "") close(f)
        name = tolower($0); gsub(/[^a-z0-9]+/, "-", name)
        n = split(name, p, "-"); name = substr(name, 1, length(name) - length(p[n])) sprintf("%03d", p[n])
        f = dir "/" name; print $0 "\n" > f; next
    }
    /^ +[0-9]+ / { sub(/^ +[0-9]+ /, ""); print > f }
'
for f in $(ls "$tmp/bible" | sort); do place bible "$f" <"$tmp/bible/$f"; done
rm -rf "$tmp/bible"

# ---- fortunes: the files of the English packages, ~4 KB documents ----
for pkg in fortunes fortunes-min; do dpkg -L "$pkg" 2>/dev/null || true; done |
    grep '^/usr/share/games/fortunes/[^/]*$' | grep -v '\.\(dat\|u8\)$' | sort -u >"$tmp/fortune-files"
while read -r ff; do
    [ -f "$ff" ] && [ ! -L "$ff" ] || continue
    base=$(basename "$ff")
    mkdir -p "$tmp/fortunes"
    awk -v dir="$tmp/fortunes" -v base="$base" '
        function flush() { if (buf != "") { printf "%s", buf > (dir "/" base "-" sprintf("%03d", k)); close(dir "/" base "-" sprintf("%03d", k)); k++; buf = "" } }
        /^%$/ { if (length(buf) >= 4000) flush(); else if (buf != "") buf = buf "\n"; next }
        { buf = buf $0 "\n" }
        END { flush() }
    ' "$ff"
done <"$tmp/fortune-files"
for f in $(ls "$tmp/fortunes" | sort); do place fortunes "$f" <"$tmp/fortunes/$f"; done
rm -rf "$tmp/fortunes"

# ---- licences ----
for f in $(ls /usr/share/common-licenses | sort); do
    p=/usr/share/common-licenses/$f
    [ -f "$p" ] && [ ! -L "$p" ] || continue # GPL -> GPL-3 etc.: one copy
    place licenses "$f" <"$p"
done

# ---- man pages: every MAN_EVERY-th page of section 1, rendered as text ----
i=0
for p in $(ls /usr/share/man/man1/*.1.gz 2>/dev/null | sort); do
    i=$((i + 1))
    [ $((i % MAN_EVERY)) -eq 0 ] || continue
    [ -L "$p" ] && continue
    name=$(basename "$p" .1.gz)
    zcat "$p" 2>/dev/null | grep -q '^\.so ' && continue # a link to another page
    zcat "$p" 2>/dev/null | groff -Tutf8 -man -rHY=0 -P-c 2>/dev/null | col -bx 2>/dev/null |
        cat -s | place man "$name"
done

rm -rf "$OUT/train" "$OUT/heldout"
mkdir -p "$OUT"
mv "$tmp/train" "$tmp/heldout" "$OUT/"
for part in train heldout; do
    for src in $(ls "$OUT/$part" | sort); do
        printf '%-8s %-9s %6d documents %10d bytes\n' "$part" "$src" "$(ls "$OUT/$part/$src" | wc -l)" \
            "$(cat "$OUT/$part/$src"/* | wc -c)"
    done
    printf '%-8s %-9s %6d documents %10d bytes\n' "$part" total "$(find "$OUT/$part" -type f | wc -l)" \
        "$(find "$OUT/$part" -type f -exec cat {} + | wc -c)"
done
