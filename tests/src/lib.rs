//! Shared helpers for the broker-backed tests.
