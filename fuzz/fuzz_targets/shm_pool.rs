//! Fuzz target: the `shm:` payload pool's books (the sender's lender, the
//! receiver's holder) under a script with a hostile sender or receiver;
//! see `ipckit::fuzzing::pool_script` for the invariants checked.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    ipckit::fuzzing::pool_script(data);
});
