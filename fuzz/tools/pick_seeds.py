#!/usr/bin/env python3
"""Turns a capture (fuzz/tools/capture.sh) into the committed seed corpora.

Usage: pick_seeds.py CAPTURE_DIR FUZZ_DIR

- corpus/kafka_request: per (api key, version), up to 3 frames of distinct sizes (the smallest,
  the median and the largest), named <api>-v<version>-<n>;
- corpus/record_batch: the v2 record batches found in the captured Produce frames (a batch is
  baseOffset 0, magic 2 at byte 16, and a batchLength that fits the frame), each prefixed with
  the target's 12 parameter bytes (base sequence 100, owner epoch 3), plus a few payloads of two
  batches back to back.
"""
import collections
import os
import struct
import sys

cap, fuzz = sys.argv[1], sys.argv[2]
frames = collections.defaultdict(list)
for name in sorted(os.listdir(cap)):
    api_ver = name.rsplit("-", 1)[0]
    with open(os.path.join(cap, name), "rb") as f:
        frames[api_ver].append(f.read())

kdir = os.path.join(fuzz, "corpus", "kafka_request")
os.makedirs(kdir, exist_ok=True)
kept = 0
for api_ver, fs in sorted(frames.items()):
    fs = sorted({len(f): f for f in fs}.values(), key=len)
    picks = [fs[0], fs[len(fs) // 2], fs[-1]]
    seen = set()
    for i, f in enumerate(picks):
        if len(f) in seen:
            continue
        seen.add(len(f))
        with open(os.path.join(kdir, f"{api_ver}-{i}"), "wb") as out:
            out.write(f)
        kept += 1

batches = []
for api_ver, fs in frames.items():
    if not api_ver.startswith("00-"):
        continue
    for f in fs:
        i = 0
        while i + 61 <= len(f):
            if f[i : i + 8] == b"\0" * 8 and f[i + 16] == 2:
                (length,) = struct.unpack(">i", f[i + 8 : i + 12])
                if 49 <= length and i + 12 + length <= len(f):
                    batches.append(f[i : i + 12 + length])
                    i += 12 + length
                    continue
            i += 1
rdir = os.path.join(fuzz, "corpus", "record_batch")
os.makedirs(rdir, exist_ok=True)
params = struct.pack(">QI", 100, 3)
uniq = list({b: None for b in batches})
for n, b in enumerate(uniq):
    with open(os.path.join(rdir, f"batch-{n:02d}"), "wb") as out:
        out.write(params + b)
for n in range(min(3, len(uniq) - 1)):
    with open(os.path.join(rdir, f"two-batches-{n}"), "wb") as out:
        out.write(params + uniq[n] + uniq[n + 1])
print(f"pick_seeds: {kept} kafka_request seeds, {len(uniq)} record batches")
