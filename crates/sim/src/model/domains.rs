//! Dynamical domains: the scattering volume as N regions with their own mobility and their own
//! intermittent rearrangements.
//!
//! Input: a [`DomainSpec`] (N, spread of the local clock rates, rearrangement fraction φ, rate
//! of spontaneous local rearrangements, cascade exponent) and the times of cascades (the
//! isobar's avalanches). Output: [`Domains`], the realised weights w_d = 1/N, rate factors ρ_d
//! and replacement events, which [`super::Dynamics`] turns into the field covariance
//!
//! ```text
//! F(t1, t2) = Σ_d w_d exp(-|r ρ_d Δu|^β0) · Π_{e ∋ d, t1 < t_e ≤ t2} sqrt(1 - φ_e),
//! ```
//!
//! with Δu the material-time difference of the shared clock, r the pixel's q factor and β0 the
//! local KWW exponent. Every detector pixel sees every domain (far-field speckle is the Fourier
//! transform of the whole illuminated volume), so the pixel's field is the coherent sum of N
//! independent domain fields, each decorrelating on its own clock.
//!
//! What comes out rather than in:
//! - **β.** The ensemble ISF is a mixture of N KWW functions of different rates: a spread of
//!   ρ_d stretches a locally compressed decay (β0 = 2 is ballistic local motion), and partial
//!   replacements add an exponential factor; the β a KWW fit returns is below β0.
//! - **ΔC.** The rearrangements of a finite number of domains make C(t, t + δt) fluctuate from
//!   one t to the next; a stationary isobar now has ΔC > 0, set by N, φ and the event rates.
//! - **Avalanches.** A cascade hits S domains at once, P(S) ∝ S^−τc on 1..N (τc = 3/2 is the
//!   mean-field avalanche exponent of sheared amorphous solids); S = N with φ = 1 is the
//!   complete decorrelation "over one pixel" of the two-time map.
//!
//! N = 1 with no events is the single-clock model, bit for bit.
//!
//! Reference: Duri & Cipelletti, EPL 76, 972 (2006) (ΔC from a finite number of rearranging
//! regions); Bouchaud & Pitard, EPJE 6, 231 (2001) (ballistic local motion, compressed
//! exponents); Lin, Lerner, Rosso & Wyart, PNAS 111, 14382 (2014) (avalanche statistics).

use rand::RngExt;
use xpcs_core::check::{check_positive, check_range};
use xpcs_core::error::{Error, Result};

use super::avalanche::AvalancheTimes;
use super::campaign::Fluctuations;

/// Most domains a scan may have (fields per pixel grow with N).
pub const MAX_DOMAINS: usize = 64;

/// One domain event: at `time_s` a fraction φ of each listed domain's field is replaced by an
/// independent copy (E → sqrt(1-φ) E + sqrt(φ) Y), and each listed domain's own clock jumps
/// ahead by J (material time, before ρ_d: the domain's field moves on by ρ_d J at once). An
/// empty list means every domain.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct DomainEvent {
    /// Scan time (s).
    pub time_s: f64,
    /// φ ∈ [0, 1] (0 = a clock jump only).
    pub fraction: f64,
    /// Clock jump J ≥ 0 of the domains hit (0 = a replacement only).
    #[serde(skip_serializing_if = "is_zero")]
    pub jump: f64,
    /// Domain indices hit (sorted, distinct); empty = all.
    pub domains: Vec<u32>,
}

fn is_zero(x: &f64) -> bool {
    *x == 0.0
}

impl DomainEvent {
    /// Whether the event hits domain d.
    #[inline]
    pub fn hits(&self, d: usize) -> bool {
        hits(&self.domains, d)
    }
}

/// Whether an event that names `domains` (sorted; empty = all of them) hits domain d.
#[inline]
pub fn hits(domains: &[u32], d: usize) -> bool {
    domains.is_empty() || domains.binary_search(&(d as u32)).is_ok()
}

/// The realised domains of one scan.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Domains {
    weights: Vec<f64>,
    rates: Vec<f64>,
    /// Sorted by time.
    events: Vec<DomainEvent>,
}

impl Default for Domains {
    fn default() -> Self {
        Domains::single()
    }
}

impl Domains {
    /// One domain of weight 1 and rate 1, no events: the single-clock model.
    pub fn single() -> Self {
        Domains {
            weights: vec![1.0],
            rates: vec![1.0],
            events: Vec::new(),
        }
    }

    /// Domains from explicit weights (> 0, summing to 1 within 1e-9), rate factors (> 0) and
    /// events (any order; φ ∈ [0, 1]; J from 0 to 1000; indices < N). `origin` names the input
    /// in errors.
    pub fn new(
        weights: Vec<f64>,
        rates: Vec<f64>,
        mut events: Vec<DomainEvent>,
        origin: &str,
    ) -> Result<Self> {
        let n = weights.len();
        if n == 0 || n > MAX_DOMAINS {
            return Err(Error::out_of_range(
                origin,
                "domains",
                n,
                format!("1 to {MAX_DOMAINS}"),
            ));
        }
        if rates.len() != n {
            return Err(Error::ShapeMismatch {
                origin: origin.into(),
                what: "domain rates".into(),
                expected: vec![n],
                got: vec![rates.len()],
            });
        }
        for &w in &weights {
            check_positive(origin, "domain weight", w)?;
        }
        let sum: f64 = weights.iter().sum();
        if (sum - 1.0).abs() > 1e-9 {
            return Err(Error::out_of_range(
                origin,
                "sum of domain weights",
                sum,
                "1 (within 1e-9)",
            ));
        }
        for &r in &rates {
            check_range(origin, "domain rate factor", r, 1e-6, 1e6)?;
        }
        for e in &mut events {
            check_range(origin, "domain event time_s", e.time_s, f64::MIN, f64::MAX)?;
            check_range(origin, "domain event fraction", e.fraction, 0.0, 1.0)?;
            check_range(origin, "domain event jump", e.jump, 0.0, 1e3)?;
            e.domains.sort_unstable();
            e.domains.dedup();
            if let Some(&d) = e.domains.last() {
                if d as usize >= n {
                    return Err(Error::out_of_range(
                        origin,
                        "domain event index",
                        d,
                        format!("0 to {}", n - 1),
                    ));
                }
            }
        }
        events.sort_by(|a, b| a.time_s.total_cmp(&b.time_s));
        Ok(Domains {
            weights,
            rates,
            events,
        })
    }

    /// Whether this is the single-clock model (one domain, rate 1, no events).
    pub fn is_single(&self) -> bool {
        self.weights.len() == 1 && self.rates[0] == 1.0 && self.events.is_empty()
    }
    /// Number of domains N.
    pub fn len(&self) -> usize {
        self.weights.len()
    }
    /// Always false (N ≥ 1); for the `len` convention.
    pub fn is_empty(&self) -> bool {
        self.weights.is_empty()
    }
    /// Weights w_d (Σ = 1).
    pub fn weights(&self) -> &[f64] {
        &self.weights
    }
    /// Rate factors ρ_d.
    pub fn rates(&self) -> &[f64] {
        &self.rates
    }
    /// Largest ρ_d.
    pub fn max_rate(&self) -> f64 {
        self.rates.iter().cloned().fold(0.0, f64::max)
    }
    /// Replacement events and clock jumps, sorted by time.
    pub fn events(&self) -> &[DomainEvent] {
        &self.events
    }
    /// Whether any event moves a domain's own clock (J > 0).
    pub fn has_jumps(&self) -> bool {
        self.events.iter().any(|e| e.jump > 0.0)
    }

    /// The ensemble ISF of the smooth clock at pixel material time Δ (no events):
    /// g(Δ) = Σ_d w_d exp(-|ρ_d Δ|^β0).
    pub fn isf(&self, delta_u: f64, beta: f64) -> f64 {
        self.weights
            .iter()
            .zip(&self.rates)
            .map(|(w, r)| w * super::isf(r * delta_u, beta))
            .sum()
    }
}

/// How a sample's scattering volume is split into domains (sample parameters).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DomainSpec {
    /// Number of dynamically independent domains in the scattering volume, 1 to 64.
    pub count: usize,
    /// Standard deviation of ln ρ over the domains (0 = one mobility), 0 to 2.
    #[serde(default)]
    pub rate_spread: f64,
    /// Fraction φ of a domain's field a rearrangement replaces, 0 to 1.
    #[serde(default = "one")]
    pub fraction: f64,
    /// Spontaneous rearrangements per domain per second at ρ = 1 (domain d: ν ρ_d), ≥ 0.
    #[serde(default)]
    pub local_rate_per_s: f64,
    /// Cascade-size exponent τc: P(S) ∝ S^−τc on 1..N, 0 to 5.
    #[serde(default = "three_halves")]
    pub cascade_exponent: f64,
    /// Poisson rate of cascades (1/s), each hitting S domains at once, ≥ 0 (default 0).
    #[serde(default)]
    pub cascade_rate_per_s: f64,
    /// Local KWW exponent β0 of every domain's smooth decay, in (0, 2] (default: the
    /// sample's `kww_exponent`; 2 is ballistic local motion).
    #[serde(default)]
    pub local_kww_exponent: Option<f64>,
}

impl Default for DomainSpec {
    /// One domain, no spread, no events: the single-clock model.
    fn default() -> Self {
        DomainSpec {
            count: 1,
            rate_spread: 0.0,
            fraction: 1.0,
            local_rate_per_s: 0.0,
            cascade_exponent: 1.5,
            cascade_rate_per_s: 0.0,
            local_kww_exponent: None,
        }
    }
}

fn one() -> f64 {
    1.0
}
fn three_halves() -> f64 {
    1.5
}

impl DomainSpec {
    /// Checks every parameter against its range.
    pub fn validate(&self, origin: &str) -> Result<()> {
        if self.count == 0 || self.count > MAX_DOMAINS {
            return Err(Error::out_of_range(
                origin,
                "domains.count",
                self.count,
                format!("1 to {MAX_DOMAINS}"),
            ));
        }
        check_range(origin, "domains.rate_spread", self.rate_spread, 0.0, 2.0)?;
        check_range(origin, "domains.fraction", self.fraction, 0.0, 1.0)?;
        check_range(
            origin,
            "domains.local_rate_per_s",
            self.local_rate_per_s,
            0.0,
            1e3,
        )?;
        check_range(
            origin,
            "domains.cascade_exponent",
            self.cascade_exponent,
            0.0,
            5.0,
        )?;
        check_range(
            origin,
            "domains.cascade_rate_per_s",
            self.cascade_rate_per_s,
            0.0,
            1e3,
        )?;
        if let Some(b) = self.local_kww_exponent {
            super::clock::KwwExponent::new(b, &format!("{origin} domains.local_kww_exponent"))?;
        }
        Ok(())
    }

    /// Rate factors: ln ρ_d evenly spaced with standard deviation σ (a deterministic,
    /// stratified spread, so a scan's ensemble ISF does not depend on the seed), then scaled so
    /// that the mean rate Σ w_d ρ_d = 1: the τ law stays the mean clock of the volume.
    pub fn rates(&self) -> Vec<f64> {
        let n = self.count.max(1);
        if n == 1 || self.rate_spread == 0.0 {
            return vec![1.0; n];
        }
        // Evenly spaced points k - (n-1)/2 have variance (n² - 1)/12.
        let scale = self.rate_spread / ((n * n - 1) as f64 / 12.0).sqrt();
        let raw: Vec<f64> = (0..n)
            .map(|k| ((k as f64 - (n - 1) as f64 / 2.0) * scale).exp())
            .collect();
        let mean = raw.iter().sum::<f64>() / n as f64;
        raw.into_iter().map(|r| r / mean).collect()
    }

    /// Draws a cascade size S ∈ 1..=N with P(S) ∝ S^−τc.
    pub fn cascade_size<R: rand::Rng + ?Sized>(&self, rng: &mut R) -> usize {
        let n = self.count.max(1);
        let total: f64 = (1..=n)
            .map(|s| (s as f64).powf(-self.cascade_exponent))
            .sum();
        let mut x = rng.random::<f64>() * total;
        for s in 1..=n {
            x -= (s as f64).powf(-self.cascade_exponent);
            if x < 0.0 {
                return s;
            }
        }
        n
    }

    /// Realises the domains of one scan of `scan_length_s` seconds: the rates, one cascade at
    /// each of `cascade_times_s` (scan time, s; S domains drawn without replacement), the
    /// spontaneous rearrangements of each domain (Poisson, rate ν ρ_d), and with
    /// `local_clocks` each domain's own clock jumps (Poisson at its rate, jump J each).
    pub fn realize<R: rand::Rng + ?Sized>(
        &self,
        cascade_times_s: &[f64],
        scan_length_s: f64,
        local_clocks: Option<Fluctuations>,
        rng: &mut R,
        origin: &str,
    ) -> Result<Domains> {
        self.validate(origin)?;
        let n = self.count;
        let rates = self.rates();
        let mut events = Vec::new();
        for &t in cascade_times_s {
            let s = self.cascade_size(rng);
            let domains = if s == n {
                Vec::new()
            } else {
                // Partial Fisher–Yates: the first s of a random permutation.
                let mut idx: Vec<u32> = (0..n as u32).collect();
                for i in 0..s {
                    let j = i + rng.random_range(0..n - i);
                    idx.swap(i, j);
                }
                idx.truncate(s);
                idx
            };
            events.push(DomainEvent {
                time_s: t,
                fraction: self.fraction,
                jump: 0.0,
                domains,
            });
        }
        if self.local_rate_per_s > 0.0 {
            for (d, &rho) in rates.iter().enumerate() {
                let local = AvalancheTimes::Poisson {
                    rate_per_s: self.local_rate_per_s * rho,
                };
                for t in local.scan_events(0.0, scan_length_s, rng) {
                    events.push(DomainEvent {
                        time_s: t,
                        fraction: self.fraction,
                        jump: 0.0,
                        domains: vec![d as u32],
                    });
                }
            }
        }
        // Drawn last, so that domains without local clocks keep their random streams.
        if let Some(f) = local_clocks {
            for d in 0..n {
                let times = AvalancheTimes::Poisson {
                    rate_per_s: f.rate_per_s,
                };
                for t in times.scan_events(0.0, scan_length_s, rng) {
                    events.push(DomainEvent {
                        time_s: t,
                        fraction: 0.0,
                        jump: f.jump,
                        domains: vec![d as u32],
                    });
                }
            }
        }
        Domains::new(vec![1.0 / n as f64; n], rates, events, origin)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_is_the_default_and_bounds_are_checked() {
        assert!(Domains::default().is_single());
        let e = Domains::new(vec![0.5, 0.4], vec![1.0, 1.0], Vec::new(), "s.toml")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("s.toml") && e.contains("sum of domain weights"),
            "{e}"
        );
        let bad = DomainEvent {
            time_s: 1.0,
            fraction: 0.5,
            jump: 0.0,
            domains: vec![2],
        };
        let e = Domains::new(vec![0.5, 0.5], vec![1.0, 1.0], vec![bad], "s.toml")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("domain event index") && e.contains("0 to 1"),
            "{e}"
        );
        let spec = DomainSpec {
            count: 65,
            rate_spread: 0.0,
            fraction: 1.0,
            local_rate_per_s: 0.0,
            cascade_exponent: 1.5,
            ..DomainSpec::default()
        };
        let e = spec.validate("s.toml").unwrap_err().to_string();
        assert!(e.contains("domains.count") && e.contains("1 to 64"), "{e}");
    }

    /// The stratified rates have mean 1 and the asked spread of ln ρ (before the mean scaling,
    /// which only shifts ln ρ).
    #[test]
    fn rates_have_mean_one_and_the_spread() {
        for (n, s) in [(2usize, 0.3), (8, 0.5), (16, 1.0)] {
            let spec = DomainSpec {
                count: n,
                rate_spread: s,
                fraction: 1.0,
                local_rate_per_s: 0.0,
                cascade_exponent: 1.5,
                ..DomainSpec::default()
            };
            let r = spec.rates();
            let mean = r.iter().sum::<f64>() / n as f64;
            assert!((mean - 1.0).abs() < 1e-12);
            let l: Vec<f64> = r.iter().map(|x| x.ln()).collect();
            let lm = l.iter().sum::<f64>() / n as f64;
            let sd = (l.iter().map(|x| (x - lm).powi(2)).sum::<f64>() / n as f64).sqrt();
            assert!((sd - s).abs() < 1e-12, "{n}: {sd}");
        }
    }

    /// Cascade sizes follow P(S) ∝ S^−τc: each frequency within 5σ of its binomial spread.
    #[test]
    fn cascade_sizes_follow_the_power_law() {
        let spec = DomainSpec {
            count: 8,
            rate_spread: 0.0,
            fraction: 1.0,
            local_rate_per_s: 0.0,
            cascade_exponent: 1.5,
            ..DomainSpec::default()
        };
        let mut rng = crate::rng::stream(11, 0);
        let n_draws = 40_000;
        let mut hist = [0usize; 9];
        for _ in 0..n_draws {
            hist[spec.cascade_size(&mut rng)] += 1;
        }
        let z: f64 = (1..=8).map(|s| (s as f64).powf(-1.5)).sum();
        for (s, &h) in hist.iter().enumerate().skip(1) {
            let p = (s as f64).powf(-1.5) / z;
            let sd = (n_draws as f64 * p * (1.0 - p)).sqrt();
            assert!(
                (h as f64 - n_draws as f64 * p).abs() < 5.0 * sd,
                "S = {s}: {h}"
            );
        }
    }

    /// Spontaneous events: each domain's count is Poisson(ν ρ_d T) (5σ); a cascade of size N
    /// is stored as "all domains".
    #[test]
    fn realised_events_have_the_rates() {
        let spec = DomainSpec {
            count: 4,
            rate_spread: 0.5,
            fraction: 0.3,
            local_rate_per_s: 0.5,
            cascade_exponent: 0.0,
            ..DomainSpec::default()
        };
        let mut rng = crate::rng::stream(12, 0);
        let t_len = 4000.0;
        let d = spec
            .realize(&[10.0, 20.0, 30.0], t_len, None, &mut rng, "t")
            .unwrap();
        assert_eq!(d.len(), 4);
        for (k, &rho) in d.rates().iter().enumerate() {
            let count = d
                .events()
                .iter()
                .filter(|e| e.domains == [k as u32])
                .count() as f64;
            let mean = 0.5 * rho * t_len;
            assert!(
                (count - mean).abs() < 5.0 * mean.sqrt(),
                "domain {k}: {count}"
            );
        }
        assert!(d.events().windows(2).all(|w| w[0].time_s <= w[1].time_s));
        assert!(d.events().iter().all(|e| e.fraction == 0.3));
        assert!(d
            .events()
            .iter()
            .filter(|e| [10.0, 20.0, 30.0].contains(&e.time_s))
            .all(|e| e.domains.is_empty() || e.domains.len() < 4));
    }
}
