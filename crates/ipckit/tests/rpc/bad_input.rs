//! The bad-input table, a row each.
