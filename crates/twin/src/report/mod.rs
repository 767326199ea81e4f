//! Plots (PNG): the small plotting API that the fit CLI, the twin and the planner share.
//!
//! Input: plain data (x, y, optional 1σ errors as `Vec<f64>`; maps as `Array2<f64>` indexed
//! (x index, y index)) with titles and axis labels that carry units. Output: a PNG file,
//! written to a temporary file in the target directory and renamed into place, so that a
//! reader never sees a partial plot.
//!
//! - [`XyPlot`]: points with error bars and lines, linear or log axes, a legend, and an optional
//!   residual panel (e.g. g2 with its fit and (g2 - fit)/σ below).
//! - [`Heatmap`]: a map with a colour bar (viridis) and overlaid lines (e.g. the two-time map
//!   with its age cuts).
//!
//! Text uses the bundled DejaVu Sans (`assets/fonts/DejaVuSans.ttf`), registered with plotters
//! once per process: plotters' ab_glyph backend has no system fonts, and drawing text without a
//! registered font panics.
//!
//! Reference: plotters 0.3 (bitmap backend, ab_glyph text); viridis colour map (van der Walt &
//! Smith, matplotlib 2015), sampled at 9 anchors.

pub mod figures;
mod heatmap;
mod xy;

pub use heatmap::{Heatmap, Overlay};
pub use xy::{Residuals, Series, SeriesStyle, XyPlot};

use std::path::Path;
use std::sync::Once;

use plotters::prelude::*;

use xpcs_core::error::{Error, Result};

/// The font family name our text styles use.
pub(crate) const FONT: &str = "sans-serif";

static FONT_ONCE: Once = Once::new();

/// Registers the bundled DejaVu Sans as plotters' "sans-serif" (idempotent, thread-safe).
pub fn ensure_font() {
    FONT_ONCE.call_once(|| {
        let bytes: &'static [u8] = include_bytes!("../../../../assets/fonts/DejaVuSans.ttf");
        // The font is bundled and known to parse (tested): a failure here is a build defect.
        if plotters::style::register_font(FONT, FontStyle::Normal, bytes).is_err() {
            panic!("bundled DejaVuSans.ttf could not be parsed");
        }
    });
}

/// A colour-blind-friendly palette for series (Tableau 10 order).
pub const PALETTE: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(255, 127, 14),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
];

/// Converts a plotters error into ours, naming the file.
pub(crate) fn plot_err(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::io(path, std::io::Error::other(format!("plotting failed: {e}")))
}

/// Draws into a PNG at `path` atomically: a temporary `.png` in the same directory, then a
/// rename. `draw` receives the drawing area of the temporary file.
pub(crate) fn write_png_atomic<F>(path: &Path, size: (u32, u32), draw: F) -> Result<()>
where
    F: FnOnce(&DrawingArea<BitMapBackend, plotters::coord::Shift>) -> Result<()>,
{
    ensure_font();
    if path.extension().and_then(|e| e.to_str()) != Some("png") {
        return Err(Error::invalid(
            path.display().to_string(),
            "plot files must end in .png",
        ));
    }
    // Replaced on every run (plots are derived outputs), never over an input of the run.
    let out = xpcs_io::atomic::AtomicOutput::begin(path, &[], true)?;
    {
        // The temp name ends in the target's name: the encoder sees `.png`.
        let root = BitMapBackend::new(out.tmp_path(), size).into_drawing_area();
        root.fill(&WHITE).map_err(|e| plot_err(path, e))?;
        draw(&root)?;
        root.present().map_err(|e| plot_err(path, e))?;
    }
    out.commit()?;
    Ok(())
}

/// One axis in plot space: a range, its tick positions and a transform (log10 or identity).
#[derive(Clone, Debug)]
pub(crate) struct Axis {
    pub log: bool,
    pub lo: f64,
    pub hi: f64,
    pub ticks: Vec<f64>,
    /// Tick spacing in data units when the ticks are uniform in data space (sets the number
    /// of decimals of the labels); None for decade / 1-2-5 ticks on a log axis.
    pub step: Option<f64>,
}

impl Axis {
    /// Data value → plot coordinate (None when not drawable: non-finite, or ≤ 0 on a log axis).
    pub fn map(&self, v: f64) -> Option<f64> {
        if !v.is_finite() {
            return None;
        }
        if self.log {
            (v > 0.0).then(|| v.log10())
        } else {
            Some(v)
        }
    }

    /// An axis covering `values` (data units) with 4 % padding.
    pub fn fit(values: impl Iterator<Item = f64>, log: bool) -> Axis {
        let mut lo = f64::INFINITY;
        let mut hi = f64::NEG_INFINITY;
        for v in values {
            let m = if log {
                if v > 0.0 && v.is_finite() {
                    v.log10()
                } else {
                    continue;
                }
            } else if v.is_finite() {
                v
            } else {
                continue;
            };
            lo = lo.min(m);
            hi = hi.max(m);
        }
        if !lo.is_finite() {
            (lo, hi) = (0.0, 1.0);
        }
        if hi - lo < 1e-12 * lo.abs().max(1.0) {
            let d = if log { 0.5 } else { 0.5 * lo.abs().max(1e-3) };
            lo -= d;
            hi += d;
        }
        let pad = 0.04 * (hi - lo);
        Axis::with_range(lo - pad, hi + pad, log)
    }

    /// An axis on [lo, hi] (plot coordinates: log10 of the data on a log axis).
    pub fn with_range(lo: f64, hi: f64, log: bool) -> Axis {
        if !log {
            let ticks = nice_ticks(lo, hi, 6);
            let step = (ticks.len() >= 2).then(|| ticks[1] - ticks[0]);
            return Axis {
                log,
                lo,
                hi,
                ticks,
                step,
            };
        }
        let ticks = log_ticks(lo, hi);
        if ticks.len() >= 3 {
            return Axis {
                log,
                lo,
                hi,
                ticks,
                step: None,
            };
        }
        // Less than about half a decade: uniform ticks in data space, placed on the log axis.
        let lin = nice_ticks(10f64.powf(lo), 10f64.powf(hi), 6);
        let step = (lin.len() >= 2).then(|| lin[1] - lin[0]);
        let ticks = lin
            .into_iter()
            .filter(|v| *v > 0.0)
            .map(f64::log10)
            .collect();
        Axis {
            log,
            lo,
            hi,
            ticks,
            step,
        }
    }

    /// Formats a tick (plot coordinate) for display.
    pub fn label(&self, v: f64) -> String {
        let data = if self.log { 10f64.powf(v) } else { v };
        fmt_number(data, self.step)
    }
}

/// A linear coordinate with our own tick positions (plotters' `WithKeyPoints` does not keep
/// the f64 label formatter, so we implement the small `Ranged` ourselves).
#[derive(Clone, Debug)]
pub(crate) struct Ticked {
    lo: f64,
    hi: f64,
    ticks: Vec<f64>,
}

impl plotters::coord::ranged1d::Ranged for Ticked {
    type FormatOption = plotters::coord::ranged1d::DefaultFormatting;
    type ValueType = f64;

    fn map(&self, v: &f64, limit: (i32, i32)) -> i32 {
        let f = (v - self.lo) / (self.hi - self.lo);
        limit.0 + (f * f64::from(limit.1 - limit.0)).round() as i32
    }

    fn key_points<H: plotters::coord::ranged1d::KeyPointHint>(&self, hint: H) -> Vec<f64> {
        if hint.max_num_points() == 0 {
            Vec::new()
        } else {
            self.ticks.clone()
        }
    }

    fn range(&self) -> std::ops::Range<f64> {
        self.lo..self.hi
    }
}

impl Axis {
    /// The plotters coordinate of this axis.
    pub fn coord(&self) -> Ticked {
        Ticked {
            lo: self.lo,
            hi: self.hi,
            ticks: self.ticks.clone(),
        }
    }
}

/// Ticks at 1-2-5 × 10^k spacing, about `n` of them, inside [lo, hi].
fn nice_ticks(lo: f64, hi: f64, n: usize) -> Vec<f64> {
    let raw = (hi - lo) / n.max(2) as f64;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag);
    let first = (lo / step).ceil() as i64;
    let last = (hi / step).floor() as i64;
    (first..=last).map(|k| k as f64 * step).collect()
}

/// Ticks on a log axis (plot coordinates = log10): decades; 1-2-5 within decades when the
/// range spans fewer than 3 decades; every other decade beyond 8. May return fewer than 3
/// ticks on a narrow range (the caller then uses uniform ticks).
fn log_ticks(lo: f64, hi: f64) -> Vec<f64> {
    let span = hi - lo;
    let (k0, k1) = (lo.floor() as i64, hi.ceil() as i64);
    let mut t = Vec::new();
    let every = if span > 8.0 { 2 } else { 1 };
    for k in k0..=k1 {
        let mults: &[f64] = if span < 3.0 { &[1.0, 2.0, 5.0] } else { &[1.0] };
        for m in mults {
            let v = k as f64 + m.log10();
            if v >= lo && v <= hi && (*m != 1.0 || k.rem_euclid(every) == 0) {
                t.push(v);
            }
        }
    }
    t
}

/// A number for a tick label: plain when moderate, scientific when tiny or huge; `step`
/// (linear axes) sets the number of decimals so that neighbouring ticks differ.
pub(crate) fn fmt_number(v: f64, step: Option<f64>) -> String {
    if v == 0.0 {
        return "0".into();
    }
    let a = v.abs();
    if !(1e-3..1e5).contains(&a) {
        let s = format!("{v:.1e}");
        return s.replace(".0e", "e");
    }
    let decimals = match step {
        Some(s) if s > 0.0 => (-(s.log10().floor())).max(0.0) as usize,
        _ => (-(a.log10().floor())).max(0.0) as usize,
    };
    format!("{v:.decimals$}")
}

/// The viridis colour at `t` ∈ [0, 1] (clamped), linearly interpolated between 9 anchors.
pub fn viridis(t: f64) -> RGBColor {
    const A: [(u8, u8, u8); 9] = [
        (68, 1, 84),
        (71, 44, 122),
        (59, 81, 139),
        (44, 113, 142),
        (33, 144, 141),
        (39, 173, 129),
        (92, 200, 99),
        (170, 220, 50),
        (253, 231, 37),
    ];
    let t = if t.is_finite() {
        t.clamp(0.0, 1.0)
    } else {
        0.0
    };
    let x = t * 8.0;
    let i = (x.floor() as usize).min(7);
    let f = x - i as f64;
    let lerp = |a: u8, b: u8| (f64::from(a) + f * (f64::from(b) - f64::from(a))).round() as u8;
    RGBColor(
        lerp(A[i].0, A[i + 1].0),
        lerp(A[i].1, A[i + 1].1),
        lerp(A[i].2, A[i + 1].2),
    )
}

#[cfg(test)]
mod tests;
