//! Dynamical heterogeneity: the spread of two-time values at a fixed delay.
//!
//! Input: a two-time map C(t1, t2) (n × n, from [`super::TwoTimeResult::c2`]), a delay in
//! two-time frames and a fraction. Output: ΔC, the width of the narrowest interval holding
//! that fraction (default 0.9) of the values C(t, t + delay), t = 0..n-1-delay (NaN values are
//! left out). Compare ΔC with its noise floor for homogeneous dynamics (docs/model.md §5),
//! best from a null simulation with the same binning.
//!
//! Reference: the ΔC definition of the Pt-glass study (docs/model.md §5, §9);
//! A. Duri et al., Phys. Rev. E 72, 051401 (2005) (time-resolved correlation).

use crate::error::{Error, Result};
use ndarray::Array2;

/// Default fraction of C values that ΔC must hold.
pub const DEFAULT_FRACTION: f64 = 0.9;

/// ΔC: the smallest width w such that some interval [a, a + w] holds ⌈fraction · m⌉ of the
/// m finite values C(t, t + delay). NaN when no value is finite.
pub fn delta_c(c2: &Array2<f64>, delay: usize, fraction: f64) -> Result<f64> {
    let n = c2.nrows();
    if c2.ncols() != n {
        return Err(Error::ShapeMismatch {
            origin: "two-time map".into(),
            what: "square map".into(),
            expected: vec![n, n],
            got: vec![c2.nrows(), c2.ncols()],
        });
    }
    if delay >= n {
        return Err(Error::out_of_range(
            "heterogeneity",
            "delay (two-time frames)",
            delay,
            format!("0..{n}"),
        ));
    }
    if !(fraction > 0.0 && fraction <= 1.0) {
        return Err(Error::out_of_range(
            "heterogeneity",
            "fraction",
            fraction,
            "(0, 1]",
        ));
    }
    let mut v: Vec<f64> = (0..n - delay)
        .map(|t| c2[[t, t + delay]])
        .filter(|x| x.is_finite())
        .collect();
    if v.is_empty() {
        return Ok(f64::NAN);
    }
    v.sort_by(f64::total_cmp);
    let m = ((fraction * v.len() as f64).ceil() as usize).clamp(1, v.len());
    Ok((0..=v.len() - m)
        .map(|i| v[i + m - 1] - v[i])
        .fold(f64::INFINITY, f64::min))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn width_of_known_values() {
        // Diagonal delay 1 of a 11 × 11 map holds 0, 1, ..., 9: 90 % = 9 values, width 8.
        let mut c = Array2::from_elem((11, 11), f64::NAN);
        for t in 0..10 {
            c[[t, t + 1]] = t as f64;
        }
        assert_eq!(delta_c(&c, 1, 0.9).unwrap(), 8.0);
        assert_eq!(delta_c(&c, 1, 1.0).unwrap(), 9.0);
        // An outlier does not widen the 90 % interval.
        c[[9, 10]] = 100.0;
        assert_eq!(delta_c(&c, 1, 0.9).unwrap(), 8.0);
        assert!(delta_c(&c, 2, 0.9).unwrap().is_nan());
        assert!(delta_c(&c, 11, 0.9).is_err());
        assert!(delta_c(&c, 1, 0.0).is_err());
    }
}
