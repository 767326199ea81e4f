//! Range checks that turn a bad value into one [`Error::OutOfRange`] naming its origin and field.

use crate::error::{Error, Result};

/// A number as a user reads it in a message: plain for 1e-4 ≤ |v| < 1e6 (and 0), else
/// scientific (`1e308`, not 309 digits).
pub fn show(v: f64) -> String {
    let a = v.abs();
    if v == 0.0 || !v.is_finite() || (1e-4..1e6).contains(&a) {
        format!("{v}")
    } else {
        format!("{v:e}")
    }
}

/// A number with `digits` significant digits for a message: plain for 1e-3 ≤ |v| < 1e6
/// (`11.84`, `0.002397`), scientific outside (`2.4e-5`).
pub fn sig(v: f64, digits: usize) -> String {
    let a = v.abs();
    let digits = digits.max(1);
    if a == 0.0 || !v.is_finite() {
        return format!("{v}");
    }
    if !(1e-3..1e6).contains(&a) {
        return format!("{v:.*e}", digits - 1);
    }
    let decimals = (digits as i32 - 1 - a.log10().floor() as i32).max(0) as usize;
    format!("{v:.decimals$}")
}

/// Checks `lo <= value <= hi` (finite), else an [`Error::OutOfRange`] naming `origin` and `field`.
pub fn check_range(origin: &str, field: &str, value: f64, lo: f64, hi: f64) -> Result<f64> {
    if value.is_finite() && value >= lo && value <= hi {
        Ok(value)
    } else {
        Err(Error::out_of_range(
            origin,
            field,
            show(value),
            format!("{} to {}", show(lo), show(hi)),
        ))
    }
}

/// Checks `value > 0` (finite), else an [`Error::OutOfRange`] naming `origin` and `field`.
pub fn check_positive(origin: &str, field: &str, value: f64) -> Result<f64> {
    if value.is_finite() && value > 0.0 {
        Ok(value)
    } else {
        Err(Error::out_of_range(origin, field, show(value), "> 0"))
    }
}

/// Shortest frame time accepted anywhere (s): 1 ns, below any detector's frame.
pub const MIN_FRAME_TIME_S: f64 = 1e-9;
/// Longest frame time accepted anywhere (s): 1e5 s (about a day), beyond any exposure.
pub const MAX_FRAME_TIME_S: f64 = 1e5;

/// Checks a frame time (s) against the physical range [`MIN_FRAME_TIME_S`] ..=
/// [`MAX_FRAME_TIME_S`]. Values outside it are typos or unit mistakes, and the delays they
/// give (lag × frame time) can overflow or underflow to 0 or ∞.
pub fn check_frame_time(origin: &str, field: &str, frame_time_s: f64) -> Result<f64> {
    if frame_time_s.is_finite() && (MIN_FRAME_TIME_S..=MAX_FRAME_TIME_S).contains(&frame_time_s) {
        Ok(frame_time_s)
    } else {
        Err(Error::out_of_range(
            origin,
            field,
            show(frame_time_s),
            "1e-9 to 1e5 s",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_times_outside_the_physical_range() {
        for v in [
            1e308,
            1e-320,
            0.0,
            -1.0,
            f64::NAN,
            f64::INFINITY,
            2e5,
            1e-10,
        ] {
            let e = check_frame_time("cmd", "--frame-time", v).unwrap_err();
            assert!(e.to_string().contains("1e-9 to 1e5 s"), "{e}");
            assert!(e.to_string().len() < 120, "{e}");
        }
        for v in [1e-9, 1e-3, 0.1, 100.0, 1e5] {
            assert_eq!(check_frame_time("cmd", "--frame-time", v).unwrap(), v);
        }
    }

    #[test]
    fn bounds_and_non_finite_values() {
        assert!(check_range("f", "kww_exponent", 2.5, 0.0, 2.0).is_err());
        assert_eq!(
            check_range("f", "kww_exponent", 2.0, 0.0, 2.0).unwrap(),
            2.0
        );
        assert!(check_range("f", "x", f64::NAN, 0.0, 2.0).is_err());
        assert!(check_positive("f", "tau_s", 0.0).is_err());
        assert!(check_positive("f", "tau_s", f64::INFINITY).is_err());
        let e = check_positive("demo.toml", "tau_s", -1.0)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("demo.toml") && e.contains("tau_s") && e.contains("> 0"),
            "{e}"
        );
    }
}
