//! Many clients, and clients that die.
