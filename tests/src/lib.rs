//! Reusable fixtures for end-to-end tests.
