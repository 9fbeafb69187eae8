#!/usr/bin/env bash
# Prepares the patched dependencies the fuzz build uses (fuzz/Cargo.toml [patch.crates-io]):
# kafka-protocol 0.18.0 with fuzz/patches/kafka-protocol-0.18.0-bounded-capacity.patch applied,
# extracted from cargo's download cache into fuzz/target/patched/ (gitignored). Idempotent.
#
# Why: kafka-protocol 0.18.0 reserves `Vec` capacity from array lengths read off the wire, so a
# 50-byte request aborts any process decoding it (see fuzz/README.md, "Bugs found"). The fuzz
# build bounds those reservations so the kafka_request target can explore past that crash; the
# broker built by the main workspace is NOT patched by this.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
name=kafka-protocol-0.18.0
patch_file="patches/$name-bounded-capacity.patch"
dest="target/patched/$name"
stamp="$dest/.distlog-patched"
if [ -f "$stamp" ] && cmp -s "$stamp" "$patch_file"; then
  exit 0
fi
cache="${CARGO_HOME:-$HOME/.cargo}/registry/cache"
crate=$(ls "$cache"/*/"$name.crate" 2>/dev/null | head -1 || true)
if [ -z "$crate" ]; then
  (cd .. && timeout 900 cargo fetch)
  crate=$(ls "$cache"/*/"$name.crate" | head -1)
fi
rm -rf "$dest"
mkdir -p target/patched
tar xzf "$crate" -C target/patched
patch -s -p1 -d "$dest" <"$patch_file"
cp "$patch_file" "$stamp"
echo "patch_deps: $dest ready"
