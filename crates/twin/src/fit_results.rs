//! Fits of a results file: the pipeline behind `xpcs-twin fit`.
//!
//! Input: a [`ResultsFile`] (multi-tau g2 with its errors and jackknife replicates, two-time
//! maps) and [`FitSettings`]. Output: a [`FittedResults`] holding the g2 model fit per q-bin,
//! τ and the KWW exponent per converged bin, the power law τ(q) = τ1 (q/q1)^-α, and per
//! two-time bin the fits of evenly spaced age cuts with the aging law fitted to them. It
//! renders itself as a plain-text table ([`FittedResults::table`]), as the `/xpcs_twin/fits`
//! tree of the results file ([`FittedResults::tree`]), as a JSON summary and as PNG figures.
//!
//! Delays are lag × frame time × stride × averaging (s); q in Å⁻¹. A failed fit is recorded
//! with its reason (text), never as NaN values.

use std::path::{Path, PathBuf};

use ndarray::{Array2, Axis};
use xpcs_core::error::{Error, Result};
use xpcs_core::fit::qdep::{
    fit_bins_jackknife, fit_power_law_from_bins, mask_points_without_data, tau_beta_per_bin,
    TauBeta,
};
use xpcs_core::fit::twotime::{evenly_spaced_ages, fit_aging_from_ages, tau_vs_age, AgeFit};
use xpcs_core::fit::{ErrorScale, FitModel, FitOptions, FitReport};
use xpcs_io::results::{Multitau, Node, ResultsFile, Tree};

use crate::report::figures;

/// What to fit and how.
pub struct FitSettings<'a> {
    /// The g2 model.
    pub model: &'a dyn FitModel,
    /// Its name as the user gave it (recorded in the file).
    pub model_name: String,
    /// Fixed parameters as given (`name=value`, recorded in the file) and the options they
    /// make.
    pub fixed: Vec<String>,
    /// Fit options (fixed parameters applied).
    pub options: FitOptions,
    /// Age cuts per two-time map (≥ 2); None: no two-time analysis.
    pub twotime_ages: Option<usize>,
    /// Fewest (t1, t2) pairs per delay of an age cut.
    pub min_pairs: usize,
    /// Fit the saturating aging law τ = min(τ0 exp(tw/τ*), τ_eq).
    pub aging_saturating: bool,
    /// Reference q1 (Å⁻¹) of the power law (None: the median converged bin centre).
    pub q1: Option<f64>,
    /// Use least-squares errors even when jackknife replicates are present.
    pub least_squares_errors: bool,
}

/// The two-time analysis of one processed bin.
pub struct TwotimeFits {
    /// Bin label.
    pub bin: u32,
    /// The full (mirrored) map C(t1, t2).
    pub c2: Array2<f64>,
    /// Age cuts and their fits.
    pub ages: Vec<AgeFit>,
    /// Aging law fitted to the ages.
    pub aging: FitReport,
}

/// Everything fitted in one results file.
pub struct FittedResults {
    /// Model name as given.
    pub model_name: String,
    /// Fixed parameters as given.
    pub fixed: Vec<String>,
    /// q centre per dynamic bin (Å⁻¹); NaN where the file does not know q (frames
    /// correlated without a q-map with q, a geometry or `--q-values`).
    pub q: Vec<f64>,
    /// Whether any bin has a known q (τ(q) needs it).
    pub q_known: bool,
    /// What the user should know about the input (points left out, τ(q) not fitted and
    /// why), one line each, for standard error.
    pub notices: Vec<String>,
    /// g2 fit per q-bin (empty without multi-tau g2).
    pub per_bin: Vec<FitReport>,
    /// Delays (s), g2 and errors of the fitted rows (lag ≥ 1), for the figures.
    pub g2_data: Option<(Vec<f64>, Array2<f64>, Array2<f64>)>,
    /// τ and KWW exponent per bin (None: not converged; q NaN where unknown).
    pub tau_beta: Vec<Option<TauBeta>>,
    /// Power law τ(q) and its q1 (needs ≥ 3 converged bins with known q).
    pub power: Option<(FitReport, f64)>,
    /// Two-time analysis per processed bin.
    pub twotime: Vec<TwotimeFits>,
    /// Frame time of the file (s).
    pub frame_time_s: f64,
}

/// Delays of the multi-tau g2 (s).
fn delays_s(res: &ResultsFile, m: &Multitau) -> Vec<f64> {
    let scale = res.frame_time_s * (m.stride_frame.max(1) * m.avg_frame.max(1)) as f64;
    m.delay_frames.iter().map(|&d| d as f64 * scale).collect()
}

/// A converged report whose numbers are all finite (the solver promises it; checked here
/// because NaN must never reach the file), else an internal error naming `what`.
fn checked(r: FitReport, what: &str) -> Result<FitReport> {
    let finite = r.fitted().is_none_or(|v| {
        v.values.iter().all(|x| x.is_finite())
            && v.std_errors.iter().all(|x| x.is_finite())
            && v.chi2_red.is_finite()
    });
    if !finite {
        return Err(Error::invalid(
            "fit",
            format!("internal error: non-finite values in the converged fit of {what}"),
        ));
    }
    Ok(r)
}

/// Fits `res` (see the module doc).
pub fn fit_results(res: &ResultsFile, s: &FitSettings) -> Result<FittedResults> {
    let q: Vec<f64> = res
        .partition
        .dynamic_axes()
        .iter()
        .map(|b| b.q_inv_angstrom)
        .collect();
    let q_known = q.iter().any(|&x| q_ok(x));
    if !q_known && s.q1.is_some() {
        return Err(Error::invalid(
            "--q1",
            "given but q is unknown in this file (no q values in /xpcs/qmap)",
        ));
    }
    let mut notices = Vec::new();
    let (per_bin, g2_data) = match &res.multitau {
        Some(m) => {
            let (r, d) = fit_g2_bins(res, m, s, &mut notices)?;
            (r, Some(d))
        }
        None => (Vec::new(), None),
    };
    let tau_beta = if per_bin.is_empty() {
        Vec::new()
    } else {
        tau_beta_per_bin(&q, &per_bin)
    };
    if !q_known && !per_bin.is_empty() {
        notices.push(
            "τ(q) power law not fitted: q unknown (the file's q-map holds no q values; correlate \
             with a q-map file with q, --energy-kev/--distance-m/--pixel-size-um/\
             --beam-center-px, or --q-values)"
                .into(),
        );
    }
    let power = fit_power_law(&per_bin, &with_known_q(&tau_beta), s.q1)?;
    let twotime = match s.twotime_ages {
        Some(n) => fit_twotime(res, n, s)?,
        None => Vec::new(),
    };
    Ok(FittedResults {
        model_name: s.model_name.clone(),
        fixed: s.fixed.clone(),
        q,
        q_known,
        notices,
        per_bin,
        g2_data,
        tau_beta,
        power,
        twotime,
        frame_time_s: res.frame_time_s,
    })
}

type G2Data = (Vec<f64>, Array2<f64>, Array2<f64>);

/// A q centre the file knows (finite and positive).
fn q_ok(q: f64) -> bool {
    q.is_finite() && q > 0.0
}

/// The bins whose q is known (the others as None): what τ(q) is fitted to.
fn with_known_q(bins: &[Option<TauBeta>]) -> Vec<Option<TauBeta>> {
    bins.iter()
        .map(|b| b.filter(|b| q_ok(b.q_inv_angstrom)))
        .collect()
}

/// The g2 fit of every q-bin (lag 0, which carries the shot-noise term, is never fitted).
/// Points without data (error ≤ 0 or not finite, e.g. g2 = 0 ± 0 where an averaged file has
/// no frame pairs) are left out, with a notice.
fn fit_g2_bins(
    res: &ResultsFile,
    m: &Multitau,
    s: &FitSettings,
    notices: &mut Vec<String>,
) -> Result<(Vec<FitReport>, G2Data)> {
    let rows: Vec<usize> = (0..m.delay_frames.len())
        .filter(|&i| m.delay_frames[i] > 0)
        .collect();
    let all_delays = delays_s(res, m);
    let d: Vec<f64> = rows.iter().map(|&i| all_delays[i]).collect();
    let mut g2 = m.g2.select(Axis(0), &rows).mapv(f64::from);
    let mut err = m.g2_err.select(Axis(0), &rows).mapv(f64::from);
    let mut jk = match (&m.g2_jackknife, s.least_squares_errors) {
        (Some(j), false) => Some(j.select(Axis(1), &rows)),
        _ => None,
    };
    let n_missing = mask_points_without_data(&mut g2, &mut err, jk.as_mut());
    if n_missing > 0 {
        notices.push(format!(
            "warning: {n_missing} of {} (lag, q-bin) points hold no data (g2_err ≤ 0 or not \
             finite, e.g. g2 = 0 at lags without frame pairs) and are left out of the fits",
            g2.len()
        ));
    }
    let reports = fit_bins_jackknife(
        s.model,
        &d,
        g2.view(),
        err.view(),
        jk.as_ref().map(|j| j.view()),
        &s.options,
    )?
    .into_iter()
    .enumerate()
    .map(|(b, r)| checked(r, &format!("bin {}", b + 1)))
    .collect::<Result<_>>()?;
    Ok((reports, (d, g2, err)))
}

/// τ(q) = τ1 (q/q1)^-α over the converged bins with known q (≥ 3: 2 parameters + 1 dof).
fn fit_power_law(
    per_bin: &[FitReport],
    bins: &[Option<TauBeta>],
    q1: Option<f64>,
) -> Result<Option<(FitReport, f64)>> {
    if bins.iter().flatten().count() < 3 {
        return Ok(None);
    }
    let q1 = q1.unwrap_or_else(|| {
        let mut ok: Vec<f64> = bins.iter().flatten().map(|b| b.q_inv_angstrom).collect();
        ok.sort_by(f64::total_cmp);
        ok[ok.len() / 2]
    });
    // Jackknife per-bin errors are calibrated: weigh the bins with them as absolute σ (a
    // χ²-scaled σ from a few bins is itself very uncertain).
    let jackknife = per_bin
        .iter()
        .filter(|r| r.is_ok())
        .all(|r| r.error_scale == ErrorScale::Jackknife);
    let o = if jackknife {
        FitOptions::default().with_error_scale(ErrorScale::Absolute)
    } else {
        FitOptions::default()
    };
    let r = fit_power_law_from_bins(bins, q1, &o)?;
    Ok(Some((checked(r, "the power law τ(q)")?, q1)))
}

/// Age cuts and the aging law of every processed two-time bin.
fn fit_twotime(res: &ResultsFile, n_ages: usize, s: &FitSettings) -> Result<Vec<TwotimeFits>> {
    let Some(t) = &res.twotime else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for (&bin, m) in t.processed_bins.iter().zip(&t.c2) {
        // Stored as the upper triangle (zeros below): mirror it, so the map and its colour
        // scale show C(t1,t2) = C(t2,t1) everywhere.
        let mut c2 = m.mapv(f64::from);
        let n = c2.nrows();
        for i in 0..n {
            for j in 0..i.min(c2.ncols()) {
                c2[[i, j]] = c2[[j, i]];
            }
        }
        let scale = (t.stride_frame.max(1) * t.avg_frame.max(1)) as f64;
        let dt = res.frame_time_s * scale;
        let ages = evenly_spaced_ages(n, dt, n_ages);
        let fits = tau_vs_age(c2.view(), dt, &ages, None, s.min_pairs, s.model, &s.options)?
            .into_iter()
            .map(|f| {
                Ok(AgeFit {
                    cut: f.cut,
                    report: checked(f.report, &format!("an age cut of bin {bin}"))?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let aging = checked(
            fit_aging_from_ages(&fits, s.aging_saturating, &FitOptions::default())?,
            &format!("the aging law of bin {bin}"),
        )?;
        out.push(TwotimeFits {
            bin,
            c2,
            ages: fits,
            aging,
        });
    }
    Ok(out)
}

/// A fit report as tree nodes: converged → values and errors per parameter; failed → reason.
fn report_node(r: &FitReport) -> Tree {
    let mut t = Tree::new();
    t.insert("model".into(), Node::Text(r.model.clone()));
    t.insert("n_points".into(), Node::scalar(r.n_points as f64));
    if !r.warnings.is_empty() {
        t.insert("warnings".into(), Node::Text(r.warnings.join("; ")));
    }
    match r.fitted() {
        Some(v) => {
            t.insert("status".into(), Node::Text("converged".into()));
            for (i, name) in r.param_names.iter().enumerate() {
                t.insert(name.clone(), Node::scalar(v.values[i]));
                let err = if r.fixed[i] { 0.0 } else { v.std_errors[i] };
                t.insert(format!("{name}_err"), Node::scalar(err));
            }
            t.insert("chi2_red".into(), Node::scalar(v.chi2_red));
            let fixed: Vec<&str> = r
                .param_names
                .iter()
                .zip(&r.fixed)
                .filter(|(_, &f)| f)
                .map(|(n, _)| n.as_str())
                .collect();
            t.insert("fixed".into(), Node::Text(fixed.join(",")));
        }
        None => {
            let reason = r.failure().unwrap_or("failed");
            t.insert("status".into(), Node::Text(format!("failed: {reason}")));
        }
    }
    t
}

/// `value ± error` in plain notation, rounded to the error's second significant digit
/// (scientific only outside 1e-3..1e6).
pub fn plus_minus(v: f64, e: f64) -> String {
    let decimals = if e > 0.0 && e.is_finite() {
        (1 - e.log10().floor() as i32).clamp(0, 12) as usize
    } else {
        4
    };
    let a = v.abs();
    if a != 0.0 && !(1e-3..1e6).contains(&a) {
        return format!("{v:.2e} ± {e:.1e}");
    }
    if e > 0.0 {
        format!("{v:.decimals$} ± {e:.decimals$}")
    } else {
        format!("{v:.decimals$} (fixed)")
    }
}

/// A unit for a column header: "s", "Å⁻¹", or "dimensionless".
fn unit_label(u: &str) -> &str {
    if u.is_empty() {
        "dimensionless"
    } else {
        u
    }
}

/// A unit after a value: "s", or "(dimensionless)".
fn unit_after(u: &str) -> String {
    if u.is_empty() {
        "(dimensionless)".into()
    } else {
        u.into()
    }
}

/// Why a fit did not converge, as a reader wants it: an aging law that the ages do not
/// resolve is "not fitted (no aging resolved)", not a failure.
fn not_fitted(r: &FitReport) -> String {
    let why = r.failure().unwrap_or("failed");
    if let Some(rest) = why.strip_prefix("aging not resolved: ") {
        format!("not fitted (no aging resolved: {rest})")
    } else if why.contains("tau_star") {
        "not fitted (no aging resolved: the ages do not constrain τ*)".into()
    } else {
        format!("not fitted ({why})")
    }
}

/// One table row: the parameters of a converged fit (value ± error) and χ²_red, or why not.
fn row_cells(r: &FitReport) -> Vec<String> {
    match r.fitted() {
        Some(v) => {
            let mut c: Vec<String> = (0..r.param_names.len())
                .map(|i| plus_minus(v.values[i], if r.fixed[i] { 0.0 } else { v.std_errors[i] }))
                .collect();
            c.push(format!("{:.2}", v.chi2_red));
            c
        }
        None => vec![not_fitted(r)],
    }
}

impl FittedResults {
    /// The plain-text report: one table of the g2 fits per q-bin, the power law, one table of
    /// τ per age cut and the aging law per two-time bin, then the fits' warnings.
    pub fn table(&self, file: &Path) -> String {
        use std::fmt::Write as _;
        let mut s = String::new();
        let _ = writeln!(
            s,
            "{}: model {}{}",
            file.display(),
            self.model_name,
            if self.fixed.is_empty() {
                String::new()
            } else {
                format!(", fixed {}", self.fixed.join(", "))
            }
        );
        let mut warnings: Vec<String> = Vec::new();
        if let Some(r0) = self.per_bin.first() {
            let errors = match r0.error_scale {
                ErrorScale::Jackknife => "jackknife over pixel groups",
                ErrorScale::Absolute => "the g2 errors as given",
                ErrorScale::Relative => "least squares scaled by χ²_red",
            };
            let _ = writeln!(s, "\ng2 fits per q-bin (1σ errors: {errors})");
            let mut head = vec!["bin".to_string(), "q (Å⁻¹)".into()];
            head.extend(
                r0.param_names
                    .iter()
                    .zip(&r0.param_units)
                    .map(|(n, u)| format!("{n} ({})", unit_label(u))),
            );
            head.push("χ²_red".into());
            let mut rows = vec![head];
            for (b, r) in self.per_bin.iter().enumerate() {
                let q = match self.q.get(b) {
                    Some(&q) if q_ok(q) => format!("{q:.4}"),
                    _ => "q unknown".to_string(),
                };
                let mut row = vec![format!("{}", b + 1), q];
                row.extend(row_cells(r));
                rows.push(row);
                warnings.extend(r.warnings.iter().map(|w| format!("bin {}: {w}", b + 1)));
            }
            s.push_str(&render(&rows));
            match &self.power {
                Some((r, q1)) => {
                    let _ = write!(
                        s,
                        "\nτ(q) = τ1 (q/q1)^-α with q1 = {} Å⁻¹: ",
                        xpcs_core::check::sig(*q1, 4)
                    );
                    match r.fitted() {
                        Some(v) => {
                            let parts: Vec<String> = (0..r.param_names.len())
                                .map(|i| {
                                    format!(
                                        "{} = {} {}",
                                        r.param_names[i],
                                        plus_minus(v.values[i], v.std_errors[i]),
                                        unit_after(&r.param_units[i])
                                    )
                                })
                                .collect();
                            let _ = writeln!(s, "{}, χ²_red {:.2}", parts.join(", "), v.chi2_red);
                        }
                        None => {
                            let _ = writeln!(s, "{}", not_fitted(r));
                        }
                    }
                    warnings.extend(r.warnings.iter().map(|w| format!("τ(q): {w}")));
                }
                None if !self.q_known => {
                    let _ = writeln!(s, "\nτ(q): not fitted (q unknown)");
                }
                None => {
                    let n = with_known_q(&self.tau_beta).iter().flatten().count();
                    let _ = writeln!(
                        s,
                        "\nτ(q): not fitted ({n} converged bins with known q; needs ≥ 3)"
                    );
                }
            }
        }
        for t in &self.twotime {
            let _ = writeln!(s, "\ntwo-time map of bin {}: τ per age cut", t.bin);
            let mut rows = vec![vec![
                "age (s)".to_string(),
                "± half width (s)".into(),
                "τ (s)".into(),
                "χ²_red".into(),
            ]];
            for f in &t.ages {
                let (tau, chi) = match f.report.fitted() {
                    Some(v) => (
                        plus_minus(
                            f.report.value("tau").unwrap_or(f64::NAN),
                            f.report.std_error("tau").unwrap_or(0.0),
                        ),
                        format!("{:.2}", v.chi2_red),
                    ),
                    None => (not_fitted(&f.report), String::new()),
                };
                rows.push(vec![
                    format!("{:.3}", f.cut.age_s),
                    format!("{:.3}", f.cut.half_width_s),
                    tau,
                    chi,
                ]);
                warnings.extend(
                    f.report
                        .warnings
                        .iter()
                        .map(|w| format!("two-time bin {}, age {:.3} s: {w}", t.bin, f.cut.age_s)),
                );
            }
            s.push_str(&render(&rows));
            let law = match t.aging.fitted() {
                Some(v) => (0..t.aging.param_names.len())
                    .map(|i| {
                        format!(
                            "{} = {} {}",
                            t.aging.param_names[i],
                            plus_minus(v.values[i], v.std_errors[i]),
                            unit_after(&t.aging.param_units[i])
                        )
                    })
                    .collect::<Vec<_>>()
                    .join(", "),
                None => not_fitted(&t.aging),
            };
            let _ = writeln!(s, "aging: {law}");
        }
        if !warnings.is_empty() {
            let _ = writeln!(s, "\nwarnings ({}):", warnings.len());
            for w in &warnings {
                let _ = writeln!(s, "  {w}");
            }
        }
        s
    }

    /// The `/xpcs_twin/fits` tree of the results file.
    pub fn tree(&self) -> Tree {
        let mut fits = Tree::new();
        fits.insert("model".into(), Node::Text(self.model_name.clone()));
        fits.insert("fixed".into(), Node::Text(self.fixed.join(",")));
        if !self.per_bin.is_empty() {
            let mut g = Tree::new();
            for (b, r) in self.per_bin.iter().enumerate() {
                g.insert(format!("bin_{:03}", b + 1), Node::Group(report_node(r)));
            }
            // Converged bins only: arrays never carry NaN placeholders.
            let ok: Vec<(usize, &TauBeta)> = self
                .tau_beta
                .iter()
                .enumerate()
                .filter_map(|(i, b)| b.as_ref().map(|b| (i, b)))
                .collect();
            if !ok.is_empty() {
                let col =
                    |f: &dyn Fn(&TauBeta) -> f64| Node::vec(ok.iter().map(|(_, b)| f(b)).collect());
                g.insert(
                    "converged_bins".into(),
                    Node::vec(ok.iter().map(|(i, _)| (*i + 1) as f64).collect()),
                );
                // Never a NaN placeholder: q is written only when every converged bin has one.
                if ok.iter().all(|(_, b)| q_ok(b.q_inv_angstrom)) {
                    g.insert("q_inv_angstrom".into(), col(&|b| b.q_inv_angstrom));
                }
                g.insert("tau_s".into(), col(&|b| b.tau_s));
                g.insert("tau_err_s".into(), col(&|b| b.tau_err_s));
                g.insert("kww_exponent".into(), col(&|b| b.kww_exponent));
                g.insert("kww_exponent_err".into(), col(&|b| b.kww_exponent_err));
            }
            fits.insert("g2".into(), Node::Group(g));
        }
        if let Some((r, q1)) = &self.power {
            let mut g = report_node(r);
            g.insert("q1_inv_angstrom".into(), Node::scalar(*q1));
            fits.insert("power_law".into(), Node::Group(g));
        }
        if !self.twotime.is_empty() {
            let mut g = Tree::new();
            for t in &self.twotime {
                let mut b = Tree::new();
                for (k, f) in t.ages.iter().enumerate() {
                    let mut n = report_node(&f.report);
                    n.insert("age_s".into(), Node::scalar(f.cut.age_s));
                    n.insert("half_width_s".into(), Node::scalar(f.cut.half_width_s));
                    b.insert(format!("age_{:02}", k + 1), Node::Group(n));
                }
                b.insert("aging".into(), Node::Group(report_node(&t.aging)));
                g.insert(format!("bin_{:03}", t.bin), Node::Group(b));
            }
            fits.insert("twotime".into(), Node::Group(g));
        }
        fits
    }

    /// The JSON summary (every report in full).
    pub fn summary_json(&self, results: &Path) -> serde_json::Value {
        serde_json::json!({
            "results": results.display().to_string(),
            "model": self.model_name,
            "fixed": self.fixed,
            "q_inv_angstrom": self.q.iter().map(|&x| q_ok(x).then_some(x)).collect::<Vec<_>>(),
            "q_unknown": !self.q_known,
            "bins": self.per_bin,
            "tau_beta": self.tau_beta,
            "power_law": self.power.as_ref().map(|(r, q1)| serde_json::json!({"q1_inv_angstrom": q1, "fit": r})),
            "twotime": self.twotime.iter().map(|t| serde_json::json!({
                "bin": t.bin,
                "ages": t.ages.iter().map(|f| serde_json::json!({
                    "age_s": f.cut.age_s,
                    "half_width_s": f.cut.half_width_s,
                    "fit": f.report,
                })).collect::<Vec<_>>(),
                "aging": t.aging,
            })).collect::<Vec<_>>(),
        })
    }

    /// The figure files [`FittedResults::write_plots`] writes into `dir`, in order.
    pub fn plot_names(&self) -> Vec<String> {
        let mut v = Vec::new();
        if self.g2_data.is_some() {
            v.extend((1..=self.per_bin.len()).map(|b| format!("g2_bin_{b:03}.png")));
        }
        if with_known_q(&self.tau_beta).iter().any(Option::is_some) {
            v.push("tau_vs_q.png".into());
        }
        for t in &self.twotime {
            v.push(format!("twotime_bin_{:03}.png", t.bin));
            v.push(format!("tau_vs_age_bin_{:03}.png", t.bin));
        }
        v
    }

    /// Writes the figures into `dir` (created): g2 with its fit per bin, τ(q), and per
    /// two-time bin the map with its age cuts and τ vs age. Returns the written paths.
    pub fn write_plots(&self, dir: &Path, model: &dyn FitModel) -> Result<Vec<PathBuf>> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let mut written = Vec::new();
        let mut put = |name: String, fig: &dyn Fn(&Path) -> Result<()>| -> Result<()> {
            let p = dir.join(name);
            fig(&p)?;
            written.push(p);
            Ok(())
        };
        if let Some((d, g2, err)) = &self.g2_data {
            for (b, r) in self.per_bin.iter().enumerate() {
                let title = match self.q.get(b) {
                    Some(&q) if q_ok(q) => format!("bin {} (q = {q:.4} Å⁻¹)", b + 1),
                    _ => format!("bin {} (q unknown)", b + 1),
                };
                let y = g2.column(b).to_vec();
                let e = err.column(b).to_vec();
                put(format!("g2_bin_{:03}.png", b + 1), &|p| {
                    figures::g2_with_fit(&title, d, &y, &e, model, r).write_png(p)
                })?;
            }
        }
        let known = with_known_q(&self.tau_beta);
        if known.iter().any(Option::is_some) {
            let pw = self.power.as_ref().map(|(r, q1)| (r, *q1));
            put("tau_vs_q.png".into(), &|p| {
                figures::tau_vs_q("τ(q)", &known, pw).write_png(p)
            })?;
        }
        for t in &self.twotime {
            put(format!("twotime_bin_{:03}.png", t.bin), &|p| {
                figures::two_time_with_cuts(
                    &format!("C(t1, t2), bin {}", t.bin),
                    t.c2.view(),
                    self.frame_time_s,
                    &t.ages,
                )
                .write_png(p)
            })?;
            put(format!("tau_vs_age_bin_{:03}.png", t.bin), &|p| {
                figures::tau_vs_age(&format!("τ(tw), bin {}", t.bin), &t.ages, Some(&t.aging))
                    .write_png(p)
            })?;
        }
        Ok(written)
    }
}

/// Left-aligned columns separated by two spaces.
fn render(rows: &[Vec<String>]) -> String {
    let n = rows.iter().map(Vec::len).max().unwrap_or(0);
    let width: Vec<usize> = (0..n)
        .map(|c| {
            rows.iter()
                .filter(|r| r.len() > 1)
                .filter_map(|r| r.get(c))
                .map(|x| x.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut s = String::new();
    for r in rows {
        let cells: Vec<String> = r
            .iter()
            .enumerate()
            .map(|(c, x)| {
                let pad = width[c].saturating_sub(x.chars().count());
                if c + 1 == r.len() {
                    x.clone()
                } else {
                    format!("{x}{}", " ".repeat(pad))
                }
            })
            .collect();
        s.push_str("  ");
        s.push_str(&cells.join("  "));
        s.push('\n');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_numbers_rounded_to_their_error() {
        assert_eq!(plus_minus(4.008192, 0.405), "4.01 ± 0.41");
        assert_eq!(plus_minus(0.9861856, 0.0158), "0.986 ± 0.016");
        assert_eq!(plus_minus(1344.3, 22.1), "1344 ± 22");
        assert_eq!(plus_minus(1.006, 0.0), "1.0060 (fixed)");
        assert_eq!(plus_minus(2.4e-5, 1e-6), "2.40e-5 ± 1.0e-6");
    }

    #[test]
    fn example_file_table_is_readable() {
        let res = xpcs_io::results::example_results();
        let model = xpcs_core::fit::g2_model_by_name("exp").unwrap();
        let s = FitSettings {
            model: model.as_ref(),
            model_name: "exp".into(),
            fixed: Vec::new(),
            options: FitOptions::default(),
            twotime_ages: Some(2),
            min_pairs: 2,
            aging_saturating: false,
            q1: None,
            least_squares_errors: false,
        };
        let f = fit_results(&res, &s).unwrap();
        let t = f.table(Path::new("res.hdf"));
        for bad in [
            "SmallChi2Change",
            "MaxIterations",
            "Converged",
            "FAILED",
            "e0 ",
        ] {
            assert!(!t.contains(bad), "{bad} in:\n{t}");
        }
        assert!(t.contains("contrast (dimensionless)"), "{t}");
        assert!(t.contains("tau (s)"), "{t}");
        // An aging law the ages do not resolve is "not fitted", with the reason once.
        let mut r = f.per_bin[0].clone();
        r.outcome = xpcs_core::fit::FitOutcome::Failed {
            reason: "aging not resolved: rate 1/τ* = 0.0024 ± 0.0044 1/s".into(),
        };
        assert_eq!(
            not_fitted(&r),
            "not fitted (no aging resolved: rate 1/τ* = 0.0024 ± 0.0044 1/s)"
        );
    }
}
