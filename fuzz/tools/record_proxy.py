#!/usr/bin/env python3
"""A TCP proxy that records every Kafka request frame a client sends to a broker.

Usage: record_proxy.py LISTEN_PORT TARGET_HOST:PORT OUT_DIR [REPLY_DIR]

Any protocol framed as a 4-byte big-endian length and a body (Kafka, the bookie protocol, the
Raft transport). Each client->server frame is saved without its size prefix as
OUT_DIR/<first i16>-v<second i16>-<sequence>.bin (for Kafka: api key and version, the input
format of the kafka_request fuzz target); with REPLY_DIR, server->client frames are saved there
too. Used by fuzz/tools/capture.sh and capture_cluster.sh; runs until killed.
"""
import os
import socket
import struct
import sys
import threading

counter = [0]
lock = threading.Lock()


def pump(src, dst, record_dir):
    buf = b""
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            dst.sendall(data)
            if record_dir is None:
                continue
            buf += data
            while len(buf) >= 4:
                (size,) = struct.unpack(">i", buf[:4])
                if size < 0 or len(buf) < 4 + size:
                    break
                frame, buf = buf[4 : 4 + size], buf[4 + size :]
                if len(frame) >= 4:
                    api, ver = struct.unpack(">hh", frame[:4])
                    with lock:
                        counter[0] += 1
                        n = counter[0]
                    with open(os.path.join(record_dir, f"{api:02d}-v{ver}-{n:05d}.bin"), "wb") as f:
                        f.write(frame)
    except OSError:
        pass
    finally:
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def main():
    port, broker, out = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    replies = sys.argv[4] if len(sys.argv) > 4 else None
    if replies:
        os.makedirs(replies, exist_ok=True)
    host, bport = broker.rsplit(":", 1)
    os.makedirs(out, exist_ok=True)
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", port))
    ls.listen(64)
    while True:
        c, _ = ls.accept()
        b = socket.create_connection((host, int(bport)))
        threading.Thread(target=pump, args=(c, b, out), daemon=True).start()
        threading.Thread(target=pump, args=(b, c, replies), daemon=True).start()


if __name__ == "__main__":
    main()
