#!/usr/bin/env python3
"""A subscriber to an ipckit topic over unix: or tcp:, written with Python's
standard library only (socket, struct), from the wire in ipckit's README
("Publish-subscribe", "Over unix: and tcp:"). Every unit is a len32 frame
(u32 little-endian length, then the payload):

    -> b"IPCKIT-SUB" + version 0x01 + u64 LE K        (history asked for)
    <- b"IPCKIT-PUB" + version 0x01 + code             (0 accepted, 1 history
       + accepted: u64 LE kept messages that follow       too large, 2 version)
       + refused: UTF-8 reason
    <- each message: u64 LE lost-before-it + payload

Usage (ADDRESS is unix:PATH, unix:@NAME or tcp:HOST:PORT):

    pubsub_sub.py ADDRESS K

prints "accepted KEPT", then one line per message, "LOST PAYLOAD" (the
payload decoded as UTF-8), then "eof" when the publisher closes; or
"refused CODE REASON" when the publisher refuses. Anything malformed exits 1
with the reason on stderr.
"""

import socket
import struct
import sys


def fail(why):
    print(why, file=sys.stderr)
    sys.exit(1)


def read_exact(sock, n):
    """n bytes, or None at a clean end of the stream before the first."""
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            if data:
                fail("the stream ended inside a frame")
            return None
        data += chunk
    return data


def read_frame(sock, limit):
    head = read_exact(sock, 4)
    if head is None:
        return None
    (length,) = struct.unpack("<I", head)
    if length > limit:
        fail("frame of %d bytes, more than %d" % (length, limit))
    body = read_exact(sock, length)
    if body is None:
        fail("the stream ended inside a frame")
    return body


def connect(address):
    if address.startswith("unix:"):
        path = address[len("unix:"):]
        if path.startswith("@"):
            path = "\0" + path[1:]
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(path)
        return sock
    if address.startswith("tcp:"):
        host, port = address[len("tcp:"):].rsplit(":", 1)
        return socket.create_connection((host.strip("[]"), int(port)))
    fail("unknown address " + address)


def main():
    address, asked = sys.argv[1], int(sys.argv[2])
    sock = connect(address)
    sock.sendall(struct.pack("<I", 19) + b"IPCKIT-SUB" + bytes([1]) + struct.pack("<Q", asked))
    answer = read_frame(sock, 12 + 1024)
    if answer is None:
        fail("the publisher closed before answering")
    if len(answer) < 12 or answer[:10] != b"IPCKIT-PUB" or answer[10] != 1:
        fail("not an ipckit answer: %r" % answer)
    code = answer[11]
    if code != 0:
        print("refused %d %s" % (code, answer[12:].decode("utf-8")), flush=True)
        return
    if len(answer) != 20:
        fail("an acceptance of %d bytes" % len(answer))
    (kept,) = struct.unpack("<Q", answer[12:20])
    print("accepted %d" % kept, flush=True)
    while True:
        frame = read_frame(sock, 8 + (16 << 20))
        if frame is None:
            print("eof", flush=True)
            return
        if len(frame) < 8:
            fail("a message frame of %d bytes" % len(frame))
        (lost,) = struct.unpack("<Q", frame[:8])
        print("%d %s" % (lost, frame[8:].decode("utf-8")), flush=True)


main()
