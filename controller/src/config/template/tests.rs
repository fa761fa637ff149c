//! Tests for config/template.rs.
