//! q-partitions: which pixels are averaged together.

use crate::error::{Error, Result};

/// An integer label per pixel (row-major): 0 = excluded, k ≥ 1 = bin k.
///
/// Bins are numbered 1..=n_bins with n_bins the largest label; a label between 1 and n_bins that
/// no pixel carries is an *empty bin*: correlators report NaN for it, with the reason.
#[derive(Debug, Clone, PartialEq)]
pub struct LabelMap {
    rows: usize,
    cols: usize,
    labels: Vec<u32>,
    /// Pixel indices of bin k at index k - 1, increasing.
    bins: Vec<Vec<u32>>,
}

impl LabelMap {
    /// A label map from row-major labels; `origin` names the file for error messages.
    pub fn new(rows: usize, cols: usize, labels: Vec<u32>, origin: &str) -> Result<Self> {
        if labels.len() != rows * cols {
            return Err(Error::ShapeMismatch {
                origin: origin.into(),
                what: "labels vs (rows, cols)".into(),
                expected: vec![rows, cols],
                got: vec![labels.len()],
            });
        }
        let n_bins = labels.iter().copied().max().unwrap_or(0) as usize;
        if n_bins > 1_000_000 {
            return Err(Error::out_of_range(
                origin,
                "largest label",
                n_bins,
                "≤ 1000000",
            ));
        }
        let mut bins = vec![Vec::new(); n_bins];
        for (p, &l) in labels.iter().enumerate() {
            if l > 0 {
                bins[l as usize - 1].push(p as u32);
            }
        }
        Ok(LabelMap {
            rows,
            cols,
            labels,
            bins,
        })
    }

    /// Frame shape (rows, cols).
    pub fn shape(&self) -> (usize, usize) {
        (self.rows, self.cols)
    }
    /// Number of bins (the largest label).
    pub fn n_bins(&self) -> usize {
        self.bins.len()
    }
    /// The row-major labels.
    pub fn labels(&self) -> &[u32] {
        &self.labels
    }
    /// Pixel indices of bin `k` (1-based label).
    pub fn pixels(&self, k: usize) -> &[u32] {
        &self.bins[k - 1]
    }
    /// Pixel count of every bin, in bin order.
    pub fn bin_sizes(&self) -> Vec<usize> {
        self.bins.iter().map(Vec::len).collect()
    }
    /// Pixels in any bin.
    pub fn n_labelled(&self) -> usize {
        self.bins.iter().map(Vec::len).sum()
    }
}

/// Centres of a bin along the two partition axes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BinAxis {
    /// Centre wave vector (Å⁻¹); NaN when unknown (labels read from a file without a q-map).
    pub q_inv_angstrom: f64,
    /// Centre azimuth (degrees); NaN when unknown.
    pub phi_deg: f64,
}

/// The q-partition of a detector: mask, dynamic bins (correlated) and static bins (finer, for
/// I(q) and for per-sub-bin normalisation, as at APS 8-ID-I).
///
/// Invariants: both label maps have the mask's shape and are 0 wherever the mask is false.
#[doc(alias = "roi_map")]
#[derive(Debug, Clone, PartialEq)]
pub struct QPartition {
    mask: Vec<bool>,
    dynamic: LabelMap,
    static_map: LabelMap,
    dynamic_axes: Vec<BinAxis>,
    static_axes: Vec<BinAxis>,
}

impl QPartition {
    /// A partition whose dynamic and static bins are both `labels`; mask = labels > 0.
    pub fn from_labels(rows: usize, cols: usize, labels: Vec<u32>, origin: &str) -> Result<Self> {
        let mask: Vec<bool> = labels.iter().map(|&l| l > 0).collect();
        let map = LabelMap::new(rows, cols, labels, origin)?;
        Self::new(mask, map.clone(), map, origin)
    }

    /// A partition from a mask and two label maps; labels under a false mask are set to 0.
    pub fn new(
        mask: Vec<bool>,
        dynamic: LabelMap,
        static_map: LabelMap,
        origin: &str,
    ) -> Result<Self> {
        let (rows, cols) = dynamic.shape();
        if static_map.shape() != (rows, cols) || mask.len() != rows * cols {
            return Err(Error::ShapeMismatch {
                origin: origin.into(),
                what: "mask / dynamic / static label maps".into(),
                expected: vec![rows, cols],
                got: vec![static_map.shape().0, static_map.shape().1, mask.len()],
            });
        }
        let apply = |m: LabelMap| -> Result<LabelMap> {
            if m.labels.iter().zip(&mask).all(|(&l, &ok)| ok || l == 0) {
                return Ok(m);
            }
            let l = m
                .labels
                .iter()
                .zip(&mask)
                .map(|(&l, &ok)| if ok { l } else { 0 });
            LabelMap::new(rows, cols, l.collect(), origin)
        };
        let dynamic = apply(dynamic)?;
        let static_map = apply(static_map)?;
        if dynamic.n_labelled() == 0 {
            return Err(Error::invalid(
                origin,
                "no pixel in any q-bin (all labels 0 or masked)",
            ));
        }
        let nan = BinAxis {
            q_inv_angstrom: f64::NAN,
            phi_deg: f64::NAN,
        };
        Ok(QPartition {
            dynamic_axes: vec![nan; dynamic.n_bins()],
            static_axes: vec![nan; static_map.n_bins()],
            mask,
            dynamic,
            static_map,
        })
    }

    /// Attaches bin centres (one per dynamic bin, one per static bin).
    pub fn with_axes(mut self, dynamic: Vec<BinAxis>, static_axes: Vec<BinAxis>) -> Result<Self> {
        if dynamic.len() != self.dynamic.n_bins() || static_axes.len() != self.static_map.n_bins() {
            return Err(Error::ShapeMismatch {
                origin: "q-partition".into(),
                what: "bin centres vs bins (dynamic, static)".into(),
                expected: vec![self.dynamic.n_bins(), self.static_map.n_bins()],
                got: vec![dynamic.len(), static_axes.len()],
            });
        }
        self.dynamic_axes = dynamic;
        self.static_axes = static_axes;
        Ok(self)
    }

    /// Frame shape (rows, cols).
    pub fn shape(&self) -> (usize, usize) {
        self.dynamic.shape()
    }
    /// The mask (true = valid pixel), row-major.
    pub fn mask(&self) -> &[bool] {
        &self.mask
    }
    /// Dynamic bins (the ones correlated).
    pub fn dynamic(&self) -> &LabelMap {
        &self.dynamic
    }
    /// Static bins (finer; for I(q) and sub-bin normalisation).
    pub fn static_map(&self) -> &LabelMap {
        &self.static_map
    }
    /// Number of dynamic bins.
    pub fn n_bins(&self) -> usize {
        self.dynamic.n_bins()
    }
    /// Centres of the dynamic bins.
    pub fn dynamic_axes(&self) -> &[BinAxis] {
        &self.dynamic_axes
    }
    /// Centres of the static bins.
    pub fn static_axes(&self) -> &[BinAxis] {
        &self.static_axes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_and_mask() {
        let p = QPartition::from_labels(2, 2, vec![0, 1, 3, 1], "t").unwrap();
        assert_eq!(p.n_bins(), 3);
        assert_eq!(p.dynamic().pixels(1), &[1, 3]);
        assert!(p.dynamic().pixels(2).is_empty());
        assert!(QPartition::from_labels(2, 2, vec![0; 4], "t").is_err());
        let m = LabelMap::new(2, 2, vec![1, 1, 2, 2], "t").unwrap();
        let q = QPartition::new(vec![true, false, true, true], m.clone(), m, "t").unwrap();
        assert_eq!(q.dynamic().labels(), &[1, 0, 2, 2]);
    }
}
