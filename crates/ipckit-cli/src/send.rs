//! `ipckit send`: message arguments, all of standard input as one message,
//! or standard input streamed, one message per line as each line is read.

use std::io::{BufRead, Read};
use std::time::Duration;

use clap::Args;
use ipckit::{Endpoint, Error, ErrorKind, SendMeta, Sender};

use crate::{Common, Deadline, units};

/// The long help of `ipckit send` (`--help`).
pub const LONG_HELP: &str = "Send messages: each argument is one message; with none, each line of standard \
        input is one.\n\n\
        Standard input is streamed: each line (without its newline) is sent as soon as it is read, so \
        `tail -f log | ipckit send ENDPOINT` forwards lines as they come, and memory stays bounded by \
        --max-size whatever the input. A line longer than --max-size is an error (exit 1) as soon as \
        --max-size + 1 bytes of it are read; none of it is sent, and the command stops there, like after \
        any failed send (the lines before it were sent). An empty line is an empty message; a last line \
        without a newline is sent at the end of the input.\n\n\
        --stdin-whole sends all of standard input as one message, at most --max-size bytes: more is refused \
        before anything is opened or sent.\n\n\
        --timeout D: with message arguments or --stdin-whole, the whole send (finding the receiver, waiting \
        for room) must be done within D. Streaming, finding the receiver and each message get D each; \
        waiting for input does not count, so a stream runs as long as its input. A D too long for the clock \
        (e.g. 99999999999999999999s) means no limit. Exit 3 when it runs out.\n\n\
        Exit status: 0 sent, 1 error (nobody there, a message too large, disconnected), 2 invalid (bad \
        endpoint or option), 3 timed out.";

#[derive(Args, Debug)]
pub struct SendArgs {
    /// Where to send (e.g. unix:/tmp/app.sock, fifo:/tmp/f, tcp:127.0.0.1:7000). On a FIFO with several
    /// writers, frames over 4 KiB (PIPE_BUF) can interleave: a warning says so.
    pub endpoint: String,
    /// Messages, one per argument. With none, standard input is read, a
    /// message per line.
    pub messages: Vec<String>,
    /// Send all of standard input as one message (at most --max-size
    /// bytes) instead of one per line.
    #[arg(long, conflicts_with = "messages")]
    pub stdin_whole: bool,
    /// Priority of every message (POSIX queues, `mq:`; 0 to 32767).
    #[arg(long, value_name = "N", value_parser = units::priority)]
    pub priority: Option<u32>,
    /// Type of every message (System V queues, `sysv-mq:`; 1 or more).
    #[arg(long = "type", value_name = "TYPE", value_parser = units::msg_type)]
    pub msg_type: Option<i64>,
    /// Give up after this long (e.g. 500ms, 2s): exit 3. With messages as
    /// arguments or --stdin-whole: for the whole send; streaming standard
    /// input: for connecting and for each message. Too long for the clock:
    /// no limit.
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
    let mut stdin = std::io::stdin().lock();
    if args.stdin_whole {
        let input = read_whole("send", &mut stdin, max, &ep)?;
        let deadline = Deadline::after(args.timeout);
        let mut tx = Out::connect(&ep, &opts, meta, deadline.left())?;
        return Ok(tx.send(&input, deadline.left())?);
    }
    let mut tx = Out::connect(&ep, &opts, meta, args.timeout)?;
    let mut line = Vec::new();
    for number in 1u64.. {
        match read_line(&mut stdin, max, &mut line).map_err(|e| crate::io_error("read", "stdin", &e))? {
            Next::End => break,
            Next::Line => tx.send(&line, args.timeout)?,
            Next::TooLong => {
                let why = format!(
                    "line {number} of standard input exceeds the maximum of {max} bytes (--max-size): it has at \
                     least {} bytes; none of it was sent",
                    max.saturating_add(1)
                );
                return Err(Error::new(ErrorKind::TooLarge, "send", &ep, why).into());
            }
        }
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

/// All of `input`, at most `max` bytes: reads one byte more than that at
/// most, to refuse more without reading (or holding) all of it. `op` is
/// the command refusing it.
pub fn read_whole(op: &'static str, input: &mut impl Read, max: usize, ep: &Endpoint) -> ipckit::Result<Vec<u8>> {
    let limit = u64::try_from(max).unwrap_or(u64::MAX).saturating_add(1);
    let mut data = Vec::new();
    input.take(limit).read_to_end(&mut data).map_err(|e| crate::io_error("read", "stdin", &e))?;
    if data.len() > max {
        let why = format!(
            "standard input exceeds the maximum of {max} bytes (--max-size): it has at least {} bytes; \
             nothing was sent",
            max.saturating_add(1)
        );
        return Err(Error::new(ErrorKind::TooLarge, op, ep, why));
    }
    Ok(data)
}

/// What [`read_line`] found.
#[derive(Debug, PartialEq, Eq)]
pub enum Next {
    /// A line, in the buffer without its newline.
    Line,
    /// The end of the input.
    End,
    /// A line of more than the maximum: the buffer holds the maximum of
    /// it, the rest is unread.
    TooLong,
}

/// Reads the next line into `line` (cleared first), without its `\n`, as
/// soon as it is complete: never waits for more input than the line. A
/// last line without `\n` counts. Holds at most `max` bytes of a line, so
/// a line of more than `max` is [`Next::TooLong`] once `max + 1` bytes of
/// it have been seen, whatever its length.
pub fn read_line(input: &mut impl BufRead, max: usize, line: &mut Vec<u8>) -> std::io::Result<Next> {
    line.clear();
    loop {
        let buf = match input.fill_buf() {
            Ok(buf) => buf,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if buf.is_empty() {
            return Ok(if line.is_empty() { Next::End } else { Next::Line });
        }
        let (take, done) = match buf.iter().position(|&b| b == b'\n') {
            Some(i) => (i, true),
            None => (buf.len(), false),
        };
        if take > max - line.len() {
            return Ok(Next::TooLong);
        }
        line.extend_from_slice(&buf[..take]);
        input.consume(if done { take + 1 } else { take });
        if done {
            return Ok(Next::Line);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The lines of `input` with a maximum of `max`, read through a
    /// buffer of `cap` bytes.
    fn lines(input: &[u8], max: usize, cap: usize) -> Vec<Result<Vec<u8>, ()>> {
        let mut reader = std::io::BufReader::with_capacity(cap, input);
        let mut line = Vec::new();
        let mut out = Vec::new();
        loop {
            match read_line(&mut reader, max, &mut line).expect("read") {
                Next::End => return out,
                Next::Line => out.push(Ok(line.clone())),
                Next::TooLong => {
                    assert!(line.len() <= max, "held {} bytes with a maximum of {max}", line.len());
                    out.push(Err(()));
                    return out;
                }
            }
        }
    }

    #[test]
    fn lines_as_before() {
        let ok = |v: &[&str]| v.iter().map(|s| Ok(s.as_bytes().to_vec())).collect::<Vec<_>>();
        for cap in [1, 2, 3, 8192] {
            assert_eq!(lines(b"", 10, cap), ok(&[]));
            assert_eq!(lines(b"\n", 10, cap), ok(&[""]));
            assert_eq!(lines(b"a\nb\n", 10, cap), ok(&["a", "b"]));
            assert_eq!(lines(b"a\n\nb", 10, cap), ok(&["a", "", "b"]));
            assert_eq!(lines(b"a\r\n", 10, cap), ok(&["a\r"]));
        }
    }

    #[test]
    fn lines_over_the_maximum() {
        for cap in [1, 4, 8192] {
            assert_eq!(lines(b"1234\n12345\n", 4, cap), vec![Ok(b"1234".to_vec()), Err(())]);
            assert_eq!(lines(b"12345", 4, cap), vec![Err(())]);
            assert_eq!(lines(b"\n\n", 0, cap), vec![Ok(vec![]), Ok(vec![])]);
            assert_eq!(lines(b"x", 0, cap), vec![Err(())]);
        }
    }
}
