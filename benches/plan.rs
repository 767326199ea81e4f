//! Planner throughput: the prediction of one setting (Fisher with the g2 covariance across
//! lags, the unit the recommendation grid evaluates), the recommendation over the whole grid,
//! and a single-point plan with 100 Monte Carlo repeats (target: < 1 min on 2 cores), all
//! at the fixed Pt 3.3 GPa reference setting (`Setting::pt_3p3_gpa_example`).
//!
//! Run: `cargo bench --bench plan -- --warm-up-time 1 --measurement-time 3`.

use criterion::{criterion_group, criterion_main, Criterion};
use std::hint::black_box;
use xpcs_twin::plan::floor::{default_bin_frames, floor_formula};
use xpcs_twin::plan::{monte_carlo, predict, recommend, Limits, McOptions, Setting, Target};

fn pt() -> Setting {
    Setting::pt_3p3_gpa_example()
}

fn limits() -> Limits {
    Limits {
        frame_times_s: Vec::new(),
        min_frame_time_s: 1e-3,
        avalanche_frame_time_s: Some(0.1),
        max_frames: 100_000,
        budget_s: None,
        min_t_over_tau: 5.0,
        aging_tau_star_s: None,
        aging_tau_cap_s: None,
        max_drift: None,
        detector_pixels: 2068.0 * 2162.0,
        dense_bytes_per_pixel: 2.0,
    }
}

fn bench(c: &mut Criterion) {
    let s = pt();
    c.bench_function("plan_predict_pt_1900_frames", |b| {
        b.iter(|| predict(black_box(&s)).unwrap())
    });
    let target = Target::parse("tau=5%").unwrap();
    let lim = limits();
    c.bench_function("plan_recommend_grid_pt", |b| {
        b.iter(|| recommend(black_box(&s), target, &lim).unwrap())
    });
    let mut g = c.benchmark_group("plan_single_point");
    g.sample_size(10);
    g.bench_function("recommend_mc100_floor_pt", |b| {
        b.iter(|| {
            let plan = recommend(&s, target, &lim).unwrap();
            let ch = &plan.grid[plan.chosen];
            let chosen = s.with_scan(ch.frame_time_s, ch.n_frames);
            let mc = monte_carlo(
                &chosen,
                &McOptions {
                    repeats: 100,
                    ..Default::default()
                },
            )
            .unwrap();
            let fl = floor_formula(&chosen, default_bin_frames(&chosen)).unwrap();
            black_box((mc, fl))
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
