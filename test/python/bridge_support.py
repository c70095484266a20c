"""Helpers for the bridge's unit tests: the bridge folder on sys.path, frames in and out."""

import os
import struct
import sys
import threading

BRIDGE_DIR = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "src", "gateways", "python", "bridge"))
sys.path.insert(0, BRIDGE_DIR)

import wsgid_bridge_common as common  # noqa: E402

HEADER = struct.Struct(">BII")


def frame(kind, rid, payload=b""):
    return HEADER.pack(kind, rid, len(payload)) + payload


def decode_frames(data):
    """The (letter, id, payload) frames of a byte string, which must hold whole frames only."""
    frames, at = [], 0
    while at < len(data):
        kind, rid, length = HEADER.unpack_from(data, at)
        at += 9
        frames.append((chr(kind), rid, data[at : at + length]))
        at += length
    assert at == len(data), "a truncated frame at the end"
    return frames


def environ_payload(pairs):
    """An E payload of format 0 (keys and values joined with NUL), as the gateway sends it."""
    return b"\0" + "\0".join(part for pair in pairs for part in pair).encode("latin-1")


def request_payload(pairs, body=b""):
    env = environ_payload(pairs)
    return struct.pack(">I", len(env)) + env + body


class Drain:
    """Reads a pipe to its end on a thread (so that a bridge never blocks on a full pipe)."""

    def __init__(self, fd):
        self.fd = fd
        self.chunks = []
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while True:
            data = os.read(self.fd, 65536)
            if not data:
                break
            self.chunks.append(data)
        os.close(self.fd)

    def result(self):
        self.thread.join(10)
        return b"".join(self.chunks)
