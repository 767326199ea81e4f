//! Seeded, portable random streams.
//!
//! All randomness in xpcs-twin comes from [`TwinRng`] (ChaCha8: portable, documented, the same
//! on every platform). Parallel work never shares a generator: each independent piece of work
//! (a pixel block, a repeat, a q-bin) draws from its own stream, derived from the run's seed and
//! the piece's index with [`stream`]. The piece → stream mapping never depends on the number of
//! threads, so the same seed gives the same output bit for bit whatever the thread count.

use rand::SeedableRng;

/// The generator used everywhere in the crate.
pub type TwinRng = rand_chacha::ChaCha8Rng;

/// The random stream for piece `index` of a run seeded with `seed`.
///
/// Streams for different `(seed, index)` pairs are independent (ChaCha's 64-bit stream id).
pub fn stream(seed: u64, index: u64) -> TwinRng {
    let mut rng = TwinRng::seed_from_u64(seed);
    rng.set_stream(index);
    rng
}

pub use xpcs_core::seed::subseed;

#[cfg(test)]
mod tests {
    use super::*;
    use rand::RngExt;

    #[test]
    fn streams_are_reproducible_and_distinct() {
        let a: Vec<u64> = (0..4).map(|_| stream(7, 3).random::<u64>()).collect();
        assert!(a.windows(2).all(|w| w[0] == w[1]));
        let mut s3 = stream(7, 3);
        let mut s4 = stream(7, 4);
        assert_ne!(s3.random::<u64>(), s4.random::<u64>());
        assert_ne!(subseed(1, "speckle"), subseed(1, "photons"));
    }
}
