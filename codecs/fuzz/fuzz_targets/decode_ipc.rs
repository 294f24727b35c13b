//! Any bytes given to the Kafka message decoder return a value or a typed
//! error: no panic, no unbounded allocation. Run with
//! `RUSTC_BOOTSTRAP=1 cargo fuzz run decode_ipc -- -max_total_time=60 -rss_limit_mb=2048`
//! from `codecs/`.
//!
//! Seed corpus: the golden IPC streams written by pyarrow
//! (`codecs/tests/golden/ipc/*.arrows`, see the README there). Pass that
//! directory as an extra corpus directory after the working one; libFuzzer
//! writes new inputs only to the first directory, so the golden files stay
//! untouched:
//!
//! ```text
//! cd codecs && mkdir -p fuzz/corpus/decode_ipc
//! RUSTC_BOOTSTRAP=1 cargo fuzz run decode_ipc fuzz/corpus/decode_ipc tests/golden/ipc \
//!     -- -max_total_time=60 -rss_limit_mb=2048
//! ```
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
