//! One server, clients in other processes, on every transport.

use std::time::Duration;

use ipckit::rpc::{Client, Server};
use ipckit::{ErrorKind, Options};
use ipckit_testkit::HANG_GUARD;
use ipckit_testkit::child::{Guarded, child_role, env, rerun};
use ipckit_testkit::scratch::Scratch;

use super::support::{ep, leftovers, transports};

/// The handler of these tests: `upper:TEXT` answers TEXT in capitals,
/// `fail:WHY` fails with WHY, `sleep:MS` answers after MS milliseconds,
/// anything else comes back as is.
pub fn handler(body: &[u8]) -> Result<Vec<u8>, String> {
    if let Some(text) = body.strip_prefix(b"upper:") {
        return Ok(text.to_ascii_uppercase());
    }
    if let Some(why) = body.strip_prefix(b"fail:") {
        return Err(String::from_utf8_lossy(why).into_owned());
    }
    if let Some(ms) = body.strip_prefix(b"sleep:") {
        let ms: u64 = std::str::from_utf8(ms).unwrap().parse().unwrap();
        std::thread::sleep(Duration::from_millis(ms));
        return Ok(b"slept".to_vec());
    }
    Ok(body.to_vec())
}

/// Child: a client of `IPCKIT_EP` making the basic calls, from several
/// threads at once too.
#[test]
#[ignore = "child process entry point"]
fn child_basic_client() {
    let Some(_) = child_role() else { return };
    let text = env("IPCKIT_EP");
    let client = Client::connect_timeout(&ep(&text), &Options::new(), HANG_GUARD).unwrap();
    assert_eq!(client.call(b"upper:hello").unwrap(), b"HELLO", "{text}");
    assert_eq!(client.call(b"").unwrap(), b"", "{text}: an empty request");
    let big = vec![7u8; 6000];
    assert_eq!(client.call_timeout(&big, HANG_GUARD).unwrap(), big, "{text}");
    let e = client.call(b"fail:no such thing").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Remote, "{text}: {e}");
    assert!(e.to_string().contains("no such thing") && e.to_string().contains(&text), "{e}");
    // Calls in flight together: a slow one does not hold up the others
    // (the server has workers), and every reply reaches its own caller.
    std::thread::scope(|s| {
        let slow = s.spawn(|| client.call(b"sleep:200").unwrap());
        let fast: Vec<_> = (0..4u32)
            .map(|t| {
                let client = &client;
                s.spawn(move || {
                    for i in 0..50u32 {
                        let body = format!("t{t}-{i}");
                        assert_eq!(client.call(body.as_bytes()).unwrap(), body.as_bytes());
                    }
                })
            })
            .collect();
        for f in fast {
            f.join().unwrap();
        }
        assert_eq!(slow.join().unwrap(), b"slept");
    });
    assert_eq!(client.stray_replies(), 0);
}

#[test]
fn every_transport_round_trips_between_processes() {
    let s = Scratch::new("rpc-basic");
    for text in transports(&s) {
        let server = Server::bind(&ep(&text)).unwrap_or_else(|e| panic!("bind {text}: {e}"));
        let name = server.name().to_string();
        let child = Guarded::spawn(rerun("basics::child_basic_client", "client").env("IPCKIT_EP", &name));
        std::thread::scope(|sc| {
            let serving = sc.spawn(|| server.serve_threads(3, |r| handler(r.body())));
            let _stop = super::support::Stop(&server);
            let status = child.wait();
            server.stop();
            serving.join().unwrap().unwrap_or_else(|e| panic!("{text}: serve: {e}"));
            assert!(status.success(), "{text}: the client failed (its stderr is above)");
        });
        drop(server);
        if text.starts_with("mq:") || text.starts_with("sysv-mq:") {
            ipckit::remove(&ep(&text)).unwrap();
        }
    }
    assert!(leftovers(&s.name("")).is_empty(), "{:?}", leftovers(&s.name("")));
}
