//! `ipckit call ENDPOINT [MESSAGE]`: one request-response call.

use std::ffi::OsString;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::time::Duration;

use clap::Args;
use ipckit::rpc::Client;
use ipckit::{Error, ErrorKind, Options};

use crate::units;

/// The long help of `ipckit call` (`--help`).
pub const LONG_HELP: &str = "Make one call to the server at ENDPOINT (e.g. one run by `ipckit serve`) and print \
        its reply exactly as received, with nothing added.\n\n\
        MESSAGE is the request; without it, all of standard input is (at most --max-size bytes). \
        No server there is an error at once (exit 1), never a wait. The server's handler failing is an \
        error too: its message is printed on standard error, exit 1.\n\n\
        --timeout D: the call (sending the request, waiting for the reply) must be done within D, else \
        exit 3; a reply that comes later is dropped. A D too long for the clock means no limit.\n\n\
        Exit status: 0 replied, 1 error (no server, the handler failed, disconnected), 2 usage, 3 timed out.";

#[derive(Args, Debug)]
pub struct CallArgs {
    /// The server: unix:, unix-seqpacket:, tcp:, shm:, mq: or sysv-mq:.
    pub endpoint: String,
    /// The request. Without it, all of standard input is the request.
    pub message: Option<OsString>,
    /// Give up waiting for the reply after this long (e.g. 500ms, 2s):
    /// exit 3.
    #[arg(long, value_name = "DURATION", value_parser = units::parse_duration)]
    pub timeout: Option<Duration>,
    /// Largest request sent and reply accepted (e.g. 64KiB).
    #[arg(long, value_name = "SIZE", default_value = "16MiB", value_parser = units::parse_size)]
    pub max_size: usize,
}

pub fn run(args: CallArgs) -> anyhow::Result<()> {
    let ep = crate::endpoint(&args.endpoint)?;
    crate::serve::check_rpc_endpoint("call", &ep)?;
    let max = args.max_size;
    let body = match &args.message {
        Some(m) => {
            let m = m.as_bytes().to_vec();
            if m.len() > max {
                let why = format!("the message of {} bytes exceeds the maximum of {max} bytes (--max-size)", m.len());
                return Err(Error::new(ErrorKind::TooLarge, "call", &ep, why).into());
            }
            m
        }
        None => crate::send::read_whole("call", &mut std::io::stdin().lock(), max, &ep)?,
    };
    let client = Client::connect_with(&ep, &Options::new().max_message(max)).map_err(|e| match e.kind() {
        // Said in this command's terms (not "create it with --create").
        ErrorKind::NotFound | ErrorKind::Disconnected => {
            Error::new(e.kind(), "call", &ep, format!("no server there ({e})"))
        }
        _ => e,
    })?;
    let reply = match args.timeout {
        Some(t) => client.call_timeout(&body, t),
        None => client.call(&body),
    }?;
    let mut out = std::io::stdout().lock();
    out.write_all(&reply).and_then(|()| out.flush()).map_err(crate::stdout_error)?;
    Ok(())
}
