//! What the `shm:` tests share.

use ipckit::{Endpoint, Options, Receiver, Sender};
use ipckit_testkit::HANG_GUARD;
use ipckit_testkit::scratch::Scratch;

/// `shm:` plus a name unique to the test, plus `query`.
pub fn channel(s: &Scratch, name: &str, query: &str) -> String {
    format!("shm:{}{query}", s.name(name))
}

pub fn ep(text: &str) -> Endpoint {
    text.parse().unwrap_or_else(|e| panic!("{text}: {e}"))
}

/// A receiver on `text` and a sender connected to it, in this process.
pub fn pair(text: &str) -> (Receiver, Sender) {
    let rx = Receiver::bind(&ep(text)).unwrap_or_else(|e| panic!("bind {text}: {e}"));
    let tx = Sender::connect_timeout(&ep(text), &Options::new(), HANG_GUARD).unwrap_or_else(|e| panic!("{e}"));
    (rx, tx)
}

/// Whether an abstract socket whose name contains `name` exists.
pub fn control_socket_exists(name: &str) -> bool {
    std::fs::read_to_string("/proc/net/unix").unwrap_or_default().lines().any(|l| l.contains(name))
}
