//! What the request-response tests share.

use ipckit::Endpoint;
use ipckit_testkit::scratch::Scratch;

/// Every transport request-response runs on, named for this test.
pub fn transports(s: &Scratch) -> Vec<String> {
    vec![
        format!("unix:{}", s.path("rpc.sock").display()),
        format!("unix-seqpacket:@{}", s.name("rpcseq")),
        "tcp:127.0.0.1:0".to_string(),
        format!("shm:{}", s.name("rpcshm")),
        s.mq("rpcq", ""),
        s.sysv_mq(7, ""),
    ]
}

pub fn ep(text: &str) -> Endpoint {
    text.parse().unwrap_or_else(|e| panic!("{text}: {e}"))
}

/// Whether anything named with `tag` is left: POSIX queues in /dev/mqueue,
/// abstract sockets.
pub fn leftovers(tag: &str) -> Vec<String> {
    let mut left: Vec<String> = std::fs::read_dir("/dev/mqueue")
        .map(|d| {
            d.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).filter(|n| n.contains(tag)).collect()
        })
        .unwrap_or_default();
    left.extend(
        std::fs::read_to_string("/proc/net/unix")
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains(tag))
            .map(String::from),
    );
    left
}

/// Stops a server's serving loops when dropped: a failing check in a
/// thread scope unwinds through it, and the scope's serving threads end
/// instead of holding the test for ever.
pub struct Stop<'a>(pub &'a ipckit::rpc::Server);

impl Drop for Stop<'_> {
    fn drop(&mut self) {
        self.0.stop();
    }
}
