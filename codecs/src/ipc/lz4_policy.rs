//! Which buffers of a batch LZ4 pays for: a state machine fed with what
//! compression achieved, no I/O.
//!
//! A buffer LZ4 shrinks little costs the producer nearly a full compression
//! and the consumer a decompression, and saves the broker few bytes: on the
//! taxi data the two timestamp columns shrink 1.4–1.5 times at about half
//! the speed of the rest, the flag-like columns 20–100 times. So every
//! buffer slot (its index in the batch's buffer list, the same for every
//! batch of one schema) keeps the ratio it last reached, and between samples
//! only the slots whose ratio reaches `min_ratio` are compressed; the others
//! are stored as they are (Arrow's `-1` length prefix), which every Arrow
//! reader accepts. A sample compresses every buffer of a batch again: the
//! first batch of a layout and then one batch in [`SAMPLE_EVERY`], so a
//! column whose data changes is measured again within that many batches.

/// Batches between two samples (a sample compresses every buffer).
pub const SAMPLE_EVERY: u32 = 32;

/// The per-slot compress-or-store decisions of one encoder.
#[derive(Clone, Debug)]
pub struct Lz4Policy {
    min_ratio: f64,
    /// The ratio (uncompressed / compressed bytes) each slot last reached;
    /// `INFINITY` before its first measurement.
    ratios: Vec<f64>,
    /// Batches left before the next sample (0: this one is).
    until_sample: u32,
}

/// How one batch is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pass {
    /// Compress every buffer and report each ratio ([`Lz4Policy::observe`]).
    Sample,
    /// Compress the buffers [`Lz4Policy::compresses`] names, store the rest.
    Planned,
}

impl Lz4Policy {
    /// A policy that compresses a slot when LZ4 shrank it at least
    /// `min_ratio` times (1.0: whenever it shrinks at all).
    pub fn new(min_ratio: f64) -> Self {
        Self {
            min_ratio,
            ratios: Vec::new(),
            until_sample: 0,
        }
    }

    /// Forgets every measurement: the next batch is a sample (the schema
    /// changed, so the slots mean other columns).
    pub fn reset(&mut self) {
        self.ratios.clear();
        self.until_sample = 0;
    }

    /// Starts a batch of `buffers` buffers and says how to write it. A batch
    /// with another number of buffers than the last is a new layout.
    pub fn begin_batch(&mut self, buffers: usize) -> Pass {
        if self.ratios.len() != buffers {
            self.ratios = vec![f64::INFINITY; buffers];
            self.until_sample = 0;
        }
        if self.until_sample == 0 {
            self.until_sample = SAMPLE_EVERY - 1;
            Pass::Sample
        } else {
            self.until_sample -= 1;
            Pass::Planned
        }
    }

    /// Whether slot `slot` is compressed in a planned batch.
    pub fn compresses(&self, slot: usize) -> bool {
        self.ratios
            .get(slot)
            .is_none_or(|&ratio| ratio >= self.min_ratio)
    }

    /// Records that `raw` bytes of slot `slot` compressed to `compressed`.
    pub fn observe(&mut self, slot: usize, raw: usize, compressed: usize) {
        if let Some(ratio) = self.ratios.get_mut(slot) {
            *ratio = raw as f64 / compressed.max(1) as f64;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds one sampled batch whose slots compress by `ratios`.
    fn sample(p: &mut Lz4Policy, ratios: &[f64]) {
        assert_eq!(p.begin_batch(ratios.len()), Pass::Sample);
        for (slot, r) in ratios.iter().enumerate() {
            p.observe(slot, 1000, (1000.0 / r) as usize);
        }
    }

    #[test]
    fn the_first_batch_is_a_sample_and_then_only_slots_that_pay_are_compressed() {
        let mut p = Lz4Policy::new(2.0);
        sample(&mut p, &[1.4, 2.0, 50.0, 0.9]);
        assert_eq!(p.begin_batch(4), Pass::Planned);
        let planned: Vec<bool> = (0..4).map(|s| p.compresses(s)).collect();
        assert_eq!(planned, [false, true, true, false]);
    }

    #[test]
    fn one_batch_in_sample_every_is_measured_again_and_changes_the_plan() {
        let mut p = Lz4Policy::new(2.0);
        sample(&mut p, &[1.5, 3.0]);
        for _ in 1..SAMPLE_EVERY {
            assert_eq!(p.begin_batch(2), Pass::Planned);
        }
        // The data changed: the first column compresses well now, the second not.
        sample(&mut p, &[4.0, 1.1]);
        assert_eq!(p.begin_batch(2), Pass::Planned);
        assert!(p.compresses(0));
        assert!(!p.compresses(1));
    }

    #[test]
    fn a_new_layout_or_a_reset_starts_with_a_sample_that_compresses_everything() {
        let mut p = Lz4Policy::new(2.0);
        sample(&mut p, &[1.0, 1.0]);
        assert_eq!(p.begin_batch(2), Pass::Planned);
        assert_eq!(p.begin_batch(3), Pass::Sample);
        assert!((0..3).all(|s| p.compresses(s)));
        (0..3).for_each(|s| p.observe(s, 1000, 1000));
        assert!(!p.compresses(0));
        p.reset();
        assert_eq!(p.begin_batch(3), Pass::Sample);
        assert!((0..3).all(|s| p.compresses(s)));
    }

    #[test]
    fn a_ratio_of_one_compresses_whatever_shrinks() {
        let mut p = Lz4Policy::new(1.0);
        sample(&mut p, &[1.01, 0.99]);
        p.begin_batch(2);
        assert!(p.compresses(0));
        assert!(!p.compresses(1));
    }
}
