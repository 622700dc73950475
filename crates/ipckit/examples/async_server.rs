//! One tokio runtime serving request-response on 100 endpoints at once
//! (50 `shm:` channels, 50 `unix:` sockets), with client processes
//! calling every one of them concurrently.
//!
//! ```sh
//! cargo run --example async_server --features tokio
//! ```
//!
//! It starts four copies of itself as clients (`async_server --client
//! ENDPOINT...`), each of which calls every endpoint from a task of its
//! own, waits for them, stops the servers and reports. Exit status 0 when
//! every reply was right.

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ipckit::tokio::{AsyncClient, AsyncServer};
use ipckit::{Endpoint, Result};

const ENDPOINTS: usize = 100;
const CLIENTS: usize = 4;
const CALLS: usize = 20;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--client") {
        return client(&args[1..]);
    }
    serve()
}

/// The server side: 100 async servers in one current-thread runtime.
fn serve() -> Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio runtime");
    rt.block_on(async {
        let pid = std::process::id();
        let mut servers = Vec::new();
        for i in 0..ENDPOINTS {
            // No payload pools (`pool=0`): the messages are small, and each
            // pool is a 64 MiB memfd set up at connect (per client, and per
            // reply channel).
            let text = match i % 2 {
                0 => format!("shm:ipckit-example-{pid}-{i}?pool=0&size=64KiB"),
                _ => format!("unix:@ipckit-example-{pid}-{i}"),
            };
            servers.push(Arc::new(AsyncServer::bind(&text.parse()?)?));
        }
        let names: Vec<String> = servers.iter().map(|s| s.name().to_string()).collect();
        let mut serving = tokio::task::JoinSet::new();
        for (i, server) in servers.iter().enumerate() {
            let server = server.clone();
            serving.spawn(async move {
                server
                    .serve(move |req| async move {
                        // Every tenth request takes a while: the others
                        // are answered meanwhile.
                        if req.body().ends_with(b"0") {
                            tokio::time::sleep(Duration::from_millis(5)).await;
                        }
                        let mut reply = format!("{i}:").into_bytes();
                        reply.extend_from_slice(req.body());
                        Ok::<_, String>(reply)
                    })
                    .await
            });
        }
        let start = Instant::now();
        let exe = std::env::current_exe().expect("current_exe");
        let mut clients = Vec::new();
        for _ in 0..CLIENTS {
            clients.push(Command::new(&exe).arg("--client").args(&names).spawn().expect("start a client"));
        }
        let statuses = tokio::task::spawn_blocking(move || {
            clients.into_iter().map(|mut c| c.wait().expect("wait for a client")).collect::<Vec<_>>()
        })
        .await
        .expect("waiting for the clients");
        for server in &servers {
            server.stop();
        }
        while let Some(done) = serving.join_next().await {
            done.expect("a serving task panicked")?;
        }
        let failed = statuses.iter().filter(|s| !s.success()).count();
        println!(
            "{CLIENTS} clients made {} calls to {ENDPOINTS} endpoints in {:?}; {failed} clients failed",
            CLIENTS * ENDPOINTS * CALLS,
            start.elapsed()
        );
        if failed > 0 {
            std::process::exit(1);
        }
        Ok(())
    })
}

/// A client process: a task per endpoint, each making its calls in turn.
fn client(names: &[String]) -> Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio runtime");
    rt.block_on(async {
        let mut calls = tokio::task::JoinSet::new();
        for (i, name) in names.iter().enumerate() {
            let ep: Endpoint = name.parse()?;
            let client = AsyncClient::connect(&ep)?;
            calls.spawn(async move {
                for c in 0..CALLS {
                    let body = format!("call {c}");
                    let reply = client.call(body.as_bytes()).await?;
                    assert_eq!(reply, format!("{i}:{body}").into_bytes(), "a wrong reply from {}", client.name());
                }
                Ok::<_, ipckit::Error>(())
            });
        }
        while let Some(done) = calls.join_next().await {
            done.expect("a calling task panicked")?;
        }
        Ok(())
    })
}
