//! Brute-force definitions of every correlation estimator: slow, obviously correct, and the
//! reference that each fast path is checked against (as a DFT checks an FFT).
//!
//! All functions take a dense [`FrameStack`] and the pixel indices of one bin, accumulate in
//! f64, and return NaN where a denominator is zero (an empty bin, or no photon at all).
//!
//! Notation: I_p(t) is the count of pixel p in frame t, <.>_p the mean over the bin's N_p
//! pixels, T the number of frames, k the lag in frames.

use crate::data::FrameStack;
use ndarray::Array2;

/// Mean count per pixel of the bin in every frame: m(t) = <I(t)>_p (length T).
pub fn bin_mean_per_frame(stack: &FrameStack, pixels: &[u32]) -> Vec<f64> {
    let n = pixels.len() as f64;
    (0..stack.n_frames())
        .map(|t| {
            pixels
                .iter()
                .map(|&p| f64::from(stack.get(t, p as usize)))
                .sum::<f64>()
                / n
        })
        .collect()
}

/// <I(t1) I(t2)>_p, the mean over the bin's pixels of the product of two frames.
pub fn mean_product(stack: &FrameStack, pixels: &[u32], t1: usize, t2: usize) -> f64 {
    let s: f64 = pixels
        .iter()
        .map(|&p| f64::from(stack.get(t1, p as usize)) * f64::from(stack.get(t2, p as usize)))
        .sum();
    s / pixels.len() as f64
}

/// Two-time correlation C(t1,t2) = <I(t1)I(t2)>_p / (<I(t1)>_p <I(t2)>_p), a T × T map.
pub fn two_time(stack: &FrameStack, pixels: &[u32]) -> Array2<f64> {
    let t_n = stack.n_frames();
    let m = bin_mean_per_frame(stack, pixels);
    let mut c = Array2::from_elem((t_n, t_n), f64::NAN);
    for t1 in 0..t_n {
        for t2 in 0..t_n {
            c[[t1, t2]] = mean_product(stack, pixels, t1, t2) / (m[t1] * m[t2]);
        }
    }
    c
}

/// Symmetric (scikit-beam / boost_corr / Xana) one-time g2 at lag k, every frame pair used:
///
/// g2(k) = G2 / (IP · IF) with G2 = (1/(T-k)) Σ_{t<T-k} <I(t)I(t+k)>_p,
/// IP = (1/(T-k)) Σ_{t<T-k} <I(t)>_p ("past"), IF = (1/(T-k)) Σ_{t≥k} <I(t)>_p ("future").
///
/// NaN when k ≥ T or the bin has no photon.
pub fn g2_symmetric(stack: &FrameStack, pixels: &[u32], k: usize) -> f64 {
    let t_n = stack.n_frames();
    if k >= t_n || pixels.is_empty() {
        return f64::NAN;
    }
    let m = bin_mean_per_frame(stack, pixels);
    let n = (t_n - k) as f64;
    let g2: f64 = (0..t_n - k)
        .map(|t| mean_product(stack, pixels, t, t + k))
        .sum::<f64>()
        / n;
    let ip: f64 = m[..t_n - k].iter().sum::<f64>() / n;
    let if_: f64 = m[k..].iter().sum::<f64>() / n;
    g2 / (ip * if_)
}

/// Frame-normalised (xpcs-correlator / dynamix) one-time g2 at lag k: the ratio of the
/// two-time map's diagonal sums, g2(k) = Σ_t <I(t)I(t+k)>_p / Σ_t m(t) m(t+k).
///
/// A per-frame intensity factor (beam drift) weighs numerator and denominator terms alike
/// (exact cancellation for frames that are one pattern times a factor). NaN when k ≥ T or no
/// photon.
pub fn g2_frame(stack: &FrameStack, pixels: &[u32], k: usize) -> f64 {
    let t_n = stack.n_frames();
    if k >= t_n || pixels.is_empty() {
        return f64::NAN;
    }
    let m = bin_mean_per_frame(stack, pixels);
    let num: f64 = (0..t_n - k)
        .map(|t| mean_product(stack, pixels, t, t + k))
        .sum();
    let den: f64 = (0..t_n - k).map(|t| m[t] * m[t + k]).sum();
    num / den
}

/// The stack with every `width` consecutive frames summed (frames 0..width-1 → 0, ...); a
/// trailing incomplete group is dropped. The level-L frames of multi-tau are `bin_frames(s,
/// 2^L)`.
pub fn bin_frames(stack: &FrameStack, width: usize) -> FrameStack {
    let n = stack.n_frames() / width.max(1);
    let (r, c) = stack.frame_shape();
    let np = r * c;
    let mut data = vec![0u32; n * np];
    for t in 0..n {
        for f in t * width..(t + 1) * width {
            for p in 0..np {
                data[t * np + p] += stack.get(f, p);
            }
        }
    }
    FrameStack::from_u32(n, r, c, data).expect("consistent shape")
}

/// Brute-force g2 of every lag of a schedule for one bin: each lag entry (level L, in-level
/// lag k) is `g2_symmetric` or `g2_frame` of the 2^L-binned stack at lag k.
pub fn g2_schedule(
    stack: &FrameStack,
    pixels: &[u32],
    schedule: &crate::correlate::LagSchedule,
    frame_estimator: bool,
) -> Vec<f64> {
    schedule
        .entries()
        .iter()
        .map(|e| {
            let b = bin_frames(stack, 1 << e.level);
            if frame_estimator {
                g2_frame(&b, pixels, e.lag_in_level)
            } else {
                g2_symmetric(&b, pixels, e.lag_in_level)
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_input_gives_one() {
        let s = FrameStack::from_u16(6, 1, 3, vec![2; 18]).unwrap();
        let px = [0u32, 1, 2];
        for k in 0..6 {
            assert!((g2_symmetric(&s, &px, k) - 1.0).abs() < 1e-15);
            assert!((g2_frame(&s, &px, k) - 1.0).abs() < 1e-15);
        }
        assert!(g2_symmetric(&s, &px, 6).is_nan());
        let c = two_time(&s, &px);
        assert!(c.iter().all(|&x| (x - 1.0).abs() < 1e-15));
    }
}
