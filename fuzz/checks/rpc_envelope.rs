//! The invariants of the `rpc_envelope` fuzz target, shared with its
//! stable smoke test (`crates/ipckit/tests/envelope_smoke.rs`, which
//! includes this file by path).
//!
//! Any bytes a peer sends are taken apart by
//! `ipckit::rpc::envelope::{parse_request, parse_reply}` (the plain and the
//! addressed request, the reply). For each:
//! - no panic;
//! - accepted exactly when the bytes hold the whole header (and, for a
//!   reply, a known status byte);
//! - what is accepted is the input: the id (and client id) are the header's
//!   little-endian words, the body is the rest of the input itself (not a
//!   copy, not shortened), and the header built from the parts again, then
//!   the body, gives back the same bytes;
//! - the other way too: the input as a body, under headers built from ids
//!   taken from it, parses back to those ids and that body.

use ipckit::rpc::envelope::{
    ADDRESSED_HEADER, REPLY_HEADER, REQUEST_HEADER, STATUS_FAILED, STATUS_OK, parse_reply, parse_request, reply_header,
    request_header,
};

/// Which forms took an input apart, for a test to see that its inputs
/// reach both outcomes of each.
#[derive(Clone, Copy, Debug, Default)]
pub struct Accepted {
    pub request: bool,
    pub addressed: bool,
    pub reply: bool,
}

/// The little-endian word at `at`, if the input holds one there.
fn word(data: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(data.get(at..at + 8)?.try_into().ok()?))
}

/// Whether `part` is `data[from..]` itself.
fn is_rest(part: &[u8], data: &[u8], from: usize) -> bool {
    std::ptr::eq(part.as_ptr(), data[from..].as_ptr()) && part.len() == data.len() - from
}

/// Checks every invariant on `data`; panics on a violation.
pub fn check(data: &[u8]) -> Accepted {
    let mut accepted = Accepted::default();

    // A request on a connection: the correlation id, then the body.
    match parse_request(data, false) {
        Some(r) => {
            assert!(data.len() >= REQUEST_HEADER, "accepted a {}-byte request", data.len());
            assert_eq!(Some(r.id), word(data, 0), "the request id is not the first word");
            assert_eq!(r.client, None, "a plain request with a client id");
            assert!(is_rest(r.body, data, REQUEST_HEADER), "the body is not the rest of the request");
            let (h, n) = request_header(r.id, r.client);
            assert_eq!(n, REQUEST_HEADER);
            assert_eq!([&h[..n], r.body].concat(), data, "re-encoding the request changed it");
            accepted.request = true;
        }
        None => assert!(data.len() < REQUEST_HEADER, "refused a {}-byte request", data.len()),
    }

    // The addressed request (`shm:`, queues): correlation id, client id, body.
    match parse_request(data, true) {
        Some(r) => {
            assert!(data.len() >= ADDRESSED_HEADER, "accepted a {}-byte addressed request", data.len());
            assert_eq!(Some(r.id), word(data, 0), "the request id is not the first word");
            assert_eq!(r.client, word(data, 8), "the client id is not the second word");
            assert!(is_rest(r.body, data, ADDRESSED_HEADER), "the body is not the rest of the request");
            let (h, n) = request_header(r.id, r.client);
            assert_eq!(n, ADDRESSED_HEADER);
            assert_eq!([&h[..n], r.body].concat(), data, "re-encoding the addressed request changed it");
            accepted.addressed = true;
        }
        None => assert!(data.len() < ADDRESSED_HEADER, "refused a {}-byte addressed request", data.len()),
    }

    // A reply: correlation id, status byte, body.
    let known_status = data.get(8).is_some_and(|&s| s == STATUS_OK || s == STATUS_FAILED);
    match parse_reply(data) {
        Some(r) => {
            assert!(data.len() >= REPLY_HEADER && known_status, "accepted a reply it should refuse");
            assert_eq!(Some(r.id), word(data, 0), "the reply id is not the first word");
            assert_eq!(r.status, data[8], "the status is not the ninth byte");
            assert!(is_rest(r.body, data, REPLY_HEADER), "the body is not the rest of the reply");
            assert_eq!([&reply_header(r.id, r.status)[..], r.body].concat(), data, "re-encoding the reply changed it");
            accepted.reply = true;
        }
        None => assert!(data.len() < REPLY_HEADER || !known_status, "refused a well-formed reply"),
    }

    // The input as a body: ids from its first bytes (zero when short).
    let id = word(data, 0).unwrap_or(data.len() as u64);
    let client = word(data, 8).unwrap_or(!id);
    for addressed in [false, true] {
        let (h, n) = request_header(id, addressed.then_some(client));
        let msg = [&h[..n], data].concat();
        let r = parse_request(&msg, addressed).expect("a whole request refused");
        assert_eq!((r.id, r.client, r.body), (id, addressed.then_some(client), data), "a request did not round-trip");
    }
    for status in [STATUS_OK, STATUS_FAILED] {
        let msg = [&reply_header(id, status)[..], data].concat();
        let r = parse_reply(&msg).expect("a whole reply refused");
        assert_eq!((r.id, r.status, r.body), (id, status, data), "a reply did not round-trip");
    }
    accepted
}
