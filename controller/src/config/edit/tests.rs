//! Tests for config/edit.rs.
