//! `ipckit send`.

use std::io::Read;
use std::time::Instant;

use clap::Args;
use ipckit::{SendMeta, Sender};

use crate::Common;

#[derive(Args, Debug)]
pub struct SendArgs {
    /// Where to send (e.g. unix:/tmp/app.sock, fifo:/tmp/f, tcp:127.0.0.1:7000). On a FIFO with several
    /// writers, frames over 4 KiB (PIPE_BUF) can interleave: a warning says so.
    pub endpoint: String,
    /// Messages, one per argument. With none, standard input is read.
    pub messages: Vec<String>,
    /// Send all of standard input as one message instead of one per line.
    #[arg(long)]
    pub stdin_whole: bool,
    /// Priority of every message (POSIX queues, `mq:`; 0 to 32767).
    #[arg(long)]
    pub priority: Option<u32>,
    /// Type of every message (System V queues, `sysv-mq:`; positive).
    #[arg(long = "type", value_name = "TYPE")]
    pub msg_type: Option<i64>,
    #[command(flatten)]
    pub common: Common,
}

pub fn run(args: SendArgs) -> anyhow::Result<()> {
    let ep = crate::endpoint(&args.endpoint)?;
    let is_mq = matches!(ep.kind(), ipckit::EndpointKind::Mq(_));
    let is_sysv = matches!(ep.kind(), ipckit::EndpointKind::SysvMq(_));
    crate::only_for(args.priority.is_some() && !is_mq, "--priority", "mq:", &ep)?;
    crate::only_for(args.msg_type.is_some() && !is_sysv, "--type", "sysv-mq:", &ep)?;
    let opts = args.common.options();
    let deadline = args.common.timeout.map(|t| Instant::now() + t);
    let left = || deadline.map(|d| d.saturating_duration_since(Instant::now()));
    let mut tx = match left() {
        Some(t) => Sender::connect_timeout(&ep, &opts, t)?,
        None => Sender::connect_with(&ep, &opts)?,
    };
    let mut meta = SendMeta::new();
    if let Some(p) = args.priority {
        meta = meta.priority(p);
    }
    if let Some(t) = args.msg_type {
        meta = meta.msg_type(t);
    }
    crate::print_warnings(tx.take_warnings());
    let mut send = |msg: &[u8]| -> ipckit::Result<()> {
        let sent = match left() {
            Some(t) => tx.send_with_timeout(msg, &meta, t),
            None => tx.send_with(msg, &meta),
        };
        crate::print_warnings(tx.take_warnings());
        sent
    };
    if !args.messages.is_empty() {
        for m in &args.messages {
            send(m.as_bytes())?;
        }
        return Ok(());
    }
    let mut input = Vec::new();
    std::io::stdin().lock().read_to_end(&mut input)?;
    if args.stdin_whole {
        return Ok(send(&input)?);
    }
    if input.is_empty() {
        return Ok(());
    }
    let body = input.strip_suffix(b"\n").unwrap_or(&input);
    for line in body.split(|&b| b == b'\n') {
        send(line)?;
    }
    Ok(())
}
