//! Sealed memfd messages on Unix sockets: the marker that stands for one
//! on the wire, and what both engines do with it.
//!
//! # Wire format
//!
//! A sealed message is an ordinary message whose payload is this 24-byte
//! marker, with exactly one descriptor attached (`SCM_RIGHTS`): a memfd
//! holding the payload, sealed with `F_SEAL_WRITE | F_SEAL_SHRINK |
//! F_SEAL_GROW` (ipckit adds `F_SEAL_SEAL`; receivers do not require it).
//!
//! ```text
//! offset  size  value
//!      0    14  "IPCKIT-SEALED" 0x01   (0x01: format version 1)
//!     14     2  0x00 0x00
//!     16     8  the payload's length, u64 little-endian: the memfd's size
//! ```
//!
//! - `unix:` (stream, `len32` framing): one frame, `18 00 00 00` then the
//!   marker, the descriptor sent with the frame's bytes (one `sendmsg`).
//!   `lines` framing carries no sealed messages.
//! - `unix-seqpacket:`, `unix-dgram:`: one message of 24 bytes, the marker,
//!   with the descriptor.
//!
//! A receiver treats a message as sealed when its payload is exactly a
//! marker (these 16 bytes, then any length); anything else, descriptors
//! and all, is an ordinary message as before. A marker with no descriptor
//! or more than one, a descriptor that is not a memfd sealed as required,
//! or a memfd whose size is not the announced length is `Corrupt`; a
//! length over the receiver's maximum is `TooLarge`. Either way every
//! descriptor that came with it is closed before anything is mapped, and
//! the connection stays in step (the marker was consumed whole).

use super::Base;
use crate::error::{Error, ErrorKind, Result};
use crate::meta::Meta;
use crate::shm::Sealed;

/// The marker's length.
pub(crate) const MARKER_LEN: usize = 24;

/// The marker's first 16 bytes: the name and the format version.
const MAGIC: [u8; 16] = *b"IPCKIT-SEALED\x01\0\0";

/// The marker for a payload of `len` bytes.
pub(crate) fn marker(len: usize) -> [u8; MARKER_LEN] {
    let mut m = [0u8; MARKER_LEN];
    m[..16].copy_from_slice(&MAGIC);
    m[16..].copy_from_slice(&(len as u64).to_le_bytes());
    m
}

/// The length a marker announces, if `payload` is one.
pub(crate) fn announced(payload: &[u8]) -> Option<u64> {
    let (magic, len) = payload.split_first_chunk::<16>()?;
    let len: [u8; 8] = len.try_into().ok()?;
    (*magic == MAGIC).then(|| u64::from_le_bytes(len))
}

/// What a connection keeps of sealed messages between receives.
#[derive(Debug, Default)]
pub(crate) struct SealedState {
    /// A sealed message that did not fit a `recv_into` buffer: kept, with
    /// its metadata, for the next receive.
    pending: Option<Meta>,
    /// The last receive refused one sealed message and left the
    /// connection in step.
    refused: bool,
}

impl SealedState {
    /// The start of a receive: the kept message, if any.
    pub(crate) fn begin(&mut self) -> Option<Meta> {
        self.refused = false;
        self.pending.take()
    }

    /// Whether a kept message waits.
    pub(crate) fn has_pending(&self) -> bool {
        self.pending.is_some()
    }

    /// Whether the last receive's error refused one sealed message, after
    /// which the connection is still in step (a server keeps the sender).
    pub(crate) fn refused(&self) -> bool {
        self.refused
    }

    /// A received marker announcing `len` bytes, with what came with it:
    /// its one memfd checked and mapped into [`Meta::sealed`]. On an error
    /// every descriptor that came with it is closed.
    pub(crate) fn open(&mut self, len: u64, mut meta: Meta, max: usize, base: &Base) -> Result<Meta> {
        let opened = match meta.fds.len() {
            1 => {
                let fd = meta.fds.pop().expect("one descriptor");
                Sealed::receive(fd, len, max, base.name())
            }
            n => Err(Error::new(
                ErrorKind::Corrupt,
                "recv",
                base.name(),
                format!(
                    "a sealed-message marker came with {n} descriptors, not exactly one; {} and the message \
                     dropped",
                    if n == 0 { "nothing was mapped" } else { "they were closed" }
                ),
            )),
        };
        match opened {
            Ok(sealed) => {
                meta.sealed = Some(sealed);
                Ok(meta)
            }
            Err(e) => {
                self.refused = true;
                Err(e)
            }
        }
    }

    /// `recv_into` of a sealed message: copies the payload into `buf` and
    /// returns its length, with the sealed part in the metadata as well.
    /// One that does not fit is `TooLarge` and kept for the next receive.
    pub(crate) fn copy_into(&mut self, buf: &mut [u8], meta: Meta, base: &Base) -> Result<(usize, Meta)> {
        let bytes = meta.sealed.as_ref().map_or(&[][..], |s| s.as_bytes());
        let len = bytes.len();
        if len > buf.len() {
            self.pending = Some(meta);
            return Err(Error::new(
                ErrorKind::TooLarge,
                "recv",
                base.name(),
                format!(
                    "sealed message of {len} bytes does not fit the {}-byte buffer; it is kept: receive it with a \
                     larger buffer, or with recv to read it in place",
                    buf.len()
                ),
            ));
        }
        buf[..len].copy_from_slice(bytes);
        Ok((len, meta))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_marker_announces_its_length_and_nothing_else_is_a_marker() {
        let m = marker(0x0102_0304_0506);
        assert_eq!(&m[..16], b"IPCKIT-SEALED\x01\0\0");
        assert_eq!(&m[16..], &[6, 5, 4, 3, 2, 1, 0, 0]);
        assert_eq!(announced(&m), Some(0x0102_0304_0506));
        assert_eq!(announced(&m[..23]), None);
        let mut longer = m.to_vec();
        longer.push(0);
        assert_eq!(announced(&longer), None);
        let mut other_version = m;
        other_version[13] = 2;
        assert_eq!(announced(&other_version), None);
        assert_eq!(announced(b""), None);
    }
}
