//! `ipckit` with programs that were not written with ipckit: a C program
//! that speaks the documented len32 frame format over Unix stream sockets
//! and TCP (both directions), and shell tools (`echo`, `printf`, `cat`)
//! over FIFOs. Also the peer credentials `recv --json` reports for such a
//! sender.

use std::path::PathBuf;
use std::process::{Command, Stdio};

use ipckit_testkit::c::{build_c, pattern};
use ipckit_testkit::cli::{Ipckit, check_announced, json_payload, len32_frames};
use ipckit_testkit::program::{Bg, mkfifo, run};
use ipckit_testkit::scratch::Scratch;

/// The binary under test.
const IPCKIT: Ipckit = Ipckit::new(env!("CARGO_BIN_EXE_ipckit"));

/// The C peer (see the comment at its top for its arguments).
const FRAMES_C: &str = include_str!("c/frames.c");

fn frames_bin(scratch: &Scratch) -> PathBuf {
    build_c(scratch, "frames", FRAMES_C, &[])
}

/// The messages the C client sends, as its arguments and as bytes: text,
/// an empty message, 64 KiB of non-UTF-8 pattern, a short binary one, and
/// a last one that shows nothing was lost at the end.
fn client_messages() -> (Vec<String>, Vec<Vec<u8>>) {
    let specs = ["s:hello", "p:0:0", "p:65536:3", "p:300:250", "s:last one"];
    let bytes = vec![b"hello".to_vec(), Vec::new(), pattern(65536, 3), pattern(300, 250), b"last one".to_vec()];
    (specs.iter().map(|s| s.to_string()).collect(), bytes)
}

/// The transport arguments of the C program for an endpoint
/// (`unix ADDR` or `tcp HOST PORT`).
fn c_address(ep: &str) -> Vec<String> {
    if let Some(host_port) = ep.strip_prefix("tcp:") {
        let (host, port) = host_port.rsplit_once(':').expect("port");
        let host = host.trim_start_matches('[').trim_end_matches(']');
        return vec!["tcp".into(), host.into(), port.into()];
    }
    let (scheme, addr) = ep.split_once(':').expect("scheme");
    vec![scheme.into(), addr.into()]
}

/// (a) The C client connects to `ipckit recv --json` and sends frames,
/// written in pieces of `chunk` bytes; every message arrives byte for byte,
/// with the C program's pid where the transport has credentials.
fn c_client_to_ipckit_recv(test: &str, ep_for: impl Fn(&Scratch) -> String, chunk: usize) {
    let scratch = Scratch::new(test);
    let frames = frames_bin(&scratch);
    let ep = ep_for(&scratch);
    let (specs, want) = client_messages();
    let mut recv = Bg::spawn(IPCKIT.command().args([
        "recv",
        &ep,
        "--count",
        &want.len().to_string(),
        "--json",
        "--timeout",
        "20s",
    ]));
    let announced = recv.ready();
    check_announced(&ep, &announced);
    let mut c = Command::new(&frames);
    c.arg("send").args(c_address(&announced)).arg(chunk.to_string()).args(&specs);
    let sent = run(&mut c, None);
    sent.expect_code(0, "C client");
    let out = recv.finish();
    out.expect_code(0, &format!("recv on {announced}"));
    let lines = out.json_lines();
    let got: Vec<Vec<u8>> = lines.iter().map(json_payload).collect();
    assert_eq!(got.len(), want.len());
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        assert!(g == w, "{announced}: message {i} differs ({} bytes, expected {})", g.len(), w.len());
    }
    for v in &lines {
        if announced.starts_with("unix") {
            assert_eq!(v["pid"].as_u64(), Some(u64::from(sent.pid)), "the C program's pid: {v}");
            assert_ne!(sent.pid, std::process::id());
        } else {
            assert!(v.get("pid").is_none(), "TCP has no credentials: {v}");
        }
    }
}

#[test]
fn c_client_unix_path() {
    c_client_to_ipckit_recv("c-client-unix", |s| format!("unix:{}", s.path("c.sock").display()), 3);
}

#[test]
fn c_client_unix_abstract() {
    c_client_to_ipckit_recv("c-client-abstract", |s| format!("unix:@{}", s.name("c")), 4096);
}

#[test]
fn c_client_tcp_v4() {
    c_client_to_ipckit_recv("c-client-tcp4", |_| "tcp:127.0.0.1:0".into(), 3);
}

#[test]
fn c_client_tcp_v6() {
    c_client_to_ipckit_recv("c-client-tcp6", |_| "tcp:[::1]:0".into(), 1000);
}

/// The C program sends datagrams and seqpacket messages (the kernel keeps
/// the boundaries, no frame header): `recv --json` shows its pid.
#[test]
fn c_message_sockets_show_the_sender_pid() {
    let scratch = Scratch::new("c-dgram");
    let frames = frames_bin(&scratch);
    for ep in [
        format!("unix-dgram:{}", scratch.path("d.sock").display()),
        format!("unix-dgram:@{}", scratch.name("d")),
        format!("unix-seqpacket:{}", scratch.path("q.sock").display()),
    ] {
        // No empty message here: see cli.rs, empty_message_unix_seqpacket.
        let specs = ["s:hello", "p:65536:3", "p:300:250"];
        let want = [b"hello".to_vec(), pattern(65536, 3), pattern(300, 250)];
        let mut recv = Bg::spawn(IPCKIT.command().args(["recv", &ep, "--count", "3", "--json", "--timeout", "20s"]));
        recv.ready();
        let mut c = Command::new(&frames);
        c.arg("send").args(c_address(&ep)).arg("0").args(specs);
        let sent = run(&mut c, None);
        sent.expect_code(0, "C sender");
        let out = recv.finish();
        out.expect_code(0, &format!("recv on {ep}"));
        let lines = out.json_lines();
        let got: Vec<Vec<u8>> = lines.iter().map(json_payload).collect();
        assert!(got == want, "{ep}: messages differ");
        let me = (rustix::process::geteuid().as_raw(), rustix::process::getegid().as_raw());
        for v in &lines {
            assert_eq!(v["pid"].as_u64(), Some(u64::from(sent.pid)), "{ep}: the C program's pid: {v}");
            assert_eq!(v["uid"].as_u64(), Some(u64::from(me.0)), "{v}");
            assert_eq!(v["gid"].as_u64(), Some(u64::from(me.1)), "{v}");
        }
    }
}

/// (b) `ipckit send` connects to the C server, which prints every frame it
/// reads: two senders (arguments, then binary stdin with `--stdin-whole`),
/// including an empty message and two of 64 KiB.
fn ipckit_send_to_c_server(test: &str, c_args: impl Fn(&Scratch) -> Vec<String>) {
    let scratch = Scratch::new(test);
    let frames = frames_bin(&scratch);
    let args = c_args(&scratch);
    let mut server = Bg::spawn(Command::new(&frames).arg("recv").args(&args).arg("2").stdin(Stdio::null()));
    let ready = server.wait_line("ready");
    let ep = match args[0].as_str() {
        "tcp" => {
            let port: u16 = ready.trim().parse().expect("the C server prints its port");
            if args[1].contains(':') { format!("tcp:[{}]:{port}", args[1]) } else { format!("tcp:{}:{port}", args[1]) }
        }
        _ => format!("unix:{}", args[1]),
    };
    let text: String = (0..65536).map(|i| char::from(b'a' + (i % 26) as u8)).collect();
    let binary = pattern(65536, 77);
    run(IPCKIT.command().args(["send", &ep, "", "hello", &text]), None).expect_code(0, "send arguments");
    run(IPCKIT.command().args(["send", &ep, "--stdin-whole"]), Some(&binary)).expect_code(0, "send stdin");
    let out = server.finish();
    out.expect_code(0, "C server");
    let want = len32_frames(&[b"", b"hello", text.as_bytes(), &binary]);
    assert!(
        out.stdout == want,
        "{ep}: the C server read {} bytes of frames, expected {}",
        out.stdout.len(),
        want.len()
    );
    assert!(out.stderr.contains("frames 4"), "{}", out.stderr);
}

#[test]
fn ipckit_send_to_c_server_unix_path() {
    ipckit_send_to_c_server("c-server-unix", |s| vec!["unix".into(), s.path("srv.sock").display().to_string()]);
}

#[test]
fn ipckit_send_to_c_server_unix_abstract() {
    ipckit_send_to_c_server("c-server-abstract", |s| vec!["unix".into(), format!("@{}", s.name("srv"))]);
}

#[test]
fn ipckit_send_to_c_server_tcp_v4() {
    ipckit_send_to_c_server("c-server-tcp4", |_| vec!["tcp".into(), "127.0.0.1".into(), "0".into()]);
}

#[test]
fn ipckit_send_to_c_server_tcp_v6() {
    ipckit_send_to_c_server("c-server-tcp6", |_| vec!["tcp".into(), "::1".into(), "0".into()]);
}

/// Shell writers (`echo`, `printf`) into `ipckit recv --framing lines` on
/// a FIFO it creates; one writer after another, and a last line without a
/// newline.
#[test]
fn shell_writers_into_fifo_lines() {
    let scratch = Scratch::new("sh-writers");
    let fifo = scratch.path("lines");
    let ep = format!("fifo:{}", fifo.display());
    let mut recv = Bg::spawn(IPCKIT.command().args([
        "recv",
        &ep,
        "--create",
        "--framing",
        "lines",
        "--count",
        "6",
        "--json",
        "--timeout",
        "20s",
    ]));
    recv.ready();
    let script =
        r#"echo one > "$1"; printf 'two\nthree\n' > "$1"; printf '\n\377 bytes\n' > "$1"; printf 'no newline' > "$1""#;
    run(Command::new("sh").args(["-c", script, "sh"]).arg(&fifo), None).expect_code(0, "shell writers");
    let out = recv.finish();
    out.expect_code(0, "recv lines");
    let got: Vec<Vec<u8>> = out.json_lines().iter().map(json_payload).collect();
    let want: Vec<&[u8]> = vec![b"one", b"two", b"three", b"", b"\xff bytes", b"no newline"];
    assert_eq!(got, want.iter().map(|w| w.to_vec()).collect::<Vec<_>>());
}

/// `printf` writes len32 frames (the default framing) by hand.
#[test]
fn shell_printf_writes_len32_frames() {
    let scratch = Scratch::new("sh-len32");
    let fifo = scratch.path("frames");
    let ep = format!("fifo:{}", fifo.display());
    let mut recv =
        Bg::spawn(IPCKIT.command().args(["recv", &ep, "--create", "--count", "3", "--json", "--timeout", "20s"]));
    recv.ready();
    let script = r#"printf '\005\000\000\000hello\000\000\000\000\002\000\000\000\n\377' > "$1""#;
    run(Command::new("sh").args(["-c", script, "sh"]).arg(&fifo), None).expect_code(0, "printf frames");
    let out = recv.finish();
    out.expect_code(0, "recv len32");
    let got: Vec<Vec<u8>> = out.json_lines().iter().map(json_payload).collect();
    assert_eq!(got, vec![b"hello".to_vec(), Vec::new(), b"\n\xff".to_vec()]);
}

/// `cat` reads what `ipckit send` writes into a FIFO: lines framing gives
/// plain lines, len32 gives frames. `cat` starts first; the sender waits
/// (`--timeout`) until it has the FIFO open.
#[test]
fn cat_reads_from_ipckit_send() {
    let scratch = Scratch::new("cat");
    for (framing, args, want) in [
        ("lines", vec!["a", "b", "c"], b"a\nb\nc\n".to_vec()),
        ("len32", vec!["a", "", "bc"], len32_frames(&[b"a", b"", b"bc"])),
    ] {
        let fifo = scratch.path(&format!("cat-{framing}"));
        mkfifo(&fifo);
        let cat = Bg::spawn(Command::new("cat").arg(&fifo).stdin(Stdio::null()));
        let ep = format!("fifo:{}", fifo.display());
        run(IPCKIT.command().args(["send", &ep, "--framing", framing, "--timeout", "10s"]).args(&args), None)
            .expect_code(0, &format!("send {framing} to cat"));
        let out = cat.finish();
        out.expect_code(0, "cat");
        assert_eq!(out.stdout, want, "{framing}");
    }
}
