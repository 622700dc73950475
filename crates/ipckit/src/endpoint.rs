//! Endpoint strings: one grammar for the library and the `ipckit` command.
//!
//! | endpoint | mechanism |
//! | --- | --- |
//! | `fifo:/path` | named pipe |
//! | `mq:/name` | POSIX message queue |
//! | `sysv-mq:KEY` | System V message queue (KEY: nonzero decimal, `0x` hex, or an absolute path for `ftok`, with `?id=N`, 1 by default) |
//! | `unix:/path`, `unix:@name` | Unix stream socket (file path or abstract name) |
//! | `unix-seqpacket:…`, `unix-dgram:…` | the other Unix socket types |
//! | `tcp:HOST:PORT` | TCP (`tcp:[::1]:7000` for IPv6) |
//! | `shm:name` | ipckit's shared-memory channel |
//!
//! Options that belong to the object follow in a query part,
//! `mq:/jobs?maxmsg=10&msgsize=1024&mode=0600`. Parsing checks every option
//! against the scheme, and printing a parsed endpoint gives back the string
//! it was parsed from.
//!
//! ```
//! use ipckit::{Endpoint, EndpointKind};
//! let ep: Endpoint = "mq:/jobs?maxmsg=10&mode=0600".parse()?;
//! assert!(matches!(ep.kind(), EndpointKind::Mq(name) if name == "/jobs"));
//! assert_eq!(ep.mode()?, Some(0o600));
//! assert_eq!(ep.to_string(), "mq:/jobs?maxmsg=10&mode=0600");
//! # Ok::<(), ipckit::Error>(())
//! ```

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use crate::error::{Error, ErrorKind, Result};
pub use crate::name::{SysvKey, SysvKeySource};

/// The longest Unix socket path or abstract name (`sun_path` is 108 bytes,
/// one of which is the terminating NUL or the abstract marker).
pub const UNIX_ADDR_MAX: usize = 107;

/// The longest `shm:` channel name: what an abstract socket name leaves
/// after `ipckit/shm/`.
pub const SHM_NAME_MAX: usize = UNIX_ADDR_MAX - "ipckit/shm/".len();

/// The schemes ipckit knows, in the order the documentation lists them.
pub const SCHEMES: &[&str] = &["fifo", "mq", "sysv-mq", "unix", "unix-seqpacket", "unix-dgram", "tcp", "shm"];

/// A parsed endpoint string: the mechanism, its address, and its options.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Endpoint {
    kind: EndpointKind,
    options: Vec<(String, String)>,
}

/// What an [`Endpoint`] names.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum EndpointKind {
    /// `fifo:/path`: a named pipe.
    Fifo(PathBuf),
    /// `mq:/name`: a POSIX message queue.
    Mq(String),
    /// `sysv-mq:KEY`: a System V message queue.
    SysvMq(SysvKey),
    /// `unix:…`, `unix-seqpacket:…`, `unix-dgram:…`: a Unix socket.
    Unix(UnixType, UnixAddr),
    /// `tcp:HOST:PORT`.
    Tcp {
        /// Host name or address, without IPv6 brackets.
        host: String,
        /// Port number (0 lets the kernel choose when listening).
        port: u16,
    },
    /// `shm:name`: ipckit's shared-memory channel.
    Shm(String),
}

/// The three Unix socket types.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum UnixType {
    /// `SOCK_STREAM`: a byte stream; ipckit frames messages on it.
    Stream,
    /// `SOCK_SEQPACKET`: connection-oriented, message boundaries kept.
    Seqpacket,
    /// `SOCK_DGRAM`: connectionless datagrams.
    Dgram,
}

impl UnixType {
    /// The endpoint scheme for this type.
    pub fn scheme(self) -> &'static str {
        match self {
            UnixType::Stream => "unix",
            UnixType::Seqpacket => "unix-seqpacket",
            UnixType::Dgram => "unix-dgram",
        }
    }
}

/// A Unix socket address.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum UnixAddr {
    /// A socket file in the file system.
    Path(PathBuf),
    /// A name in the abstract namespace (`@name`); no file, no permissions.
    Abstract(String),
}

impl Endpoint {
    /// Parses an endpoint string (same as `str::parse`).
    pub fn parse(text: &str) -> Result<Endpoint> {
        text.parse()
    }

    /// What this endpoint names.
    pub fn kind(&self) -> &EndpointKind {
        &self.kind
    }

    /// The scheme, e.g. `unix-dgram`.
    pub fn scheme(&self) -> &'static str {
        match &self.kind {
            EndpointKind::Fifo(_) => "fifo",
            EndpointKind::Mq(_) => "mq",
            EndpointKind::SysvMq(_) => "sysv-mq",
            EndpointKind::Unix(t, _) => t.scheme(),
            EndpointKind::Tcp { .. } => "tcp",
            EndpointKind::Shm(_) => "shm",
        }
    }

    /// The options in the order they were written.
    pub fn options(&self) -> impl Iterator<Item = (&str, &str)> {
        self.options.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// The raw text of one option.
    pub fn option(&self, key: &str) -> Option<&str> {
        self.options.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// The `mode` option (octal permission bits), if given.
    pub fn mode(&self) -> Result<Option<u32>> {
        self.option("mode").map(|v| parse_mode(v).map_err(|why| self.invalid(why))).transpose()
    }

    /// A numeric option, if given.
    pub fn number_option(&self, key: &str) -> Result<Option<u64>> {
        self.option(key)
            .map(|v| parse_number(v).map_err(|why| self.invalid(format!("option {key}: {why}"))))
            .transpose()
    }

    /// A size option (`?size=64KiB`), if given.
    pub fn size_option(&self, key: &str) -> Result<Option<u64>> {
        self.option(key)
            .map(|v| crate::units::parse_size(v).map_err(|why| self.invalid(format!("option {key}: {why}"))))
            .transpose()
    }

    /// A duration option (`?spin=50us`), if given.
    pub fn duration_option(&self, key: &str) -> Result<Option<std::time::Duration>> {
        self.option(key)
            .map(|v| crate::units::parse_duration(v).map_err(|why| self.invalid(format!("option {key}: {why}"))))
            .transpose()
    }

    /// The `?wait=` option, if given.
    pub fn wait_option(&self) -> Result<Option<crate::options::WaitMode>> {
        self.option("wait").map(|v| parse_wait(v).map_err(|why| self.invalid(why))).transpose()
    }

    /// The file-system path this endpoint creates, if any (FIFO or socket
    /// file).
    pub fn path(&self) -> Option<&Path> {
        match &self.kind {
            EndpointKind::Fifo(p) | EndpointKind::Unix(_, UnixAddr::Path(p)) => Some(p),
            _ => None,
        }
    }

    fn invalid(&self, why: impl Into<String>) -> Error {
        Error::new(ErrorKind::Invalid, "parse endpoint", self, why.into())
    }
}

fn parse_mode(v: &str) -> std::result::Result<u32, String> {
    match u32::from_str_radix(v, 8) {
        Ok(m) if m <= 0o777 && !v.is_empty() => Ok(m),
        _ => Err(format!("mode {v:?} is not octal permission bits (0000 to 0777)")),
    }
}

fn parse_number(v: &str) -> std::result::Result<u64, String> {
    match v.parse::<u64>() {
        Ok(n) if n > 0 && !v.starts_with('0') && !v.starts_with('+') => Ok(n),
        _ => Err(format!("{v:?} is not a positive decimal number")),
    }
}

/// `?wait=`: `block` (spin, then park) or `busy` (never park).
fn parse_wait(v: &str) -> std::result::Result<crate::options::WaitMode, String> {
    match v {
        "block" => Ok(crate::options::WaitMode::Block),
        "busy" => Ok(crate::options::WaitMode::Busy),
        other => Err(format!("option wait: {other:?} is not block or busy")),
    }
}

/// `?overflow=`: what a publish-subscribe topic does with a subscriber
/// that fell behind.
pub(crate) fn parse_overflow(v: &str) -> std::result::Result<crate::options::Overflow, String> {
    match v {
        "block" => Ok(crate::options::Overflow::Block),
        "drop-oldest" => Ok(crate::options::Overflow::DropOldest),
        other => Err(format!("option overflow: {other:?} is not block or drop-oldest")),
    }
}

impl Endpoint {
    /// Refuses the publish-subscribe options (`overflow`, `history`) on an
    /// endpoint used for something else: `op` names what was asked.
    pub(crate) fn refuse_pubsub_options(&self, op: &'static str) -> Result<()> {
        match ["overflow", "history"].into_iter().find(|k| self.option(k).is_some()) {
            Some(k) => Err(Error::new(
                ErrorKind::Invalid,
                op,
                self,
                format!("option {k} applies only to publish-subscribe (ipckit::pubsub, ipckit pub/sub)"),
            )),
            None => Ok(()),
        }
    }
}

/// The options each scheme accepts.
fn allowed_options(scheme: &str, kind: &EndpointKind) -> &'static [&'static str] {
    match (scheme, kind) {
        ("fifo", _) => &["mode"],
        ("mq", _) => &["maxmsg", "msgsize", "mode"],
        ("sysv-mq", EndpointKind::SysvMq(k)) if k.is_path() => &["id", "mode", "maxbytes"],
        ("sysv-mq", _) => &["mode", "maxbytes"],
        (_, EndpointKind::Unix(UnixType::Stream, UnixAddr::Path(_))) => &["mode", "overflow", "history"],
        (_, EndpointKind::Unix(_, UnixAddr::Path(_))) => &["mode"],
        (_, EndpointKind::Unix(UnixType::Stream, _)) | ("tcp", _) => &["overflow", "history"],
        ("shm", _) => &["size", "senders", "wait", "spin", "mode", "pool", "inline", "overflow", "history"],
        _ => &[],
    }
}

impl FromStr for Endpoint {
    type Err = Error;

    fn from_str(text: &str) -> Result<Endpoint> {
        let invalid = |why: String| Error::new(ErrorKind::Invalid, "parse endpoint", format!("{text:?}"), why);
        if text.contains('\0') {
            return Err(invalid("contains a NUL byte".into()));
        }
        let Some((scheme, rest)) = text.split_once(':') else {
            return Err(invalid(format!("expected SCHEME:ADDRESS, with SCHEME one of {}", SCHEMES.join(", "))));
        };
        let (addr, query) = match rest.split_once('?') {
            Some((a, q)) => (a, Some(q)),
            None => (rest, None),
        };
        let mut options: Vec<(String, String)> = Vec::new();
        if let Some(query) = query {
            for pair in query.split('&') {
                let Some((k, v)) = pair.split_once('=') else {
                    return Err(invalid(format!("option {pair:?} is not KEY=VALUE")));
                };
                if k.is_empty() || v.is_empty() {
                    return Err(invalid(format!("option {pair:?} is not KEY=VALUE")));
                }
                if options.iter().any(|(seen, _)| seen == k) {
                    return Err(invalid(format!("option {k} given twice")));
                }
                options.push((k.to_string(), v.to_string()));
            }
        }
        let id = match options.iter().find(|(k, _)| k == "id") {
            Some((_, v)) => match v.parse::<u8>() {
                Ok(n) if n > 0 && !v.starts_with('0') => n,
                _ => return Err(invalid(format!("option id {v:?} must be 1 to 255"))),
            },
            None => 1,
        };
        let kind = match scheme {
            "fifo" => {
                if addr.is_empty() {
                    return Err(invalid("empty FIFO path".into()));
                }
                EndpointKind::Fifo(PathBuf::from(addr))
            }
            "mq" => {
                check_mq_name(addr).map_err(invalid)?;
                EndpointKind::Mq(addr.to_string())
            }
            "sysv-mq" => EndpointKind::SysvMq(SysvKey::parse(addr, id).map_err(|e| {
                invalid(e.to_string().split_once(": ").map(|(_, w)| w.to_string()).unwrap_or_default())
            })?),
            "unix" | "unix-seqpacket" | "unix-dgram" => {
                let ty = match scheme {
                    "unix" => UnixType::Stream,
                    "unix-seqpacket" => UnixType::Seqpacket,
                    _ => UnixType::Dgram,
                };
                let addr = if let Some(name) = addr.strip_prefix('@') {
                    if name.is_empty() {
                        return Err(invalid("empty abstract socket name".into()));
                    }
                    UnixAddr::Abstract(name.to_string())
                } else if addr.is_empty() {
                    return Err(invalid("empty socket path".into()));
                } else {
                    UnixAddr::Path(PathBuf::from(addr))
                };
                let len = match &addr {
                    UnixAddr::Abstract(n) => n.len(),
                    UnixAddr::Path(p) => p.as_os_str().len(),
                };
                if len > UNIX_ADDR_MAX {
                    return Err(invalid(format!(
                        "socket address is {len} bytes, the limit is {UNIX_ADDR_MAX} (sun_path)"
                    )));
                }
                EndpointKind::Unix(ty, addr)
            }
            "tcp" => {
                let (host, port) = parse_host_port(addr).map_err(invalid)?;
                EndpointKind::Tcp { host, port }
            }
            "shm" => {
                let name = addr.strip_prefix('/').unwrap_or(addr);
                if name.is_empty() || name.contains('/') || name.len() > SHM_NAME_MAX {
                    return Err(invalid(format!(
                        "shm name must be 1 to {SHM_NAME_MAX} bytes without '/' (it is carried in an abstract socket \
                         name of 107 bytes)"
                    )));
                }
                EndpointKind::Shm(addr.to_string())
            }
            other => {
                return Err(invalid(format!("unknown scheme {other:?} (expected one of {})", SCHEMES.join(", "))));
            }
        };
        let allowed = allowed_options(scheme, &kind);
        for (k, v) in &options {
            if !allowed.contains(&k.as_str()) {
                let known = if allowed.is_empty() { "none".to_string() } else { allowed.join(", ") };
                return Err(invalid(format!("unknown option {k:?} for {scheme} (known: {known})")));
            }
            let checked = match (scheme, k.as_str()) {
                (_, "mode") => parse_mode(v).map(drop),
                (_, "id") => Ok(()),
                ("shm", "size" | "pool") => {
                    crate::units::parse_size(v).map(drop).map_err(|w| format!("option {k}: {w}"))
                }
                ("shm", "inline") if v == "auto" => Ok(()),
                ("shm", "inline") => crate::units::parse_size(v)
                    .map(drop)
                    .map_err(|w| format!("option inline: {w} (or auto: the threshold ipckit bench measured)")),
                ("shm", "spin") => crate::units::parse_duration(v).map(drop).map_err(|w| format!("option spin: {w}")),
                ("shm", "wait") => parse_wait(v).map(drop),
                (_, "overflow") => parse_overflow(v).map(drop),
                _ => parse_number(v).map(drop).map_err(|w| format!("option {k}: {w}")),
            };
            checked.map_err(invalid)?;
        }
        Ok(Endpoint { kind, options })
    }
}

/// Checks a POSIX message-queue name: `/name`, one slash, 1 to 255
/// characters after it.
pub(crate) fn check_mq_name(name: &str) -> std::result::Result<(), String> {
    crate::name::check_posix_name(name, crate::name::PosixKind::Queue)
}

fn parse_host_port(addr: &str) -> std::result::Result<(String, u16), String> {
    let (host, port) = if let Some(rest) = addr.strip_prefix('[') {
        let Some((host, port)) = rest.split_once("]:") else {
            return Err(format!("{addr:?} is not [IPV6]:PORT"));
        };
        if host.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(format!("{host:?} is not an IPv6 address"));
        }
        (host, port)
    } else {
        let Some((host, port)) = addr.rsplit_once(':') else {
            return Err(format!("{addr:?} is not HOST:PORT"));
        };
        if host.contains(':') {
            return Err(format!("IPv6 address {host:?} must be written in brackets: [{host}]:{port}"));
        }
        (host, port)
    };
    if host.is_empty() {
        return Err("empty host".into());
    }
    match port.parse::<u16>() {
        Ok(p) if port == p.to_string() => Ok((host.to_string(), p)),
        _ => Err(format!("port {port:?} is not a number from 0 to 65535")),
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:", self.scheme())?;
        match &self.kind {
            EndpointKind::Fifo(p) => write!(f, "{}", p.display())?,
            EndpointKind::Mq(n) | EndpointKind::Shm(n) => f.write_str(n)?,
            EndpointKind::SysvMq(k) => f.write_str(k.as_str())?,
            EndpointKind::Unix(_, UnixAddr::Path(p)) => write!(f, "{}", p.display())?,
            EndpointKind::Unix(_, UnixAddr::Abstract(n)) => write!(f, "@{n}")?,
            EndpointKind::Tcp { host, port } if host.contains(':') => write!(f, "[{host}]:{port}")?,
            EndpointKind::Tcp { host, port } => write!(f, "{host}:{port}")?,
        }
        for (i, (k, v)) in self.options.iter().enumerate() {
            write!(f, "{}{k}={v}", if i == 0 { '?' } else { '&' })?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Any text: parsing never panics, and whatever parses prints back
        /// as the same text.
        #[test]
        fn parse_never_panics_and_round_trips(
            text in r"(fifo|mq|sysv-mq|unix|unix-seqpacket|unix-dgram|tcp|shm|x)?:?[@/\[\]:0-9a-zA-Z.x-]{0,12}(\?[a-z]{0,7}=?[0-9a-z]{0,5}(&[a-z]{0,7}=[0-9]{0,4})?)?"
        ) {
            if let Ok(ep) = text.parse::<Endpoint>() {
                prop_assert_eq!(ep.to_string(), text);
            }
        }

        #[test]
        fn arbitrary_bytes_never_panic(text in ".{0,64}") {
            let _ = text.parse::<Endpoint>();
        }
    }

    #[test]
    fn every_scheme_round_trips() {
        for s in [
            "fifo:/tmp/a fifo",
            "fifo:/tmp/f?mode=0640",
            "mq:/jobs",
            "mq:/jobs?maxmsg=10&msgsize=1024&mode=0600",
            "sysv-mq:42",
            "sysv-mq:0x1F",
            "sysv-mq:/etc/app?id=7",
            "unix:/run/x.sock",
            "unix:@name",
            "unix-seqpacket:/tmp/s?mode=0660",
            "unix-dgram:@d",
            "tcp:127.0.0.1:7000",
            "tcp:[::1]:7000",
            "tcp:localhost:0",
            "shm:frames?size=4096",
        ] {
            let ep: Endpoint = s.parse().unwrap_or_else(|e| panic!("{s}: {e}"));
            assert_eq!(ep.to_string(), s);
            assert_eq!(ep.to_string().parse::<Endpoint>().unwrap(), ep);
        }
    }

    #[test]
    fn parsed_values() {
        let ep: Endpoint = "sysv-mq:/etc/app?id=7".parse().unwrap();
        match ep.kind() {
            EndpointKind::SysvMq(k) => assert_eq!(k.source(), &SysvKeySource::Path("/etc/app".into(), 7)),
            k => panic!("{k:?}"),
        }
        let ep: Endpoint = "sysv-mq:0x10".parse().unwrap();
        assert!(matches!(ep.kind(), EndpointKind::SysvMq(k) if k.source() == &SysvKeySource::Number(16)));
        let ep: Endpoint = "tcp:[::1]:7000".parse().unwrap();
        assert!(matches!(ep.kind(), EndpointKind::Tcp { host, port: 7000 } if host == "::1"));
        let ep: Endpoint = "mq:/q?msgsize=64".parse().unwrap();
        assert_eq!(ep.number_option("msgsize").unwrap(), Some(64));
    }

    #[test]
    fn malformed_endpoints_are_invalid_and_name_the_text() {
        for s in [
            "nope",
            "carrier-pigeon:/x",
            "mq:jobs",
            "mq:/a/b",
            "mq:/",
            "sysv-mq:0",
            "sysv-mq:abc",
            "sysv-mq:7?id=3",
            "sysv-mq:/etc/x?id=0",
            "unix:",
            "unix:@",
            "unix:@x?mode=0600",
            "tcp:1.2.3.4",
            "tcp:::1:80",
            "tcp:host:65536",
            "tcp:host:080",
            "fifo:/x?mode=999",
            "fifo:/x?color=red",
            "fifo:/x?mode",
            "fifo:/x?mode=0600&mode=0600",
            "mq:/q?maxmsg=-1",
        ] {
            let e = s.parse::<Endpoint>().expect_err(s);
            assert_eq!(e.kind(), ErrorKind::Invalid, "{s}");
            assert!(e.to_string().contains(&format!("{s:?}")), "{s}: {e}");
        }
        let long = format!("mq:/{}", "x".repeat(256));
        assert_eq!(long.parse::<Endpoint>().unwrap_err().kind(), ErrorKind::Invalid);
        let long = format!("unix:/{}", "x".repeat(107));
        assert!(long.parse::<Endpoint>().unwrap_err().to_string().contains("sun_path"));
    }
}
