//! Fit throughput: one KWW fit on a multi-tau g2 curve (the per-q-bin unit of work), and a
//! two-time age cut of a 2000 × 2000 map. Setup outside the timed closures.

use criterion::{criterion_group, criterion_main, Criterion};
use std::hint::black_box;
use xpcs_twin::fit::twotime::age_cut;
use xpcs_twin::fit::{fit_curve, FitModel, FitOptions, Kww, KwwHeterodyne};

fn delays(dt: f64, n_frames: usize) -> Vec<f64> {
    let (mut v, mut lag, mut step) = (Vec::new(), 0usize, 1usize);
    for level in 0.. {
        for _ in 0..if level == 0 { 8 } else { 4 } {
            lag += step;
            if lag >= n_frames {
                return v;
            }
            v.push(lag as f64 * dt);
        }
        step *= 2;
    }
    v
}

fn bench(c: &mut Criterion) {
    let t = delays(0.1, 8000);
    let truth = [1.0, 0.2, 38.0, 1.7];
    // Deterministic "noise": a fixed pattern, so the fit has a non-zero residual.
    let y: Vec<f64> = t
        .iter()
        .enumerate()
        .map(|(i, &x)| Kww.eval(x, &truth) + 0.003 * ((i * 7919) % 13) as f64 / 13.0 - 0.0015)
        .collect();
    let s = vec![0.003; t.len()];
    let o = FitOptions::default();
    c.bench_function("kww_fit_48_delays", |b| {
        b.iter(|| fit_curve(&Kww, black_box(&t), black_box(&y), &s, &o).unwrap())
    });
    let of = FitOptions::default().fix("baseline", 1.0);
    c.bench_function("kww_fit_fixed_baseline", |b| {
        b.iter(|| fit_curve(&Kww, black_box(&t), black_box(&y), &s, &of).unwrap())
    });
    c.bench_function("heterodyne_fit_48_delays", |b| {
        b.iter(|| fit_curve(&KwwHeterodyne, black_box(&t), black_box(&y), &s, &o).unwrap())
    });
    let n = 2000;
    let m = ndarray::Array2::from_shape_fn((n, n), |(i, j)| {
        1.0 + 0.2 * (-2.0 * ((j as f64 - i as f64).abs() / 50.0).powf(1.6)).exp()
    });
    c.bench_function("age_cut_2000x2000_hw100", |b| {
        b.iter(|| age_cut(black_box(m.view()), 0.1, 100.0, 10.0, Some(1000), 10).unwrap())
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
