//! The standard figures of an analysis, built from fit results: g2 with its fit and
//! residuals, the two-time map with its age cuts, τ(tw) with the aging law, τ(q) with the power
//! law. Each returns a plot description; call `write_png` on it.
//!
//! Input: the arrays the fits saw (delays in s, g2, g2_err; C(t1,t2) with the frame time in s)
//! and their [`FitReport`]s. Output: [`XyPlot`] / [`Heatmap`] values with titles and
//! labelled axes (units in brackets).

use ndarray::ArrayView2;

use super::{Heatmap, Overlay, Series, SeriesStyle, XyPlot, PALETTE};
use xpcs_core::fit::pressure::{CrossoverFit, LnTauPiecewise};
use xpcs_core::fit::qdep::{PowerLaw, TauBeta};
use xpcs_core::fit::twotime::{AgeFit, AgingLaw};
use xpcs_core::fit::{FitModel, FitReport};

/// `n` points spaced evenly in log between `lo` and `hi` (both > 0).
fn logspace(lo: f64, hi: f64, n: usize) -> Vec<f64> {
    let (a, b) = (lo.ln(), hi.ln());
    (0..n)
        .map(|i| (a + (b - a) * i as f64 / (n - 1).max(1) as f64).exp())
        .collect()
}

fn fit_label(report: &FitReport, names: &[(&str, &str, &str)]) -> String {
    if let Some(reason) = report.failure() {
        return format!("{} fit failed: {reason}", report.model);
    }
    let parts: Vec<String> = names
        .iter()
        .filter_map(|(n, sym, unit)| {
            let (v, e) = (report.value(n)?, report.std_error(n)?);
            let fixed = report
                .param_names
                .iter()
                .position(|m| m == n)
                .is_some_and(|i| report.fixed[i]);
            Some(if fixed {
                format!("{sym} = {} (fixed){unit}", sig(v, v))
            } else {
                format!("{sym} = {} ± {}{unit}", sig(v, e), sig(e, e))
            })
        })
        .collect();
    format!("{}: {}", report.model, parts.join(", "))
}

/// `v` with as many decimals as the error `e` needs (2 significant digits of e).
fn sig(v: f64, e: f64) -> String {
    let e = e.abs();
    let d = if e > 0.0 && e.is_finite() {
        (1.0 - e.log10().floor()).clamp(0.0, 6.0) as usize
    } else {
        3
    };
    if v.abs() >= 1e5 || (v != 0.0 && v.abs() < 1e-3) {
        format!("{v:.2e}")
    } else {
        format!("{v:.d$}")
    }
}

/// g2 of one q-bin with error bars, the fitted curve, and normalised residuals below.
pub fn g2_with_fit(
    title: &str,
    delays_s: &[f64],
    g2: &[f64],
    g2_err: &[f64],
    model: &dyn FitModel,
    report: &FitReport,
) -> XyPlot {
    let mut plot = XyPlot::new(title, "delay (s)", "g2")
        .log_axes(true, false)
        .with(Series::points("g2", delays_s.to_vec(), g2.to_vec()).with_errors(g2_err.to_vec()));
    if let Some(v) = report.fitted() {
        let pos: Vec<f64> = delays_s
            .iter()
            .copied()
            .filter(|t| *t > 0.0 && t.is_finite())
            .collect();
        let lo = pos.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = pos.iter().copied().fold(0.0f64, f64::max);
        if lo.is_finite() && hi > 0.0 {
            let tf = logspace(lo, hi, 300);
            let yf = tf.iter().map(|&t| model.eval(t, &v.values)).collect();
            let label = fit_label(
                report,
                &[
                    ("tau", "τ", " s"),
                    ("kww_exponent", "β", ""),
                    ("contrast", "c", ""),
                    ("static_fraction", "x", ""),
                ],
            );
            plot = plot.with(Series::line(&label, tf, yf).with_color(PALETTE[1]));
        }
        let res = delays_s
            .iter()
            .zip(g2)
            .zip(g2_err)
            .map(|((&t, &y), &e)| (y - model.eval(t, &v.values)) / e)
            .collect();
        // A decay leaves the lower left (short delays, near the baseline) empty.
        plot = plot
            .with_residuals("(g2 − fit)/σ", delays_s.to_vec(), res)
            .legend_at(plotters::chart::SeriesLabelPosition::LowerLeft);
    } else if let Some(reason) = report.failure() {
        plot = plot.with_note(&format!("{} fit failed: {reason}", report.model));
    }
    plot
}

/// The two-time map C(t1,t2) (frame time in s) with each age window drawn as the segment
/// t1 + t2 = 2·age spanning the cut's longest delay.
pub fn two_time_with_cuts(
    title: &str,
    c2: ArrayView2<f64>,
    frame_time_s: f64,
    fits: &[AgeFit],
) -> Heatmap {
    let n = c2.nrows();
    let t_end = (n.max(1) - 1) as f64 * frame_time_s;
    let mut hm = Heatmap::new(title, c2.to_owned(), (0.0, t_end), (0.0, t_end)).labels(
        "t1 (s)",
        "t2 (s)",
        "C(t1, t2)",
    );
    hm.overlays = fits
        .iter()
        .filter_map(|f| {
            let d = f.cut.delays_s.last().copied()?;
            let a = f.cut.age_s;
            Some(Overlay {
                label: format!("age {} s", sig(a, a / 100.0)),
                points: vec![(a - d / 2.0, a + d / 2.0), (a + d / 2.0, a - d / 2.0)],
            })
        })
        .collect();
    hm
}

/// τ from the age cuts against age, with the aging-law fit.
pub fn tau_vs_age(title: &str, fits: &[AgeFit], aging: Option<&FitReport>) -> XyPlot {
    let (mut a, mut t, mut e) = (Vec::new(), Vec::new(), Vec::new());
    for f in fits {
        if let (Some(v), Some(s)) = (f.report.value("tau"), f.report.std_error("tau")) {
            a.push(f.cut.age_s);
            t.push(v);
            e.push(s);
        }
    }
    let mut plot = XyPlot::new(title, "age t_mid (s)", "τ (s)")
        .log_axes(false, true)
        .legend_at(plotters::chart::SeriesLabelPosition::UpperLeft)
        .with(Series::points("τ from age cuts", a.clone(), t).with_errors(e));
    if let Some(r) = aging {
        if let Some(v) = r.fitted() {
            let law = AgingLaw {
                saturating: r.param_names.len() == 3,
            };
            let hi = a.iter().copied().fold(0.0f64, f64::max);
            // 60 points: a smooth curve without pixel-rounding zigzags of a dense polyline.
            let x: Vec<f64> = (0..60).map(|i| hi * i as f64 / 59.0).collect();
            let y = x.iter().map(|&s| law.eval(s, &v.values).exp()).collect();
            let label = fit_label(
                r,
                &[
                    ("tau0", "τ0", " s"),
                    ("tau_star", "τ*", " s"),
                    ("tau_eq", "τ_eq", " s"),
                ],
            );
            plot = plot.with(Series::line(&label, x, y).with_color(PALETTE[1]));
        }
    }
    plot
}

/// τ per q-bin (Å⁻¹) on log-log axes, with the power-law fit.
pub fn tau_vs_q(title: &str, bins: &[Option<TauBeta>], power: Option<(&FitReport, f64)>) -> XyPlot {
    let ok: Vec<&TauBeta> = bins.iter().flatten().collect();
    let q: Vec<f64> = ok.iter().map(|b| b.q_inv_angstrom).collect();
    let mut plot = XyPlot::new(title, "q (Å⁻¹)", "τ (s)")
        .log_axes(true, true)
        .with(
            Series::points(
                "τ per q-bin",
                q.clone(),
                ok.iter().map(|b| b.tau_s).collect(),
            )
            .with_errors(ok.iter().map(|b| b.tau_err_s).collect()),
        );
    if let Some((r, q1)) = power {
        if let Some(v) = r.fitted() {
            let lo = q.iter().copied().fold(f64::INFINITY, f64::min);
            let hi = q.iter().copied().fold(0.0f64, f64::max);
            if lo.is_finite() && hi > lo {
                let law = PowerLaw {
                    q1_inv_angstrom: q1,
                };
                let x = logspace(lo, hi, 60);
                let y = x.iter().map(|&s| law.eval(s, &v.values).exp()).collect();
                let label = fit_label(r, &[("tau1", "τ1", " s"), ("alpha", "α", "")]);
                plot = plot.with(
                    Series::line(&format!("{label} (q1 = {q1} Å⁻¹)"), x, y)
                        .with_color(PALETTE[1])
                        .with_style(SeriesStyle::Line),
                );
            }
        }
    }
    plot
}

/// τ (s, log axis) against pressure (GPa) for one branch, with the piecewise-linear
/// crossover fit and ΔV on each side in the legend.
pub fn tau_vs_pressure(
    title: &str,
    pressure_gpa: &[f64],
    tau_s: &[f64],
    tau_err_s: &[f64],
    crossover: Option<&CrossoverFit>,
) -> XyPlot {
    let mut plot = XyPlot::new(title, "pressure (GPa)", "τ (s)")
        .log_axes(false, true)
        .legend_at(plotters::chart::SeriesLabelPosition::LowerMiddle)
        .with(
            Series::points("τ per isobar", pressure_gpa.to_vec(), tau_s.to_vec())
                .with_errors(tau_err_s.to_vec()),
        );
    if let Some(c) = crossover {
        if let Some(v) = c.report.fitted() {
            let lo = pressure_gpa.iter().copied().fold(f64::INFINITY, f64::min);
            let hi = pressure_gpa
                .iter()
                .copied()
                .fold(f64::NEG_INFINITY, f64::max);
            // The breakpoint is a vertex of the curve, so it is drawn exactly.
            let mut x = vec![lo, v.values[0], hi];
            x.sort_by(f64::total_cmp);
            let y = x
                .iter()
                .map(|&p| LnTauPiecewise.eval(p, &v.values).exp())
                .collect();
            let dv = |a: &Option<xpcs_core::fit::pressure::ActivationVolume>| {
                a.map(|a| {
                    format!(
                        "{} ± {} Å³",
                        sig(a.delta_v_a3, a.delta_v_err_a3),
                        sig(a.delta_v_err_a3, a.delta_v_err_a3)
                    )
                })
                .unwrap_or_else(|| "n/a".into())
            };
            let label = format!(
                "P_c = {} ± {} GPa; ΔV below {}, above {}",
                sig(v.values[0], v.std_errors[0]),
                sig(v.std_errors[0], v.std_errors[0]),
                dv(&c.low),
                dv(&c.high)
            );
            plot = plot.with(Series::line(&label, x, y).with_color(PALETTE[1]));
        }
    }
    plot
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;
    use xpcs_core::fit::qdep::{fit_power_law_from_bins, tau_beta_per_bin};
    use xpcs_core::fit::twotime::{
        evenly_spaced_ages, fit_aging_from_ages, tau_vs_age as fits_vs_age,
    };
    use xpcs_core::fit::{fit_curve, FitOptions, Kww};

    #[test]
    fn standard_figures_render() {
        let dir = std::env::var_os("XPCS_PLOT_DIR").map(std::path::PathBuf::from);
        let tmp = tempfile::tempdir().unwrap();
        let dir = dir.unwrap_or_else(|| tmp.path().to_path_buf());
        std::fs::create_dir_all(&dir).unwrap();

        // A failed fit still gives a readable figure (data only, reason in the title).
        let t: Vec<f64> = (1..=5).map(f64::from).collect();
        let y = vec![1.1, 1.05, f64::NAN, 1.0, 1.0];
        let e = vec![0.01; 5];
        let r = fit_curve(&Kww, &t, &y, &e, &FitOptions::default()).unwrap();
        assert!(!r.is_ok());
        let p = g2_with_fit("g2, bin 1", &t, &y, &e, &Kww, &r);
        assert!(p.note.as_deref().unwrap().contains("failed"));
        p.write_png(&dir.join("g2_failed.png")).unwrap();

        // Aging two-time map → cuts → τ(tw) figure and two-time figure.
        let (n, dt) = (400, 3.0);
        let u: Vec<f64> = (0..n)
            .map(|i| 2300.0 / 34.0 * (1.0 - (-(i as f64) * dt / 2300.0).exp()))
            .collect();
        let mut rng = xpcs_sim::rng::stream(4, 0);
        let noise = rand_distr::Normal::new(0.0, 0.01).unwrap();
        let mut m = Array2::from_shape_fn((n, n), |(i, j)| {
            1.0 + 0.2 * (-2.0 * (u[j] - u[i]).abs().powf(1.6)).exp()
        });
        for i in 0..n {
            for j in i..n {
                let v = m[[i, j]] + rand_distr::Distribution::sample(&noise, &mut rng);
                m[[i, j]] = v;
                m[[j, i]] = v;
            }
        }
        let ages = evenly_spaced_ages(n, dt, 4);
        let o = FitOptions::default().fix("baseline", 1.0);
        let fits = fits_vs_age(m.view(), dt, &ages, Some(100), 10, &Kww, &o).unwrap();
        assert!(fits.iter().all(|f| f.report.is_ok()));
        let aging = fit_aging_from_ages(&fits, false, &FitOptions::default()).unwrap();
        assert!(aging.is_ok(), "{}", aging.summary());
        tau_vs_age("τ vs age", &fits, Some(&aging))
            .write_png(&dir.join("tau_vs_age.png"))
            .unwrap();
        two_time_with_cuts("C(t1,t2), q-bin 1", m.view(), dt, &fits)
            .write_png(&dir.join("two_time_cuts.png"))
            .unwrap();

        // τ(q).
        let q = vec![2.7, 2.8, 2.9, 3.0];
        let reports: Vec<FitReport> = q
            .iter()
            .map(|&qq: &f64| {
                let tau = 30.0 * (qq / 2.87).powf(-0.36);
                let d: Vec<f64> = (0..50).map(|i| 0.1 * 1.2f64.powi(i)).collect();
                let g: Vec<f64> = d
                    .iter()
                    .map(|&x| Kww.eval(x, &[1.0, 0.2, tau, 1.6]))
                    .collect();
                // Noiseless: absolute errors (χ²-scaled errors of a perfect fit would be 0).
                let o =
                    FitOptions::default().with_error_scale(xpcs_core::fit::ErrorScale::Absolute);
                fit_curve(&Kww, &d, &g, &vec![1e-3; d.len()], &o).unwrap()
            })
            .collect();
        let bins = tau_beta_per_bin(&q, &reports);
        let pl = fit_power_law_from_bins(&bins, 2.87, &FitOptions::default()).unwrap();
        assert!(pl.is_ok(), "{}", pl.summary());
        tau_vs_q("τ vs q", &bins, Some((&pl, 2.87)))
            .write_png(&dir.join("tau_vs_q.png"))
            .unwrap();
        // τ(P) with a crossover (Ce-seed shape: ±10 Å³ around 3 GPa), a little scatter.
        let kbt = xpcs_core::fit::pressure::kbt_gpa_a3(300.0);
        let p = [0.0, 1.1, 2.0, 2.9, 4.0, 5.6, 8.2];
        let tau: Vec<f64> = p
            .iter()
            .enumerate()
            .map(|(k, &x): (usize, &f64)| {
                let s = 10.0 / kbt;
                let l = if x < 3.0 {
                    s * (x - 3.0)
                } else {
                    -s * (x - 3.0)
                };
                500.0 * (l + 0.05 * ((k * 37 % 7) as f64 / 7.0 - 0.5)).exp()
            })
            .collect();
        let err: Vec<f64> = tau.iter().map(|t| 0.05 * t).collect();
        let o = FitOptions::default().with_error_scale(xpcs_core::fit::ErrorScale::Absolute);
        let c = xpcs_core::fit::pressure::fit_crossover(&p, &tau, &err, kbt, 200, &o).unwrap();
        assert!(c.report.is_ok(), "{}", c.report.summary());
        tau_vs_pressure("τ vs pressure (compression)", &p, &tau, &err, Some(&c))
            .write_png(&dir.join("tau_vs_p_crossover.png"))
            .unwrap();
        for f in [
            "g2_failed.png",
            "tau_vs_age.png",
            "two_time_cuts.png",
            "tau_vs_q.png",
            "tau_vs_p_crossover.png",
        ] {
            assert!(std::fs::metadata(dir.join(f)).unwrap().len() > 1000);
        }
    }
}
