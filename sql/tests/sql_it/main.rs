//! Integration tests of velostream-sql (one binary; modules by topic).
mod shipped;
mod taxi;
