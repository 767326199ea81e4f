//! From correlator outputs to a [`ResultsFile`]: the one place that maps our types onto the
//! APS 8-ID-I keys (shapes, dtypes and units as docs/formats.md, "Results HDF5", lists them).
//!
//! Input: the q-partition, a [`G2Result`] (multi-tau or linear), the [`IntensityStats`], an
//! optional [`TwoTimeResult`], and the run's metadata. Output: a [`ResultsFile`] ready for
//! [`super::results::write_results`]. g2 is cast to f32 with lags as int64 frames; two-time
//! maps are passed whole (the writer keeps the upper triangle).

use super::results::{Geometry, Multitau, ResultsFile, Tree, TwinInfo, Twotime};
use ndarray::{Array2, Array3, Axis};
use xpcs_core::correlate::{G2Result, IntensityStats, TwoTimeResult};
use xpcs_core::data::{QPartition, ResolvedSelection};

/// What a results file needs besides the correlations.
#[derive(Debug, Clone)]
pub struct RunMeta {
    /// Acquisition start (any text; "simulated" for the twin).
    pub start_time: String,
    /// Frame period (s).
    pub frame_time_s: f64,
    /// Exposure per frame (s).
    pub count_time_s: f64,
    /// Incident energy (keV).
    pub energy_kev: f64,
    /// Geometry used for the q-map.
    pub geometry: Geometry,
    /// The run's seed (0 for real data).
    pub seed: u64,
    /// Raw frames used: begin, end, stride, avg (the whole series for simulations).
    pub frames: ResolvedSelection,
    /// Free-form groups written under `/xpcs_twin` (fits, ground truth, notes).
    pub extra: Tree,
}

/// Number of time segments for `scattering_1d_segments` and the two-time g2 segments.
pub const N_SEGMENTS: usize = 4;

/// Mean counts per pixel in each frame over every pixel of every dynamic bin (the APS
/// `spatial_mean/intensity_vs_time` row 1), from the per-bin series weighted by bin size.
pub fn mean_intensity_vs_time(intensity: &IntensityStats, bin_pixels: &[u64]) -> Vec<f64> {
    let ivt = &intensity.intensity_vs_time;
    let total: u64 = bin_pixels.iter().sum();
    (0..intensity.n_frames)
        .map(|t| {
            let s: f64 = bin_pixels
                .iter()
                .enumerate()
                .filter(|&(_, &n)| n > 0)
                .map(|(b, &n)| ivt[[b, t]] * n as f64)
                .sum();
            s / total.max(1) as f64
        })
        .collect()
}

/// One-time g2 from the diagonals of C within `n_seg` consecutive windows of the map:
/// shape (len, n_seg) with len the window length; NaN where a window has no pair.
fn diagonal_g2_segments(c: &Array2<f64>, n_seg: usize) -> Array2<f64> {
    let n = c.nrows();
    let len = (n / n_seg).max(1);
    let mut out = Array2::from_elem((len, n_seg), f64::NAN);
    for s in 0..n_seg {
        let a = s * len;
        let b = (a + len).min(n);
        for k in 0..len {
            let (mut sum, mut m) = (0.0, 0usize);
            for t in a..b.saturating_sub(k) {
                let v = c[[t, t + k]];
                if v.is_finite() {
                    sum += v;
                    m += 1;
                }
            }
            if m > 0 {
                out[[k, s]] = sum / m as f64;
            }
        }
    }
    out
}

/// Assembles a results file. `g2` may be `None` when only two-time maps were computed.
pub fn assemble(
    meta: RunMeta,
    part: &QPartition,
    g2: Option<&G2Result>,
    intensity: &IntensityStats,
    two_time: Option<&TwoTimeResult>,
) -> ResultsFile {
    let frames = meta.frames;
    // Summed `avg` frames hold avg × the counts of one raw frame: intensities are written per
    // raw frame, as boost_corr's averaged frames give them.
    let per_raw = 1.0 / frames.avg as f64;
    let f32v = |v: &[f64]| {
        v.iter()
            .map(|&x| (x * per_raw) as f32)
            .collect::<Vec<f32>>()
    };
    let bin_pixels: Vec<u64> = part
        .dynamic()
        .bin_sizes()
        .iter()
        .map(|&n| n as u64)
        .collect();
    // Lag 0 stays out of `normalized_g2`, as in the APS pipeline's files (delays from 1): it
    // carries the shot-noise term <I> and, included, pulls the viewer's own fit (~4 % low).
    let multitau = g2.map(|g| {
        let rows: Vec<usize> = (0..g.lag_frames.len())
            .filter(|&i| g.lag_frames[i] > 0)
            .collect();
        Multitau {
            g2: g.g2.select(Axis(0), &rows).mapv(|x| x as f32),
            g2_err: g.g2_err.select(Axis(0), &rows).mapv(|x| x as f32),
            delay_frames: rows.iter().map(|&i| g.lag_frames[i] as i64).collect(),
            stride_frame: frames.stride as i64,
            avg_frame: frames.avg as i64,
            frame_range: Some((frames.begin as i64, frames.end as i64)),
            g2_partial: None,
            g2_jackknife: Some(
                g.jackknife
                    .select(Axis(1), &rows)
                    .as_standard_layout()
                    .into_owned(),
            ),
        }
    });
    let twotime = two_time.map(|tt| {
        let maps: Vec<Array2<f64>> = (0..tt.bins.len()).map(|i| tt.c2(i)).collect();
        let n = tt.n_frames;
        let n_proc = tt.bins.len();
        let n_seg = N_SEGMENTS.min(n.max(1));
        let mut g = Array2::<f32>::from_elem((n, n_proc), f32::NAN);
        let seg_len = (n / n_seg).max(1);
        let mut gs = Array3::<f32>::from_elem((seg_len, n_seg, n_proc), f32::NAN);
        for i in 0..n_proc {
            for (k, v) in tt.g2_from_diagonals(i).into_iter().enumerate() {
                g[[k, i]] = v as f32;
            }
            let segs = diagonal_g2_segments(&maps[i], n_seg);
            for ((k, s), &v) in segs.indexed_iter() {
                gs[[k, s, i]] = v as f32;
            }
        }
        Twotime {
            processed_bins: tt.bins.iter().map(|&b| b as u32).collect(),
            c2: maps.iter().map(|m| m.mapv(|x| x as f32)).collect(),
            g2: g,
            g2_segments: gs,
            stride_frame: frames.stride as i64,
            avg_frame: (tt.bin_frames * frames.avg) as i64,
        }
    });
    let mut estimator = Vec::new();
    if let Some(g) = g2 {
        estimator.push(format!("multitau {} ({})", g.estimator.name(), g.schedule));
    }
    if let Some(tt) = two_time {
        estimator.push(format!("twotime (bin_frames {})", tt.bin_frames));
    }
    ResultsFile {
        start_time: meta.start_time,
        frame_time_s: meta.frame_time_s,
        count_time_s: meta.count_time_s,
        energy_kev: meta.energy_kev,
        geometry: meta.geometry,
        partition: part.clone(),
        scattering_2d: f32v(&intensity.scattering_2d),
        scattering_1d: f32v(&intensity.scattering_1d),
        scattering_1d_segments: intensity
            .scattering_1d_segments(N_SEGMENTS.min(intensity.n_frames.max(1)))
            .mapv(|x| (x * per_raw) as f32),
        intensity_vs_time: f32v(&mean_intensity_vs_time(intensity, &bin_pixels)),
        multitau,
        twotime,
        twin: TwinInfo {
            estimator: estimator.join("; "),
            seed: meta.seed,
            version: format!("xpcs-twin {}", env!("CARGO_PKG_VERSION")),
            extra: meta.extra,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use xpcs_core::correlate::{two_time_stack, DenseMultiTau, Estimator, LagSchedule};
    use xpcs_core::data::FrameStack;

    #[test]
    fn assembled_file_validates_and_segments_match_the_whole_map() {
        let data: Vec<u16> = (0..8 * 2 * 3).map(|i| ((i * 7) % 5) as u16).collect();
        let stack = FrameStack::from_u16(8, 2, 3, data).unwrap();
        let part = QPartition::from_labels(2, 3, vec![1, 1, 2, 2, 2, 0], "t").unwrap();
        let mut mt = DenseMultiTau::new(&part, &LagSchedule::multi_tau(8, 4).unwrap());
        mt.push_stack(&stack, 0..8).unwrap();
        let g2 = mt.finish(Estimator::Symmetric).unwrap();
        let tt = two_time_stack(&stack, &part, &[], 1).unwrap();
        let meta = RunMeta {
            start_time: "t".into(),
            frame_time_s: 0.1,
            count_time_s: 0.1,
            energy_kev: 21.0,
            geometry: Geometry {
                beam_center_x_px: 1.0,
                beam_center_y_px: 1.0,
                pixel_size_m: 75e-6,
                detector_distance_m: 5.0,
            },
            seed: 0,
            frames: ResolvedSelection::all(8),
            extra: Tree::new(),
        };
        let res = assemble(meta, &part, Some(&g2), &mt.intensity(), Some(&tt));
        res.validate("test").unwrap();
        // One segment spanning the whole map equals the whole-map diagonal mean.
        let c = tt.c2(0);
        let whole = tt.g2_from_diagonals(0);
        let seg = diagonal_g2_segments(&c, 1);
        for k in 0..8 {
            assert!(
                (seg[[k, 0]] - whole[k]).abs() < 1e-12
                    || (seg[[k, 0]].is_nan() && whole[k].is_nan())
            );
        }
        // Frame means weighted by bin size equal the brute-force mean over labelled pixels.
        for (t, &v) in res.intensity_vs_time.iter().enumerate() {
            let m = (0..5).map(|p| f64::from(stack.get(t, p))).sum::<f64>() / 5.0;
            assert!((f64::from(v) - m).abs() < 1e-6);
        }
    }
}
