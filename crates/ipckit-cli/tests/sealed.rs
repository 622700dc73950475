//! `ipckit recv` and sealed memfd messages: the payload is printed as any
//! other (read in place), and `--json` marks it `"sealed": true`.

use ipckit::{Options, Sender};
use ipckit_testkit::HANG_GUARD;
use ipckit_testkit::c::pattern;
use ipckit_testkit::cli::{Ipckit, json_payload};
use ipckit_testkit::program::Bg;
use ipckit_testkit::scratch::Scratch;

/// The binary under test.
const IPCKIT: Ipckit = Ipckit::new(env!("CARGO_BIN_EXE_ipckit"));

#[test]
fn recv_prints_sealed_messages_and_json_marks_them() {
    let s = Scratch::new("cli-sealed");
    for ep in [
        format!("unix:{}", s.path("s.sock").display()),
        format!("unix-seqpacket:{}", s.path("q.sock").display()),
        format!("unix-dgram:{}", s.path("d.sock").display()),
    ] {
        let mut recv = Bg::spawn(IPCKIT.command().args(["recv", &ep, "--json", "--count", "4", "--timeout", "30s"]));
        recv.ready();
        let mut tx = Sender::connect_timeout(&ep.parse().unwrap(), &Options::new(), HANG_GUARD).unwrap();
        tx.send_sealed(b"hello from a sealed memfd").unwrap();
        tx.send_sealed(&pattern(70_000, 9)).unwrap();
        tx.send_sealed(b"").unwrap();
        tx.send(b"plain").unwrap();
        let out = recv.finish();
        out.expect_code(0, &ep);
        let lines = out.json_lines();
        assert_eq!(lines.len(), 4, "{ep}: {lines:?}");
        let wants: [(&[u8], bool); 4] =
            [(b"hello from a sealed memfd", true), (&pattern(70_000, 9), true), (b"", true), (b"plain", false)];
        for (line, (want, sealed)) in lines.iter().zip(wants) {
            assert_eq!(json_payload(line), want, "{ep}: {line}");
            assert_eq!(line["len"], want.len(), "{ep}: {line}");
            assert_eq!(line.get("sealed").and_then(|v| v.as_bool()), sealed.then_some(true), "{ep}: {line}");
            assert!(line.get("fds").is_none(), "{ep}: the memfd is the sealed part, not a passed fd: {line}");
        }
    }
}
