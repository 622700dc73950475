//! `ipckit::tokio` request-response on the six rpc transports: an async
//! server whose handler sleeps or waits for some requests while others are
//! answered, and a client process whose many tasks call at once, some
//! calls dropped while in flight.
#![cfg(feature = "tokio")]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use ipckit::tokio::{AsyncClient, AsyncServer};
use ipckit::{Endpoint, ErrorKind};
use ipckit_testkit::HANG_GUARD;
use ipckit_testkit::child::{Guarded, child_role, env, rerun};
use ipckit_testkit::scratch::Scratch;

fn endpoints(scratch: &Scratch) -> Vec<String> {
    vec![
        format!("unix:@{}", scratch.name("stream")),
        format!("unix-seqpacket:@{}", scratch.name("seq")),
        "tcp:127.0.0.1:0".to_string(),
        format!("shm:{}", scratch.name("shm")),
        scratch.mq("q", "?maxmsg=8&msgsize=512"),
        scratch.sysv_mq(1, ""),
    ]
}

/// Tasks in the client process, and calls each.
const TASKS: usize = 24;
const CALLS: usize = 15;

/// The server's handler: `echo X` is `X` reversed; `sleep X` is the same
/// after a short sleep; `hold` waits until a `release` came (so it is
/// answered only if the server handles other requests meanwhile);
/// `holding` says how many `hold`s are waiting; `fail` fails.
async fn handle(state: Arc<State>, body: Vec<u8>) -> Result<Vec<u8>, String> {
    let text = String::from_utf8(body).map_err(|_| "not UTF-8".to_string())?;
    let (verb, rest) = text.split_once(' ').unwrap_or((&text, ""));
    match verb {
        "echo" => Ok(rest.chars().rev().collect::<String>().into_bytes()),
        "sleep" => {
            tokio::time::sleep(Duration::from_millis(20)).await;
            Ok(rest.chars().rev().collect::<String>().into_bytes())
        }
        "hold" => {
            state.holding.fetch_add(1, Ordering::SeqCst);
            let permit = state.release.acquire().await.map_err(|e| e.to_string())?;
            permit.forget();
            state.holding.fetch_sub(1, Ordering::SeqCst);
            Ok(b"released".to_vec())
        }
        "holding" => Ok(state.holding.load(Ordering::SeqCst).to_string().into_bytes()),
        "release" => {
            state.release.add_permits(1);
            Ok(b"ok".to_vec())
        }
        "fail" => Err(format!("failed on purpose: {rest}")),
        _ => Err(format!("unknown verb {verb}")),
    }
}

struct State {
    holding: AtomicUsize,
    release: tokio::sync::Semaphore,
}

impl Default for State {
    fn default() -> State {
        State { holding: AtomicUsize::new(0), release: tokio::sync::Semaphore::new(0) }
    }
}

#[test]
fn async_server_and_clients_on_every_rpc_transport() {
    let scratch = Scratch::new("tokio-rpc");
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    for text in endpoints(&scratch) {
        let ep: Endpoint = text.parse().unwrap();
        let server = Arc::new(AsyncServer::bind(&ep).unwrap_or_else(|e| panic!("bind {text}: {e}")));
        let name = server.name().to_string();
        rt.block_on(async {
            let state = Arc::new(State::default());
            let serving = {
                let server = server.clone();
                tokio::spawn(async move {
                    server
                        .serve(move |req| {
                            let state = state.clone();
                            async move { handle(state, req.into_body()).await }
                        })
                        .await
                })
            };
            let child = Guarded::spawn(rerun("child_clients", "clients").env("IPCKIT_EP", &name));
            let status = tokio::time::timeout(HANG_GUARD, tokio::task::spawn_blocking(move || child.wait())).await;
            let status = status.unwrap_or_else(|_| panic!("{text}: clients hung")).unwrap();
            assert!(status.success(), "{text}: clients: {status}");
            server.stop();
            tokio::time::timeout(HANG_GUARD, serving).await.expect("serve did not stop").unwrap().unwrap();
        });
    }
}

/// The client process: many tasks calling at once over one client.
#[test]
#[ignore = "child process entry point"]
fn child_clients() {
    let Some(_) = child_role() else { return };
    let text = env("IPCKIT_EP");
    let ep: Endpoint = text.parse().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let client = Arc::new(AsyncClient::connect(&ep).unwrap_or_else(|e| panic!("connect {text}: {e}")));

        // A call the server holds until a later call releases it: it can
        // only be answered if the server serves others meanwhile.
        let held = {
            let client = client.clone();
            tokio::spawn(async move { client.call(b"hold").await })
        };
        while client.call(b"holding").await.unwrap() != b"1" {
            tokio::task::yield_now().await;
        }

        // Many tasks at once, some requests slow, some calls dropped while
        // in flight (after one poll): the others get their own replies.
        let mut tasks = tokio::task::JoinSet::new();
        for t in 0..TASKS {
            let client = client.clone();
            tasks.spawn(async move {
                let mut dropped = 0;
                for c in 0..CALLS {
                    let word = format!("t{t}c{c}");
                    let verb = if (t + c) % 5 == 0 { "sleep" } else { "echo" };
                    let request = format!("{verb} {word}");
                    if (t * CALLS + c) % 7 == 3 {
                        tokio::select! {
                            biased;
                            r = client.call(request.as_bytes()) => {
                                assert_eq!(r.unwrap(), word.chars().rev().collect::<String>().into_bytes());
                            }
                            () = std::future::ready(()) => dropped += 1,
                        }
                        continue;
                    }
                    let reply = client.call(request.as_bytes()).await.unwrap_or_else(|e| panic!("{request}: {e}"));
                    assert_eq!(reply, word.chars().rev().collect::<String>().into_bytes(), "{request}");
                }
                dropped
            });
        }
        let mut dropped = 0;
        while let Some(done) = tasks.join_next().await {
            dropped += done.expect("a calling task failed");
        }
        assert!(dropped > 0);

        let err = client.call(b"fail now").await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Remote);
        assert!(err.to_string().contains("failed on purpose: now"), "{err}");

        assert_eq!(client.call(b"release").await.unwrap(), b"ok");
        assert_eq!(held.await.unwrap().unwrap(), b"released");
        // Replies of dropped calls that came were counted, never handed
        // to another call.
        assert!(client.stray_replies() <= dropped);
    });
}
