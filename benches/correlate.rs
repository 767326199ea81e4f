//! Correlator speed on the reference sizes of the speed targets (setup outside the timed closures):
//! - dense multi-tau: 1000 frames × 512 × 512 u16, 10 ring q-bins, default schedule;
//! - event correlator: the same size at 0.01 photons/pixel/frame;
//! - two-time: 1000 frames × 256 × 256, 10 ring q-bins, all bins.
//!
//! Run: `cargo bench --bench correlate -- --warm-up-time 1 --measurement-time 5`.

use criterion::{criterion_group, criterion_main, Criterion};
use rand::{Rng, RngExt};
use std::hint::black_box;
use xpcs_twin::correlate::event::EventCorrelator;
use xpcs_twin::correlate::multitau::DenseMultiTau;
use xpcs_twin::correlate::twotime::two_time_stack;
use xpcs_twin::correlate::{Estimator, LagSchedule};
use xpcs_twin::data::{EventList, FrameStack, QPartition};
use xpcs_twin::rng::stream;

/// Ten rings of equal width around the centre; the corners are excluded (label 0).
fn rings(n: usize) -> QPartition {
    let c = n as f64 / 2.0;
    let labels = (0..n * n)
        .map(|p| {
            let (y, x) = ((p / n) as f64 + 0.5 - c, (p % n) as f64 + 0.5 - c);
            let r = (x * x + y * y).sqrt() / c;
            if r < 1.0 {
                1 + (r * 10.0) as u32
            } else {
                0
            }
        })
        .collect();
    QPartition::from_labels(n, n, labels, "bench rings").unwrap()
}

/// Photon-counting-like u16 frames: mean ≈ 0.1 photon/pixel/frame, counts 0..=3.
fn dense_stack(t: usize, n: usize, seed: u64) -> FrameStack {
    let mut rng = stream(seed, 0);
    let mut bytes = vec![0u8; t * n * n];
    rng.fill_bytes(&mut bytes);
    let data = bytes
        .iter()
        .map(|&b| if b < 24 { u16::from(b & 3) } else { 0 })
        .collect();
    FrameStack::from_u16(t, n, n, data).unwrap()
}

/// Sparse photons at `rate` per pixel per frame (Bernoulli per pixel-frame, 1 photon each),
/// drawn with geometric gaps so that generation costs ∝ photons.
fn sparse_events(t: usize, n: usize, rate: f64, seed: u64) -> EventList {
    let mut rng = stream(seed, 1);
    let ln_q = (1.0 - rate).ln();
    let mut offsets = vec![0u64];
    let mut frames = Vec::new();
    for _ in 0..n * n {
        let mut f = 0f64;
        loop {
            let u: f64 = rng.random::<f64>().max(f64::MIN_POSITIVE);
            f += (u.ln() / ln_q).floor();
            if f >= t as f64 {
                break;
            }
            frames.push(f as u32);
            f += 1.0;
        }
        offsets.push(frames.len() as u64);
    }
    let counts = vec![1u32; frames.len()];
    EventList::new(n, n, t, 0.1, offsets, frames, counts).unwrap()
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("correlate");
    g.sample_size(10);

    let part = rings(512);
    let sched = LagSchedule::multi_tau(1000, 8).unwrap();
    {
        let stack = dense_stack(1000, 512, 1);
        g.bench_function("dense_multitau_1000x512x512_u16", |b| {
            b.iter(|| {
                let mut m = DenseMultiTau::new(&part, &sched);
                m.push_stack(&stack, 0..1000).unwrap();
                black_box(m.finish(Estimator::Symmetric).unwrap())
            })
        });
    }
    {
        let ev = sparse_events(1000, 512, 0.01, 2);
        g.bench_function("event_multitau_1000x512x512_0.01", |b| {
            b.iter(|| {
                let mut m = EventCorrelator::new(&part, &sched, 1000);
                m.push_events(&ev).unwrap();
                black_box(m.finish(Estimator::Symmetric).unwrap())
            })
        });
    }
    {
        let part = rings(256);
        let stack = dense_stack(1000, 256, 3);
        g.bench_function("two_time_1000x256x256", |b| {
            b.iter(|| black_box(two_time_stack(&stack, &part, &[], 1).unwrap()))
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
