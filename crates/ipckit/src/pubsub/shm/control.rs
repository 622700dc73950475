//! The control connection of a `shm:` topic: how a subscriber joins, and
//! how each side learns that the other is gone.
//!
//! The publisher listens on the abstract Unix seqpacket socket
//! `@ipckit/topic/NAME` (a channel's is `@ipckit/shm/NAME`: the two never
//! clash). A background service thread of the publisher accepts, and the
//! two exchange one packet each:
//!
//! | packet | direction | bytes |
//! | --- | --- | --- |
//! | hello | subscriber → publisher | `IPCKIT-TOPIC`, version `2`, `H`, `u64` the history asked for (`K`: up to that many of the last messages) |
//! | welcome | publisher → subscriber | `IPCKIT-TOPIC`, version `2`, `W`, `u64` `start`: the first message this subscriber reads; with SCM_RIGHTS: the topic memfd (sealed, read-only for the subscriber) and its cursor page (a memfd, read-write) |
//! | wake | either, after the welcome | `w` (any packet counts as one): the other side announced that it sleeps |
//! | refusal | publisher → subscriber | `IPCKIT-TOPIC`, version `2`, `R`, `u8` the reason (1 permission, 2 history, 3 protocol), then a UTF-8 explanation |
//!
//! Integers are little-endian. After the welcome only wake packets are
//! sent ([`wake`]), with `MSG_DONTWAIT`: a full socket buffer means wakes
//! are pending already. The wake-ups go over the connection, not through
//! eventfds shared with the peer: `O_NONBLOCK` is a flag of the open file
//! description, which a peer holding the eventfd can clear, and a peer
//! that then fills the counter makes every later write to it block (a
//! read of an empty one likewise). A socket's two ends are two file
//! descriptions, and `MSG_DONTWAIT` is a flag of the call: the peer can
//! make a wake fail, never wait. Each side's eventfds stay its own.
//! The connection is also there for its end. The publisher's service thread
//! watches every subscriber's connection, and its end (the subscriber
//! dropped, or its process killed at any instruction) makes the publisher
//! forget it at once; the subscriber polls its connection while it sleeps,
//! and its end is the publisher's (a clean end also sets `closed` in the
//! topic memory).
//!
//! Both sides check the other's credentials (`SO_PEERCRED`) as a channel's
//! ends do: only the publisher's user by default, `?mode=` widens it.

/// The prefix of every handshake packet.
pub(crate) const MAGIC: &[u8; 12] = b"IPCKIT-TOPIC";
/// The protocol version (2: the wake-ups go over the connection; 1
/// handed eventfds to the peer).
pub(crate) const VERSION: u8 = 2;
/// The abstract socket name's prefix.
pub(crate) const PREFIX: &str = "ipckit/topic/";
/// The longest packet either side reads during the handshake.
pub(crate) const PACKET_MAX: usize = 512;

/// Sends a wake packet on a control connection, never waiting (a full
/// buffer: wakes are pending; a connection ended: the service thread sees
/// it).
pub(crate) fn wake(control: std::os::fd::BorrowedFd<'_>) {
    let _ = crate::sys::net::send(control, &[std::io::IoSlice::new(b"w")], &[], true);
}

/// Why a publisher refused a subscriber.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// Its user may not use the topic.
    Permission = 1,
    /// It asked for more history than the topic keeps.
    History = 2,
    /// Its hello was not a hello.
    Protocol = 3,
}

/// A handshake packet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Packet {
    Hello { history: u64 },
    Welcome { start: u64 },
    Refused { reason: Option<Refusal>, why: String },
}

impl Packet {
    /// The packet's bytes.
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = MAGIC.to_vec();
        out.push(VERSION);
        match self {
            Packet::Hello { history } => {
                out.push(b'H');
                out.extend_from_slice(&history.to_le_bytes());
            }
            Packet::Welcome { start } => {
                out.push(b'W');
                out.extend_from_slice(&start.to_le_bytes());
            }
            Packet::Refused { reason, why } => {
                out.push(b'R');
                out.push(reason.map_or(0, |r| r as u8));
                let why = why.as_bytes();
                let room = PACKET_MAX - out.len();
                // Cut at a character boundary.
                let mut end = why.len().min(room);
                while end > 0 && std::str::from_utf8(&why[..end]).is_err() {
                    end -= 1;
                }
                out.extend_from_slice(&why[..end]);
            }
        }
        out
    }

    /// Parses a packet.
    pub(crate) fn parse(bytes: &[u8]) -> Option<Packet> {
        let rest = bytes.strip_prefix(MAGIC.as_slice())?;
        let (&version, rest) = rest.split_first()?;
        if version != VERSION {
            return None;
        }
        let word = |b: &[u8]| -> Option<u64> { Some(u64::from_le_bytes(b.try_into().ok()?)) };
        match rest.split_first()? {
            (b'H', rest) => Some(Packet::Hello { history: word(rest)? }),
            (b'W', rest) => Some(Packet::Welcome { start: word(rest)? }),
            (b'R', rest) => {
                let (&code, why) = rest.split_first()?;
                let reason =
                    [Refusal::Permission, Refusal::History, Refusal::Protocol].into_iter().find(|r| *r as u8 == code);
                Some(Packet::Refused { reason, why: String::from_utf8_lossy(why).into_owned() })
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packets_round_trip_and_garbage_is_refused() {
        for p in [
            Packet::Hello { history: 7 },
            Packet::Welcome { start: 1 << 40 },
            Packet::Refused { reason: Some(Refusal::History), why: "the topic keeps 4".into() },
        ] {
            assert_eq!(Packet::parse(&p.encode()), Some(p));
        }
        let long = Packet::Refused { reason: None, why: "é".repeat(400) };
        assert!(long.encode().len() <= PACKET_MAX);
        assert!(Packet::parse(&long.encode()).is_some());
        for junk in [&b""[..], b"IPCKIT-TOPIC", b"IPCKIT-TOPIC\x01H\0\0\0\0\0\0\0\0", b"IPCKIT-TOPIC\x02H\x01", b"xx"] {
            assert_eq!(Packet::parse(junk), None, "{junk:?}");
        }
        // A channel's hello is not a topic's.
        assert_eq!(Packet::parse(b"IPCKIT-SHM\x02\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0"), None);
    }
}
