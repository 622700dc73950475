//! Request-response between real processes, on every transport it runs
//! on: round trips, handler errors, calls in flight together, many
//! clients, dead clients and servers, and the bad-input table.
//!
//! 1. `basics`: one server, one client, each transport; handler errors;
//!    calls from several threads at once.
//! 2. `bad_input`: the table, a row each.
//! 3. `many`: 8 client processes x 10,000 requests; clients SIGKILLed
//!    mid-request, 100 times.

mod bad_input;
mod basics;
mod many;
mod support;
