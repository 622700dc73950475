#!/usr/bin/env python3
"""A request-response client for `ipckit serve`, written with Python's
standard library only, from the envelope in ipckit's README
("Request-response"). On unix: stream sockets and TCP every message is a
len32 frame (u32 little-endian length, then the payload):

    request  = u64 LE correlation id + body
    reply    = u64 LE correlation id + status byte (0 ok, 1 the handler
               failed) + body (the reply, or the error text in UTF-8)

Usage:

    rpc_client.py unix PATH
    rpc_client.py tcp HOST PORT

The server must run this handler (a request "fail:TEXT" fails with TEXT
on its stderr; "wait" waits until a "mark" request has run; anything else
comes back in capitals), with --jobs 3 or more:

    ipckit serve EP --jobs 3 -- sh -c 'body=$(cat); case "$body" in
        fail:*) echo "${body#fail:}" >&2; exit 1;;
        wait) while [ ! -e "$1/marked" ]; do sleep 0.01; done; echo waited;;
        mark) touch "$1/marked"; echo marked;;
        *) printf %s "$body" | tr a-z A-Z;; esac' sh DIR

It makes 6 calls on one connection: "hi" with id 1 (checking the reply's
exact bytes, as the README shows them), a handler error, the largest id,
and three calls in flight together whose replies come back out of order
and are matched by id. It prints "ok WHAT" for each check, then "done".
Any failed check exits 1 with the reason on stderr.
"""

import socket
import struct
import sys

STATUS_OK = 0
STATUS_FAILED = 1


def fail(why):
    print(f"rpc_client: {why}", file=sys.stderr, flush=True)
    sys.exit(1)


def request(req_id, body):
    """The len32 frame of a request."""
    payload = struct.pack("<Q", req_id) + body
    return struct.pack("<I", len(payload)) + payload


def recv_exactly(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            fail(f"connection closed after {len(data)} of {n} bytes")
        data += chunk
    return data


def recv_frame(sock):
    """One len32 frame, as its raw bytes (prefix included)."""
    prefix = recv_exactly(sock, 4)
    (length,) = struct.unpack("<I", prefix)
    return prefix + recv_exactly(sock, length)


def parse_reply(frame):
    payload = frame[4:]
    if len(payload) < 9:
        fail(f"a reply of {len(payload)} bytes, shorter than its 9-byte header")
    (req_id,) = struct.unpack("<Q", payload[:8])
    status = payload[8]
    if status not in (STATUS_OK, STATUS_FAILED):
        fail(f"reply {req_id}: unknown status {status}")
    return req_id, status, payload[9:]


def expect(got, want, what):
    if got != want:
        fail(f"{what}: got {got!r}, expected {want!r}")
    print(f"ok {what}", flush=True)


def call(sock, req_id, body):
    sock.sendall(request(req_id, body))
    return parse_reply(recv_frame(sock))


def run(sock):
    # The README's example, byte for byte.
    frame = request(1, b"hi")
    expect(frame.hex(), "0a000000" "0100000000000000" "6869", "request frame")
    sock.sendall(frame)
    reply = recv_frame(sock)
    expect(reply.hex(), "0b000000" "0100000000000000" "00" "4849", "reply frame")

    expect(call(sock, 2, b"fail:no such thing"), (2, STATUS_FAILED, b"no such thing"), "handler error")
    expect(call(sock, 2**64 - 1, b"max"), (2**64 - 1, STATUS_OK, b"MAX"), "largest id")

    # Three in flight: "wait" cannot finish until "mark" has run, so its
    # reply ("waited") shows the calls were served together. (Which of the
    # two replies comes first is not fixed: mark's command may still be
    # exiting when wait's sees the mark.)
    sent = {100: b"wait", 101: b"mark", 102: b"three in flight"}
    sock.sendall(b"".join(request(i, body) for i, body in sent.items()))
    replies = [parse_reply(recv_frame(sock)) for _ in sent]
    order = [r[0] for r in replies]
    expect(sorted(order), sorted(sent), "every id answered once")
    by_id = {r[0]: (r[1], r[2]) for r in replies}
    expect(by_id[100], (STATUS_OK, b"waited\n"), "reply 100 matched by id")
    expect(by_id[101], (STATUS_OK, b"marked\n"), "reply 101 matched by id")
    expect(by_id[102], (STATUS_OK, b"THREE IN FLIGHT"), "reply 102 matched by id")
    print("done", flush=True)


def main(argv):
    if len(argv) == 3 and argv[1] == "unix":
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(argv[2])
    elif len(argv) == 4 and argv[1] == "tcp":
        sock = socket.create_connection((argv[2], int(argv[3])))
    else:
        fail(f"usage: {argv[0]} unix PATH | tcp HOST PORT")
    sock.settimeout(30)
    with sock:
        run(sock)


if __name__ == "__main__":
    main(sys.argv)
