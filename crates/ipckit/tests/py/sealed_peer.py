#!/usr/bin/env python3
"""A peer for ipckit's sealed memfd messages, written with Python's standard
library only, from the wire format in ipckit's README ("Sealed memfd
messages"): a message whose payload is the 24-byte marker

    b"IPCKIT-SEALED\\x01\\x00\\x00" + u64 little-endian length

with exactly one descriptor attached (SCM_RIGHTS), a memfd of exactly that
length sealed with F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW. On a stream
socket the marker travels in a len32 frame (u32 little-endian length, then
the payload); on seqpacket and datagram sockets it is the whole message.

Usage (TYPE is stream, seqpacket or dgram; PATH a socket path):

    sealed_peer.py send TYPE PATH SIZE...  connect; send a sealed memfd of
                                           each size, then "done"
    sealed_peer.py bad TYPE PATH           connect; send "hello", then each
                                           malformed sealed message of ROWS,
                                           each followed by "next NAME", then
                                           a good one ("good") and "done"
    sealed_peer.py recv TYPE PATH COUNT    listen (print "ready" on stderr);
                                           receive COUNT sealed messages and
                                           check them (print "ok SIZE" each),
                                           then the ordinary "done"

Payloads are the test pattern byte[i] = (SEED + 7*i + (i >> 8)) & 0xff with
SEED = SIZE % 251 (ipckit_testkit::c::pattern). Any failed check exits 1
with the reason on stderr.
"""

import fcntl
import mmap
import os
import socket
import struct
import sys

MAGIC = b"IPCKIT-SEALED\x01\x00\x00"
MARKER_LEN = 24
SEALS = fcntl.F_SEAL_WRITE | fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW
F_SEAL_FUTURE_WRITE = 0x0010
TYPES = {"stream": socket.SOCK_STREAM, "seqpacket": socket.SOCK_SEQPACKET, "dgram": socket.SOCK_DGRAM}


def fail(why):
    print(f"sealed_peer: {why}", file=sys.stderr, flush=True)
    sys.exit(1)


def pattern(size, seed):
    # byte[i] depends on i only through i % 256 and (i >> 8) % 256, so the
    # pattern repeats every 65536 bytes: build one period with translate.
    base = bytes((seed + 7 * j) & 0xFF for j in range(256))
    period = b"".join(base.translate(bytes((x + k) & 0xFF for x in range(256))) for k in range(256))
    return (period * (size // len(period) + 1))[:size]


def seed(size):
    return size % 251


def marker(length):
    return MAGIC + struct.pack("<Q", length)


def memfd(data, seals=SEALS, name="ipckit-t-sealed"):
    fd = os.memfd_create(name, os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
    view = memoryview(data)
    done = 0
    while done < len(data):
        done += os.pwrite(fd, view[done:], done)
    if seals:
        fcntl.fcntl(fd, fcntl.F_ADD_SEALS, seals)
    return fd


def refused(what, call):
    """The call must fail with EPERM (a seal refuses it)."""
    try:
        call()
    except PermissionError:
        return
    fail(f"{what} was not refused on a sealed memfd")


def check_seals_refuse_changes(fd, size):
    refused("growing (ftruncate)", lambda: os.ftruncate(fd, size + 4096))
    if size > 0:
        refused("shrinking (ftruncate)", lambda: os.ftruncate(fd, 0))
    refused("writing (pwrite)", lambda: os.pwrite(fd, b"x", 0))
    if size > 0:
        refused("a writable shared mapping", lambda: mmap.mmap(fd, size, flags=mmap.MAP_SHARED))


def send(sock, kind, payload, fds=()):
    if kind == "stream":
        payload = struct.pack("<I", len(payload)) + payload
    if fds:
        # The descriptors travel with the message's (the frame's) bytes.
        n = socket.send_fds(sock, [payload], list(fds))
        if n != len(payload):
            sock.sendall(payload[n:])
    else:
        sock.sendall(payload)


def connect(kind, path):
    sock = socket.socket(socket.AF_UNIX, TYPES[kind])
    sock.connect(path)
    return sock


def send_sealed(sock, kind, data, name="ipckit-t-sealed"):
    fd = memfd(data, name=name)
    check_seals_refuse_changes(fd, len(data))
    send(sock, kind, marker(len(data)), [fd])
    os.close(fd)


def cmd_send(kind, path, sizes):
    sock = connect(kind, path)
    for size in sizes:
        send_sealed(sock, kind, pattern(size, seed(size)))
    send(sock, kind, b"done")


def bad_rows():
    """(name, marker, descriptors): each must be refused by the receiver."""
    data = b"b" * 4096

    def unsealed():
        return [memfd(data, seals=0, name="ipckit-t-bad-unsealed")]

    def future_write():
        # F_SEAL_FUTURE_WRITE leaves this writable mapping in place: the
        # sender could change the bytes under the receiver.
        fd = memfd(data, seals=0, name="ipckit-t-bad-future")
        keep.append(mmap.mmap(fd, len(data), flags=mmap.MAP_SHARED))
        fcntl.fcntl(fd, fcntl.F_ADD_SEALS, fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | F_SEAL_FUTURE_WRITE)
        return [fd]

    def no_shrink():
        return [memfd(data, seals=fcntl.F_SEAL_WRITE | fcntl.F_SEAL_GROW, name="ipckit-t-bad-noshrink")]

    def sealed(n, name):
        return lambda: [memfd(b"b" * n, name=f"ipckit-t-bad-{name}")]

    def not_memfd():
        r, w = os.pipe()
        os.close(w)
        return [r]

    keep = []
    return keep, [
        ("unsealed", marker(4096), unsealed),
        ("future-write", marker(4096), future_write),
        ("no-shrink", marker(4096), no_shrink),
        ("short", marker(4096), sealed(100, "short")),
        ("long", marker(100), sealed(4096, "long")),
        ("two-fds", marker(4096), lambda: sealed(4096, "two-a")() + sealed(4096, "two-b")()),
        ("no-fd", marker(4096), lambda: []),
        ("not-memfd", marker(0), not_memfd),
        ("over-max", marker(100_000), sealed(100_000, "over-max")),
    ]


def cmd_bad(kind, path):
    sock = connect(kind, path)
    send(sock, kind, b"hello")
    keep, rows = bad_rows()
    for name, mark, make in rows:
        fds = make()
        send(sock, kind, mark, fds)
        for fd in fds:
            os.close(fd)
        send(sock, kind, f"next {name}".encode())
    del keep
    send_sealed(sock, kind, b"good" * 1024)
    send(sock, kind, b"done")


def recv_exactly(sock, n, fds):
    data = b""
    while len(data) < n:
        msg, got, _flags, _addr = socket.recv_fds(sock, n - len(data), 16)
        fds.extend(got)
        if not msg:
            fail(f"connection closed after {len(data)} of {n} bytes")
        data += msg
    return data


def recv_message(sock, kind):
    fds = []
    if kind == "stream":
        (length,) = struct.unpack("<I", recv_exactly(sock, 4, fds))
        return recv_exactly(sock, length, fds), fds
    msg, got, flags, _addr = socket.recv_fds(sock, 65536, 16)
    if flags & (socket.MSG_TRUNC | socket.MSG_CTRUNC):
        fail(f"message truncated (flags {flags:#x})")
    return msg, list(got)


def check_sealed(payload, fds):
    if len(payload) != MARKER_LEN or payload[:16] != MAGIC:
        fail(f"not a sealed-message marker: {payload[:32]!r}")
    if len(fds) != 1:
        fail(f"a marker with {len(fds)} descriptors")
    (length,) = struct.unpack("<Q", payload[16:])
    fd = fds[0]
    seals = fcntl.fcntl(fd, fcntl.F_GET_SEALS)
    if seals & SEALS != SEALS:
        fail(f"memfd seals {seals:#x} lack F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW")
    size = os.fstat(fd).st_size
    if size != length:
        fail(f"memfd of {size} bytes, marker announces {length}")
    check_seals_refuse_changes(fd, length)
    if length > 0:
        # Private, read-only: portable to kernels that refuse a shared
        # mapping of a write-sealed memfd.
        with mmap.mmap(fd, length, flags=mmap.MAP_PRIVATE, prot=mmap.PROT_READ) as m:
            if m[:] != pattern(length, seed(length)):
                fail(f"the {length}-byte payload differs from the pattern")
    os.close(fd)
    return length


def cmd_recv(kind, path, count):
    sock = socket.socket(socket.AF_UNIX, TYPES[kind])
    sock.bind(path)
    if kind != "dgram":
        sock.listen(1)
    print("ready", file=sys.stderr, flush=True)
    conn = sock if kind == "dgram" else sock.accept()[0]
    for _ in range(count):
        length = check_sealed(*recv_message(conn, kind))
        print(f"ok {length}", flush=True)
    payload, fds = recv_message(conn, kind)
    if payload != b"done" or fds:
        fail(f"expected the ordinary message 'done', got {payload[:32]!r} with {len(fds)} descriptors")


def main(argv):
    if len(argv) < 4 or argv[2] not in TYPES:
        fail(f"usage: {argv[0]} send|bad|recv TYPE PATH ...")
    mode, kind, path, rest = argv[1], argv[2], argv[3], argv[4:]
    if mode == "send":
        cmd_send(kind, path, [int(s) for s in rest])
    elif mode == "bad":
        cmd_bad(kind, path)
    elif mode == "recv":
        cmd_recv(kind, path, int(rest[0]))
    else:
        fail(f"unknown mode {mode}")


if __name__ == "__main__":
    main(sys.argv)
