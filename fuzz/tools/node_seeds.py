#!/usr/bin/env python3
"""Seeds of the bookie_wire, raft_frame and metadata_apply fuzz targets.

Usage: node_seeds.py CLUSTER_CAPTURE_DIR FUZZ_DIR

- raft_frame: captured Raft frames (fuzz/tools/capture_cluster.sh) re-framed as the target's
  input (selector 0 + one request frame, selector 1 + one reply frame), a few per message kind
  and size, plus one input of several frames back to back;
- bookie_wire: captured bookie frame bodies (selector 0 requests, 1 responses) plus one hand-built
  request and response per op code, following the format documented in
  storage/src/bookie_net/protocol/mod.rs;
- metadata_apply: a few pseudo-random byte strings (fixed seed): the target builds commands from
  any bytes.
"""
import collections
import os
import random
import struct
import sys

cap, fuzz = sys.argv[1], sys.argv[2]


def write(target, name, data):
    d = os.path.join(fuzz, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def read_dir(sub):
    d = os.path.join(cap, sub)
    out = []
    for n in sorted(os.listdir(d)) if os.path.isdir(d) else []:
        with open(os.path.join(d, n), "rb") as f:
            out.append(f.read())
    return out


# raft_frame
for sel, sub in ((0, "raft-req"), (1, "raft-rep")):
    by_kind = collections.defaultdict(list)
    for body in read_dir(sub):
        kind = body[:40].split(b":")[0].strip(b'{"')
        by_kind[kind].append(body)
    for kind, bodies in by_kind.items():
        bodies = sorted({len(b): b for b in bodies}.values(), key=len)
        for i, b in enumerate([bodies[0], bodies[len(bodies) // 2], bodies[-1]]):
            write("raft_frame", f"{sub}-{kind.decode(errors='replace')}-{i}", bytes([sel]) + struct.pack(">I", len(b)) + b)
    several = b"".join(struct.pack(">I", len(b)) + b for b in read_dir(sub)[:4])
    write("raft_frame", f"{sub}-several", bytes([sel]) + several)

# bookie_wire: captured
for sel, sub in ((0, "bookie-req"), (1, "bookie-rep")):
    seen = set()
    for body in read_dir(sub):
        key = (body[0], len(body) // 64)
        if key in seen:
            continue
        seen.add(key)
        write("bookie_wire", f"{sub}-op{body[0]}-{len(seen)}", bytes([sel]) + body)

# bookie_wire: one request and one response per op, built by hand
Q = lambda v: struct.pack(">Q", v)  # noqa: E731
I = lambda v: struct.pack(">I", v)  # noqa: E731
OPT = lambda v: b"\0" + Q(0) if v is None else b"\1" + Q(v)  # noqa: E731
payload = b"p" * 10
reqs = {
    "add": bytes([1]) + Q(7) + Q(3) + Q(1) + OPT(0) + Q(100) + I(2) + Q(5000) + OPT(0) + b"\0" + I(len(payload)) + payload,
    "add-first": bytes([1]) + Q(8) + Q(1) + Q(0) + OPT(None) + Q(0) + I(1) + Q(1) + OPT(None) + b"\1" + I(0),
    "read": bytes([2]) + Q(9) + Q(1) + Q(0) + Q(5) + I(1 << 20),
    "entry-for-seq": bytes([3]) + Q(10) + Q(1) + Q(42),
    "entry-for-txid": bytes([4]) + Q(11) + Q(1) + Q(1000),
    "last-entry": bytes([5]) + Q(12) + Q(1),
    "fence": bytes([6]) + Q(13) + Q(1),
    "delete": bytes([7]) + Q(14) + Q(2),
    "read-lac": bytes([8]) + Q(15) + Q(1) + OPT(3) + I(10),
    "ledger-info": bytes([9]) + Q(16) + Q(1),
}
for name, body in reqs.items():
    write("bookie_wire", f"gen-req-{name}", b"\0" + body)
ROW = Q(0) + Q(100) + I(2) + Q(5000) + I(len(payload))
ok = lambda op, rid: bytes([op, 0]) + Q(rid)  # noqa: E731
resps = {
    "added": ok(1, 7),
    "entries": ok(2, 9) + I(1) + ROW + payload,
    "row": ok(3, 10) + b"\1" + ROW,
    "no-row": ok(5, 12) + b"\0",
    "deleted": ok(7, 14),
    "lac": ok(8, 15) + OPT(4),
    "info": ok(9, 16) + b"\1" + Q(1) + OPT(0) + Q(10) + OPT(0),
    "err-fenced": bytes([1, 2]) + Q(7) + Q(7) + Q(0) + Q(0) + struct.pack(">H", 0) + struct.pack(">H", 0),
    "err-io": bytes([2, 1]) + Q(9) + Q(0) + Q(0) + Q(0) + struct.pack(">H", 4) + b"path" + struct.pack(">H", 3) + b"bad",
}
for name, body in resps.items():
    write("bookie_wire", f"gen-resp-{name}", b"\1" + body)

# metadata_apply
rng = random.Random(15)
for n, size in enumerate((16, 64, 256, 1024, 4096)):
    write("metadata_apply", f"random-{n}", bytes(rng.randrange(256) for _ in range(size)))
print("node_seeds: done")
