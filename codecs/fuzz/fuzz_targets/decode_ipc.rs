//! Any bytes given to the Kafka message decoder return a value or a typed
//! error: no panic, no unbounded allocation. Run with
//! `RUSTC_BOOTSTRAP=1 cargo fuzz run decode_ipc -- -max_total_time=60 -rss_limit_mb=2048`
//! from `codecs/`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use velostream_codecs::ipc::{decode_with_limits, DecodeLimits};

fuzz_target!(|data: &[u8]| {
    let limits = DecodeLimits {
        max_decompressed_bytes: 64 << 20,
        max_messages: 1024,
    };
    if let Ok(d) = decode_with_limits(data, &limits) {
        // Decoded data must be internally consistent.
        for b in &d.batches {
            assert_eq!(b.schema().fields().len(), d.schema.fields().len());
        }
    }
});
