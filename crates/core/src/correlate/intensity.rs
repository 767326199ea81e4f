//! Mean intensities: per bin per frame, per pixel, per static bin.
//!
//! Input: the per-cell photon series and per-pixel photon totals that every correlator keeps.
//! Output: [`IntensityStats`], in mean photons per pixel per frame (the APS
//! `intensity_vs_time`, `scattering_2d`, `scattering_1d` and `scattering_1d_segments`).

use super::sums::Cells;
use ndarray::Array2;

/// Mean intensities, photons per pixel per frame.
#[derive(Debug, Clone, PartialEq)]
pub struct IntensityStats {
    /// Per dynamic bin and frame, (n_bins, n_frames): the bin's photons in the frame / its
    /// pixels. NaN for an empty bin.
    pub intensity_vs_time: Array2<f64>,
    /// Per pixel (row-major, rows × cols): photons over the scan / frames. NaN if no frame.
    pub scattering_2d: Vec<f64>,
    /// Frame shape (rows, cols) of `scattering_2d`.
    pub shape: (usize, usize),
    /// Per static bin: photons / (pixels × frames), over the static bin's pixels that lie in
    /// a dynamic bin (at APS both maps cover the same pixels). NaN for a bin with no such
    /// pixel.
    pub scattering_1d: Vec<f64>,
    /// Number of frames.
    pub n_frames: usize,
    series_static: Vec<Vec<u64>>,
    pixels_static: Vec<u64>,
}

impl IntensityStats {
    /// Builds the statistics from per-cell series (`series[cell][t]`) and per-pixel totals.
    pub fn from_parts(
        cells: &Cells,
        series: &[Vec<u64>],
        pixel_totals: &[u64],
        n_frames: usize,
        shape: (usize, usize),
    ) -> Self {
        let nb = cells.n_bins;
        let mut ivt = Array2::<f64>::zeros((nb, n_frames));
        let mut bin_pix = vec![0u64; nb];
        let ns = cells.n_static;
        let mut series_static = vec![vec![0u64; n_frames]; ns];
        let mut pixels_static = vec![0u64; ns];
        for c in 0..cells.n_cells() {
            let d = cells.dynamic_of_cell[c] as usize - 1;
            bin_pix[d] += cells.pixels_per_cell[c];
            for (t, &x) in series[c].iter().enumerate() {
                ivt[[d, t]] += x as f64;
            }
            let s = cells.static_of_cell[c] as usize;
            if s > 0 {
                pixels_static[s - 1] += cells.pixels_per_cell[c];
                for (t, &x) in series[c].iter().enumerate() {
                    series_static[s - 1][t] += x;
                }
            }
        }
        for d in 0..nb {
            let n = bin_pix[d] as f64;
            ivt.row_mut(d).mapv_inplace(|x| x / n);
        }
        let nf = n_frames as f64;
        let scattering_2d = pixel_totals.iter().map(|&x| x as f64 / nf).collect();
        let scattering_1d = (0..ns)
            .map(|s| series_static[s].iter().sum::<u64>() as f64 / (pixels_static[s] as f64 * nf))
            .collect();
        IntensityStats {
            intensity_vs_time: ivt,
            scattering_2d,
            shape,
            scattering_1d,
            n_frames,
            series_static,
            pixels_static,
        }
    }

    /// scattering_1d over `n_segments` consecutive, equal time segments (frames split as
    /// evenly as possible; the first `T mod n` segments get one extra frame), (n_seg, n_static).
    /// NaN for segments with no frame or static bins with no pixel.
    pub fn scattering_1d_segments(&self, n_segments: usize) -> Array2<f64> {
        let ns = self.series_static.len();
        let n_seg = n_segments.max(1);
        let mut out = Array2::from_elem((n_seg, ns), f64::NAN);
        let base = self.n_frames / n_seg;
        let extra = self.n_frames % n_seg;
        let mut t0 = 0;
        for g in 0..n_seg {
            let len = base + usize::from(g < extra);
            for s in 0..ns {
                let sum: u64 = self.series_static[s][t0..t0 + len].iter().sum();
                out[[g, s]] = sum as f64 / (self.pixels_static[s] as f64 * len as f64);
            }
            t0 += len;
        }
        out
    }
}
