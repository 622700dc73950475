//! Many clients, and clients that die: 8 client processes x 10,000
//! requests to one server, every reply at its own caller and none lost;
//! clients SIGKILLed in the middle of a request, 100 times, with the
//! server serving the others and nothing left behind.

use std::io::{BufRead, BufReader};
use std::process::Stdio;

use ipckit::rpc::{Client, Server};
use ipckit::{ErrorKind, Options};
use ipckit_testkit::HANG_GUARD;
use ipckit_testkit::child::{Guarded, child_role, env, rerun};
use ipckit_testkit::data::Rng;
use ipckit_testkit::scratch::Scratch;
use rustix::process::{Pid, Signal, kill_process};

use super::basics::handler;
use super::support::{ep, leftovers, transports};

/// Child: `IPCKIT_COUNT` calls as client `IPCKIT_ID`, two threads at once,
/// each checking that its reply is its own.
#[test]
#[ignore = "child process entry point"]
fn child_many_client() {
    let Some(_) = child_role() else { return };
    let id: u64 = env("IPCKIT_ID").parse().unwrap();
    let count: u64 = env("IPCKIT_COUNT").parse().unwrap();
    let client = Client::connect_timeout(&ep(&env("IPCKIT_EP")), &Options::new(), HANG_GUARD).unwrap();
    std::thread::scope(|s| {
        for t in 0..2u64 {
            let client = &client;
            s.spawn(move || {
                let mut rng = Rng(id << 8 | t);
                for seq in 0..count / 2 {
                    let mut body = format!("upper:c{id}-t{t}-{seq}-").into_bytes();
                    let tail = rng.below(64) as usize;
                    body.extend((0..tail).map(|_| b'a' + rng.below(26) as u8));
                    let reply = client.call_timeout(&body, HANG_GUARD).unwrap();
                    assert_eq!(reply, body[6..].to_ascii_uppercase(), "client {id} thread {t} call {seq}");
                }
            });
        }
    });
    assert_eq!(client.stray_replies(), 0);
}

fn many(text: &str, clients: u64, count: u64) {
    let server = Server::bind(&ep(text)).unwrap();
    let name = server.name().to_string();
    std::thread::scope(|s| {
        let serving = s.spawn(|| server.serve_threads(2, |r| handler(r.body())));
        let _stop = super::support::Stop(&server);
        let children: Vec<Guarded> = (0..clients)
            .map(|id| {
                Guarded::spawn(
                    rerun("many::child_many_client", "client")
                        .env("IPCKIT_EP", &name)
                        .env("IPCKIT_ID", id.to_string())
                        .env("IPCKIT_COUNT", count.to_string()),
                )
            })
            .collect();
        for (id, c) in children.into_iter().enumerate() {
            assert!(c.wait().success(), "{text}: client {id} failed (its stderr is above)");
        }
        server.stop();
        serving.join().unwrap().unwrap();
    });
}

#[test]
fn eight_clients_ten_thousand_requests_each_unix() {
    let s = Scratch::new("rpc-many-unix");
    many(&format!("unix:{}", s.path("many.sock").display()), 8, 10_000);
}

#[test]
fn eight_clients_ten_thousand_requests_each_shm() {
    let s = Scratch::new("rpc-many-shm");
    many(&format!("shm:{}", s.name("many")), 8, 10_000);
}

/// The other transports, with fewer requests (the same code paths above
/// the transport).
#[test]
fn eight_clients_on_every_other_transport() {
    let s = Scratch::new("rpc-many-other");
    for text in transports(&s).into_iter().filter(|t| !t.starts_with("unix:") && !t.starts_with("shm:")) {
        many(&text, 8, 500);
        if text.starts_with("mq:") || text.starts_with("sysv-mq:") {
            ipckit::remove(&ep(&text)).unwrap();
        }
    }
}

/// Child: makes one slow call, after saying it will.
#[test]
#[ignore = "child process entry point"]
fn child_doomed_client() {
    let Some(_) = child_role() else { return };
    let client = Client::connect_timeout(&ep(&env("IPCKIT_EP")), &Options::new(), HANG_GUARD).unwrap();
    println!("calling");
    let _ = client.call(b"sleep:50");
}

/// Clients SIGKILLed mid-request, 100 times over the transports: the
/// server keeps serving the others, and no reply queue, reply channel or
/// reply left for a dead client remains.
#[test]
fn clients_killed_mid_request() {
    let s = Scratch::new("rpc-killed");
    let all = transports(&s);
    let servers: Vec<Server> = all.iter().map(|t| Server::bind(&ep(t)).unwrap()).collect();
    let names: Vec<String> = servers.iter().map(|s| s.name().to_string()).collect();
    std::thread::scope(|sc| {
        let serving: Vec<_> =
            servers.iter().map(|srv| sc.spawn(|| srv.serve_threads(2, |r| handler(r.body())))).collect();
        let _stops: Vec<_> = servers.iter().map(super::support::Stop).collect();
        for round in 0..100 {
            let name = &names[round % names.len()];
            let mut child = Guarded::spawn(
                rerun("many::child_doomed_client", "doomed").env("IPCKIT_EP", name).stdout(Stdio::piped()),
            );
            let mut lines = BufReader::new(child.child().stdout.take().unwrap()).lines();
            assert!(lines.any(|l| l.is_ok_and(|l| l.ends_with("calling"))), "round {round}: the client never called");
            // Killed while its request is sent, waiting or being served.
            if round % 3 == 1 {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            kill_process(Pid::from_raw(child.child().id() as i32).unwrap(), Signal::KILL).unwrap();
            child.wait();
            // The others are served.
            let other = Client::connect(&ep(name)).unwrap();
            assert_eq!(other.call_timeout(b"upper:alive", HANG_GUARD).unwrap(), b"ALIVE", "round {round} {name}");
        }
        // What dead clients left is cleaned up as the servers go on: one
        // more call per transport after their replies came (bounded by the
        // hang guard, not timed).
        let deadline = std::time::Instant::now() + HANG_GUARD;
        loop {
            for name in &names {
                let c = Client::connect(&ep(name)).unwrap();
                assert_eq!(c.call_timeout(b"x", HANG_GUARD).unwrap(), b"x");
            }
            let left: Vec<String> =
                leftovers(&s.name("")).into_iter().filter(|l| l.contains("~r") || l.contains(".r")).collect();
            let sysv_replies = {
                let q = ipckit::mq::SysvQueue::open(&ep(&all[5]), &Options::new()).unwrap();
                q.status().unwrap().stat.messages
            };
            if left.is_empty() && sysv_replies == 0 {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "left behind: {left:?}, {sysv_replies} System V replies");
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        for srv in &servers {
            srv.stop();
        }
        for t in serving {
            t.join().unwrap().unwrap();
        }
    });
    drop(servers);
    for t in &all[4..] {
        ipckit::remove(&ep(t)).unwrap();
    }
    // The servers are gone: so are their names.
    let e = Client::connect(&ep(&all[3])).unwrap_err();
    assert!(matches!(e.kind(), ErrorKind::NotFound | ErrorKind::Disconnected), "{e}");
}
