//! `ipckit pub ENDPOINT` and `ipckit sub ENDPOINT`: publish-subscribe from
//! the shell.

use std::io::Write;
use std::time::Duration;

use clap::Args;
use ipckit::pubsub::{Publisher, Subscriber};
use ipckit::{EndpointKind, Error, ErrorKind, Options, UnixAddr};

use crate::send::{Next, read_line};
use crate::{Deadline, units};

/// The long help of `ipckit pub`.
pub const PUB_LONG_HELP: &str = "Publish messages to a topic: each argument is one message; with none, each \
        line of standard input is one, published as soon as it is read (so `tail -f log | ipckit pub \
        shm:log` streams).\n\n\
        ENDPOINT is shm:NAME (subscribers read in place from this process's ring), unix:PATH, unix:@NAME \
        or tcp:HOST:PORT (one connection per subscriber). Endpoint options: ?overflow=block (default: a \
        subscriber that fell behind holds the publisher back) or ?overflow=drop-oldest (it loses the oldest \
        messages and is told how many), ?history=N (keep the last N messages for subscribers that come \
        later).\n\n\
        Once the topic is bound, pub writes \"ipckit: ready ENDPOINT\" on standard error. --subscribers N \
        first waits for N subscribers. At the end of its messages pub ends the topic: subscribers get \
        what was published, then the end.\n\n\
        --timeout D bounds waiting for subscribers and each publish (exit 3).\n\n\
        Exit status: 0 published, 1 error, 2 usage, 3 timed out.";

/// The long help of `ipckit sub`.
pub const SUB_LONG_HELP: &str = "Subscribe to a topic and print its messages, one per line (--json: one \
        JSON object each, with \"lost\": N when N messages were lost just before it under \
        ?overflow=drop-oldest).\n\n\
        With no publisher there yet, sub waits for one (within --timeout if given). Once subscribed it \
        writes \"ipckit: ready ENDPOINT\" on standard error. --history K asks for up to K of the messages \
        the topic kept from before (more than it keeps is a usage error, naming its limit).\n\n\
        sub exits 0 when the publisher ends, after printing everything it published, or once --count \
        messages arrived. If the publisher ends before --count messages arrived, it exits 1 and says how \
        many did.\n\n\
        Exit status: 0, 1 error (or too few messages), 2 usage, 3 timed out.";

#[derive(Args, Debug)]
pub struct PubArgs {
    /// The topic: shm:NAME, unix:PATH, unix:@NAME or tcp:HOST:PORT.
    pub endpoint: String,
    /// Messages, one per argument. With none, each line of standard input.
    pub messages: Vec<String>,
    /// Wait for this many subscribers before publishing.
    #[arg(long, value_name = "N", value_parser = units::count)]
    pub subscribers: Option<u64>,
    /// Give up waiting (for subscribers, for each publish) after this
    /// long: exit 3.
    #[arg(long, value_name = "DURATION", value_parser = units::parse_duration)]
    pub timeout: Option<Duration>,
    /// Largest message (a longer line of standard input is an error).
    #[arg(long, value_name = "SIZE", default_value = "16MiB", value_parser = units::parse_size)]
    pub max_size: usize,
}

#[derive(Args, Debug)]
pub struct SubArgs {
    /// The topic: shm:NAME, unix:PATH, unix:@NAME or tcp:HOST:PORT.
    pub endpoint: String,
    /// Ask for up to this many messages the topic kept from before.
    #[arg(long, value_name = "N", value_parser = units::count)]
    pub history: Option<u64>,
    /// Exit 0 after this many messages.
    #[arg(long, value_name = "N", value_parser = units::count)]
    pub count: Option<u64>,
    /// Give up after this long, for subscribing and all the messages:
    /// exit 3.
    #[arg(long, value_name = "DURATION", value_parser = units::parse_duration)]
    pub timeout: Option<Duration>,
    /// One JSON object per message (data or data_b64, len, lost).
    #[arg(long, conflicts_with = "raw")]
    pub json: bool,
    /// Write the payload bytes exactly, with nothing added.
    #[arg(long)]
    pub raw: bool,
    /// Largest message accepted.
    #[arg(long, value_name = "SIZE", default_value = "16MiB", value_parser = units::parse_size)]
    pub max_size: usize,
}

/// Publish-subscribe runs on these endpoints; anything else is a usage
/// error before anything is created.
fn check_topic(op: &'static str, ep: &ipckit::Endpoint) -> ipckit::Result<()> {
    match ep.kind() {
        EndpointKind::Shm(_) | EndpointKind::Tcp { .. } | EndpointKind::Unix(ipckit::UnixType::Stream, _) => Ok(()),
        _ => Err(Error::new(
            ErrorKind::Invalid,
            op,
            ep,
            "publish-subscribe runs on shm:, unix: (stream) and tcp: endpoints",
        )),
    }
}

pub fn run_pub(args: PubArgs) -> anyhow::Result<()> {
    let ep = crate::endpoint(&args.endpoint)?;
    check_topic("pub", &ep)?;
    let max = args.max_size;
    for (i, m) in args.messages.iter().enumerate() {
        if m.len() > max {
            let why = format!("message {} of {} bytes exceeds the maximum of {max} bytes (--max-size)", i + 1, m.len());
            return Err(Error::new(ErrorKind::TooLarge, "pub", &ep, why).into());
        }
    }
    // A socket file this command creates is this command's to remove.
    let owns_file = matches!(ep.kind(), EndpointKind::Unix(_, UnixAddr::Path(_)));
    let opts = Options::new().max_message(max).unlink_on_drop(owns_file);
    let mut publisher = Publisher::bind_with(&ep, &opts)?;
    crate::print_warnings(publisher.take_warnings());
    let _ = writeln!(std::io::stderr(), "{}{}", crate::recv::READY_PREFIX, publisher.name());
    if let Some(n) = args.subscribers {
        let n = usize::try_from(n).unwrap_or(usize::MAX);
        publisher.wait_for_subscribers(n, Deadline::after(args.timeout).left())?;
    }
    let publish = |publisher: &mut Publisher, msg: &[u8]| -> ipckit::Result<()> {
        let done = match Deadline::after(args.timeout).left() {
            Some(t) => publisher.publish_timeout(msg, t),
            None => publisher.publish(msg),
        };
        crate::print_warnings(publisher.take_warnings());
        done
    };
    if !args.messages.is_empty() {
        for m in &args.messages {
            publish(&mut publisher, m.as_bytes())?;
        }
        return Ok(());
    }
    let mut stdin = std::io::stdin().lock();
    let mut line = Vec::new();
    for number in 1u64.. {
        match read_line(&mut stdin, max, &mut line).map_err(|e| crate::io_error("read", "stdin", &e))? {
            Next::End => break,
            Next::Line => publish(&mut publisher, &line)?,
            Next::TooLong => {
                let why = format!(
                    "line {number} of standard input exceeds the maximum of {max} bytes (--max-size); none of it \
                     was published"
                );
                return Err(Error::new(ErrorKind::TooLarge, "pub", &ep, why).into());
            }
        }
    }
    Ok(())
}

pub fn run_sub(args: SubArgs) -> anyhow::Result<()> {
    let ep = crate::endpoint(&args.endpoint)?;
    check_topic("sub", &ep)?;
    let mut opts = Options::new().max_message(args.max_size);
    if let Some(k) = args.history {
        opts = opts.history(k);
    }
    let deadline = Deadline::after(args.timeout);
    let mut sub = match deadline.left() {
        Some(t) => Subscriber::connect_timeout(&ep, &opts, t)?,
        None => Subscriber::connect_with(&ep, &opts)?,
    };
    let _ = writeln!(std::io::stderr(), "{}{}", crate::recv::READY_PREFIX, sub.name());
    let stdout = std::io::stdout();
    let mut received = 0u64;
    while args.count.is_none_or(|c| received < c) {
        let got = match deadline.left() {
            Some(t) => sub.recv_timeout(t),
            None => sub.recv(),
        };
        let msg = match got {
            Ok(m) => m,
            Err(e) if e.kind() == ErrorKind::Disconnected => {
                return match args.count {
                    Some(c) => Err(Error::new(
                        ErrorKind::Disconnected,
                        "sub",
                        &ep,
                        format!("the publisher ended after {received} of the {c} messages asked for (--count)"),
                    )
                    .into()),
                    None => Ok(()),
                };
            }
            Err(e) => return Err(e.into()),
        };
        let mut out = stdout.lock();
        crate::recv::print_message(&mut out, &msg, args.json, args.raw)
            .and_then(|()| out.flush())
            .map_err(crate::stdout_error)?;
        received += 1;
    }
    Ok(())
}
