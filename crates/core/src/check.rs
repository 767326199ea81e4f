//! Range checks that turn a bad value into one [`Error::OutOfRange`] naming its origin and field.

use crate::error::{Error, Result};

/// Checks `lo <= value <= hi` (finite), else an [`Error::OutOfRange`] naming `origin` and `field`.
pub fn check_range(origin: &str, field: &str, value: f64, lo: f64, hi: f64) -> Result<f64> {
    if value.is_finite() && value >= lo && value <= hi {
        Ok(value)
    } else {
        Err(Error::out_of_range(
            origin,
            field,
            value,
            format!("{lo} to {hi}"),
        ))
    }
}

/// Checks `value > 0` (finite), else an [`Error::OutOfRange`] naming `origin` and `field`.
pub fn check_positive(origin: &str, field: &str, value: f64) -> Result<f64> {
    if value.is_finite() && value > 0.0 {
        Ok(value)
    } else {
        Err(Error::out_of_range(origin, field, value, "> 0"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
