//! Any Kafka headers given to the envelope reader return an envelope, none,
//! or an error naming a `velostream.*` header: no panic; and every envelope
//! read writes back (`to_headers`) to headers that read as the same
//! envelope. The input is split into (name, value) headers as described in
//! `envelope_headers_body.rs`, which `codecs/tests/envelope_fuzz_seeds.rs`
//! also runs over the headers a real producer writes. Run with
//! `RUSTC_BOOTSTRAP=1 cargo fuzz run envelope_headers -- -max_total_time=60`
//! from `codecs/`.
#![no_main]

use libfuzzer_sys::fuzz_target;

// `join` is for the seeds and tests only.
#[allow(dead_code)]
#[path = "envelope_headers_body.rs"]
mod body;

fuzz_target!(|data: &[u8]| {
    let _ = body::check(data);
});
