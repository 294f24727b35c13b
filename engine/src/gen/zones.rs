//! NYC TLC taxi zones (IDs 1..=265) with pickup and drop-off popularity
//! skewed toward Manhattan, roughly as in the real yellow-taxi data.

use super::rng::{Rng, Weighted};

/// JFK Airport zone.
pub const JFK: i32 = 132;
/// LaGuardia Airport zone.
pub const LGA: i32 = 138;
/// Newark Airport zone.
pub const EWR: i32 = 1;

/// Manhattan zones, most popular first (approximate ranking of real pickups).
pub const MANHATTAN: [i32; 69] = [
    161, 237, 236, 162, 230, 186, 142, 170, 163, 239, 234, 68, 48, 141, 79, 107, 140, 238, 263,
    100, 164, 229, 249, 113, 90, 246, 43, 233, 262, 114, 137, 143, 151, 50, 158, 231, 144, 148,
    211, 87, 13, 125, 224, 75, 166, 41, 209, 74, 24, 45, 4, 232, 261, 88, 42, 116, 152, 127, 12,
    244, 243, 120, 128, 153, 194, 202, 103, 104, 105,
];

/// Busy zones outside Manhattan (Brooklyn, Queens), most popular first.
const OUTER: [i32; 14] = [
    7, 65, 66, 97, 181, 25, 145, 146, 223, 226, 255, 256, 129, 260,
];

/// Whether a zone is in Manhattan.
pub fn is_manhattan(zone: i32) -> bool {
    MANHATTAN.contains(&zone)
}

/// Weighted zone choice; index `i` of the distribution is zone `i + 1`.
#[derive(Clone, Debug)]
pub struct Zones {
    pickup: Weighted,
    dropoff: Weighted,
}

impl Zones {
    /// The pickup and drop-off distributions.
    pub fn new() -> Zones {
        Zones {
            pickup: Weighted::new(&weights(0.86, 0.054, 0.06)),
            dropoff: Weighted::new(&weights(0.80, 0.03, 0.12)),
        }
    }

    /// A pickup zone.
    #[inline]
    pub fn pickup(&self, rng: &mut Rng) -> i32 {
        self.pickup.sample(rng) as i32 + 1
    }

    /// A drop-off zone.
    #[inline]
    pub fn dropoff(&self, rng: &mut Rng) -> i32 {
        self.dropoff.sample(rng) as i32 + 1
    }
}

impl Default for Zones {
    fn default() -> Self {
        Zones::new()
    }
}

/// Weights over zones 1..=265: `manhattan` share spread Zipf-like over the
/// Manhattan ranking, `airports` over JFK/LGA/EWR, `outer` over the busy
/// outer zones, the rest (plus unknown zones 264/265) spread evenly.
fn weights(manhattan: f64, airports: f64, outer: f64) -> Vec<f64> {
    let mut w = vec![0.0f64; 265];
    let zipf = |n: usize| -> Vec<f64> {
        let raw: Vec<f64> = (0..n).map(|r| 1.0 / (r as f64 + 6.0).powf(1.3)).collect();
        let sum: f64 = raw.iter().sum();
        raw.into_iter().map(|x| x / sum).collect()
    };
    for (zone, share) in MANHATTAN.iter().zip(zipf(MANHATTAN.len())) {
        w[(*zone - 1) as usize] += manhattan * share;
    }
    for (zone, share) in OUTER.iter().zip(zipf(OUTER.len())) {
        w[(*zone - 1) as usize] += outer * share;
    }
    w[(JFK - 1) as usize] += airports * 0.55;
    w[(LGA - 1) as usize] += airports * 0.43;
    w[(EWR - 1) as usize] += airports * 0.02;
    let rest = (1.0 - manhattan - airports - outer).max(0.0);
    w[263] += rest * 0.25; // 264: unknown
    w[264] += rest * 0.05; // 265: outside NYC
    let others: Vec<usize> = (0..263).filter(|i| w[*i] == 0.0).collect();
    let each = rest * 0.70 / others.len() as f64;
    for i in others {
        w[i] = each;
    }
    w
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zones_are_valid_and_mostly_manhattan() {
        let zones = Zones::new();
        let mut rng = Rng::new(1);
        let n = 100_000;
        let mut manhattan = 0;
        for _ in 0..n {
            let z = zones.pickup(&mut rng);
            assert!((1..=265).contains(&z));
            manhattan += usize::from(is_manhattan(z));
        }
        let share = manhattan as f64 / n as f64;
        assert!((0.83..0.89).contains(&share), "{share}");
        let mut unique = MANHATTAN.to_vec();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), MANHATTAN.len());
    }
}
