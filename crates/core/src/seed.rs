//! Named sub-seeds: how one run's seed becomes independent seeds for its stages and repeats.
//!
//! Pure integer hashing, no random-number crate: the simulation (`xpcs_sim::rng`) turns a
//! sub-seed into a ChaCha8 stream; the core uses it to label repeats reproducibly.

/// A named sub-seed: mixes `seed` with a stage name so that stages of one run (speckle,
/// photons, bad pixels, ...) draw from unrelated streams.
pub fn subseed(seed: u64, stage: &str) -> u64 {
    // FNV-1a over the stage name, then a splitmix64 finaliser with the seed.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in stage.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    let mut z = seed ^ h;
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stages_get_distinct_seeds() {
        assert_ne!(subseed(1, "speckle"), subseed(1, "photons"));
        assert_ne!(subseed(1, "speckle"), subseed(2, "speckle"));
        assert_eq!(subseed(1, "speckle"), subseed(1, "speckle"));
    }
}
