#!/bin/sh
# Installs what tokmark needs to build and test on Debian 12 (run as root, or
# through sudo).  Each package and why:
#   build-essential, pkg-config  the C compiler, make, and dependency lookup
#   libsodium-dev   key generation, guarded key memory, BLAKE2b KDF and key IDs
#   libssl-dev      libcrypto: AES (EVP) for the portable backend
#   libcmocka-dev   the unit-test framework
#   libjansson-dev  tests only: reading the JSON Lines vectors
#   locales         tests only: a decimal-comma locale (de_DE.UTF-8) proves that
#                   key files are written and read independently of the locale
set -eu
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq build-essential pkg-config libsodium-dev libssl-dev libcmocka-dev \
    libjansson-dev locales >/dev/null
if ! locale -a 2>/dev/null | grep -qi '^de_DE\.utf-\?8$'; then
    localedef -i de_DE -f UTF-8 de_DE.UTF-8
fi
echo "tokmark: build dependencies installed"
