//! Unix-domain sockets: binding (with a safe mode and stale-file
//! replacement) and connecting, for stream, seqpacket and datagram types.
//!
//! A socket file is created with the endpoint's `mode` (0600 by default),
//! whatever the umask: the socket is bound under a temporary name in the
//! same directory, given its mode, then renamed into place with
//! `RENAME_NOREPLACE`, so no other user ever sees it with wider
//! permissions. A file left by a dead listener (connecting is refused) is
//! replaced; one that a live listener owns is `AlreadyExists`. Abstract
//! names (`@name`) have no file and no permissions: any process in the
//! network namespace can connect.

use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use crate::endpoint::{Endpoint, UnixAddr, UnixType};
use crate::error::{Error, ErrorKind, Result};
use crate::sys::{self, Errno};
use crate::wait::Wait;

fn socket_type(ty: UnixType) -> sys::net::Type {
    match ty {
        UnixType::Stream => sys::net::Type::STREAM,
        UnixType::Seqpacket => sys::net::Type::SEQPACKET,
        UnixType::Dgram => sys::net::Type::DGRAM,
    }
}

/// A new socket of type `ty`. Seqpacket sockets get `SO_PASSCRED` (accepted
/// ones inherit it from the listener): then every message carries the
/// sender's credentials, and a zero-byte read without them is the peer's
/// close, never to be confused with an empty message.
fn new_socket(ty: UnixType, ep: &Endpoint, op: &'static str) -> Result<OwnedFd> {
    let fd = sys::net::socket(sys::net::Family::UNIX, socket_type(ty)).map_err(|e| Error::os(op, ep, e))?;
    if ty == UnixType::Seqpacket {
        sys::net::set_passcred(fd.as_fd()).map_err(|e| Error::os("setsockopt SO_PASSCRED", ep, e))?;
    }
    Ok(fd)
}

fn address(addr: &UnixAddr, ep: &Endpoint, op: &'static str) -> Result<sys::net::UnixAddress> {
    match addr {
        UnixAddr::Path(p) => sys::net::unix_path(p),
        UnixAddr::Abstract(n) => sys::net::unix_abstract(n.as_bytes()),
    }
    .map_err(|e| Error::os(op, ep, e))
}

/// Whether a live socket of type `ty` answers at `path`.
fn is_live(path: &Path, ty: UnixType) -> bool {
    let Ok(fd) = sys::net::socket(sys::net::Family::UNIX, socket_type(ty)) else {
        return true;
    };
    let Ok(addr) = sys::net::unix_path(path) else {
        return true;
    };
    match sys::net::connect(fd.as_fd(), &addr, Wait::Never) {
        Ok(()) => true,
        // Refused: nobody is bound to it. Anything else (a full backlog,
        // a socket of another type) means someone is.
        Err(Errno::CONNREFUSED) => false,
        Err(_) => true,
    }
}

/// A temporary name next to `path`, short enough for `sun_path`.
fn temp_name(path: &Path) -> PathBuf {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let name = format!(".ipckit-{:x}-{n:x}", std::process::id());
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.join(name),
        _ => PathBuf::from(name),
    }
}

/// Binds a Unix socket of type `ty` to the endpoint's address (and listens,
/// for connection types). Returns the socket and the path it created.
pub(crate) fn bind(ep: &Endpoint, ty: UnixType, addr: &UnixAddr) -> Result<(OwnedFd, Option<PathBuf>)> {
    let fd = new_socket(ty, ep, "bind")?;
    let created = match addr {
        UnixAddr::Abstract(_) => {
            let a = address(addr, ep, "bind")?;
            sys::net::bind(fd.as_fd(), &a).map_err(|e| match e {
                Errno::ADDRINUSE => Error::os("bind", ep, e).with_detail("a live socket owns this abstract name"),
                e => Error::os("bind", ep, e),
            })?;
            None
        }
        UnixAddr::Path(path) => {
            bind_path(&fd, ep, ty, path)?;
            Some(path.clone())
        }
    };
    if ty != UnixType::Dgram {
        if let Err(e) = sys::net::listen(fd.as_fd(), 128) {
            if let Some(p) = &created {
                let _ = sys::fs::unlink(p);
            }
            return Err(Error::os("listen", ep, e));
        }
    }
    Ok((fd, created))
}

fn bind_path(fd: &OwnedFd, ep: &Endpoint, ty: UnixType, path: &Path) -> Result<()> {
    let mode = ep.mode()?.unwrap_or(0o600);
    let tmp = temp_name(path);
    if tmp.as_os_str().len() > crate::endpoint::UNIX_ADDR_MAX {
        return Err(Error::new(
            ErrorKind::Invalid,
            "bind",
            ep,
            "socket path leaves no room for the temporary name used to set its mode; use a shorter path",
        ));
    }
    let tmp_addr = sys::net::unix_path(&tmp).map_err(|e| Error::os("bind", ep, e))?;
    sys::net::bind(fd.as_fd(), &tmp_addr).map_err(|e| bind_error(ep, path, e))?;
    let result = sys::fs::chmod(&tmp, mode)
        .map_err(|e| Error::os("chmod", ep, e))
        .and_then(|()| move_into_place(ep, ty, &tmp, path));
    if result.is_err() {
        let _ = sys::fs::unlink(&tmp);
    }
    result
}

/// The directory a socket file at `path` goes in.
fn directory(path: &Path) -> &Path {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    }
}

/// Binding the temporary name next to `path` failed: say what is wrong
/// with the user's path, never naming the temporary file.
fn bind_error(ep: &Endpoint, path: &Path, e: Errno) -> Error {
    let err = Error::os("bind", ep, e);
    let dir = directory(path).display();
    match e {
        Errno::NOENT => err.with_detail(format!("the directory {dir} does not exist")),
        Errno::NOTDIR => err.with_detail(format!("{dir} is not a directory")),
        Errno::ACCESS | Errno::PERM => err.with_detail(format!("no permission to create a socket file in {dir}")),
        _ => err.with_detail(format!("creating a socket file in {dir}")),
    }
}

/// Renames the bound temporary socket to `path`, replacing a stale socket
/// file but never a live one or another kind of file.
fn move_into_place(ep: &Endpoint, ty: UnixType, tmp: &Path, path: &Path) -> Result<()> {
    match sys::fs::rename_noreplace(tmp, path) {
        Ok(()) => return Ok(()),
        Err(Errno::EXIST) => {}
        Err(e) => return Err(Error::os("bind", ep, e)),
    }
    // Check and replace under a lock on the directory, so that two ipckit
    // processes finding the same stale file cannot both replace it (the
    // second would remove the first's live socket). A directory that cannot
    // be opened for reading is handled without the lock.
    let _lock = sys::fs::lock_dir(directory(path)).ok();
    for _ in 0..8 {
        match sys::fs::rename_noreplace(tmp, path) {
            Ok(()) => return Ok(()),
            Err(Errno::EXIST) => {}
            Err(e) => return Err(Error::os("bind", ep, e)),
        }
        if sys::fs::file_type(path).ok() != Some(sys::fs::Kind::Socket) {
            return Err(Error::new(ErrorKind::AlreadyExists, "bind", ep, "the path exists and is not a socket"));
        }
        if is_live(path, ty) {
            return Err(Error::new(ErrorKind::AlreadyExists, "bind", ep, "a live listener owns this socket"));
        }
        // Stale: its listener is gone. Replace it.
        match sys::fs::unlink(path) {
            Ok(()) | Err(Errno::NOENT) => {}
            Err(e) => return Err(Error::os("unlink stale socket", ep, e)),
        }
    }
    Err(Error::new(ErrorKind::AlreadyExists, "bind", ep, "another process keeps creating a socket file here"))
}

/// Connects a Unix socket of type `ty` to the endpoint's address (for a
/// datagram socket: sets its default destination).
pub(crate) fn connect(ep: &Endpoint, ty: UnixType, addr: &UnixAddr) -> Result<OwnedFd> {
    let fd = new_socket(ty, ep, "connect")?;
    let a = address(addr, ep, "connect")?;
    sys::net::connect(fd.as_fd(), &a, Wait::Forever).map_err(|e| connect_error(ep, ty, addr, e))?;
    Ok(fd)
}

/// Connecting failed with `e`. On `ENOENT` and `ECONNREFUSED` the path
/// says more than the errno: something that is not a socket is there
/// (`Io`, not retried: no receiver can bind there), or its directory does
/// not exist.
fn connect_error(ep: &Endpoint, ty: UnixType, addr: &UnixAddr, e: Errno) -> Error {
    let err = Error::os("connect", ep, e);
    if let (UnixAddr::Path(path), Errno::NOENT | Errno::CONNREFUSED) = (addr, e) {
        // connect follows symbolic links; so does stat.
        match sys::fs::stat(path) {
            Ok(st) if st.kind != sys::fs::Kind::Socket => {
                let what = sys::fs::kind_name(st.kind);
                return err
                    .with_kind(ErrorKind::Io)
                    .with_detail(format!("not a socket ({} is a {what})", path.display()));
            }
            Err(Errno::NOENT) if sys::fs::stat(directory(path)) == Err(Errno::NOENT) => {
                return err.with_detail(format!("the directory {} does not exist", directory(path).display()));
            }
            _ => {}
        }
    }
    match e {
        Errno::NOENT => err.with_detail("no socket at this path"),
        Errno::CONNREFUSED if ty == UnixType::Dgram => err.with_detail("nothing is receiving"),
        Errno::CONNREFUSED => err.with_detail("nothing is listening"),
        _ => err,
    }
}

/// Binds a datagram socket (no listen) for a receiver, with `SO_PASSCRED`
/// so that every datagram carries its sender's credentials.
pub(crate) fn bind_dgram(ep: &Endpoint, addr: &UnixAddr) -> Result<(OwnedFd, Option<PathBuf>)> {
    let (fd, created) = bind(ep, UnixType::Dgram, addr)?;
    if let Err(e) = sys::net::set_passcred(fd.as_fd()) {
        if let Some(p) = &created {
            let _ = sys::fs::unlink(p);
        }
        return Err(Error::os("setsockopt SO_PASSCRED", ep, e));
    }
    Ok((fd, created))
}

/// Removes the socket file an endpoint names (refusing other kinds of
/// file); an abstract name has no file (`Invalid`).
pub(crate) fn remove(ep: &Endpoint, addr: &UnixAddr) -> Result<()> {
    match addr {
        UnixAddr::Path(path) => match sys::fs::file_type(path) {
            Ok(sys::fs::Kind::Socket) => sys::fs::unlink(path).map_err(|e| Error::os("rm", ep, e)),
            Ok(_) => Err(Error::new(ErrorKind::Invalid, "rm", ep, "not a socket file")),
            Err(e) => Err(Error::os("rm", ep, e)),
        },
        UnixAddr::Abstract(_) => Err(Error::new(
            ErrorKind::Invalid,
            "rm",
            ep,
            "an abstract socket name has no file; it disappears with its socket",
        )),
    }
}
