//! Request-response between processes: one server, several clients.
//!
//! ```text
//! cargo run --example request_response [ENDPOINT] [--clients N] [--calls N] [--corrupt]
//! ```
//!
//! The server binds `ENDPOINT` (by default `unix:@ipckit-example-rr-<pid>`,
//! an abstract socket, which leaves nothing behind), starts `N` client
//! processes (this program again, as `request_response client I ENDPOINT
//! CALLS`) and serves them with four worker threads until every client has
//! exited. Each client makes its calls from two threads and checks every
//! reply:
//!
//! | request | reply |
//! | --- | --- |
//! | `sum A B C…` (decimal numbers) | their sum, in decimal |
//! | `upper TEXT` | TEXT in capitals |
//! | `div A B` | A / B; B = 0 fails, and reaches the caller as a `Remote` error |
//!
//! It exits 0 only if every client exited 0 (every reply was right) and the
//! server answered exactly the requests the clients made. A queue
//! (`mq:`, `sysv-mq:`) or socket file the server created is removed, also
//! when a client fails. `--corrupt` makes the server answer every `sum`
//! one too high, to see the clients notice (the example then exits 1).

use std::process::{Command, ExitCode};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use ipckit::rpc::{Client, Server};
use ipckit::{Endpoint, EndpointKind, ErrorKind, Options};

/// How long a client waits for the server to be there, and for a reply.
const PATIENCE: Duration = Duration::from_secs(30);

/// Threads per client making calls at the same time.
const CLIENT_THREADS: u64 = 2;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("client") => client(&args[1..]),
        _ => server(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(why) => {
            eprintln!("request_response: {why}");
            ExitCode::FAILURE
        }
    }
}

/// The handler: see the table above.
fn handle(body: &[u8]) -> Result<Vec<u8>, String> {
    let text = std::str::from_utf8(body).map_err(|_| "the request is not UTF-8".to_string())?;
    let (op, rest) = text.split_once(' ').unwrap_or((text, ""));
    let numbers = || -> Result<Vec<u64>, String> {
        rest.split_whitespace().map(|n| n.parse::<u64>().map_err(|e| format!("{n:?}: {e}"))).collect()
    };
    match op {
        "sum" => Ok(numbers()?.iter().sum::<u64>().to_string().into_bytes()),
        "upper" => Ok(rest.to_uppercase().into_bytes()),
        "div" => match numbers()?[..] {
            [_, 0] => Err("division by zero".to_string()),
            [a, b] => Ok((a / b).to_string().into_bytes()),
            _ => Err("div takes two numbers".to_string()),
        },
        _ => Err(format!("unknown operation {op:?}")),
    }
}

/// Removes the named object the server created (a queue, a socket file)
/// when dropped, whatever happened before.
struct Remove(Option<Endpoint>);

impl Drop for Remove {
    fn drop(&mut self) {
        if let Some(ep) = self.0.take() {
            if let Err(e) = ipckit::remove(&ep) {
                if e.kind() != ErrorKind::NotFound {
                    eprintln!("request_response: remove {ep}: {e}");
                }
            }
        }
    }
}

/// Kills and reaps the client processes that were not waited for (when
/// the server fails half-way).
struct Children(Vec<std::process::Child>);

impl Drop for Children {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn server(args: &[String]) -> Result<(), String> {
    let mut endpoint = format!("unix:@ipckit-example-rr-{}", std::process::id());
    let (mut clients, mut calls, mut corrupt) = (3u64, 20u64, false);
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut number = |what: &str| -> Result<u64, String> {
            let v = it.next().ok_or(format!("{what} needs a number"))?;
            v.parse().map_err(|e| format!("{what} {v:?}: {e}"))
        };
        match arg.as_str() {
            "--clients" => clients = number("--clients")?.max(1),
            "--calls" => calls = number("--calls")?,
            "--corrupt" => corrupt = true,
            a if a.starts_with('-') => return Err(format!("unknown option {a}")),
            a => endpoint = a.to_string(),
        }
    }
    let ep: Endpoint = endpoint.parse().map_err(|e| format!("{endpoint}: {e}"))?;
    let named = match ep.kind() {
        EndpointKind::Mq(_) | EndpointKind::SysvMq(_) => true,
        EndpointKind::Unix(..) => ep.path().is_some(),
        _ => false,
    };
    let server = Server::bind(&ep).map_err(|e| format!("bind: {e}"))?;
    // From here on, what the bind created goes when this function returns.
    let _remove = Remove(named.then(|| ep.clone()));
    // The name clients use (for tcp: port 0, the real port).
    let name = server.name().to_string();
    println!("server: {name}, {clients} clients x {calls} calls");

    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    let mut children = Children(Vec::new());
    for i in 0..clients {
        let child = Command::new(&exe)
            .args(["client", &i.to_string(), &name, &calls.to_string()])
            .spawn()
            .map_err(|e| format!("spawn client {i}: {e}"))?;
        children.0.push(child);
    }

    let served = AtomicU64::new(0);
    let (serving, failed) = std::thread::scope(|s| {
        let serving = s.spawn(|| {
            server.serve_threads(4, |r| {
                served.fetch_add(1, Ordering::Relaxed);
                let reply = handle(r.body());
                match reply {
                    Ok(sum) if corrupt && r.body().starts_with(b"sum ") => {
                        let sum: u64 = String::from_utf8_lossy(&sum).parse().unwrap_or(0);
                        Ok((sum + 1).to_string().into_bytes())
                    }
                    reply => reply,
                }
            })
        });
        let mut failed = Vec::new();
        for (i, c) in children.0.iter_mut().enumerate() {
            match c.wait() {
                Ok(status) if status.success() => {}
                Ok(status) => failed.push(format!("client {i}: {status}")),
                Err(e) => failed.push(format!("client {i}: wait: {e}")),
            }
        }
        // Every client is gone: nobody will call again.
        server.stop();
        let serving =
            serving.join().unwrap_or_else(|_| Err(ipckit::Error::new(ErrorKind::Io, "serve", &*name, "panicked")));
        (serving, failed)
    });
    children.0.clear();
    serving.map_err(|e| format!("serve: {e}"))?;
    if !failed.is_empty() {
        return Err(format!("clients failed: {}", failed.join(", ")));
    }
    let served = served.into_inner();
    if served != clients * calls {
        return Err(format!("served {served} requests, the clients made {}", clients * calls));
    }
    for w in server.take_warnings() {
        println!("server: note: {w}");
    }
    println!("server: {served} requests from {clients} clients, every reply right");
    Ok(())
}

/// One call the client makes, and the reply it must get.
fn request(client: u64, call: u64) -> (String, Result<String, String>) {
    let (a, b) = (client * 1000 + call, call + 1);
    match call % 4 {
        0 => (format!("sum {a} {b} {}", a * b), Ok((a + b + a * b).to_string())),
        1 => {
            let text = format!("client {client} call {call}");
            (format!("upper {text}"), Ok(text.to_uppercase()))
        }
        2 => (format!("div {a} {b}"), Ok((a / b).to_string())),
        _ => (format!("div {a} 0"), Err("division by zero".to_string())),
    }
}

fn client(args: &[String]) -> Result<(), String> {
    let [i, endpoint, calls] = args else {
        return Err("usage: request_response client I ENDPOINT CALLS".into());
    };
    let i: u64 = i.parse().map_err(|e| format!("client number {i:?}: {e}"))?;
    let calls: u64 = calls.parse().map_err(|e| format!("calls {calls:?}: {e}"))?;
    let ep: Endpoint = endpoint.parse().map_err(|e| format!("{endpoint}: {e}"))?;
    let client =
        Client::connect_timeout(&ep, &Options::new(), PATIENCE).map_err(|e| format!("client {i}: connect: {e}"))?;
    // The calls split between threads: several in flight at once.
    let check = |call: u64| -> Result<(), String> {
        let (body, want) = request(i, call);
        let got = client.call_timeout(body.as_bytes(), PATIENCE);
        match (got, want) {
            (Ok(reply), Ok(want)) if reply == want.as_bytes() => Ok(()),
            (Err(e), Err(want)) if e.kind() == ErrorKind::Remote && e.to_string().contains(&want) => Ok(()),
            (got, want) => Err(format!(
                "client {i}: {body:?}: got {:?}, want {want:?}",
                got.map(|r| String::from_utf8_lossy(&r).into_owned()).map_err(|e| e.to_string())
            )),
        }
    };
    std::thread::scope(|s| {
        let threads: Vec<_> = (0..CLIENT_THREADS)
            .map(|t| s.spawn(move || (t..calls).step_by(CLIENT_THREADS as usize).try_for_each(check)))
            .collect();
        threads.into_iter().try_for_each(|t| t.join().unwrap_or_else(|_| Err(format!("client {i}: a thread panicked"))))
    })?;
    if client.stray_replies() != 0 {
        return Err(format!("client {i}: {} stray replies", client.stray_replies()));
    }
    println!("client {i}: {calls} calls, every reply right");
    Ok(())
}
