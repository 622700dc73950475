//! The control connection of a `shm:` channel: how a sender joins, how
//! either side wakes the other, and how each learns that the other is gone.
//!
//! The receiver listens on the abstract Unix seqpacket socket
//! `@ipckit/shm/NAME` (no file: when every process is gone, nothing is
//! left). A sender connects and the two exchange one packet each:
//!
//! | packet | direction | bytes |
//! | --- | --- | --- |
//! | hello | sender → receiver | `IPCKIT-SHM`, version `2`, `u64` the `?size=` the sender asked for (0: none), `u64` its pool's size (0: no pool); with SCM_RIGHTS when there is a pool: the pool's memfd, sealed against shrinking, growing and writes by others (see `pool`) |
//! | welcome | receiver → sender | `IPCKIT-SHM`, version `2`, `W`, `u64` the ring's capacity; with SCM_RIGHTS: the ring's sealed memfd, the receiver's liveness page (a sealed memfd, read-only), this sender's doorbell (an eventfd the receiver made for this sender alone) |
//! | refusal | receiver → sender | `IPCKIT-SHM`, version `2`, `R`, `u8` the reason (1 permission, 2 senders, 3 protocol), then a UTF-8 explanation |
//! | wake | receiver → sender, after the welcome | one byte, any value |
//!
//! Integers are little-endian. A side about to sleep sets its `PARKED`
//! bit in the ring (see `ring`); the other side then wakes it: a sender
//! writes to its doorbell (an eventfd of its own in the receiver's epoll
//! set, edge-triggered, never read: one write and one `epoll_wait` per
//! wake-up); the receiver sends a wake packet over the sender's control
//! connection, which the sender polls. The control connection is how the
//! receiver learns that a sender is gone, at once and by design: its end
//! comes from the kernel when the process exits or is killed, with no
//! polling and no pid to reuse. A sender learns of its receiver's end from
//! the liveness page (see `layout`), and, while it sleeps, from the end of
//! its connection.
//!
//! Each sender has a doorbell of its own, created at its welcome and
//! closed (and taken out of the epoll set) when it is dropped: the
//! counter and `O_NONBLOCK` belong to the open file description, so one
//! eventfd handed to every sender let any of them clear `O_NONBLOCK` and
//! fill the counter, after which every other sender's wake-up blocked
//! for ever and the receiver slept on. Now a sender can spoil only its
//! own wake-ups. The packets are as they were (the version too): a sender
//! writes the doorbell it is given either way. It costs the receiver one
//! descriptor per sender; a wake packet on the control connection instead
//! (as `pubsub::shm` does) would cost a `sendmsg` and, on this side, a
//! `recvmsg` per wake-up where the eventfd costs one `write`.
//!
//! Both sides check the other's credentials (`SO_PEERCRED`): by default
//! only the receiver's own user may connect, and a sender talks only to a
//! receiver of its own user (an abstract name has no permissions: another
//! user could bind it first). `?mode=` widens that as it does for other
//! objects: group bits admit the same group, other bits anyone.

use crate::meta::Credentials;

/// The prefix of every handshake packet.
pub(crate) const MAGIC: &[u8; 10] = b"IPCKIT-SHM";
/// The protocol version: 2 since senders have payload pools (a version-1
/// peer is refused with a clear "not a hello" or "not a welcome").
pub(crate) const VERSION: u8 = 2;
/// The abstract socket name's prefix.
pub(crate) const PREFIX: &str = "ipckit/shm/";
/// The longest packet either side reads during the handshake.
pub(crate) const PACKET_MAX: usize = 512;

/// Why a receiver refused a sender.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// Its user may not use the channel.
    Permission = 1,
    /// The channel serves as many senders as `?senders=` allows.
    Senders = 2,
    /// Its hello was not a hello.
    Protocol = 3,
}

/// A handshake packet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Packet {
    Hello { size: u64, pool: u64 },
    Welcome { capacity: u64 },
    Refused { reason: Option<Refusal>, why: String },
}

impl Packet {
    /// The packet's bytes.
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = MAGIC.to_vec();
        out.push(VERSION);
        match self {
            Packet::Hello { size, pool } => {
                out.extend_from_slice(&size.to_le_bytes());
                out.extend_from_slice(&pool.to_le_bytes());
            }
            Packet::Welcome { capacity } => {
                out.push(b'W');
                out.extend_from_slice(&capacity.to_le_bytes());
            }
            Packet::Refused { reason, why } => {
                out.push(b'R');
                out.push(reason.map_or(0, |r| r as u8));
                let why = why.as_bytes();
                out.extend_from_slice(&why[..why.len().min(PACKET_MAX - out.len())]);
            }
        }
        out
    }

    /// Parses a hello (what a receiver expects first).
    pub(crate) fn hello(bytes: &[u8]) -> Option<Packet> {
        let rest = Packet::strip(bytes)?;
        let word = |at: usize| rest.get(at..at + 8).map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")));
        match rest.len() {
            16 => Some(Packet::Hello { size: word(0)?, pool: word(8)? }),
            _ => None,
        }
    }

    /// Parses a welcome or a refusal (what a sender expects).
    pub(crate) fn answer(bytes: &[u8]) -> Option<Packet> {
        match Packet::strip(bytes)?.split_first()? {
            (b'W', rest) => {
                let capacity: [u8; 8] = rest.try_into().ok()?;
                Some(Packet::Welcome { capacity: u64::from_le_bytes(capacity) })
            }
            (b'R', rest) => {
                let (&code, why) = rest.split_first()?;
                let reason =
                    [Refusal::Permission, Refusal::Senders, Refusal::Protocol].into_iter().find(|r| *r as u8 == code);
                Some(Packet::Refused { reason, why: String::from_utf8_lossy(why).into_owned() })
            }
            _ => None,
        }
    }

    fn strip(bytes: &[u8]) -> Option<&[u8]> {
        let rest = bytes.strip_prefix(MAGIC.as_slice())?;
        let (&version, rest) = rest.split_first()?;
        (version == VERSION).then_some(rest)
    }
}

/// Who may talk to whom: the peer is of this process's user, or `mode`'s
/// group bits admit its group, or its other bits admit anyone.
pub(crate) fn admits(mode: u32, me: (u32, u32), peer: Credentials) -> bool {
    peer.uid == me.0 || (mode & 0o060 != 0 && peer.gid == me.1) || mode & 0o006 != 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packets_round_trip_and_garbage_is_refused() {
        let hello = Packet::Hello { size: 1 << 20, pool: 64 << 20 };
        assert_eq!(Packet::hello(&hello.encode()), Some(hello));
        // The first version's hello is refused.
        assert_eq!(Packet::hello(b"IPCKIT-SHM\x01\0\0\x10\0\0\0\0\0"), None);
        let w = Packet::Welcome { capacity: 4096 };
        assert_eq!(Packet::answer(&w.encode()), Some(w));
        let r = Packet::Refused { reason: Some(Refusal::Senders), why: "full".into() };
        assert_eq!(Packet::answer(&r.encode()), Some(r));
        for junk in [&b""[..], b"IPCKIT-SHM", b"IPCKIT-SHM\x03\0\0\0\0\0\0\0\0", b"IPCKIT-SHM\x02W\x01", b"xx"] {
            assert_eq!(Packet::hello(junk), None, "{junk:?}");
            assert_eq!(Packet::answer(junk), None, "{junk:?}");
        }
    }

    #[test]
    fn credentials() {
        let me = (1000, 100);
        let peer = |uid, gid| Credentials { pid: 1, uid, gid };
        assert!(admits(0o600, me, peer(1000, 5)));
        assert!(!admits(0o600, me, peer(1001, 100)));
        assert!(admits(0o660, me, peer(1001, 100)));
        assert!(!admits(0o660, me, peer(1001, 101)));
        assert!(admits(0o606, me, peer(1001, 101)));
    }
}
