//! The bad-input table, a row each (the CLI's rows are in the
//! CLI's tests).

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::Duration;

use ipckit::rpc::{Client, Server};
use ipckit::socket::{Connection, Listener};
use ipckit::{ErrorKind, Options, Sender};
use ipckit_testkit::HANG_GUARD;
use ipckit_testkit::child::{Guarded, child_role, env, rerun};
use ipckit_testkit::scratch::Scratch;
use rustix::process::{Pid, Signal, kill_process};

use super::basics::handler;
use super::support::{ep, transports};

/// A server that answers first with an id nobody asked for: the caller
/// gets its own reply, and the stray one is dropped and counted.
#[test]
fn a_reply_with_an_unknown_id_is_dropped_and_counted() {
    let s = Scratch::new("rpc-stray");
    let text = format!("unix:{}", s.path("stray.sock").display());
    let listener = Listener::bind(&ep(&text)).unwrap();
    let client = std::thread::scope(|sc| {
        sc.spawn(|| {
            let mut conn = listener.accept().unwrap();
            let req = conn.recv_timeout(HANG_GUARD).unwrap().data;
            let id = u64::from_le_bytes(req[..8].try_into().unwrap());
            let reply = |id: u64, body: &[u8]| [&id.to_le_bytes()[..], &[0], body].concat();
            conn.send(&reply(id + 100, b"not yours")).unwrap();
            conn.send(&[1, 2, 3]).unwrap(); // shorter than a reply's header
            conn.send(&reply(id, b"yours")).unwrap();
        });
        let client = Client::connect(&ep(&text)).unwrap();
        assert_eq!(client.call_timeout(b"q", HANG_GUARD).unwrap(), b"yours");
        client
    });
    assert_eq!(client.stray_replies(), 2);
}

/// No server: `NotFound` or `Disconnected` at once, naming the endpoint.
#[test]
fn a_call_to_nobody_fails_at_once() {
    let s = Scratch::new("rpc-nobody");
    for text in transports(&s) {
        let text = text.replace(":0", ":1"); // a port nobody listens on
        let e = Client::connect(&ep(&text)).unwrap_err();
        assert!(matches!(e.kind(), ErrorKind::NotFound | ErrorKind::Disconnected), "{text}: {e}");
        assert!(e.to_string().contains(&text), "{e}");
    }
}

/// Child: serves `IPCKIT_EP`, saying when it starts each request.
#[test]
#[ignore = "child process entry point"]
fn child_server() {
    let Some(_) = child_role() else { return };
    let server = Server::bind(&ep(&env("IPCKIT_EP"))).unwrap();
    println!("ready {}", server.name());
    server
        .serve(|r| {
            println!("handling");
            handler(r.body())
        })
        .unwrap();
}

/// Reads the child's stdout up to a line ending with `word`; returns that
/// line.
fn expect(lines: &mut impl Iterator<Item = std::io::Result<String>>, word: &str) -> String {
    lines.find_map(|l| l.ok().filter(|l| l.contains(word))).unwrap_or_else(|| panic!("the child never said {word}"))
}

/// The server killed while a call waits for its reply: `Disconnected`,
/// not a hang (the hang guard bounds the wait; the transports without a
/// connection look every 100 ms).
#[test]
fn a_server_that_dies_while_a_call_waits_is_disconnected() {
    let s = Scratch::new("rpc-srvdies");
    for text in transports(&s) {
        let mut child =
            Guarded::spawn(rerun("bad_input::child_server", "server").env("IPCKIT_EP", &text).stdout(Stdio::piped()));
        let mut lines = BufReader::new(child.child().stdout.take().unwrap()).lines();
        let ready = expect(&mut lines, "ready ");
        let name = ready.split("ready ").nth(1).unwrap().to_string();
        let client = Client::connect_timeout(&ep(&name), &Options::new(), HANG_GUARD).unwrap();
        std::thread::scope(|sc| {
            let call = sc.spawn(|| client.call_timeout(b"sleep:100000", HANG_GUARD));
            expect(&mut lines, "handling");
            kill_process(Pid::from_raw(child.child().id() as i32).unwrap(), Signal::KILL).unwrap();
            let e = call.join().unwrap().unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Disconnected, "{text}: {e}");
        });
        child.wait();
        // The next call too.
        assert_eq!(client.call_timeout(b"x", HANG_GUARD).unwrap_err().kind(), ErrorKind::Disconnected, "{text}");
        if text.starts_with("mq:") || text.starts_with("sysv-mq:") {
            let _ = ipckit::remove(&ep(&text));
        }
    }
}

/// `call_timeout` to a handler that sleeps: `TimedOut`; the late reply is
/// dropped when it comes, and the next call gets its own.
#[test]
fn a_call_that_times_out_discards_the_late_reply() {
    let s = Scratch::new("rpc-late");
    for text in transports(&s) {
        let server = Server::bind(&ep(&text)).unwrap();
        let client = Client::connect(&ep(server.name())).unwrap();
        std::thread::scope(|sc| {
            let serving = sc.spawn(|| server.serve(|r| handler(r.body())));
            let _stop = super::support::Stop(&server);
            let e = client.call_timeout(b"sleep:300", Duration::from_millis(50)).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::TimedOut, "{text}: {e}");
            // The late reply arrives before this one's (one worker).
            assert_eq!(client.call_timeout(b"next", HANG_GUARD).unwrap(), b"next", "{text}");
            assert_eq!(client.stray_replies(), 1, "{text}: the late reply was dropped");
            server.stop();
            serving.join().unwrap().unwrap();
        });
        drop(server);
        if text.starts_with("mq:") || text.starts_with("sysv-mq:") {
            ipckit::remove(&ep(&text)).unwrap();
        }
    }
}

/// An envelope shorter than its header, from a raw connection: that
/// connection is dropped (`Corrupt` reported), the others are served.
#[test]
fn a_short_envelope_drops_that_connection_only() {
    let s = Scratch::new("rpc-short");
    for text in [
        format!("unix:{}", s.path("short.sock").display()),
        format!("unix-seqpacket:@{}", s.name("shortseq")),
        "tcp:127.0.0.1:0".to_string(),
    ] {
        let server = Server::bind(&ep(&text)).unwrap();
        let name = server.name().to_string();
        let client = Client::connect(&ep(&name)).unwrap();
        let mut raw = Connection::connect(&ep(&name)).unwrap();
        raw.send(&[1, 2, 3]).unwrap();
        let e = server.recv_timeout(HANG_GUARD).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Corrupt, "{text}: {e}");
        assert!(e.to_string().contains("shorter than its 8-byte header"), "{e}");
        let e = raw.recv_timeout(HANG_GUARD).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Disconnected, "{text}: the raw connection was dropped: {e}");
        std::thread::scope(|sc| {
            let serving = sc.spawn(|| server.serve(|r| handler(r.body())));
            let _stop = super::support::Stop(&server);
            assert_eq!(client.call_timeout(b"still here", HANG_GUARD).unwrap(), b"still here", "{text}");
            server.stop();
            serving.join().unwrap().unwrap();
        });
    }
    // On shm: and the queues, a short request is dropped and reported; the
    // server goes on.
    for text in [format!("shm:{}", s.name("shortshm")), s.mq("shortq", ""), s.sysv_mq(3, "")] {
        let server = Server::bind(&ep(&text)).unwrap();
        let client = Client::connect(&ep(&text)).unwrap();
        let mut raw = Sender::connect(&ep(&text)).unwrap();
        raw.send(&[9; 15]).unwrap();
        let e = server.recv_timeout(HANG_GUARD).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Corrupt, "{text}: {e}");
        std::thread::scope(|sc| {
            let serving = sc.spawn(|| server.serve(|r| handler(r.body())));
            let _stop = super::support::Stop(&server);
            assert_eq!(client.call_timeout(b"ok", HANG_GUARD).unwrap(), b"ok", "{text}");
            server.stop();
            serving.join().unwrap().unwrap();
        });
    }
}

/// A handler's error reaches its caller as `Remote` with the handler's
/// message, not as a reply; the next call is served.
#[test]
fn a_handler_error_is_remote() {
    let s = Scratch::new("rpc-remote");
    let text = format!("unix-seqpacket:@{}", s.name("remote"));
    let server = Server::bind(&ep(&text)).unwrap();
    let client = Client::connect(&ep(&text)).unwrap();
    std::thread::scope(|sc| {
        let serving = sc.spawn(|| server.serve(|r| handler(r.body())));
        let _stop = super::support::Stop(&server);
        let e = client.call(b"fail:disk full").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Remote);
        assert!(e.to_string().contains("disk full"), "{e}");
        assert_eq!(client.call(b"upper:ok").unwrap(), b"OK");
        server.stop();
        serving.join().unwrap().unwrap();
    });
}

/// A reply larger than the way back takes (a queue's message size): the
/// server's `reply` is `TooLarge`, and the caller gets an error reply
/// saying so instead of waiting for nothing; the next call is served.
#[test]
fn a_reply_too_large_for_the_way_back_is_an_error_reply() {
    let s = Scratch::new("rpc-toolarge");
    for text in [s.mq("bigq", "?maxmsg=4&msgsize=128"), s.sysv_mq(5, "&maxbytes=512")] {
        let server = Server::bind(&ep(&text)).unwrap();
        let client = Client::connect(&ep(&text)).unwrap();
        std::thread::scope(|sc| {
            let _stop = super::support::Stop(&server);
            let serving = sc.spawn(|| {
                let r = server.recv_timeout(HANG_GUARD).unwrap();
                let e = server.reply(r, Ok(&[7; 4096])).unwrap_err();
                assert_eq!(e.kind(), ErrorKind::TooLarge, "{text}: {e}");
                server.serve(|r| handler(r.body()))
            });
            let e = client.call_timeout(b"big", HANG_GUARD).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Remote, "{text}: {e}");
            assert!(e.to_string().contains("4096 bytes"), "{text}: {e}");
            assert_eq!(client.call_timeout(b"upper:next", HANG_GUARD).unwrap(), b"NEXT", "{text}");
            server.stop();
            serving.join().unwrap().unwrap();
        });
    }
}

/// On `sysv-mq:` a call without a timeout waits in a blocking `msgrcv`:
/// the server killed meanwhile still ends it, `Disconnected` (the client's
/// watcher of the server's presence wakes it).
#[test]
fn a_sysv_call_without_timeout_ends_when_the_server_dies() {
    let s = Scratch::new("rpc-sysvdies");
    let text = s.sysv_mq(4, "");
    let mut child =
        Guarded::spawn(rerun("bad_input::child_server", "server").env("IPCKIT_EP", &text).stdout(Stdio::piped()));
    let mut lines = BufReader::new(child.child().stdout.take().unwrap()).lines();
    expect(&mut lines, "ready ");
    let client = Client::connect_timeout(&ep(&text), &Options::new(), HANG_GUARD).unwrap();
    let (done_tx, done) = std::sync::mpsc::channel();
    std::thread::scope(|sc| {
        sc.spawn(|| done_tx.send(client.call(b"sleep:100000")).unwrap());
        expect(&mut lines, "handling");
        kill_process(Pid::from_raw(child.child().id() as i32).unwrap(), Signal::KILL).unwrap();
        let e = done.recv_timeout(HANG_GUARD).expect("the call ended").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Disconnected, "{e}");
    });
    child.wait();
    let _ = ipckit::remove(&ep(&text));
}
