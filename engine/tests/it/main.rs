//! The one integration-test binary of the engine. Each area adds its module
//! here; `harness` holds the shared service helpers.

mod harness;
mod harness_selftest;
mod dashboard;
