//! Shared fixtures for the criterion benches live in the benches themselves.
