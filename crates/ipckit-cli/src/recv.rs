//! `ipckit recv`.

use std::io::Write;
use std::time::Duration;

use base64::Engine;
use clap::Args;
use ipckit::{EndpointKind, ErrorKind, Message, Receiver, UnixAddr};

use crate::{Common, Deadline, units};

#[derive(Args, Debug)]
pub struct RecvArgs {
    /// Where to receive (e.g. unix:/tmp/app.sock, fifo:/tmp/f, tcp:127.0.0.1:7000).
    pub endpoint: String,
    /// Stop after this many messages (default: run until killed).
    #[arg(long, value_name = "N", value_parser = units::count)]
    pub count: Option<u64>,
    /// Give up after this long (e.g. 500ms, 2s), for all the messages:
    /// exit 3. Too long for the clock (e.g. 99999999999999999999s): no
    /// limit.
    #[arg(long, value_name = "DURATION", value_parser = units::parse_duration)]
    pub timeout: Option<Duration>,
    /// Print one JSON object per message: data (UTF-8) or data_b64, len,
    /// and the transport's metadata ("sealed": true for a sealed memfd
    /// message, whose payload is data).
    #[arg(long, conflicts_with = "raw")]
    pub json: bool,
    /// Write the payload bytes exactly, with nothing added.
    #[arg(long)]
    pub raw: bool,
    /// System V queues: which message to take. 0: the first; N > 0: the
    /// first of type N; N < 0: the first of the lowest type at most |N|.
    #[arg(long = "type", value_name = "RULE", value_parser = units::type_rule, default_value_t = 0)]
    pub msg_type: i64,
    /// System V queues: cut messages longer than --max-size instead of
    /// refusing them (a cut message is reported, with "truncated" in --json).
    #[arg(long)]
    pub noerror: bool,
    /// When ready to receive, write "ready ENDPOINT\n" to this descriptor
    /// and close it (in addition to the "ipckit: ready ENDPOINT" line on
    /// standard error). N is 3 or more: a descriptor opened for this, as
    /// in `3>file`.
    #[arg(long, value_name = "N", value_parser = units::ready_fd)]
    pub ready_fd: Option<i32>,
    #[command(flatten)]
    pub common: Common,
}

/// The line `recv` writes to standard error once it can receive.
pub const READY_PREFIX: &str = "ipckit: ready ";

pub fn run(args: RecvArgs) -> anyhow::Result<()> {
    let ep = crate::endpoint(&args.endpoint)?;
    let is_sysv = matches!(ep.kind(), EndpointKind::SysvMq(_));
    crate::only_for(args.msg_type != 0 && !is_sysv, "--type", "sysv-mq:", &ep)?;
    crate::only_for(args.noerror && !is_sysv, "--noerror", "sysv-mq:", &ep)?;
    // A socket file this command creates is this command's to remove.
    let owns_file = matches!(ep.kind(), EndpointKind::Unix(_, UnixAddr::Path(_)));
    let opts = args.common.options().unlink_on_drop(owns_file).msg_type(args.msg_type).noerror(args.noerror);
    let ready_fd = args
        .ready_fd
        .map(|n| {
            ipckit::process::take_fd_named_by_user(n).map_err(|e| {
                let errno = e.errno().unwrap_or(ipckit::Errno::BADF);
                ipckit::Error::os("--ready-fd", n, errno)
                    .with_kind(ErrorKind::Invalid)
                    .with_detail(format!("descriptor {n} is not open in this process (open it, e.g. `{n}>file`)"))
            })
        })
        .transpose()?;
    let mut rx = Receiver::bind_with(&ep, &opts)?;
    crate::print_warnings(rx.take_warnings());
    // Not `eprintln!`, which panics when standard error cannot be written.
    let _ = writeln!(std::io::stderr(), "{READY_PREFIX}{}", rx.name());
    if let Some(fd) = ready_fd {
        let mut f = std::fs::File::from(fd);
        // The announcement is best effort: a reader that went away does not
        // stop the receiver.
        let _ = writeln!(f, "ready {}", rx.name());
    }
    let deadline = Deadline::after(args.timeout);
    let stdout = std::io::stdout();
    let mut received = 0u64;
    while args.count.is_none_or(|c| received < c) {
        let result = match deadline.left() {
            Some(t) => rx.recv_timeout(t),
            None => rx.recv(),
        };
        crate::print_warnings(rx.take_warnings());
        let msg = match result {
            Ok(msg) => msg,
            // One sender's fault (a torn or oversized message) is reported
            // and the receiver goes on serving the others.
            Err(e) if is_one_senders_fault(&e, &ep) => {
                crate::errln(format_args!("{e}"));
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        let mut out = stdout.lock();
        print_message(&mut out, &msg, args.json, args.raw).and_then(|()| out.flush()).map_err(crate::stdout_error)?;
        received += 1;
    }
    Ok(())
}

/// Errors that concern one sender's message, after which the receiver is
/// still in step: a message over the maximum, or a sender that broke off
/// inside a frame. On a queue, a message over the maximum stays queued (the
/// next receive would meet it again) and `Disconnected` means the queue
/// itself was removed: both end the receiver.
fn is_one_senders_fault(e: &ipckit::Error, ep: &ipckit::Endpoint) -> bool {
    match e.kind() {
        ErrorKind::TooLarge | ErrorKind::Corrupt => !matches!(ep.kind(), EndpointKind::Mq(_) | EndpointKind::SysvMq(_)),
        ErrorKind::Disconnected => !matches!(ep.kind(), EndpointKind::Mq(_) | EndpointKind::SysvMq(_)),
        _ => false,
    }
}

pub fn print_message(out: &mut impl Write, msg: &Message, json: bool, raw: bool) -> std::io::Result<()> {
    // A sealed memfd message's payload is read in place.
    let data = msg.meta.sealed.as_ref().map_or(&msg.data[..], |s| s.as_bytes());
    if raw {
        return out.write_all(data);
    }
    if !json {
        out.write_all(data)?;
        return out.write_all(b"\n");
    }
    let mut obj = serde_json::Map::new();
    match std::str::from_utf8(data) {
        Ok(s) => obj.insert("data".into(), s.into()),
        Err(_) => obj.insert("data_b64".into(), base64::engine::general_purpose::STANDARD.encode(data).into()),
    };
    obj.insert("len".into(), data.len().into());
    let meta = &msg.meta;
    if meta.sealed.is_some() {
        obj.insert("sealed".into(), true.into());
    }
    if let Some(p) = meta.priority {
        obj.insert("priority".into(), p.into());
    }
    if let Some(t) = meta.msg_type {
        obj.insert("type".into(), t.into());
    }
    if meta.truncated {
        obj.insert("truncated".into(), true.into());
    }
    if meta.lost > 0 {
        obj.insert("lost".into(), meta.lost.into());
    }
    if !meta.fds.is_empty() {
        obj.insert("fds".into(), meta.fds.len().into());
    }
    if let Some(c) = meta.creds {
        obj.insert("pid".into(), c.pid.into());
        obj.insert("uid".into(), c.uid.into());
        obj.insert("gid".into(), c.gid.into());
    }
    serde_json::to_writer(&mut *out, &obj)?;
    out.write_all(b"\n")
}
