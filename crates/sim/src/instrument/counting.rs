//! The post-Poisson counting chain of a photon-counting detector, on sparse photons.
//!
//! Input: an [`EventList`] of ideal photon counts (per-pixel CSR, frames in order). Output: the
//! [`EventList`] the detector would write. Steps, in the detector's order (docs/model.md §4), each
//! switchable ([`CountingConfig`]):
//!
//! 1. charge sharing: each photon is, with probability p, also counted in one of its 4
//!    neighbours (chosen uniformly; lost at the detector edge);
//! 2. non-paralysable dead time τ: the k photons of a pixel in a frame arrive at uniform
//!    random times in the frame (count time = frame time); a photon is counted only if it
//!    arrives ≥ τ after the last counted one (the counter starts idle each frame);
//! 3. per-pixel efficiency ("gain"): counts thinned binomially with η_p ∈ [0, 1];
//! 4. dead pixels count nothing; hot pixels add Poisson(rate × frame time) every frame;
//! 5. counter rollover: counts wrap modulo 2^bits (8-bit: 256 → 0);
//! 6. masks: masked pixels (gaps, dead pixels) are emptied.
//!
//! Randomness: each step draws from `rng::stream(subseed(seed, step), block)` with blocks of
//! [`PIXEL_BLOCK`] source pixels, so the output is identical for any number of threads, and a
//! detector shard (a window of whole blocks, [`CountingChain::apply_window`]) gets exactly the
//! photons the whole run gives its pixels.
//! [`poisson_events`] draws the ideal Poisson photons of a mean-count map (the speckle
//! simulator's job in the full pipeline; used here as a reference and in tests).
//!
//! Reference: G. F. Knoll, Radiation Detection and Measurement, 4th ed. (2010), ch. 4
//! (non-paralysable dead time: m = r/(1 + rτ)); charge sharing in hybrid pixel detectors,
//! e.g. Ballabriga et al., JINST 11, P01007 (2016).

use crate::config::instrument::CountingConfig;
use crate::instrument::detector::{DefectMaps, Detector, PIXEL_BLOCK};
use crate::rng::{self, TwinRng};
use rand::RngExt;
use rand_distr::{Binomial, Distribution, Poisson};
use rayon::prelude::*;
use std::ops::Range;
use xpcs_core::data::{EventList, FrameStack};
use xpcs_core::error::{Error, Result};

type Block = (Vec<u64>, Vec<u32>, Vec<u32>);

/// Rebuilds an event list whose pixels are transformed independently: `f(pixel, frames,
/// counts, rng, out_frames, out_counts)` must push strictly increasing frames with counts ≥ 1.
fn map_pixels<F>(ev: &EventList, seed: u64, f: F) -> Result<EventList>
where
    F: Fn(usize, &[u32], &[u32], &mut TwinRng, &mut Vec<u32>, &mut Vec<u32>) + Sync,
{
    map_pixels_in(ev, seed, &(0..ev.n_pixels()), f)
}

/// [`map_pixels`] for the pixels of `window` only (a range of whole [`PIXEL_BLOCK`]s, see
/// [`check_window`]); the other pixels come out empty. Block b still draws from stream b, so
/// the window's pixels come out exactly as in the whole run.
fn map_pixels_in<F>(ev: &EventList, seed: u64, window: &Range<usize>, f: F) -> Result<EventList>
where
    F: Fn(usize, &[u32], &[u32], &mut TwinRng, &mut Vec<u32>, &mut Vec<u32>) + Sync,
{
    let n = ev.n_pixels();
    let n_blocks = n.div_ceil(PIXEL_BLOCK);
    let blocks: Vec<Block> = (0..n_blocks)
        .into_par_iter()
        .map(|b| {
            let (lo, hi) = (b * PIXEL_BLOCK, ((b + 1) * PIXEL_BLOCK).min(n));
            if hi <= window.start || lo >= window.end {
                return (vec![0; hi - lo], Vec::new(), Vec::new());
            }
            let mut r = rng::stream(seed, b as u64);
            let mut lens = Vec::with_capacity(hi - lo);
            let (mut fr, mut ct) = (Vec::new(), Vec::new());
            for p in lo..hi {
                let before = fr.len();
                let (f0, c0) = ev.pixel(p);
                f(p, f0, c0, &mut r, &mut fr, &mut ct);
                lens.push((fr.len() - before) as u64);
            }
            (lens, fr, ct)
        })
        .collect();
    let mut offsets = Vec::with_capacity(n + 1);
    offsets.push(0u64);
    let (mut frames, mut counts) = (Vec::new(), Vec::new());
    for (lens, fr, ct) in blocks {
        for l in lens {
            let last = *offsets.last().unwrap_or(&0);
            offsets.push(last + l);
        }
        frames.extend(fr);
        counts.extend(ct);
    }
    let (rows, cols) = ev.frame_shape();
    EventList::new(
        rows,
        cols,
        ev.n_frames(),
        ev.frame_time_s(),
        offsets,
        frames,
        counts,
    )
}

/// Checks that `window` is a range of whole [`PIXEL_BLOCK`]s of an `n`-pixel detector (it may
/// end at `n`): the unit in which the chain's random streams are drawn.
pub fn check_window(window: &Range<usize>, n: usize) -> Result<()> {
    let aligned = |x: usize| x % PIXEL_BLOCK == 0 || x == n;
    if window.start >= window.end
        || window.end > n
        || !aligned(window.start)
        || !aligned(window.end)
    {
        return Err(Error::out_of_range(
            "counting chain",
            "pixel window",
            format!("{}..{}", window.start, window.end),
            format!("a non-empty range of whole {PIXEL_BLOCK}-pixel blocks within 0..{n}"),
        ));
    }
    Ok(())
}

/// Ideal Poisson photons: pixel p counts Poisson(`mean_counts[p]`) in each of `n_frames` frames,
/// independently. Low means skip empty frames geometrically (cost ∝ photons, not frames).
pub fn poisson_events(
    mean_counts: &[f64],
    rows: usize,
    cols: usize,
    n_frames: usize,
    frame_time_s: f64,
    seed: u64,
) -> Result<EventList> {
    if mean_counts.len() != rows * cols {
        return Err(Error::ShapeMismatch {
            origin: "poisson_events".into(),
            what: "mean counts vs (rows, cols)".into(),
            expected: vec![rows * cols],
            got: vec![mean_counts.len()],
        });
    }
    if let Some(i) = mean_counts
        .iter()
        .position(|m| !(m.is_finite() && *m >= 0.0))
    {
        return Err(Error::out_of_range(
            "poisson_events",
            format!("mean_counts[{i}]"),
            mean_counts[i],
            "≥ 0, finite",
        ));
    }
    let empty = EventList::new(
        rows,
        cols,
        n_frames,
        frame_time_s,
        vec![0; rows * cols + 1],
        vec![],
        vec![],
    )?;
    map_pixels(
        &empty,
        rng::subseed(seed, "poisson"),
        |p, _, _, r, fr, ct| {
            let m = mean_counts[p];
            if m <= 0.0 {
                return;
            }
            if m > 2.0 {
                let d = Poisson::new(m).expect("m > 0");
                for t in 0..n_frames {
                    let k = d.sample(r) as u32;
                    if k > 0 {
                        fr.push(t as u32);
                        ct.push(k);
                    }
                }
                return;
            }
            // P(k ≥ 1) = 1 − e^{−m}; frames to the next nonzero one are geometric.
            let p1 = -(-m).exp_m1();
            let ln_q = -m; // ln P(k = 0)
            let mut t: usize = 0;
            loop {
                let u: f64 = r.random();
                // Number of empty frames before the next nonzero one.
                let skip = if p1 >= 1.0 {
                    0.0
                } else {
                    ((1.0 - u).ln() / ln_q).floor()
                };
                if !skip.is_finite() || t as f64 + skip >= n_frames as f64 {
                    break;
                }
                t += skip as usize;
                // Zero-truncated Poisson by inversion.
                let v: f64 = r.random::<f64>() * p1;
                let mut k = 1u32;
                let mut pk = m * (-m).exp();
                let mut acc = pk;
                while acc < v && k < 1000 {
                    k += 1;
                    pk *= m / k as f64;
                    acc += pk;
                }
                fr.push(t as u32);
                ct.push(k);
                t += 1;
                if t >= n_frames {
                    break;
                }
            }
        },
    )
}

/// Step 1: charge sharing with probability `prob` per photon.
pub fn charge_sharing(ev: &EventList, prob: f64, seed: u64) -> Result<EventList> {
    charge_sharing_in(ev, prob, seed, &(0..ev.n_pixels()))
}

/// Source pixels whose photons can land in `window` after charge sharing (one detector row
/// either side), as a range of whole [`PIXEL_BLOCK`]s.
pub fn charge_sharing_sources(window: &Range<usize>, rows: usize, cols: usize) -> Range<usize> {
    let n = rows * cols;
    let lo = window.start.saturating_sub(cols) / PIXEL_BLOCK * PIXEL_BLOCK;
    let hi = ((window.end + cols).div_ceil(PIXEL_BLOCK) * PIXEL_BLOCK).min(n);
    lo..hi
}

/// [`charge_sharing`] keeping only the photons that land in `window`: the source blocks
/// within [`charge_sharing_sources`] are processed (each with its own stream, as in the whole
/// run), so the window's pixels come out exactly as in the whole run.
fn charge_sharing_in(
    ev: &EventList,
    prob: f64,
    seed: u64,
    window: &Range<usize>,
) -> Result<EventList> {
    let (rows, cols) = ev.frame_shape();
    let n = ev.n_pixels();
    let seed = rng::subseed(seed, "charge-sharing");
    let n_blocks = n.div_ceil(PIXEL_BLOCK);
    let sources = charge_sharing_sources(window, rows, cols);
    let keep = |p: usize| window.contains(&p);
    // (pixel, frame, count) of every photon after sharing, per block in order.
    let blocks: Vec<Vec<(u32, u32, u32)>> = (0..n_blocks)
        .into_par_iter()
        .map(|b| {
            let mut out = Vec::new();
            if (b + 1) * PIXEL_BLOCK <= sources.start || b * PIXEL_BLOCK >= sources.end {
                return out;
            }
            let mut r = rng::stream(seed, b as u64);
            for p in b * PIXEL_BLOCK..((b + 1) * PIXEL_BLOCK).min(n) {
                let (fr, ct) = ev.pixel(p);
                let (row, col) = (p / cols, p % cols);
                for (&t, &k) in fr.iter().zip(ct) {
                    if keep(p) {
                        out.push((p as u32, t, k));
                    }
                    if prob <= 0.0 {
                        continue;
                    }
                    let shared = Binomial::new(u64::from(k), prob)
                        .expect("valid")
                        .sample(&mut r);
                    for _ in 0..shared {
                        let (dr, dc) =
                            [(-1i64, 0i64), (1, 0), (0, -1), (0, 1)][r.random_range(0..4)];
                        let (rr, cc) = (row as i64 + dr, col as i64 + dc);
                        if rr >= 0 && cc >= 0 && rr < rows as i64 && cc < cols as i64 {
                            let q = rr as usize * cols + cc as usize;
                            if keep(q) {
                                out.push((q as u32, t, 1));
                            }
                        }
                    }
                }
            }
            out
        })
        .collect();
    let mut per_pixel = vec![0u64; n + 1];
    for e in blocks.iter().flatten() {
        per_pixel[e.0 as usize + 1] += 1;
    }
    for p in 0..n {
        per_pixel[p + 1] += per_pixel[p];
    }
    let mut cursor = per_pixel.clone();
    let total = per_pixel[n] as usize;
    let mut tf = vec![(0u32, 0u32); total];
    for e in blocks.iter().flatten() {
        let c = &mut cursor[e.0 as usize];
        tf[*c as usize] = (e.1, e.2);
        *c += 1;
    }
    let mut offsets = Vec::with_capacity(n + 1);
    offsets.push(0u64);
    let (mut frames, mut counts) = (Vec::new(), Vec::new());
    for p in 0..n {
        let s = &mut tf[per_pixel[p] as usize..per_pixel[p + 1] as usize];
        s.sort_unstable_by_key(|x| x.0);
        for &(t, k) in s.iter() {
            if frames.len() as u64 > *offsets.last().unwrap_or(&0) && frames.last() == Some(&t) {
                *counts.last_mut().expect("nonempty") += k;
            } else {
                frames.push(t);
                counts.push(k);
            }
        }
        offsets.push(frames.len() as u64);
    }
    EventList::new(
        rows,
        cols,
        ev.n_frames(),
        ev.frame_time_s(),
        offsets,
        frames,
        counts,
    )
}

/// Counts recorded by a non-paralysable counter (dead time `tau`) that starts idle, for
/// photons at the sorted times `times`.
pub fn non_paralysable(times: &[f64], tau: f64) -> u32 {
    let mut n = 0;
    let mut ready = f64::NEG_INFINITY;
    for &t in times {
        if t >= ready {
            n += 1;
            ready = t + tau;
        }
    }
    n
}

/// Step 2: non-paralysable dead time `dead_time_s` (count time = frame time).
pub fn dead_time(ev: &EventList, dead_time_s: f64, seed: u64) -> Result<EventList> {
    dead_time_in(ev, dead_time_s, seed, &(0..ev.n_pixels()))
}

fn dead_time_in(
    ev: &EventList,
    dead_time_s: f64,
    seed: u64,
    window: &Range<usize>,
) -> Result<EventList> {
    let tf = ev.frame_time_s();
    map_pixels_in(
        ev,
        rng::subseed(seed, "dead-time"),
        window,
        |_, f0, c0, r, fr, ct| {
            let mut times = Vec::new();
            for (&t, &k) in f0.iter().zip(c0) {
                let kept = if k < 2 || dead_time_s <= 0.0 {
                    k
                } else {
                    times.clear();
                    times.extend((0..k).map(|_| r.random::<f64>() * tf));
                    times.sort_unstable_by(f64::total_cmp);
                    non_paralysable(&times, dead_time_s)
                };
                fr.push(t);
                ct.push(kept);
            }
        },
    )
}

/// Step 3: binomial thinning with per-pixel efficiency `eff` ∈ [0, 1].
pub fn gain(ev: &EventList, eff: &[f64], seed: u64) -> Result<EventList> {
    gain_in(ev, eff, seed, &(0..ev.n_pixels()))
}

fn gain_in(ev: &EventList, eff: &[f64], seed: u64, window: &Range<usize>) -> Result<EventList> {
    check_len(ev, eff.len(), "efficiency map")?;
    map_pixels_in(
        ev,
        rng::subseed(seed, "gain"),
        window,
        |p, f0, c0, r, fr, ct| {
            let e = eff[p].clamp(0.0, 1.0);
            for (&t, &k) in f0.iter().zip(c0) {
                let kept = if e >= 1.0 {
                    k
                } else {
                    Binomial::new(u64::from(k), e).expect("valid").sample(r) as u32
                };
                if kept > 0 {
                    fr.push(t);
                    ct.push(kept);
                }
            }
        },
    )
}

/// Step 4: dead pixels lose every count; hot pixels add Poisson(`hot_rate_hz` × frame time)
/// counts in every frame.
pub fn bad_pixels(
    ev: &EventList,
    dead: &[bool],
    hot: &[bool],
    hot_rate_hz: f64,
    seed: u64,
) -> Result<EventList> {
    bad_pixels_in(ev, dead, hot, hot_rate_hz, seed, &(0..ev.n_pixels()))
}

fn bad_pixels_in(
    ev: &EventList,
    dead: &[bool],
    hot: &[bool],
    hot_rate_hz: f64,
    seed: u64,
    window: &Range<usize>,
) -> Result<EventList> {
    check_len(ev, dead.len(), "dead-pixel map")?;
    check_len(ev, hot.len(), "hot-pixel map")?;
    let n_frames = ev.n_frames();
    let m = hot_rate_hz * ev.frame_time_s();
    map_pixels_in(
        ev,
        rng::subseed(seed, "bad-pixels"),
        window,
        |p, f0, c0, r, fr, ct| {
            if dead[p] {
                return;
            }
            if !hot[p] || m <= 0.0 {
                fr.extend_from_slice(f0);
                ct.extend_from_slice(c0);
                return;
            }
            let d = Poisson::new(m).expect("m > 0");
            let mut j = 0;
            for t in 0..n_frames as u32 {
                let mut k = d.sample(r) as u32;
                if j < f0.len() && f0[j] == t {
                    k += c0[j];
                    j += 1;
                }
                if k > 0 {
                    fr.push(t);
                    ct.push(k);
                }
            }
        },
    )
}

/// Step 5: counter rollover: counts modulo `max_count + 1`.
pub fn rollover(ev: &EventList, max_count: u64) -> Result<EventList> {
    rollover_in(ev, max_count, &(0..ev.n_pixels()))
}

fn rollover_in(ev: &EventList, max_count: u64, window: &Range<usize>) -> Result<EventList> {
    map_pixels_in(ev, 0, window, |_, f0, c0, _, fr, ct| {
        for (&t, &k) in f0.iter().zip(c0) {
            let w = (u64::from(k) % (max_count + 1)) as u32;
            if w > 0 {
                fr.push(t);
                ct.push(w);
            }
        }
    })
}

/// Step 6: empties the pixels where `valid` is false.
pub fn apply_mask(ev: &EventList, valid: &[bool]) -> Result<EventList> {
    apply_mask_in(ev, valid, &(0..ev.n_pixels()))
}

fn apply_mask_in(ev: &EventList, valid: &[bool], window: &Range<usize>) -> Result<EventList> {
    check_len(ev, valid.len(), "mask")?;
    map_pixels_in(ev, 0, window, |p, f0, c0, _, fr, ct| {
        if valid[p] {
            fr.extend_from_slice(f0);
            ct.extend_from_slice(c0);
        }
    })
}

fn check_len(ev: &EventList, len: usize, what: &str) -> Result<()> {
    if len != ev.n_pixels() {
        return Err(Error::ShapeMismatch {
            origin: "counting chain".into(),
            what: format!("{what} vs pixels"),
            expected: vec![ev.n_pixels()],
            got: vec![len],
        });
    }
    Ok(())
}

/// The whole chain for one detector unit.
#[derive(Debug, Clone)]
pub struct CountingChain {
    /// Which steps run.
    pub steps: CountingConfig,
    /// The detector.
    pub detector: Detector,
    /// Its defect maps.
    pub defects: DefectMaps,
    /// Valid pixels (gaps and dead pixels false; extra masks folded in).
    pub valid: Vec<bool>,
}

impl CountingChain {
    /// The chain of `detector` with its defect maps; `extra_mask` (true = valid) is combined
    /// with the gap mask and the dead pixels.
    pub fn new(
        detector: &Detector,
        steps: &CountingConfig,
        extra_mask: Option<&[bool]>,
    ) -> Result<Self> {
        let defects = detector.defects();
        let mut valid = detector.gap_mask().to_vec();
        if let Some(m) = extra_mask {
            if m.len() != valid.len() {
                return Err(Error::ShapeMismatch {
                    origin: "counting chain".into(),
                    what: "extra mask vs detector".into(),
                    expected: vec![valid.len()],
                    got: vec![m.len()],
                });
            }
            valid.iter_mut().zip(m).for_each(|(v, &x)| *v &= x);
        }
        if steps.bad_pixels {
            valid
                .iter_mut()
                .zip(&defects.dead)
                .for_each(|(v, &d)| *v &= !d);
        }
        Ok(CountingChain {
            steps: steps.clone(),
            detector: detector.clone(),
            defects,
            valid,
        })
    }

    /// Runs the enabled steps in order on ideal photons; `seed` is the run's photon seed.
    pub fn apply(&self, ideal: &EventList, seed: u64) -> Result<EventList> {
        self.apply_window(ideal, seed, &(0..ideal.n_pixels()))
    }

    /// Whether a photon can move to another pixel (charge sharing on).
    fn shares_charge(&self) -> bool {
        self.steps.charge_sharing && self.detector.charge_sharing_prob > 0.0
    }

    /// The ideal pixels the chain needs to produce the pixels of `window` of a `rows` ×
    /// `cols` detector: the window itself, or with charge sharing one detector row more
    /// either side, in whole [`PIXEL_BLOCK`]s.
    pub fn sources(&self, window: &Range<usize>, rows: usize, cols: usize) -> Range<usize> {
        if self.shares_charge() {
            charge_sharing_sources(window, rows, cols)
        } else {
            window.clone()
        }
    }

    /// [`CountingChain::apply`] for the pixels of `window` (whole [`PIXEL_BLOCK`]s, see
    /// [`check_window`]) of a detector shard: `ideal` must hold the ideal photons of
    /// [`CountingChain::sources`] (other pixels are ignored). The window's pixels come out
    /// bit-identical to the whole run's (each step draws block b from stream b); the other
    /// pixels come out empty.
    pub fn apply_window(
        &self,
        ideal: &EventList,
        seed: u64,
        window: &Range<usize>,
    ) -> Result<EventList> {
        let n = ideal.n_pixels();
        check_window(window, n)?;
        let s = &self.steps;
        let d = &self.detector;
        let whole = window.start == 0 && window.end == n;
        let mut ev = if self.shares_charge() {
            charge_sharing_in(ideal, d.charge_sharing_prob, seed, window)?
        } else if whole {
            ideal.clone()
        } else {
            map_pixels_in(ideal, 0, window, |_, f0, c0, _, fr, ct| {
                fr.extend_from_slice(f0);
                ct.extend_from_slice(c0);
            })?
        };
        if s.dead_time && d.dead_time_s > 0.0 {
            ev = dead_time_in(&ev, d.dead_time_s, seed, window)?;
        }
        if s.gain && d.gain_sigma > 0.0 {
            ev = gain_in(&ev, &self.defects.efficiency, seed, window)?;
        }
        if s.bad_pixels {
            ev = bad_pixels_in(
                &ev,
                &self.defects.dead,
                &self.defects.hot,
                d.hot_pixel_rate_hz,
                seed,
                window,
            )?;
        }
        if s.rollover {
            ev = rollover_in(&ev, d.max_count(), window)?;
        }
        if s.mask {
            ev = apply_mask_in(&ev, &self.valid, window)?;
        }
        Ok(ev)
    }

    /// The chain on a dense stack (through the sparse form; lossless both ways).
    pub fn apply_stack(
        &self,
        stack: &FrameStack,
        frame_time_s: f64,
        seed: u64,
    ) -> Result<FrameStack> {
        Ok(self
            .apply(&EventList::from_stack(stack, frame_time_s)?, seed)?
            .to_stack())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mean_of_pixel(ev: &EventList, p: usize) -> (f64, f64) {
        let n = ev.n_frames() as f64;
        let (_, c) = ev.pixel(p);
        let s: f64 = c.iter().map(|&k| k as f64).sum();
        let s2: f64 = c.iter().map(|&k| (k as f64).powi(2)).sum();
        let m = s / n;
        (m, s2 / n - m * m)
    }

    /// Poisson reference: mean and variance of a pixel match m (5σ, σ from Poisson moments).
    #[test]
    fn poisson_moments() {
        for &m in &[0.05, 0.8, 7.0] {
            let ev = poisson_events(&[m, 0.0], 1, 2, 40_000, 0.1, 1).unwrap();
            let (mean, var) = mean_of_pixel(&ev, 0);
            let se = (m / 40_000.0).sqrt();
            assert!((mean - m).abs() < 5.0 * se, "m {m}: {mean}");
            // Var of the sample variance ≈ (μ4 − σ⁴)/N, μ4 = m(1 + 3m) for Poisson.
            let se_v = ((m * (1.0 + 3.0 * m) - m * m) / 40_000.0).sqrt();
            assert!((var - m).abs() < 5.0 * se_v, "m {m}: var {var}");
            assert_eq!(ev.pixel(1).0.len(), 0);
        }
    }

    /// A single lit pixel of rate λ: each of its 4 neighbours gains p λ / 4 per frame, the lit
    /// pixel keeps λ; totals are Binomial(N, p) extra (5σ).
    #[test]
    fn charge_sharing_closed_form() {
        let (rows, cols, lam, p, nf) = (5, 5, 4.0, 0.08, 20_000);
        let mut mean = vec![0.0; 25];
        mean[12] = lam;
        let ev = poisson_events(&mean, rows, cols, nf, 0.1, 2).unwrap();
        let out = charge_sharing(&ev, p, 3).unwrap();
        let n_ph = ev.total_counts() as f64;
        let extra = out.total_counts() as f64 - n_ph;
        assert!(
            (extra - p * n_ph).abs() < 5.0 * (n_ph * p * (1.0 - p)).sqrt(),
            "{extra}"
        );
        for nb in [7, 11, 13, 17] {
            let (m, _) = mean_of_pixel(&out, nb);
            let want = p * lam / 4.0;
            assert!(
                (m - want).abs() < 5.0 * (want / nf as f64).sqrt() * 1.2,
                "{nb}: {m} vs {want}"
            );
        }
        assert_eq!(mean_of_pixel(&out, 0).0, 0.0);
        assert_eq!(out.pixel(12), ev.pixel(12));
    }

    /// Non-paralysable: recorded = renewal count with intervals τ + Exp(r) and an idle start:
    /// E N ≈ T/μ + σ²/(2μ²) − 1/2 + τ/μ, Var N ≈ σ² T/μ³ (μ = τ + 1/r, σ = 1/r). At r = 1e6/s,
    /// τ = 100 ns, T = 1 ms: E N = 909.09, sd 27.4 per frame; 2000 frames → 5σ = 3.1.
    #[test]
    fn dead_time_closed_form() {
        let (r, tau, tf, nf) = (1e6, 100e-9, 1e-3, 2000);
        let ev = poisson_events(&[r * tf], 1, 1, nf, tf, 4).unwrap();
        let out = dead_time(&ev, tau, 5).unwrap();
        let (m, v) = mean_of_pixel(&out, 0);
        let mu = tau + 1.0 / r;
        let s2 = 1.0 / (r * r);
        let want = tf / mu + s2 / (2.0 * mu * mu) - 0.5 + tau / mu;
        let var = s2 * tf / mu.powi(3);
        assert!(
            (m - want).abs() < 5.0 * (var / nf as f64).sqrt(),
            "{m} vs {want}"
        );
        assert!(
            (v / var - 1.0).abs() < 5.0 * (2.0 / nf as f64).sqrt(),
            "{v} vs {var}"
        );
        // Single photons are never lost.
        let one = poisson_events(&[0.01], 1, 1, 1000, tf, 6).unwrap();
        assert_eq!(
            dead_time(&one, tau, 7).unwrap().total_counts(),
            one.total_counts()
        );
    }

    /// Binomial thinning: pixel mean becomes η λ (5σ); dead pixels empty; hot pixels at
    /// rate × T; rollover wraps; identical output with 1 and 2 threads.
    #[test]
    fn gain_bad_pixels_rollover_threads() {
        let nf = 20_000;
        let ev = poisson_events(&[3.0, 3.0, 3.0], 1, 3, nf, 0.1, 8).unwrap();
        let g = gain(&ev, &[0.5, 1.0, 0.0], 9).unwrap();
        let (m, _) = mean_of_pixel(&g, 0);
        assert!((m - 1.5).abs() < 5.0 * (1.5 / nf as f64).sqrt(), "{m}");
        assert_eq!(g.pixel(1), ev.pixel(1));
        assert!(g.pixel(2).0.is_empty());
        let b = bad_pixels(&ev, &[true, false, false], &[false, true, false], 20.0, 10).unwrap();
        assert!(b.pixel(0).0.is_empty());
        let (m, _) = mean_of_pixel(&b, 1);
        assert!((m - 5.0).abs() < 5.0 * (5.0 / nf as f64).sqrt(), "{m}");
        let big = EventList::new(
            1,
            2,
            2,
            0.1,
            vec![0, 2, 3],
            vec![0, 1, 0],
            vec![255, 256, 300],
        )
        .unwrap();
        let w = rollover(&big, 255).unwrap();
        assert_eq!(w.counts(), &[255, 44]);
        assert_eq!(w.pixel(0).0, &[0]);
        // Thread-count independence.
        let mean: Vec<f64> = (0..20_000).map(|i| 0.05 + (i % 7) as f64 * 0.1).collect();
        let run = |threads: usize| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap()
                .install(|| {
                    let e = poisson_events(&mean, 100, 200, 20, 0.1, 11).unwrap();
                    let e = charge_sharing(&e, 0.1, 12).unwrap();
                    dead_time(&e, 0.01, 13).unwrap()
                })
        };
        assert_eq!(run(1), run(2));
    }

    /// A detector shard: the chain on the ideal photons of the window's sources gives, in
    /// the window, exactly the whole run's photons (every step on, charge sharing included,
    /// windows at the detector's edges and in its middle), and nothing outside it.
    #[test]
    fn window_equals_the_whole_run_in_the_window() {
        let d = crate::instrument::detector::tests::preset("maxipix-2x2");
        let steps = CountingConfig {
            charge_sharing: true,
            ..CountingConfig::default()
        };
        let mut det = d.clone();
        det.charge_sharing_prob = det.charge_sharing_prob.max(0.05);
        let chain = CountingChain::new(&det, &steps, None).unwrap();
        let n = d.n_pixels();
        let mean = vec![0.7; n];
        let ideal = poisson_events(&mean, d.rows, d.cols, 5, 0.1, 21).unwrap();
        let whole = chain.apply(&ideal, 22).unwrap();
        let nb = n.div_ceil(PIXEL_BLOCK);
        for (b0, b1) in [(0, 1), (3, 7), (nb - 2, nb), (0, nb)] {
            let window = b0 * PIXEL_BLOCK..(b1 * PIXEL_BLOCK).min(n);
            let src = chain.sources(&window, d.rows, d.cols);
            assert!(src.start <= window.start && src.end >= window.end);
            let in_src: Vec<bool> = (0..n).map(|p| src.contains(&p)).collect();
            let part = apply_mask(&ideal, &in_src).unwrap();
            let out = chain.apply_window(&part, 22, &window).unwrap();
            for p in 0..n {
                if window.contains(&p) {
                    assert_eq!(out.pixel(p), whole.pixel(p), "pixel {p} of {window:?}");
                } else {
                    assert!(out.pixel(p).0.is_empty(), "pixel {p} outside {window:?}");
                }
            }
        }
        assert!(chain.apply_window(&ideal, 22, &(1..PIXEL_BLOCK)).is_err());
    }

    #[test]
    fn chain_runs_all_steps_and_masks() {
        let d = crate::instrument::detector::tests::preset("maxipix-2x2");
        let chain = CountingChain::new(&d, &CountingConfig::default(), None).unwrap();
        let mean = vec![0.5; d.n_pixels()];
        let ev = poisson_events(&mean, d.rows, d.cols, 4, 0.1, 14).unwrap();
        let out = chain.apply(&ev, 15).unwrap();
        for p in 0..d.n_pixels() {
            if !chain.valid[p] {
                assert!(out.pixel(p).0.is_empty());
            }
        }
        let stack = chain.apply_stack(&ev.to_stack(), 0.1, 15).unwrap();
        assert_eq!(stack.total_counts(), out.total_counts());
    }
}
