//! Writes the bundled example `examples/speckle_small.npy` (frames) and
//! `examples/speckle_small_labels.npy` (q-bin labels); see `examples/README.md`.
//!
//! Run: `cargo run --release --example make_speckle_small` (deterministic: seed 20240917).
//!
//! Model: every pixel is one independent speckle (contrast c = 1, β = 1) whose complex field
//! follows an AR(1) (Ornstein–Uhlenbeck) process E_{t+1} = ρ E_t + sqrt(1 - ρ²) ξ_t, with ξ
//! circular complex Gaussian of unit variance and ρ = exp(-1/τ_q) per frame; I = |E|² has
//! mean 1, and the counts are Poisson(λ I) with λ = 2 photons/pixel/frame. The relaxation time
//! depends on the ring: τ_q = 40 / q frames for ring label q = 1..5. Truth for lag k ≥ 1
//! frames: g2(k) - 1 = exp(-2k/τ_q) (at lag 0 shot noise adds 1/λ).
//!
//! Reference: Goodman, Statistical Optics (1985) (Siegert relation); docs/model.md §3.

use ndarray::{Array2, Array3};
use ndarray_npy::write_npy;
use rand::RngExt;
use rand_distr::{Distribution, Poisson, StandardNormal};
use xpcs_twin::rng::stream;

const SEED: u64 = 20240917;
const N_FRAMES: usize = 300;
const SIZE: usize = 64;
const PHOTONS_PER_FRAME: f64 = 2.0;

/// Ring label of a pixel: 5 rings of width 5.6 px between radii 4 and 32 around (32, 32);
/// 0 inside radius 4 (a beamstop) and beyond 32 (the corners).
fn label(row: usize, col: usize) -> u32 {
    let (y, x) = (row as f64 + 0.5 - 32.0, col as f64 + 0.5 - 32.0);
    let r = (x * x + y * y).sqrt();
    if !(4.0..32.0).contains(&r) {
        0
    } else {
        1 + ((r - 4.0) / 5.6) as u32
    }
}

/// Relaxation time (frames) of ring `q`.
fn tau_frames(q: u32) -> f64 {
    40.0 / f64::from(q)
}

fn main() {
    let labels = Array2::from_shape_fn((SIZE, SIZE), |(r, c)| label(r, c));
    let mut frames = Array3::<u8>::zeros((N_FRAMES, SIZE, SIZE));
    for row in 0..SIZE {
        for col in 0..SIZE {
            let p = (row * SIZE + col) as u64;
            // One stream per pixel: the file does not depend on the iteration order.
            let mut rng = stream(SEED, p);
            let q = label(row, col).max(1);
            let rho = (-1.0 / tau_frames(q)).exp();
            let s = (1.0 - rho * rho).sqrt();
            let h = std::f64::consts::FRAC_1_SQRT_2;
            let g = |rng: &mut xpcs_twin::rng::TwinRng| rng.sample::<f64, _>(StandardNormal) * h;
            let (mut re, mut im) = (g(&mut rng), g(&mut rng));
            for t in 0..N_FRAMES {
                let mean = PHOTONS_PER_FRAME * (re * re + im * im);
                let n = if mean > 0.0 {
                    Poisson::new(mean).expect("positive mean").sample(&mut rng)
                } else {
                    0.0
                };
                frames[[t, row, col]] = n.min(255.0) as u8;
                re = rho * re + s * g(&mut rng);
                im = rho * im + s * g(&mut rng);
            }
        }
    }
    write_npy("examples/speckle_small.npy", &frames).expect("write frames");
    write_npy("examples/speckle_small_labels.npy", &labels).expect("write labels");
    let counts: Vec<usize> = (0..=5)
        .map(|q| labels.iter().filter(|&&l| l == q).count())
        .collect();
    println!("wrote examples/speckle_small.npy ({N_FRAMES} x {SIZE} x {SIZE} u8) and labels; pixels per label 0..=5: {counts:?}");
}
