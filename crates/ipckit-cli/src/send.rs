//! `ipckit send`.

use std::io::Read;
use std::time::Duration;

use clap::Args;
use ipckit::{Endpoint, Error, ErrorKind, SendMeta, Sender};

use crate::{Common, Deadline, units};

/// The long help of `ipckit send` (`--help`).
pub const LONG_HELP: &str = "Send messages: each argument is one message; with none, each line of standard \
        input is one.\n\n\
        --timeout D: the whole send (finding the receiver, waiting for room) must be done within D. A D too long \
        for the clock (e.g. 99999999999999999999s) means no limit. Exit 3 when it runs out.\n\n\
        Exit status: 0 sent, 1 error (nobody there, a message too large, disconnected), 2 invalid (bad \
        endpoint or option), 3 timed out.";

#[derive(Args, Debug)]
pub struct SendArgs {
    /// Where to send (e.g. unix:/tmp/app.sock, fifo:/tmp/f, tcp:127.0.0.1:7000).
    pub endpoint: String,
    /// Messages, one per argument. With none, standard input is read, a
    /// message per line.
    pub messages: Vec<String>,
    /// Send all of standard input as one message instead of one per line.
    #[arg(long, conflicts_with = "messages")]
    pub stdin_whole: bool,
    /// Priority of every message (POSIX queues, `mq:`; 0 to 32767).
    #[arg(long, value_name = "N", value_parser = units::priority)]
    pub priority: Option<u32>,
    /// Type of every message (System V queues, `sysv-mq:`; 1 or more).
    #[arg(long = "type", value_name = "TYPE", value_parser = units::msg_type)]
    pub msg_type: Option<i64>,
    /// Give up after this long (e.g. 500ms, 2s): exit 3. Too long for the
    /// clock: no limit.
    #[arg(long, value_name = "DURATION", value_parser = units::parse_duration)]
    pub timeout: Option<Duration>,
    #[command(flatten)]
    pub common: Common,
}

pub fn run(args: SendArgs) -> anyhow::Result<()> {
    let ep = crate::endpoint(&args.endpoint)?;
    let is_mq = matches!(ep.kind(), ipckit::EndpointKind::Mq(_));
    let is_sysv = matches!(ep.kind(), ipckit::EndpointKind::SysvMq(_));
    crate::only_for(args.priority.is_some() && !is_mq, "--priority", "mq:", &ep)?;
    crate::only_for(args.msg_type.is_some() && !is_sysv, "--type", "sysv-mq:", &ep)?;
    let max = args.common.max_size;
    // Everything the command line says is checked before anything is
    // opened or created (`--create` would leave a queue behind).
    for (i, m) in args.messages.iter().enumerate() {
        if m.len() > max {
            let why = format!(
                "message {} of {} bytes exceeds the maximum of {max} bytes (--max-size); nothing was sent",
                i + 1,
                m.len()
            );
            return Err(Error::new(ErrorKind::TooLarge, "send", &ep, why).into());
        }
    }
    let mut meta = SendMeta::new();
    if let Some(p) = args.priority {
        meta = meta.priority(p);
    }
    if let Some(t) = args.msg_type {
        meta = meta.msg_type(t);
    }
    let opts = args.common.options();

    if !args.messages.is_empty() {
        let deadline = Deadline::after(args.timeout);
        let mut tx = Out::connect(&ep, &opts, meta, deadline.left())?;
        for m in &args.messages {
            tx.send(m.as_bytes(), deadline.left())?;
        }
        return Ok(());
    }
    let mut input = Vec::new();
    std::io::stdin().lock().read_to_end(&mut input).map_err(|e| crate::io_error("read", "stdin", &e))?;
    let deadline = Deadline::after(args.timeout);
    let mut tx = Out::connect(&ep, &opts, meta, deadline.left())?;
    if args.stdin_whole {
        return Ok(tx.send(&input, deadline.left())?);
    }
    if input.is_empty() {
        return Ok(());
    }
    let body = input.strip_suffix(b"\n").unwrap_or(&input);
    for line in body.split(|&b| b == b'\n') {
        tx.send(line, deadline.left())?;
    }
    Ok(())
}

/// A connected sender and the metadata of every message.
struct Out<'a> {
    tx: Sender,
    meta: SendMeta<'a>,
}

impl<'a> Out<'a> {
    /// Connects within `timeout` (retrying while the receiver is not
    /// there yet), or once without one.
    fn connect(
        ep: &Endpoint,
        opts: &ipckit::Options,
        meta: SendMeta<'a>,
        timeout: Option<Duration>,
    ) -> ipckit::Result<Out<'a>> {
        let mut tx = match timeout {
            Some(t) => Sender::connect_timeout(ep, opts, t)?,
            None => Sender::connect_with(ep, opts)?,
        };
        crate::print_warnings(tx.take_warnings());
        Ok(Out { tx, meta })
    }

    /// Sends one message, waiting for room at most `timeout`.
    fn send(&mut self, msg: &[u8], timeout: Option<Duration>) -> ipckit::Result<()> {
        let sent = match timeout {
            Some(t) => self.tx.send_with_timeout(msg, &self.meta, t),
            None => self.tx.send_with(msg, &self.meta),
        };
        crate::print_warnings(self.tx.take_warnings());
        sent
    }
}
