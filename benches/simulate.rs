//! Speed of the speckle synthesiser (grid method, circulant generator, thinning to events).
//!
//! - `ce_scan`: Ce seed scan, 1500 frames × 512 × 512 at 0.05 photons/pixel/frame, β = 1.8
//!   (preset isobar 1.1 GPa, τ = 900 s, 5 s frames). Target ≤ 10 s.
//! - `pt_sixteenth`: the Pt full-scale scan (Eiger2 4M, 10 000 frames × 0.1 s, 0.06
//!   photons/pixel/frame, aging from τ0 = 34 s at 6.3 GPa) on 1/16 of the pixels (517 × 540 of
//!   2068 × 2162), same rows-to-q map; full scale ≈ 16 × this (cost ∝ pixels).
//!
//! Measured on the shared 2-core machine (load average 3.5–5.5 from other builds), grid
//! du = 0.025 (interpolation error 1.3e-3 of the contrast term):
//! - ce_scan: 4.57 s median [4.17, 4.99] (1.97e7 photons, ≈ 4–5e6 photons/s);
//! - pt_sixteenth: 16.5 s median [14.8, 18.5] (1.68e8 photons, ≈ 1.0e7 photons/s) → full
//!   scale ≈ 16 × = 4.4 min; one full-scale run measured directly: 2.68e9 photons in 325 s
//!   (8.3e6 photons/s, 247 s user CPU), peak RSS 155 MB (photons dropped by the sink).
//!
//! Cost model: fields ∝ pixels × max(r U, 4)/du × log(FFT size) with U = ∫ dt/τ over the scan
//! (scan/τ when stationary) and du ∝ tolerance^(1/β); photons ∝ photons × (bound / mean
//! intensity) ≈ 1.5 candidates per photon at c = 0.015. So cost is linear in pixels, in 1/τ
//! and in the count rate, and grows with frames only through U and the photon count.
//!
//! Photons are counted by the sink and dropped (the event-file writer is another stage).
//! `XPCS_TWIN_FULL_SCALE=1 cargo bench --bench simulate` also runs the full Pt scan once and
//! prints its time, photons/s and peak resident memory.

use criterion::{criterion_group, criterion_main, Criterion};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use xpcs_twin::config::sample::load_sample;
use xpcs_twin::speckle::{Exposure, PerPixel, Scene, SimOptions, Simulator};

fn preset(name: &str) -> xpcs_twin::config::sample::Sample {
    load_sample(
        &PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("models/samples")
            .join(name),
    )
    .unwrap()
}

fn sim_for(name: &str, pressure: f64, rows: usize, cols: usize, full_rows: usize) -> Simulator {
    let s = preset(name);
    let c = &s.campaign;
    let k = c.find_pressure(pressure).unwrap();
    let b = &c.isobars[k];
    let mut r = xpcs_twin::rng::stream(1, 0);
    let (dynamics, facts) = c.scan(k, b.n_frames, b.frame_time_s, &mut r).unwrap();
    let sc = s.scene.unwrap();
    let mut scene = Scene::uniform(rows, cols, sc.mean_counts_per_frame, sc.contrast, sc.modes);
    // Rows of the full detector spread over q around q1 (centre row); the reduced detector
    // keeps every 4th row so its rate factors span the full-detector range.
    let step = full_rows / rows;
    scene.rate_factor = PerPixel::Map(
        (0..rows * cols)
            .map(|p| {
                let row = (p / cols) * step;
                let q = facts.q1_inv_angstrom
                    + (row as f64 - full_rows as f64 / 2.0) * sc.q_step_inv_angstrom_per_row;
                c.response.rate_factor(q, facts.pressure_gpa)
            })
            .collect(),
    );
    let exposure = Exposure {
        n_frames: b.n_frames,
        frame_time_s: b.frame_time_s,
    };
    Simulator::new(scene, dynamics, exposure, SimOptions::default()).unwrap()
}

fn run(sim: &Simulator) -> u64 {
    let photons = AtomicU64::new(0);
    sim.for_each_block(|b| {
        photons.fetch_add(b.total_counts(), Ordering::Relaxed);
        Ok(())
    })
    .unwrap();
    photons.into_inner()
}

/// One timed run outside criterion, for photons/s and the grid facts.
fn report(name: &str, sim: &Simulator) {
    let t = std::time::Instant::now();
    let n = run(sim);
    let dt = t.elapsed().as_secs_f64();
    // Peak resident memory of the process so far (Linux).
    let hwm = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM"))
                .map(|l| l.split_whitespace().nth(1).unwrap_or("?").to_string())
        })
        .unwrap_or_else(|| "?".into());
    eprintln!(
        "{name}: grid (du, interpolation error) = {:?}, {n} photons in {dt:.2} s = {:.3e} \
         photons/s; peak RSS {hwm} kB",
        sim.grid(),
        n as f64 / dt
    );
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("simulate");
    g.sample_size(10);
    g.warm_up_time(Duration::from_secs(1));
    g.measurement_time(Duration::from_secs(20));
    let ce = sim_for("ce68.toml", 1.1, 512, 512, 512);
    report("ce", &ce);
    g.bench_function("ce_scan_1500x512x512", |b| b.iter(|| run(&ce)));
    if std::env::var("XPCS_TWIN_FULL_SCALE").is_ok_and(|v| v == "1") {
        // One full-scale run (2068 × 2162 px, 10 000 frames), outside criterion.
        let full = sim_for("pt42.toml", 6.3, 2068, 2162, 2068);
        report("pt full scale", &full);
        drop(full);
    }
    let pt = sim_for("pt42.toml", 6.3, 517, 540, 2068);
    report("pt/16", &pt);
    g.bench_function("pt_sixteenth_10000x517x540", |b| b.iter(|| run(&pt)));
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
