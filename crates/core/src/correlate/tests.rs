//! Every fast path against `naive.rs` or a law (property tests), plus statistical tests with
//! closed-form truths. Statistical tolerances state their n-sigma.

use super::event::EventCorrelator;
use super::lags::LagSchedule;
use super::multitau::{linear_stack, multitau_stack, DenseMultiTau};
use super::naive;
use super::sums::{BinStatus, Estimator, G2Result};
use super::twotime::{two_time_stack, two_time_stack_with, GramMethod};
use crate::data::{EventList, FrameStack, LabelMap, QPartition};
use crate::rng::stream;
use ndarray::Array2;
use proptest::prelude::*;
use rand::RngExt;
use rand_distr::{Distribution, Poisson, StandardNormal};

/// Relative agreement (NaN must match NaN).
fn close(a: f64, b: f64, rel: f64) -> bool {
    (a.is_nan() && b.is_nan()) || (a - b).abs() <= rel * a.abs().max(b.abs()).max(1e-300)
}

/// Bit-for-bit equality of two g2 results (NaN included).
fn same_bits(a: &G2Result, b: &G2Result) -> bool {
    let bits = |x: &Array2<f64>| x.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
    a.lag_frames == b.lag_frames
        && bits(&a.g2) == bits(&b.g2)
        && bits(&a.g2_err) == bits(&b.g2_err)
        && a.bin_status == b.bin_status
        && a.jackknife.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
            == b.jackknife.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
}

/// A random small stack and partition: frames 1..24, up to 4 × 5 pixels, counts 0..=4 with
/// many zeros, dynamic labels 0..=3 (a missing label below the largest is an empty bin), static labels 0..=4.
fn arb_case() -> impl Strategy<Value = (FrameStack, QPartition)> {
    (1usize..24, 1usize..4, 1usize..5).prop_flat_map(|(t, r, c)| {
        let np = r * c;
        (
            prop::collection::vec(prop_oneof![3 => Just(0u16), 2 => 0u16..5], t * np),
            prop::collection::vec(0u32..4, np),
            prop::collection::vec(0u32..5, np),
        )
            .prop_filter_map("need a labelled pixel", move |(data, dl, sl)| {
                let stack = FrameStack::from_u16(t, r, c, data).ok()?;
                if dl.iter().all(|&l| l == 0) {
                    return None;
                }
                let d = LabelMap::new(r, c, dl.clone(), "t").ok()?;
                let s = LabelMap::new(r, c, sl, "t").ok()?;
                let mask = dl.iter().map(|&l| l > 0).collect();
                let part = QPartition::new(mask, d, s, "t").ok()?;
                Some((stack, part))
            })
    })
}

fn naive_check(stack: &FrameStack, part: &QPartition, sched: &LagSchedule, est: Estimator) {
    let res = multitau_stack(stack, part, sched, est).unwrap();
    for k in 1..=part.n_bins() {
        let px = part.dynamic().pixels(k);
        let want = naive::g2_schedule(stack, px, sched, est == Estimator::Frame);
        for (e, &w) in want.iter().enumerate() {
            let got = res.g2[[e, k - 1]];
            if px.is_empty() {
                assert!(got.is_nan());
                continue;
            }
            assert!(close(got, w, 1e-12), "bin {k} lag {e}: {got} vs {w}");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 16, ..ProptestConfig::default() })]

    /// Jackknife replicate j = the same estimator run on the bin without group j's pixels
    /// (labels set to 0), bit for bit, for every estimator; bins smaller than the group count
    /// have no replicates.
    #[test]
    fn jackknife_replicates_equal_reduced_partitions(
        data in prop::collection::vec(prop_oneof![2 => Just(0u16), 3 => 0u16..6], 12 * 8 * 6),
        dl in prop::collection::vec(0u32..3, 8 * 6),
        sl in prop::collection::vec(1u32..4, 8 * 6),
        j in 0usize..super::sums::JACKKNIFE_GROUPS,
    ) {
        let (t, r, c) = (12, 8, 6);
        let stack = FrameStack::from_u16(t, r, c, data).unwrap();
        // Bin 1 holds every pixel (≥ 32 → replicates); bin 2 some of them (< 32 → none).
        let dl: Vec<u32> = dl.iter().map(|&l| if l == 2 { 2 } else { 1 }).collect();
        let make = |dl: &[u32]| {
            let d = LabelMap::new(r, c, dl.to_vec(), "t").unwrap();
            let s = LabelMap::new(r, c, sl.clone(), "t").unwrap();
            QPartition::new(dl.iter().map(|&l| l > 0).collect(), d, s, "t").unwrap()
        };
        let part = make(&dl);
        let sched = LagSchedule::multi_tau(t, 4).unwrap();
        let cells = super::sums::Cells::new(&part);
        let n2 = dl.iter().filter(|&&l| l == 2).count();
        for est in [Estimator::Symmetric, Estimator::SymmetricStatic, Estimator::Frame] {
            let full = multitau_stack(&stack, &part, &sched, est).unwrap();
            if n2 < super::sums::JACKKNIFE_GROUPS {
                prop_assert!(full.jackknife.slice(ndarray::s![.., .., 1]).iter().all(|v| v.is_nan()));
            }
            if dl.iter().filter(|&&l| l == 1).count() < super::sums::JACKKNIFE_GROUPS {
                continue;
            }
            let reduced: Vec<u32> = dl
                .iter()
                .enumerate()
                .map(|(p, &l)| {
                    let g = cells.group_of_cell[cells.cell_of_pixel[p] as usize] as usize;
                    if l == 1 && g == j { 0 } else { l }
                })
                .collect();
            let without = multitau_stack(&stack, &make(&reduced), &sched, est).unwrap();
            for e in 0..full.lag_frames.len() {
                prop_assert_eq!(full.jackknife[[j, e, 0]].to_bits(), without.g2[[e, 0]].to_bits());
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Dense multi-tau = brute force on binned series, both estimators, three schedules.
    #[test]
    fn dense_matches_naive((stack, part) in arb_case()) {
        let t = stack.n_frames();
        for sched in [
            LagSchedule::multi_tau(t, 4).unwrap(),
            LagSchedule::scikit_beam(3, 2).unwrap(),
            LagSchedule::linear(t + 1).unwrap(),
        ] {
            naive_check(&stack, &part, &sched, Estimator::Symmetric);
            naive_check(&stack, &part, &sched, Estimator::Frame);
        }
    }

    /// Event correlator = dense, bit for bit (g2, g2_err, intensities, two-time).
    #[test]
    fn event_equals_dense((stack, part) in arb_case(), bf in 1usize..4) {
        let t = stack.n_frames();
        let sched = LagSchedule::multi_tau(t, 4).unwrap();
        let ev = EventList::from_stack(&stack, 0.1).unwrap();
        let mut dense = DenseMultiTau::new(&part, &sched);
        dense.push_stack(&stack, 0..t).unwrap();
        let mut evc = EventCorrelator::new(&part, &sched, t);
        if bf <= t {
            evc = evc.with_two_time(&part, &[], bf).unwrap();
        }
        evc.push_events(&ev).unwrap();
        prop_assert_eq!(&dense.sums(), evc.sums());
        for est in [Estimator::Symmetric, Estimator::SymmetricStatic, Estimator::Frame] {
            prop_assert!(same_bits(&dense.finish(est).unwrap(), &evc.finish(est).unwrap()));
        }
        let (a, b) = (dense.intensity(), evc.intensity());
        prop_assert_eq!(a.scattering_2d, b.scattering_2d);
        if bf <= t {
            let tt = two_time_stack(&stack, &part, &[], bf).unwrap();
            prop_assert_eq!(Some(tt), evc.two_time());
        }
    }

    /// Pixel blocks in any order = the whole list.
    #[test]
    fn event_blocks_equal_whole((stack, part) in arb_case(), split in 0usize..20) {
        let t = stack.n_frames();
        let sched = LagSchedule::multi_tau(t, 4).unwrap();
        let ev = EventList::from_stack(&stack, 0.1).unwrap();
        let mut whole = EventCorrelator::new(&part, &sched, t);
        whole.push_events(&ev).unwrap();
        let np = ev.n_pixels();
        let s = split.min(np);
        let off = ev.offsets();
        let mut blocks = EventCorrelator::new(&part, &sched, t);
        // Second block first, with offsets not starting at zero.
        let (a, b) = (off[s] as usize, off[np] as usize);
        blocks.push_pixel_block(s, &off[s..], &ev.frames()[a..b], &ev.counts()[a..b]).unwrap();
        blocks.push_pixel_block(0, &off[..=s], &ev.frames()[..a], &ev.counts()[..a]).unwrap();
        prop_assert_eq!(whole.sums(), blocks.sums());
    }

    /// Shards: the pixels cut into random contiguous ranges, each range correlated by its own
    /// correlator (multi-tau, two-time, intensities), the shards merged in a random order (one
    /// of them through [`EventCorrelator::add_sums`], as a partial file is read back) = the
    /// whole run: equal sums, bit-identical g2 of every estimator, equal two-time maps and
    /// intensities.
    #[test]
    fn merged_shards_equal_whole(
        (stack, part) in arb_case(),
        cuts in prop::collection::vec(0usize..20, 0..6),
        order_seed in 0u64..1000,
        bf in 1usize..3,
    ) {
        let t = stack.n_frames();
        let bf = bf.min(t);
        let sched = LagSchedule::multi_tau(t, 4).unwrap();
        let ev = EventList::from_stack(&stack, 0.1).unwrap();
        let new = || {
            EventCorrelator::new(&part, &sched, t).with_two_time(&part, &[], bf).unwrap()
        };
        let mut whole = new();
        whole.push_events(&ev).unwrap();
        let np = ev.n_pixels();
        let mut bounds: Vec<usize> = cuts.iter().map(|&c| c.min(np)).collect();
        bounds.push(0);
        bounds.push(np);
        bounds.sort_unstable();
        bounds.dedup();
        let off = ev.offsets();
        let mut shards: Vec<EventCorrelator> = bounds
            .windows(2)
            .map(|w| {
                let (lo, hi) = (w[0], w[1]);
                let (a, b) = (off[lo] as usize, off[hi] as usize);
                let mut c = new();
                c.push_pixel_block(lo, &off[lo..=hi], &ev.frames()[a..b], &ev.counts()[a..b])
                    .unwrap();
                c
            })
            .collect();
        // A deterministic shuffle of the merge order.
        let mut k = order_seed;
        for i in (1..shards.len()).rev() {
            k = k.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            shards.swap(i, (k >> 33) as usize % (i + 1));
        }
        let mut merged = new();
        for (i, sh) in shards.iter().enumerate() {
            if i == 0 {
                let s = sh.sums();
                merged
                    .add_sums(&s.moments, &s.series, 0, sh.pixel_totals(), sh.two_time_numerators())
                    .unwrap();
            } else {
                merged.merge(sh).unwrap();
            }
        }
        prop_assert_eq!(whole.sums(), merged.sums());
        for est in [Estimator::Symmetric, Estimator::SymmetricStatic, Estimator::Frame] {
            prop_assert!(same_bits(&whole.finish(est).unwrap(), &merged.finish(est).unwrap()));
        }
        prop_assert_eq!(whole.two_time(), merged.two_time());
        // NaN fields (empty static bins): compared by their printed bits.
        prop_assert_eq!(format!("{:?}", whole.intensity()), format!("{:?}", merged.intensity()));
        // A correlator of another schedule refuses to merge.
        let other = EventCorrelator::new(&part, &LagSchedule::multi_tau(t, 8).unwrap(), t);
        if other.sums().schedule != whole.sums().schedule {
            prop_assert!(merged.merge(&other).is_err());
        }
    }

    /// Multi-tau level 0 = linear g2 at the same lags; chunked pushes = whole.
    #[test]
    fn level0_is_linear_and_chunks((stack, part) in arb_case(), chunk in 1usize..7) {
        let t = stack.n_frames();
        let sched = LagSchedule::multi_tau(t, 8).unwrap();
        let mt = multitau_stack(&stack, &part, &sched, Estimator::Symmetric).unwrap();
        let lin = linear_stack(&stack, &part, 7, Estimator::Symmetric).unwrap();
        for e in 0..8 {
            for d in 0..part.n_bins() {
                prop_assert_eq!(mt.g2[[e, d]].to_bits(), lin.g2[[e, d]].to_bits());
            }
        }
        let mut whole = DenseMultiTau::new(&part, &sched);
        whole.push_stack(&stack, 0..t).unwrap();
        let mut parts = DenseMultiTau::new(&part, &sched);
        let mut f0 = 0;
        while f0 < t {
            let f1 = (f0 + chunk).min(t);
            if chunk % 2 == 0 {
                parts.push_stack(&stack, f0..f1).unwrap();
            } else {
                let mut buf = vec![0u32; stack.n_pixels()];
                for f in f0..f1 {
                    stack.frame_into(f, &mut buf);
                    parts.push_frame(&buf).unwrap();
                }
            }
            f0 = f1;
        }
        prop_assert_eq!(whole.sums(), parts.sums());
    }

    /// Two-time: the sparse (tiled outer products) and dense (GEMM) Gram methods give the
    /// same exact numerators, for any frame binning.
    #[test]
    fn two_time_methods_agree((stack, part) in arb_case(), bf in 1usize..4) {
        prop_assume!(bf <= stack.n_frames());
        let a = two_time_stack_with(&stack.view(), &part, &[], bf, Some(GramMethod::Sparse)).unwrap();
        let b = two_time_stack_with(&stack.view(), &part, &[], bf, Some(GramMethod::Dense)).unwrap();
        prop_assert_eq!(a, b);
    }

    /// Two-time: dense = naive, C symmetric, diagonal sums = one-time numerators.
    #[test]
    fn two_time_laws((stack, part) in arb_case()) {
        let t = stack.n_frames();
        let tt = two_time_stack(&stack, &part, &[], 1).unwrap();
        let lin = DenseMultiTau::new(&part, &LagSchedule::linear(t - 1).unwrap());
        let mut lin = lin;
        lin.push_stack(&stack, 0..t).unwrap();
        let sums = lin.sums();
        for (i, &k) in tt.bins.iter().enumerate() {
            let px = part.dynamic().pixels(k);
            let want = naive::two_time(&stack, px);
            let c = tt.c2(i);
            for a in 0..t {
                for b in 0..t {
                    prop_assert!(close(c[[a, b]], want[[a, b]], 1e-12));
                    prop_assert_eq!(c[[a, b]].to_bits(), c[[b, a]].to_bits());
                }
            }
            // Age cut: mean of C(t, t+k) over pairs with |t + k/2 - age| ≤ 1.5.
            let age = t as f64 / 2.0;
            let cut = tt.age_cut(i, age, 1.5, 3);
            for (k, &v) in cut.iter().enumerate() {
                let vals: Vec<f64> = (0..t.saturating_sub(k))
                    .filter(|&a| (a as f64 + k as f64 / 2.0 - age).abs() <= 1.5)
                    .map(|a| want[[a, a + k]])
                    .filter(|x| x.is_finite())
                    .collect();
                let m = if vals.is_empty() { f64::NAN } else { vals.iter().sum::<f64>() / vals.len() as f64 };
                prop_assert!(close(v, m, 1e-12), "age cut lag {k}: {v} vs {m}");
            }
            let g1 = tt.g2_from_diagonals(i);
            for (k, &v) in g1.iter().enumerate() {
                let vals: Vec<f64> = (0..t - k).map(|a| want[[a, a + k]]).filter(|x| x.is_finite()).collect();
                let m = if vals.is_empty() { f64::NAN } else { vals.iter().sum::<f64>() / vals.len() as f64 };
                prop_assert!(close(v, m, 1e-12));
            }
            let diag = tt.diagonal_numerators(i);
            let np = px.len() as f64;
            for (lag, &dv) in diag.iter().enumerate() {
                let g: u128 = (0..sums.cells.n_cells())
                    .filter(|&c| sums.cells.dynamic_of_cell[c] as usize == k)
                    .map(|c| sums.moments[c][lag].g)
                    .sum();
                prop_assert!(close(dv, g as f64 / np, 1e-12));
            }
        }
    }

    /// A per-frame intensity factor a_t (beam drift) leaves the per-frame normalised
    /// two-time map, hence its diagonal g2, unchanged (exact law), for any data.
    #[test]
    fn two_time_ignores_frame_factors(
        (stack, part) in arb_case(),
        factors in prop::collection::vec(1u32..5, 24),
    ) {
        let scaled = scale_frames(&stack, &factors);
        let a = two_time_stack(&stack, &part, &[], 1).unwrap();
        let b = two_time_stack(&scaled, &part, &[], 1).unwrap();
        for i in 0..a.bins.len() {
            for (x, y) in a.c2(i).iter().zip(b.c2(i).iter()) {
                prop_assert!(close(*x, *y, 1e-12), "{x} vs {y}");
            }
            for (x, y) in a.g2_from_diagonals(i).iter().zip(&b.g2_from_diagonals(i)) {
                prop_assert!(close(*x, *y, 1e-12), "{x} vs {y}");
            }
        }
    }

    /// The `frame` estimator (ratio of two-time diagonal sums) cancels a per-frame factor
    /// exactly when the frames are a_t times one pattern y: g2 = N Σy² / (Σy)² at every lag
    /// and level, whatever a_t (the symmetric estimator does not have this property). For
    /// fluctuating speckle the cancellation holds in expectation.
    #[test]
    fn frame_estimator_cancels_drift_on_a_pattern(
        pattern in prop::collection::vec(0u32..6, 12),
        factors in prop::collection::vec(1u32..5, 24),
        t in 2usize..24,
    ) {
        prop_assume!(pattern.iter().any(|&x| x > 0));
        let (pat, fac) = (&pattern, &factors);
        let data: Vec<u32> = (0..t).flat_map(|f| pat.iter().map(move |&y| y * fac[f])).collect();
        let stack = FrameStack::from_u32(t, 3, 4, data).unwrap();
        let part = QPartition::from_labels(3, 4, vec![1; 12], "t").unwrap();
        let sched = LagSchedule::multi_tau(t, 4).unwrap();
        let r = multitau_stack(&stack, &part, &sched, Estimator::Frame).unwrap();
        let (s1, s2): (f64, f64) = pattern.iter().fold((0.0, 0.0), |(a, b), &y| (a + y as f64, b + (y * y) as f64));
        let want = 12.0 * s2 / (s1 * s1);
        for (e, &np) in r.n_pairs.iter().enumerate() {
            if np > 0 {
                prop_assert!(close(r.g2[[e, 0]], want, 1e-12), "{} vs {want}", r.g2[[e, 0]]);
            }
        }
    }

    /// SymmetricStatic = pixel-weighted mean of the brute-force symmetric g2 of each
    /// (dynamic, static) sub-bin.
    #[test]
    fn static_normalisation_matches_naive((stack, part) in arb_case()) {
        let t = stack.n_frames();
        let sched = LagSchedule::linear(t - 1).unwrap();
        let res = multitau_stack(&stack, &part, &sched, Estimator::SymmetricStatic).unwrap();
        let dl = part.dynamic().labels();
        let sl = part.static_map().labels();
        for k in 1..=part.n_bins() {
            for lag in 0..t {
                let mut sub: std::collections::BTreeMap<u32, Vec<u32>> = Default::default();
                for p in 0..dl.len() {
                    if dl[p] as usize == k {
                        sub.entry(sl[p]).or_default().push(p as u32);
                    }
                }
                let (mut num, mut w) = (0.0, 0.0);
                for px in sub.values() {
                    let g = naive::g2_symmetric(&stack, px, lag);
                    if g.is_finite() {
                        num += g * px.len() as f64;
                        w += px.len() as f64;
                    }
                }
                let want = if w > 0.0 { num / w } else { f64::NAN };
                prop_assert!(close(res.g2[[lag, k - 1]], want, 1e-12));
            }
        }
    }

    /// Large counts exercise the f32 flush (counts ~10^3: f32 partial sums flushed every few
    /// frames), the f64 products (level values > 4096) and the switch of the rings to f64
    /// mid-stream (counts ~10^5 arriving in a later chunk): still = naive and = event.
    #[test]
    fn large_counts_stay_exact(
        t in 2usize..40,
        small in prop::collection::vec(0u32..4, 40 * 6),
        big in prop::collection::vec(0u32..1000, 40 * 6),
        mode in 0usize..3,
        split in 1usize..39,
    ) {
        let np = 6;
        // mode 0: counts ≤ 3000 (f32 products, flushed every frame or two); 1: ~10^5 (f64
        // products); 2: ~2·10^6 (level values ≥ 2^24: the rings switch to f64).
        let scale = [3u32, 150, 2500][mode];
        let big: Vec<u32> = big.iter().map(|&x| x * scale).collect();
        // First half small counts, second half large: the lanes widen mid-stream.
        let data: Vec<u32> = (0..t * np)
            .map(|i| if i / np < t / 2 { small[i] } else { big[i] })
            .collect();
        let stack = FrameStack::from_u32(t, 2, 3, data).unwrap();
        let part = QPartition::from_labels(2, 3, vec![1, 1, 2, 2, 2, 1], "t").unwrap();
        let sched = LagSchedule::multi_tau(t, 4).unwrap();
        naive_check(&stack, &part, &sched, Estimator::Symmetric);
        let mut whole = DenseMultiTau::new(&part, &sched);
        whole.push_stack(&stack, 0..t).unwrap();
        let mut parts = DenseMultiTau::new(&part, &sched);
        let s = split.min(t);
        parts.push_stack(&stack, 0..s).unwrap();
        parts.push_stack(&stack, s..t).unwrap();
        prop_assert_eq!(whole.sums(), parts.sums());
        let ev = EventList::from_stack(&stack, 0.1).unwrap();
        let mut e = EventCorrelator::new(&part, &sched, t);
        e.push_events(&ev).unwrap();
        prop_assert_eq!(&whole.sums(), e.sums());
    }

    /// The same result for any thread count.
    #[test]
    fn thread_count_invariance((stack, part) in arb_case()) {
        let t = stack.n_frames();
        let sched = LagSchedule::multi_tau(t, 4).unwrap();
        let run = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            pool.install(|| {
                let mut d = DenseMultiTau::new(&part, &sched);
                d.push_stack(&stack, 0..t).unwrap();
                let ev = EventList::from_stack(&stack, 0.1).unwrap();
                let mut e = EventCorrelator::new(&part, &sched, t);
                e.push_events(&ev).unwrap();
                let tt = two_time_stack(&stack, &part, &[], 1).unwrap();
                (d.sums(), e.sums().clone(), tt)
            })
        };
        prop_assert_eq!(run(1), run(3));
    }
}

/// One pixel's events: frames (strictly increasing) and counts.
type PixelEvents = (Vec<u32>, Vec<u32>);

/// Random pixels' sorted events (frames < t, counts 1..=9 or, for a few, up to 400) with
/// fewer than 4096 photons each: the input domain of the event correlator's fast path.
fn arb_pixels() -> impl Strategy<Value = (usize, Vec<PixelEvents>)> {
    (1usize..1100).prop_flat_map(|t| {
        let pixel = (
            prop::collection::btree_set(0..t as u32, 0..12usize.min(t) + 1),
            prop::collection::vec(prop_oneof![8 => 1u32..10, 1 => 1u32..400], 12),
            0usize..3,
        )
            .prop_map(move |(set, cnt, dense)| {
                // dense == 0: also a burst of consecutive frames near one end (many pairs
                // and head/tail photons at every level).
                let mut fr: Vec<u32> = set.into_iter().collect();
                if dense == 0 {
                    let start = if cnt[0] % 2 == 0 {
                        0
                    } else {
                        t.saturating_sub(9) as u32
                    };
                    fr.extend(start..(start + 9).min(t as u32));
                    fr.sort_unstable();
                    fr.dedup();
                }
                let ct: Vec<u32> = (0..fr.len()).map(|i| cnt[i % cnt.len()]).collect();
                (fr, ct)
            });
        (Just(t), prop::collection::vec(pixel, 1..6))
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// The event correlator's correction-sum fast path = its per-pixel moments (the path
    /// `event_equals_dense` checks against the dense correlator), exactly, for every lag
    /// schedule (level-0-only, with and without lag 0, many levels, trailing partial bins).
    #[test]
    fn event_fast_path_equals_per_pixel_moments(
        (t, pixels) in arb_pixels(),
        which in 0usize..6,
        p in 1usize..5,
    ) {
        let sched = match which {
            0 => LagSchedule::multi_tau(t, 8),
            1 => LagSchedule::multi_tau(t, 2 * p),
            2 => LagSchedule::scikit_beam(p + 8, 2 * p),
            3 => LagSchedule::linear(t.min(70) + p),
            4 => LagSchedule::boost_corr(t, p),
            _ => LagSchedule::xana(t, 4 * p),
        }
        // (Xana needs t > chn: fall back to linear lags.)
        .or_else(|_| LagSchedule::linear(t.min(70) + p))
        .unwrap();
        let pixels: Vec<_> = pixels
            .into_iter()
            .filter(|(_, c)| c.iter().map(|&x| u64::from(x)).sum::<u64>() < 4096)
            .collect();
        let (fast, slow) = super::event::fast_and_slow_moments(&sched, t, &pixels);
        prop_assert_eq!(fast, slow);
    }
}

fn scale_frames(stack: &FrameStack, factors: &[u32]) -> FrameStack {
    let (t, np) = (stack.n_frames(), stack.n_pixels());
    let (r, c) = stack.frame_shape();
    let mut data = vec![0u32; t * np];
    for f in 0..t {
        for p in 0..np {
            data[f * np + p] = stack.get(f, p) * factors[f];
        }
    }
    FrameStack::from_u32(t, r, c, data).unwrap()
}

/// Constant input: g2 = 1 at every lag, every estimator, dense and two-time.
#[test]
fn constant_input_gives_one() {
    let stack = FrameStack::from_u16(40, 3, 3, vec![3; 360]).unwrap();
    let part = QPartition::from_labels(3, 3, vec![1, 1, 2, 2, 2, 1, 0, 1, 2], "t").unwrap();
    let sched = LagSchedule::multi_tau(40, 8).unwrap();
    for est in [
        Estimator::Symmetric,
        Estimator::SymmetricStatic,
        Estimator::Frame,
    ] {
        let r = multitau_stack(&stack, &part, &sched, est).unwrap();
        for (e, row) in r.g2.rows().into_iter().enumerate() {
            for &g in row {
                if r.n_pairs[e] > 0 {
                    assert!((g - 1.0).abs() < 1e-14, "{g}");
                } else {
                    assert!(g.is_nan());
                }
            }
        }
        assert_eq!(r.estimator, est);
        assert!(r.g2_err.iter().all(|&x| x.is_nan() || x.abs() < 1e-14));
    }
    let tt = two_time_stack(&stack, &part, &[], 2).unwrap();
    assert!(tt.c2(0).iter().all(|&x| (x - 1.0).abs() < 1e-14));
    assert!(tt
        .g2_from_diagonals(1)
        .iter()
        .all(|&x| (x - 1.0).abs() < 1e-14));
}

/// Empty bins, zero-count pixels and all-zero frames: NaN with a reason, never a panic.
#[test]
fn degenerate_inputs_are_defined() {
    // Label 2 unused (empty bin); bin 3 has pixels but never a photon; frame 2 is all zero.
    let labels = vec![1, 1, 3, 3, 0, 0];
    let part = QPartition::from_labels(2, 3, labels, "t").unwrap();
    let mut data = vec![0u16; 5 * 6];
    for f in [0, 1, 3, 4] {
        data[f * 6] = 2;
        data[f * 6 + 1] = 1;
    }
    let stack = FrameStack::from_u16(5, 2, 3, data).unwrap();
    let sched = LagSchedule::multi_tau(5, 4).unwrap();
    for est in [
        Estimator::Symmetric,
        Estimator::SymmetricStatic,
        Estimator::Frame,
    ] {
        let r = multitau_stack(&stack, &part, &sched, est).unwrap();
        assert_eq!(r.bin_status[1], BinStatus::Empty);
        assert_eq!(r.bin_status[2], BinStatus::NoPhotons);
        assert!(r.g2.column(1).iter().all(|x| x.is_nan()));
        assert!(r.g2.column(2).iter().all(|x| x.is_nan()));
        assert!(r.g2[[0, 0]].is_finite());
        let ev = EventList::from_stack(&stack, 0.1).unwrap();
        let mut e = EventCorrelator::new(&part, &sched, 5);
        e.push_events(&ev).unwrap();
        assert!(same_bits(&r, &e.finish(est).unwrap()));
    }
    // Two-time: C is NaN on rows/columns of the all-zero frame, finite elsewhere.
    let tt = two_time_stack(&stack, &part, &[], 1).unwrap();
    assert_eq!(tt.bins, vec![1, 3]);
    let c = tt.c2(0);
    assert!(c.row(2).iter().all(|x| x.is_nan()));
    assert!(c[[0, 1]].is_finite());
    assert!(tt.c2(1).iter().all(|x| x.is_nan()));
    assert!(tt.g2_from_diagonals(0)[1].is_finite());
    // Photons in the first frame only: IF is zero at every lag ≥ 1.
    let mut one = vec![0u16; 4 * 2];
    one[0] = 1;
    let s1 = FrameStack::from_u16(4, 1, 2, one).unwrap();
    let p1 = QPartition::from_labels(1, 2, vec![1, 1], "t").unwrap();
    let r = linear_stack(&s1, &p1, 3, Estimator::Symmetric).unwrap();
    assert_eq!(r.bin_status[0], BinStatus::ZeroDenominator);
    assert!(r.g2[[0, 0]].is_finite() && r.g2[[1, 0]].is_nan());
    // Bad requests are errors, not panics.
    assert!(two_time_stack(&stack, &part, &[4], 1).is_err());
    assert!(two_time_stack(&stack, &part, &[], 0).is_err());
    let wrong = FrameStack::from_u16(5, 3, 2, vec![0; 30]).unwrap();
    assert!(DenseMultiTau::new(&part, &sched)
        .push_stack(&wrong, 0..5)
        .is_err());
    assert!(DenseMultiTau::new(&part, &sched)
        .push_frames(&[0; 7])
        .is_err());
}

/// Intensities: per-bin per-frame means and the time-averaged image against brute force.
#[test]
fn intensities_match_brute_force() {
    let mut rng = stream(11, 0);
    let data: Vec<u16> = (0..30 * 20).map(|_| rng.random_range(0..4u16)).collect();
    let stack = FrameStack::from_u16(30, 4, 5, data).unwrap();
    let labels: Vec<u32> = (0..20).map(|p| (p % 3) as u32).collect();
    let part = QPartition::from_labels(4, 5, labels, "t").unwrap();
    let mut d = DenseMultiTau::new(&part, &LagSchedule::multi_tau(30, 4).unwrap());
    d.push_stack(&stack, 0..30).unwrap();
    let st = d.intensity();
    for k in 1..=2 {
        let m = naive::bin_mean_per_frame(&stack, part.dynamic().pixels(k));
        for t in 0..30 {
            assert!((st.intensity_vs_time[[k - 1, t]] - m[t]).abs() < 1e-12);
        }
        let all: f64 = m.iter().sum::<f64>() / 30.0;
        assert!((st.scattering_1d[k - 1] - all).abs() < 1e-12);
        let seg = st.scattering_1d_segments(3);
        let s0: f64 = m[..10].iter().sum::<f64>() / 10.0;
        assert!((seg[[0, k - 1]] - s0).abs() < 1e-12);
    }
    for p in 0..20 {
        let want = (0..30).map(|t| f64::from(stack.get(t, p))).sum::<f64>() / 30.0;
        assert!((st.scattering_2d[p] - want).abs() < 1e-12);
    }
}

/// Shuffled uncorrelated Poisson frames: g2 - 1 consistent with 0 at every lag ≥ 1.
///
/// 64 × 64 pixels, 256 frames of Poisson(0.3), frames shuffled. Each g2 estimate is a mean
/// over 4096 independent pixels, so |g2 - 1| / g2_err is close to a standard normal. Bound:
/// 4.5 sigma per lag (P ≈ 7e-6 per lag; ~30 lags × 2 estimators × 2 paths → < 1e-3 overall),
/// and the mean squared pull within [0.4, 2.0] (a loose check that g2_err is the right size).
#[test]
fn shuffled_poisson_is_uncorrelated() {
    let (t, r, c) = (256, 64, 64);
    let np = r * c;
    let mut rng = stream(2024, 1);
    let pois = Poisson::new(0.3).unwrap();
    let mut frames: Vec<Vec<u16>> = (0..t)
        .map(|_| (0..np).map(|_| pois.sample(&mut rng) as u16).collect())
        .collect();
    // Fisher-Yates shuffle of the frame order.
    for i in (1..t).rev() {
        let j = rng.random_range(0..=i);
        frames.swap(i, j);
    }
    let stack = FrameStack::from_u16(t, r, c, frames.concat()).unwrap();
    let labels: Vec<u32> = (0..np).map(|p| 1 + (p / 1024) as u32).collect();
    let part = QPartition::from_labels(r, c, labels, "t").unwrap();
    let sched = LagSchedule::multi_tau(t, 8).unwrap();
    let ev = EventList::from_stack(&stack, 0.1).unwrap();
    for est in [Estimator::Symmetric, Estimator::Frame] {
        let res = multitau_stack(&stack, &part, &sched, est).unwrap();
        let mut e = EventCorrelator::new(&part, &sched, t);
        e.push_events(&ev).unwrap();
        assert!(same_bits(&res, &e.finish(est).unwrap()));
        let (mut s2, mut n) = (0.0, 0);
        for (i, &lag) in res.lag_frames.iter().enumerate() {
            if lag == 0 || res.n_pairs[i] == 0 {
                continue;
            }
            for d in 0..4 {
                let pull = (res.g2[[i, d]] - 1.0) / res.g2_err[[i, d]];
                assert!(pull.abs() < 4.5, "{est:?} lag {lag} bin {d}: pull {pull}");
                s2 += pull * pull;
                n += 1;
            }
        }
        let msq = s2 / n as f64;
        assert!((0.4..2.0).contains(&msq), "mean squared pull {msq}");
    }
}

/// Closed form: AR(1) complex Gaussian field E_{t+1} = ρ E_t + sqrt(1-ρ²) ξ, ρ = exp(-1/τ),
/// intensity I = |E|² (β = 1, mean 1), photons ~ Poisson(λ I). Then g2(k) - 1 = exp(-2k/τ)
/// for k ≥ 1 (Siegert; shot noise adds only at k = 0).
///
/// 48 × 48 independent pixels, 512 frames, τ = 8 frames, λ = 4. Tolerance: 5 sigma of g2_err
/// per lag up to k = 64 (|pull| < 5: P ≈ 6e-7 per lag if unbiased; the ratio estimator's
/// finite-scan bias, O(τ/T)·c ≈ 2 % of g2 - 1 at k = 1, is below 1 sigma here).
#[test]
fn ar1_field_recovers_closed_form() {
    let (t, r, c) = (512usize, 48usize, 48usize);
    let np = r * c;
    let tau = 8.0f64;
    let rho = (-1.0 / tau).exp();
    let lambda = 4.0;
    let mut data = vec![0u16; t * np];
    for p in 0..np {
        let mut rng = stream(77, p as u64);
        let mut g =
            || -> f64 { rng.sample::<f64, _>(StandardNormal) * std::f64::consts::FRAC_1_SQRT_2 };
        let (mut re, mut im) = (g(), g());
        let s = (1.0 - rho * rho).sqrt();
        let mut counts = Vec::with_capacity(t);
        for _ in 0..t {
            counts.push((re * re + im * im) * lambda);
            re = rho * re + s * g();
            im = rho * im + s * g();
        }
        let mut rng = stream(78, p as u64);
        for (f, &mu) in counts.iter().enumerate() {
            data[f * np + p] = if mu > 0.0 {
                Poisson::new(mu).unwrap().sample(&mut rng) as u16
            } else {
                0
            };
        }
    }
    let stack = FrameStack::from_u16(t, r, c, data).unwrap();
    let part = QPartition::from_labels(r, c, vec![1; np], "t").unwrap();
    let res = multitau_stack(
        &stack,
        &part,
        &LagSchedule::multi_tau(t, 8).unwrap(),
        Estimator::Symmetric,
    )
    .unwrap();
    let mut checked = 0;
    for (i, &lag) in res.lag_frames.iter().enumerate() {
        if lag == 0 || lag > 64 {
            continue;
        }
        // A level-L lag averages 2^L frames: the expected g2 - 1 of binned intensities is
        // the bin-averaged correlation Σ_{a,b} ρ^{2|k·w + a - b|} / w² (w = bin width).
        let w = res.bin_width_frames[i] as i64;
        let k = lag as i64;
        let mut want = 0.0;
        for a in 0..w {
            for b in 0..w {
                want += rho.powi(2 * (k + a - b).unsigned_abs() as i32);
            }
        }
        // Bin-width normalisation of the intensity variance: <I_w²>/<I_w>² - 1 at lag k is
        // (1/w²) Σ ρ^{2|...|} (c = 1 per frame, β = 1).
        want /= (w * w) as f64;
        let got = res.g2[[i, 0]] - 1.0;
        let pull = (got - want) / res.g2_err[[i, 0]];
        assert!(
            pull.abs() < 5.0,
            "lag {lag}: g2-1 = {got}, want {want}, pull {pull}"
        );
        checked += 1;
    }
    assert!(checked >= 15);
}

/// The bundled example (`examples/speckle_small*.npy`, see `examples/README.md`) gives its
/// documented g2: g2(k) - 1 = exp(-2k/τ_q), τ_q = 40/q frames, averaged over the bin width
/// at levels ≥ 1. Tolerance: 5 sigma of g2_err per lag, lags 1..=48 frames (the finite-scan
/// bias of the ratio estimator, O(τ/T), stays below 1 sigma for τ ≤ 40 frames, T = 300).
#[test]
fn bundled_example_has_its_documented_g2() {
    use ndarray::{Array2, Array3};
    let frames: Array3<u8> = ndarray_npy::read_npy(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/speckle_small.npy"
    ))
    .unwrap();
    let labels: Array2<u32> = ndarray_npy::read_npy(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/speckle_small_labels.npy"
    ))
    .unwrap();
    let (t, r, c) = frames.dim();
    assert_eq!((t, r, c), (300, 64, 64));
    let stack = FrameStack::from_u8(t, r, c, frames.iter().copied().collect()).unwrap();
    let part = QPartition::from_labels(r, c, labels.iter().copied().collect(), "example").unwrap();
    assert_eq!(part.n_bins(), 5);
    let res = multitau_stack(
        &stack,
        &part,
        &LagSchedule::multi_tau(t, 8).unwrap(),
        Estimator::Symmetric,
    )
    .unwrap();
    for q in 1..=5u32 {
        let rho = (-f64::from(q) / 40.0).exp();
        for (i, &lag) in res.lag_frames.iter().enumerate() {
            if lag == 0 || lag > 48 {
                continue;
            }
            let w = res.bin_width_frames[i] as i64;
            let k = lag as i64;
            let mut want = 0.0;
            for a in 0..w {
                for b in 0..w {
                    want += rho.powi(2 * (k + a - b).unsigned_abs() as i32);
                }
            }
            want /= (w * w) as f64;
            let d = q as usize - 1;
            let pull = (res.g2[[i, d]] - 1.0 - want) / res.g2_err[[i, d]];
            assert!(
                pull.abs() < 5.0,
                "q {q} lag {lag}: g2-1 {} want {want} pull {pull}",
                res.g2[[i, d]] - 1.0
            );
        }
    }
}

#[test]
fn empty_lag_rows_are_dropped_and_the_rest_kept() {
    // 10 frames with 8 buffers: the schedule reaches lags with no frame pair at level ≥ 1.
    let data: Vec<u16> = (0..10 * 4).map(|i| (i % 3) as u16).collect();
    let stack = FrameStack::from_u16(10, 2, 2, data).unwrap();
    let part = QPartition::from_labels(2, 2, vec![1, 1, 1, 1], "t").unwrap();
    let sched = LagSchedule::multi_tau(10, 8).unwrap();
    let mut mt = DenseMultiTau::new(&part, &sched);
    mt.push_stack(&stack, 0..10).unwrap();
    let full = mt.finish(Estimator::Symmetric).unwrap();
    let trimmed = full.clone().without_empty_lags();
    assert!(trimmed.n_pairs.iter().all(|&n| n > 0));
    let kept: Vec<usize> = (0..full.lag_frames.len())
        .filter(|&i| full.n_pairs[i] > 0)
        .collect();
    assert_eq!(trimmed.lag_frames.len(), kept.len());
    assert!(
        kept.len() < full.lag_frames.len(),
        "the schedule must contain empty lags"
    );
    for (j, &i) in kept.iter().enumerate() {
        assert_eq!(trimmed.lag_frames[j], full.lag_frames[i]);
        assert_eq!(trimmed.g2[[j, 0]].to_bits(), full.g2[[i, 0]].to_bits());
    }
}

/// Two-time on a scan spanning many sparse tiles (700 two-time frames, tiles of 128) and with
/// counts above the f32-exact 4096 (dense f64 path): both methods equal, and equal to the
/// brute-force sum at sampled entries.
#[test]
fn two_time_methods_agree_across_tiles() {
    let (t, r, c) = (700usize, 3usize, 4usize);
    let mut rng = stream(11, 0);
    let mut data: Vec<u16> = (0..t * r * c)
        .map(|_| {
            if rng.random::<f64>() < 0.05 {
                rng.random_range(1..4u16)
            } else {
                0
            }
        })
        .collect();
    data[5 * r * c + 3] = 5000;
    let stack = FrameStack::from_u16(t, r, c, data).unwrap();
    let labels = (0..r * c).map(|p| 1 + (p % 2) as u32).collect();
    let part = QPartition::from_labels(r, c, labels, "t").unwrap();
    let auto = two_time_stack(&stack, &part, &[], 1).unwrap();
    for m in [GramMethod::Sparse, GramMethod::Dense] {
        let forced = two_time_stack_with(&stack.view(), &part, &[], 1, Some(m)).unwrap();
        assert_eq!(forced, auto, "{m:?}");
    }
    for (i, &k) in auto.bins.iter().enumerate() {
        let px = part.dynamic().pixels(k);
        for (a, b) in [(0, 0), (5, 5), (5, 600), (127, 128), (130, 699), (699, 699)] {
            let want: f64 = px
                .iter()
                .map(|&p| f64::from(stack.get(a, p as usize)) * f64::from(stack.get(b, p as usize)))
                .sum();
            assert_eq!(auto.numerator[i][[a, b]], want, "bin {k} ({a}, {b})");
            assert_eq!(auto.numerator[i][[b, a]], want);
        }
    }
}

#[test]
fn event_counts_above_the_range_are_refused_in_correlated_pixels_only() {
    // Two pixels holding 2^32 − 1 (an Eiger gap marker) in every frame: their moments wrap
    // the u128 sums, so the event correlator refuses them unless the pixel is masked.
    let (t, big) = (4usize, u32::MAX);
    let offsets = vec![0u64, t as u64, 2 * t as u64, 2 * t as u64];
    let frames: Vec<u32> = (0..2).flat_map(|_| 0..t as u32).collect();
    let counts = vec![big; 2 * t];
    let ev = EventList::new(
        1,
        3,
        t,
        1.0,
        offsets.clone(),
        frames.clone(),
        counts.clone(),
    )
    .unwrap();
    let sched = LagSchedule::multi_tau(t, 4).unwrap();
    let all = QPartition::from_labels(1, 3, vec![1, 1, 1], "t").unwrap();
    let err = EventCorrelator::new(&all, &sched, t)
        .push_events(&ev)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("row 0, col 0") && err.contains("17179869180"),
        "{err}"
    );
    let err = EventCorrelator::new(&all, &sched, t)
        .push_pixel_block(0, &offsets, &frames, &counts)
        .unwrap_err()
        .to_string();
    assert!(err.contains(&format!("{}", 4 * u64::from(big))), "{err}");
    // Just below the limit is accepted: 2^26 − 1 photons in one pixel.
    let near = vec![(1u32 << 24) - 1, 1 << 24, 1 << 24, 1 << 24];
    let ev1 = EventList::new(1, 1, t, 1.0, vec![0, 4], (0..4).collect(), near).unwrap();
    let one = QPartition::from_labels(1, 1, vec![1], "t").unwrap();
    let mut ec = EventCorrelator::new(&one, &sched, t);
    ec.push_events(&ev1).unwrap();
    // Masked (label 0), the same pixels are only totalled: accepted, and the third pixel's
    // (empty) bin is correlated.
    let masked = QPartition::from_labels(1, 3, vec![0, 0, 1], "t").unwrap();
    let mut ec = EventCorrelator::new(&masked, &sched, t);
    ec.push_events(&ev).unwrap();
    ec.finish(Estimator::Symmetric).unwrap();
}

#[test]
fn bad_pixel_events_are_refused_by_the_correlator_before_any_state_changes() {
    // Three pixels of one bin; the correlator checks each pixel's events in the pass that
    // correlates it. Each mutation of the middle pixel must give an error naming pixel 1,
    // from push_pixel_block and block_sums alike, and leave the correlator as it was.
    let (t, sched) = (16usize, LagSchedule::multi_tau(16, 4).unwrap());
    let part = QPartition::from_labels(1, 3, vec![1, 1, 1], "t").unwrap();
    let offsets = vec![0u64, 3, 6, 8];
    let good_frames = vec![0u32, 4, 9, 1, 2, 15, 3, 7];
    let good_counts = vec![1u32, 2, 1, 1, 3, 1, 1, 1];
    let mutations: [(&str, usize, u32, bool); 3] = [
        ("frames of pixel 1 are not strictly increasing", 4, 1, true),
        ("frame index of pixel 1", 5, 16, true),
        ("count of pixel 1", 4, 0, false),
    ];
    let mut reference = EventCorrelator::new(&part, &sched, t);
    reference
        .push_pixel_block(0, &offsets, &good_frames, &good_counts)
        .unwrap();
    let want = reference.finish(Estimator::Symmetric).unwrap();
    for (msg, at, value, in_frames) in mutations {
        let (mut fr, mut ct) = (good_frames.clone(), good_counts.clone());
        if in_frames {
            fr[at] = value;
        } else {
            ct[at] = value;
        }
        let mut ec = EventCorrelator::new(&part, &sched, t);
        let err = ec
            .push_pixel_block(0, &offsets, &fr, &ct)
            .unwrap_err()
            .to_string();
        assert!(err.contains(msg), "{msg}: {err}");
        let err = ec
            .block_sums(0, &offsets, &fr, &ct)
            .unwrap_err()
            .to_string();
        assert!(err.contains(msg), "{msg}: {err}");
        // Nothing of the refused block stayed: the good block now gives the reference, bit
        // for bit.
        assert_eq!(ec.pixel_totals(), &[0, 0, 0]);
        assert_eq!(ec.sums(), EventCorrelator::new(&part, &sched, t).sums());
        ec.push_pixel_block(0, &offsets, &good_frames, &good_counts)
            .unwrap();
        assert!(
            same_bits(&ec.finish(Estimator::Symmetric).unwrap(), &want),
            "{msg}"
        );
    }
}
