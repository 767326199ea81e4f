//! What the domain parameters give: β and ΔC of the exact expected correlations.
//!
//! For each parameter set and seed, realises one scan (6 s frames, 1400 s, mean clock τ = 34 s:
//! the Pt preset's 3.3 GPa isobar), computes the expected two-time map E[C(t1, t2)] of one
//! ideal bin (contrast 1, no shot noise off the diagonal) with the exact truth, fits a KWW
//! (baseline fixed at 1) to the expected g2 and takes ΔC, the 90 % width of the expected
//! C(t, t + τ_fit), in units of the contrast. No photons are simulated: these are the
//! numbers the model sets, before any noise.
//!
//! Models compared: domain replacements (N domains, rate spread σ, Poisson complete
//! replacements carrying a share ν τ of the decorrelation over τ), global intermittent clock
//! jumps (jump J at rate ν, share ν J τ, the smooth clock slowed to keep the mean rate), and
//! per-domain intermittent clocks (each domain's clock jumps by J at its own Poisson times).
//!
//! Run: `cargo run --release -p xpcs-sim --example domain_calibration` (about a minute).

use xpcs_core::correlate::heterogeneity::delta_c;
use xpcs_core::fit::{fit_curve, FitOptions, Kww};
use xpcs_sim::model::{
    BinOptics, DomainSpec, Dynamics, Fluctuations, PixelOptics, Sampling, TauLaw, Truth,
};

const TAU_S: f64 = 34.0;
const FRAME_S: f64 = 6.0;
const SCAN_S: f64 = 1400.0;
const SEEDS: u64 = 4;

/// One row of the table.
#[derive(Clone, Copy)]
enum Model {
    /// N domains, spread σ, complete replacements with share ν τ.
    Replacements { n: usize, spread: f64, share: f64 },
    /// One clock for the whole volume, jumps J with share ν J τ.
    GlobalJumps { jump: f64, share: f64 },
    /// N domains, spread σ, each with its own jumps J (share ν J τ).
    LocalJumps {
        n: usize,
        spread: f64,
        jump: f64,
        share: f64,
    },
}

fn dynamics(model: Model, beta0: f64, seed: u64) -> Dynamics {
    let mut rng = xpcs_sim::rng::stream(seed, 0);
    let stationary = |share: f64| TauLaw::Stationary {
        tau_s: TAU_S / (1.0 - share),
    };
    let spec = |n: usize, spread: f64, rate: f64| DomainSpec {
        count: n,
        rate_spread: spread,
        fraction: 1.0,
        local_rate_per_s: rate,
        local_kww_exponent: Some(beta0),
        ..DomainSpec::default()
    };
    let origin = "domain_calibration";
    match model {
        Model::Replacements { n, spread, share } => {
            let doms = spec(n, spread, share / TAU_S)
                .realize(&[], SCAN_S, None, &mut rng, origin)
                .expect("valid domains");
            Dynamics::stationary(beta0, TAU_S)
                .expect("valid")
                .with_domains(doms)
        }
        Model::GlobalJumps { jump, share } => {
            let rate = share / (jump * TAU_S);
            let times = xpcs_sim::model::AvalancheTimes::Poisson { rate_per_s: rate }
                .scan_events(0.0, SCAN_S, &mut rng);
            let jumps: Vec<(f64, f64)> = times.iter().map(|&t| (t, jump)).collect();
            Dynamics::new(beta0, stationary(share), &[], None, origin)
                .expect("valid")
                .with_clock_jumps(&jumps, origin)
                .expect("valid")
        }
        Model::LocalJumps {
            n,
            spread,
            jump,
            share,
        } => {
            let local = Fluctuations {
                rate_per_s: share / (jump * TAU_S),
                jump,
                per_domain: true,
            };
            let doms = spec(n, spread, 0.0)
                .realize(&[], SCAN_S, Some(local), &mut rng, origin)
                .expect("valid domains");
            Dynamics::new(beta0, stationary(share), &[], None, origin)
                .expect("valid")
                .with_domains(doms)
        }
    }
}

/// (τ_fit / τ, β, ΔC / c) of one realisation.
fn measure(d: &Dynamics) -> (f64, f64, f64) {
    let n_frames = (SCAN_S / FRAME_S) as usize;
    let bin = BinOptics::new([PixelOptics {
        mean_counts: 1e6,
        rate: 1.0,
        contrast: 1.0,
        static_fraction: 0.0,
        incoherent_fraction: 0.0,
    }]);
    let sampling = Sampling {
        n_frames,
        frame_time_s: FRAME_S,
        subsamples: 4,
        phasors: None,
        jump_grid: None,
    };
    let truth = Truth::new(d, &bin, sampling);
    let frames: Vec<usize> = (0..n_frames).collect();
    let map = truth.c2_map(&frames);
    let lags: Vec<usize> = (1..n_frames / 2).collect();
    let g2: Vec<f64> = lags
        .iter()
        .map(|&k| (0..n_frames - k).map(|t| map[[t, t + k]]).sum::<f64>() / (n_frames - k) as f64)
        .collect();
    let x: Vec<f64> = lags.iter().map(|&k| k as f64 * FRAME_S).collect();
    let sigma = vec![1e-3; x.len()];
    let opts = FitOptions {
        fixed: vec![("baseline".into(), 1.0)],
        ..FitOptions::default()
    };
    let fit = fit_curve(&Kww, &x, &g2, &sigma, &opts).expect("well-formed fit");
    let (tau, beta) = (
        fit.value("tau").unwrap_or(f64::NAN),
        fit.value("kww_exponent").unwrap_or(f64::NAN),
    );
    let delay = ((tau / FRAME_S).round() as usize).clamp(1, n_frames - 1);
    let dc = delta_c(&map, delay, 0.9).unwrap_or(f64::NAN);
    (tau / TAU_S, beta, dc)
}

fn main() {
    let rows: Vec<(String, Model, f64)> = vec![
        (
            "replacements N=8 σ=0.1 ντ=0.25".to_string(),
            Model::Replacements {
                n: 8,
                spread: 0.1,
                share: 0.25,
            },
            2.0,
        ),
        (
            "global jumps J=0.2 share 0.4 (default preset)".to_string(),
            Model::GlobalJumps {
                jump: 0.2,
                share: 0.4,
            },
            1.8,
        ),
        (
            "local jumps N=1 J=0.2 share 0.4".to_string(),
            Model::LocalJumps {
                n: 1,
                spread: 0.0,
                jump: 0.2,
                share: 0.4,
            },
            1.8,
        ),
    ]
    .into_iter()
    .chain(
        [
            (2usize, 0.3f64, 0.6f64),
            (2, 0.3, 0.5),
            (3, 0.3, 0.6),
            (4, 0.3, 0.6),
            (4, 0.3, 0.75),
            (4, 0.4, 0.6),
            (8, 0.3, 0.6),
        ]
        .into_iter()
        .map(|(n, jump, share)| {
            (
                format!("local jumps N={n} σ=0.1 J={jump} share {share}"),
                Model::LocalJumps {
                    n,
                    spread: 0.1,
                    jump,
                    share,
                },
                2.0,
            )
        }),
    )
    .collect();
    println!(
        "Expected correlations, τ = {TAU_S} s mean clock, {FRAME_S} s frames, {SCAN_S} s scan, \
         seeds 1..={SEEDS}"
    );
    println!("| model | β0 | τ_KWW / τ | β (KWW of E[g2]) | ΔC / c at δt = τ_KWW |");
    println!("|---|---|---|---|---|");
    for (label, model, beta0) in rows {
        let (mut t, mut b, mut c) = (Vec::new(), Vec::new(), Vec::new());
        for seed in 1..=SEEDS {
            let (ratio, beta, dc) = measure(&dynamics(model, beta0, seed));
            t.push(ratio);
            b.push(beta);
            c.push(dc);
        }
        let range = |v: &[f64]| {
            let lo = v.iter().cloned().fold(f64::INFINITY, f64::min);
            let hi = v.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            format!("{lo:.2}–{hi:.2}")
        };
        println!(
            "| {label} | {beta0} | {} | {} | {} |",
            range(&t),
            range(&b),
            range(&c)
        );
    }
}
