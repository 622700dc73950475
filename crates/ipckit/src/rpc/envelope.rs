//! The request-response envelope: what travels inside each message.
//!
//! On byte streams (`unix:`, `tcp:`, inside one `len32` frame) and message
//! sockets (`unix-seqpacket:`, one packet):
//!
//! | message | bytes |
//! | --- | --- |
//! | request | `u64` little-endian correlation id, then the request body |
//! | reply | `u64` little-endian correlation id, one status byte (0 ok, 1 the handler failed), then the body: the reply, or the error text in UTF-8 |
//!
//! On `shm:` and the queues, where every client's requests arrive in one
//! mailbox, a request also names its client, so that the server knows
//! where the reply goes:
//!
//! | message | bytes |
//! | --- | --- |
//! | request | `u64` correlation id, `u64` client id, then the body |
//! | reply | as above |
//!
//! On `shm:` and the queues, a request with correlation id 0 and no body
//! is a client's goodbye: the server lets go of its way back to that
//! client, and answers nothing. Calls' ids start at 1.
//!
//! A message shorter than its header is `Corrupt`.

/// The correlation id of a client's goodbye (`shm:`, queues).
pub const GOODBYE: u64 = 0;

/// A request's header on connections: the correlation id.
pub const REQUEST_HEADER: usize = 8;
/// A request's header on `shm:` and the queues: correlation and client ids.
pub const ADDRESSED_HEADER: usize = 16;
/// A reply's header: the correlation id and the status byte.
pub const REPLY_HEADER: usize = 9;

/// The status byte of a reply whose handler succeeded.
pub const STATUS_OK: u8 = 0;
/// The status byte of a reply whose handler failed (the body is its error).
pub const STATUS_FAILED: u8 = 1;

/// A request taken apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RequestParts<'a> {
    pub id: u64,
    /// The client id (`shm:` and the queues only).
    pub client: Option<u64>,
    pub body: &'a [u8],
}

/// A reply taken apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReplyParts<'a> {
    pub id: u64,
    pub status: u8,
    pub body: &'a [u8],
}

fn word(bytes: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"))
}

/// Takes a request apart: `None` when it is shorter than its header.
pub fn parse_request(bytes: &[u8], addressed: bool) -> Option<RequestParts<'_>> {
    if addressed {
        (bytes.len() >= ADDRESSED_HEADER).then(|| RequestParts {
            id: word(bytes, 0),
            client: Some(word(bytes, 8)),
            body: &bytes[ADDRESSED_HEADER..],
        })
    } else {
        (bytes.len() >= REQUEST_HEADER).then(|| RequestParts {
            id: word(bytes, 0),
            client: None,
            body: &bytes[REQUEST_HEADER..],
        })
    }
}

/// Takes a reply apart: `None` when it is shorter than its header or its
/// status byte is unknown.
pub fn parse_reply(bytes: &[u8]) -> Option<ReplyParts<'_>> {
    if bytes.len() < REPLY_HEADER || bytes[8] > STATUS_FAILED {
        return None;
    }
    Some(ReplyParts { id: word(bytes, 0), status: bytes[8], body: &bytes[REPLY_HEADER..] })
}

/// A request's header.
pub fn request_header(id: u64, client: Option<u64>) -> ([u8; ADDRESSED_HEADER], usize) {
    let mut h = [0u8; ADDRESSED_HEADER];
    h[..8].copy_from_slice(&id.to_le_bytes());
    match client {
        Some(c) => {
            h[8..].copy_from_slice(&c.to_le_bytes());
            (h, ADDRESSED_HEADER)
        }
        None => (h, REQUEST_HEADER),
    }
}

/// A reply's header.
pub fn reply_header(id: u64, status: u8) -> [u8; REPLY_HEADER] {
    let mut h = [0u8; REPLY_HEADER];
    h[..8].copy_from_slice(&id.to_le_bytes());
    h[8] = status;
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_short_envelopes() {
        let (h, n) = request_header(7, None);
        let msg = [&h[..n], b"hi"].concat();
        assert_eq!(msg, [7, 0, 0, 0, 0, 0, 0, 0, b'h', b'i']);
        assert_eq!(parse_request(&msg, false), Some(RequestParts { id: 7, client: None, body: b"hi" }));
        let (h, n) = request_header(1, Some(2));
        let msg = [&h[..n], b""].concat();
        assert_eq!(parse_request(&msg, true), Some(RequestParts { id: 1, client: Some(2), body: b"" }));
        let reply = [&reply_header(9, STATUS_FAILED)[..], b"boom"].concat();
        assert_eq!(parse_reply(&reply), Some(ReplyParts { id: 9, status: 1, body: b"boom" }));
        for short in 0..8 {
            assert_eq!(parse_request(&[0; 16][..short], false), None);
            assert_eq!(parse_reply(&[0; 16][..short]), None);
        }
        assert_eq!(parse_request(&[0; 15], true), None);
        assert_eq!(parse_reply(&[0; 8]), None);
        assert_eq!(parse_reply(&[0, 0, 0, 0, 0, 0, 0, 0, 2]), None, "an unknown status");
    }
}
