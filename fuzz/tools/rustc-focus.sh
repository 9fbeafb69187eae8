#!/usr/bin/env bash
# rustc wrapper for the fuzz builds (set in fuzz/.cargo/config.toml): coverage instrumentation
# only where the fuzzing is aimed. cargo-fuzz instruments every crate (its flags come in
# RUSTFLAGS); this keeps them for distlog's own crates, kafka-protocol (the decoder under test)
# and the fuzz package, and drops the sancov pass from everything else (tokio, sled, openraft,
# serde_json, ...). libFuzzer walks every coverage counter after each input, so the broker's
# dependencies cost more time than the code under test; without them the targets run several
# times faster and their coverage feedback is about distlog's code.
rustc=$1
shift
crate=""
prev=""
for a in "$@"; do
    [ "$prev" = --crate-name ] && crate=$a
    prev=$a
done
case "$crate" in
    distlog_* | kafka_protocol | kafka_request | record_batch | bookie_wire | raft_frame | metadata_apply)
        exec "$rustc" "$@" ;;
esac
args=()
for a in "$@"; do
    case "$a" in
        -Cpasses=sancov-module | -Cllvm-args=-sanitizer-coverage-*) ;;
        *) args+=("$a") ;;
    esac
done
exec "$rustc" "${args[@]}"
