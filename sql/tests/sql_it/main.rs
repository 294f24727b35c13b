//! Integration tests of velostream-sql (one binary; modules by topic).
mod execution;
mod shipped;
mod taxi;
mod validation;
