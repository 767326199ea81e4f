//! Speed of the instrument stage (setup outside the timed closures).
//!
//! - `qmap_eiger2_4m`: pixel → 2θ, φ, q, solid angle, polarisation, direction for every pixel
//!   of an Eiger2 CdTe 4M (2162 × 2068 = 4.47 M pixels) at 5 m, 20.95 keV.
//! - `scene_pt_3p3gpa`: the whole per-pixel scene of the Pt campaign's instrument at 3.3 GPa
//!   (q-map, transmissions, S(q), QE, Kossel lines and spots, contrast) on the full Eiger.
//! - `counting_chain_512x512x100`: every counting step (charge sharing, dead time, gain,
//!   hot/dead pixels, rollover, masks) on ideal Poisson photons of a Maxipix 2 × 2 CdTe
//!   (516 × 516, 512 × 512 usable) × 100 frames at 0.1 photons/pixel/frame (2.7e6 photons).
//! - `kossel_mask_eiger2_4m`: the automatic Kossel/spot mask of a summed image of the full
//!   Eiger (Poisson around the Pt scene × 1000 frames, 4 lines and 3 spots injected).
//!
//! Measured with `cargo bench --bench instrument -- --warm-up-time 1 --measurement-time 3` on
//! the shared 2-core machine under load average 11.5 (other builds), 10 samples, median
//! [95 % interval]; each stage is single-threaded except the counting chain (rayon):
//! - qmap_eiger2_4m: 643 ms [563, 740] (≈ 140 ns/pixel);
//! - scene_pt_3p3gpa: 1.74 s [1.68, 1.80];
//! - counting_chain_512x512x100: 633 ms [561, 712] (≈ 4e6 photons/s through six steps);
//! - kossel_mask_eiger2_4m: 561 ms [524, 602].

use criterion::{criterion_group, criterion_main, Criterion};
use rand_distr::{Distribution, Poisson};
use std::time::Duration;
use xpcs_twin::config::instrument::{load_preset, CountingConfig, DetectorConfig};
use xpcs_twin::instrument::counting::{poisson_events, CountingChain};
use xpcs_twin::instrument::kossel::{find_mask, MaskOptions};
use xpcs_twin::instrument::scene::Instrument;
use xpcs_twin::instrument::Detector;

fn detector(name: &str) -> Detector {
    let (c, o) = load_preset::<DetectorConfig>("detectors", name).unwrap();
    Detector::new(&c, &o).unwrap()
}

fn bench(c: &mut Criterion) {
    let inst = Instrument::pt_seed(true).unwrap();
    let mut g = c.benchmark_group("instrument");
    g.sample_size(10);

    let geo = inst.geometry_at(3.3).unwrap();
    g.bench_function("qmap_eiger2_4m", |b| b.iter(|| geo.maps()));
    g.bench_function("scene_pt_3p3gpa", |b| {
        b.iter(|| inst.scene(3.3, 0.1, None).unwrap())
    });

    let maxipix = detector("maxipix-2x2-cdte");
    let chain = CountingChain::new(&maxipix, &CountingConfig::default(), None).unwrap();
    let (r, cl) = (maxipix.rows, maxipix.cols);
    let ideal = poisson_events(&vec![0.1; r * cl], r, cl, 100, 0.01, 5).unwrap();
    g.bench_function("counting_chain_512x512x100", |b| {
        b.iter(|| chain.apply(&ideal, 9).unwrap())
    });

    let (scene, maps, _) = inst.scene(3.3, 0.1, None).unwrap();
    let mut rng = xpcs_twin::rng::stream(3, 0);
    let sum: Vec<f64> = scene
        .mean_counts
        .iter()
        .map(|&m| {
            if m > 0.0 {
                Poisson::new(1000.0 * m).unwrap().sample(&mut rng)
            } else {
                0.0
            }
        })
        .collect();
    let opt = MaskOptions::default();
    g.bench_function("kossel_mask_eiger2_4m", |b| {
        b.iter(|| find_mask(&sum, &maps, &scene.valid, &opt).unwrap())
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_secs(1));
    targets = bench
}
criterion_main!(benches);
