//! Outbox placeholder.
