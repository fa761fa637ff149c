//! Tests for config/watch.rs.
