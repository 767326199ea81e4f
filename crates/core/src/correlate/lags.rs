//! Lag schedules: which lags a multi-tau correlator computes, as plain data.
//!
//! A schedule is a list of *levels*. Level L works on frames binned by 2^L (level-L frame m is
//! the sum of raw frames m·2^L .. (m+1)·2^L - 1; frames are paired from frame 0 and a trailing
//! incomplete bin is dropped). Each level lists its *in-level lags* k: level L computes the
//! lag k·2^L frames from level-L frame pairs (s, s + k). The output lag axis is the
//! concatenation of the levels in order; lags are in frames (multiply by the frame time for
//! the delay in seconds).
//!
//! Presets reproduce three packages' lag lists exactly (each checked against the package's
//! source, see the tests):
//! - [`LagSchedule::scikit_beam`]: `skbeam.core.utils.multi_tau_lags(num_levels, num_bufs)`:
//!   level 0 lags 0..num_bufs-1, level L ≥ 1 in-level lags num_bufs/2..num_bufs-1 (binning
//!   starts at lag num_bufs: 8 for the default 8 buffers). [`LagSchedule::multi_tau`] is this
//!   scheme and xpcs-twin's default.
//! - [`LagSchedule::boost_corr`]: `boost_corr.correlator.utils.gen_tau_bin(frame_num, dpl=4)`:
//!   level 0 lags 1..2·dpl, level L ≥ 1 in-level lags dpl+1..2·dpl, stopping at the first lag
//!   x·2^L ≥ ⌊T/2^L⌋·2^L (no lag 0; binning starts at lag 10).
//! - [`LagSchedule::xana`]: `Xana.XpcsAna.pyxpcs3.pyxpcs(chn=16)`: level 0 lags 1..chn,
//!   level r ≥ 1 in-level lags chn/2+1..chn for r < ⌈log2(T/chn)⌉ + 1, cut as Xana cuts it
//!   (binning starts at lag 18).
//!
//! Lists from different packages differ: compare g2 only at the same lag and bin width.
//!
//! Reference: K. Schätzel, M. Drewel & S. Stimac, J. Mod. Opt. 35, 711 (1988) (multiple-tau).

use crate::error::{Error, Result};

/// One lag of a schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LagEntry {
    /// Level (frames binned by 2^level).
    pub level: usize,
    /// Lag in level-frames.
    pub lag_in_level: usize,
    /// Lag in raw frames: `lag_in_level << level`.
    pub lag_frames: u64,
    /// Frames summed into one level-frame: `1 << level`.
    pub bin_width_frames: u64,
}

/// Which lags to compute, level by level (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LagSchedule {
    /// In-level lags of each level, strictly increasing within a level.
    levels: Vec<Vec<usize>>,
    /// A name for outputs ("multi_tau(8)", "scikit_beam", "boost_corr", "xana", "linear").
    name: String,
}

impl LagSchedule {
    /// A schedule from explicit in-level lags per level; `name` is recorded in outputs.
    pub fn from_levels(levels: Vec<Vec<usize>>, name: &str) -> Result<Self> {
        let origin = "lag schedule";
        if levels.is_empty() || levels.len() > 40 {
            return Err(Error::out_of_range(
                origin,
                "number of levels",
                levels.len(),
                "1..=40",
            ));
        }
        for (l, lags) in levels.iter().enumerate() {
            if lags.windows(2).any(|w| w[1] <= w[0]) {
                return Err(Error::invalid(
                    origin,
                    format!("lags of level {l} are not strictly increasing"),
                ));
            }
            if let Some(&k) = lags.last() {
                if k > 1 << 20 {
                    return Err(Error::out_of_range(
                        origin,
                        format!("lag of level {l}"),
                        k,
                        "≤ 2^20 level-frames",
                    ));
                }
            }
        }
        if levels.iter().all(Vec::is_empty) {
            return Err(Error::invalid(origin, "no lag at any level"));
        }
        Ok(LagSchedule {
            levels,
            name: name.to_string(),
        })
    }

    /// xpcs-twin's default multi-tau scheme (the scikit-beam scheme), with enough levels that
    /// the longest lag reaches the scan: level 0 lags 0..num_bufs-1, then num_bufs/2 lags per
    /// level, levels added while their first lag (num_bufs/2)·2^L is below `n_frames`.
    ///
    /// `num_bufs` must be even and ≥ 2 (default 8).
    pub fn multi_tau(n_frames: usize, num_bufs: usize) -> Result<Self> {
        check_bufs(num_bufs)?;
        let mut num_levels = 1;
        while num_levels < 40 && ((num_bufs / 2) << num_levels) < n_frames.max(1) {
            num_levels += 1;
        }
        let mut s = Self::scikit_beam(num_levels, num_bufs)?;
        s.name = format!("multi_tau(num_bufs={num_bufs})");
        Ok(s)
    }

    /// scikit-beam's `multi_tau_lags(num_levels, num_bufs)`: level 0 lags 0..num_bufs-1,
    /// levels 1..num_levels-1 in-level lags num_bufs/2..num_bufs-1.
    pub fn scikit_beam(num_levels: usize, num_bufs: usize) -> Result<Self> {
        check_bufs(num_bufs)?;
        if num_levels == 0 || num_levels > 40 {
            return Err(Error::out_of_range(
                "lag schedule",
                "num_levels",
                num_levels,
                "1..=40",
            ));
        }
        let mut levels = vec![(0..num_bufs).collect::<Vec<_>>()];
        for _ in 1..num_levels {
            levels.push((num_bufs / 2..num_bufs).collect());
        }
        Self::from_levels(levels, "scikit_beam")
    }

    /// boost_corr's `gen_tau_bin(frame_num, dpl)` (APS 8-ID-I; default `dpl` = 4).
    pub fn boost_corr(n_frames: usize, dpl: usize) -> Result<Self> {
        if dpl == 0 || dpl > 1 << 16 {
            return Err(Error::out_of_range("lag schedule", "dpl", dpl, "1..=65536"));
        }
        // Level 0 carries lags 1..dpl, then (like every level) dpl+1..2dpl, each kept while
        // x·2^L < ⌊T/2^L⌋·2^L; the first lag that fails ends the whole list.
        let mut levels: Vec<Vec<usize>> = vec![(1..=dpl).collect()];
        let mut level = 0usize;
        'outer: loop {
            let scl = 1usize << level;
            let limit = n_frames / scl * scl;
            for x in dpl + 1..=2 * dpl {
                if x * scl >= limit {
                    break 'outer;
                }
                if levels.len() <= level {
                    levels.push(Vec::new());
                }
                levels[level].push(x);
            }
            level += 1;
            if level > 39 {
                break;
            }
        }
        Self::from_levels(levels, "boost_corr")
    }

    /// Xana's lag list (`pyxpcs3.pyxpcs`, channels `chn`, default 16, even).
    pub fn xana(n_frames: usize, chn: usize) -> Result<Self> {
        check_bufs(chn)?;
        if n_frames <= chn {
            return Err(Error::out_of_range(
                "lag schedule",
                "n_frames for the Xana preset",
                n_frames,
                format!("> chn = {chn}"),
            ));
        }
        let chn2 = chn / 2;
        // srch = ceil(log2(nf/chn)) + 1 registers; lags: 1..chn, then 2^r·(chn2+1..chn).
        let srch = ((n_frames as f64 / chn as f64).log2().ceil() as usize) + 1;
        let mut lags: Vec<(usize, usize)> = (1..=chn).map(|k| (0, k)).collect();
        for r in 1..srch {
            lags.extend((chn2 + 1..=chn).map(|k| (r, k)));
        }
        // Xana keeps the first rcr - (#lags of the last register beyond nf) - 1 entries.
        let last_over = (chn2 + 1..=chn)
            .filter(|&k| (k << (srch - 1)) > n_frames && srch > 1)
            .count();
        let keep = lags.len() - last_over - 1;
        lags.truncate(keep);
        let mut levels = vec![Vec::new(); srch];
        for (r, k) in lags {
            levels[r].push(k);
        }
        while levels.last().is_some_and(Vec::is_empty) {
            levels.pop();
        }
        Self::from_levels(levels, "xana")
    }

    /// Every lag 0..=max_lag at level 0 (linear g2, for short stacks).
    pub fn linear(max_lag: usize) -> Result<Self> {
        Self::from_levels(vec![(0..=max_lag).collect()], "linear")
    }

    /// The schedule's name, recorded in outputs.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Number of levels.
    pub fn n_levels(&self) -> usize {
        self.levels.len()
    }

    /// In-level lags of level `l`.
    pub fn level_lags(&self, l: usize) -> &[usize] {
        &self.levels[l]
    }

    /// All lags in output order.
    pub fn entries(&self) -> Vec<LagEntry> {
        let mut out = Vec::new();
        for (level, lags) in self.levels.iter().enumerate() {
            for &k in lags {
                out.push(LagEntry {
                    level,
                    lag_in_level: k,
                    lag_frames: (k as u64) << level,
                    bin_width_frames: 1 << level,
                });
            }
        }
        out
    }

    /// Number of lags.
    pub fn n_lags(&self) -> usize {
        self.levels.iter().map(Vec::len).sum()
    }

    /// Lags in frames, in output order.
    pub fn lag_frames(&self) -> Vec<u64> {
        self.entries().iter().map(|e| e.lag_frames).collect()
    }
}

fn check_bufs(num_bufs: usize) -> Result<()> {
    if num_bufs < 2 || num_bufs % 2 != 0 || num_bufs > 1 << 16 {
        return Err(Error::out_of_range(
            "lag schedule",
            "num_bufs",
            num_bufs,
            "an even number in 2..=65536",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// scikit-beam `skbeam/core/utils.py::multi_tau_lags(3, 8)` returns
    /// `lag_steps = [0..7, 8, 10, 12, 14, 16, 20, 24, 28]` and `tot_channels = 16`
    /// (read from scikit-beam/scikit-beam at commit c4c306a: level 1 is arange(num_bufs),
    /// level i ≥ 2 is (num_bufs/2 + j)·2^(i-1), j < num_bufs/2).
    #[test]
    fn scikit_beam_lags() {
        let s = LagSchedule::scikit_beam(3, 8).unwrap();
        assert_eq!(
            s.lag_frames(),
            vec![0, 1, 2, 3, 4, 5, 6, 7, 8, 10, 12, 14, 16, 20, 24, 28]
        );
        let s = LagSchedule::scikit_beam(2, 4).unwrap();
        assert_eq!(s.lag_frames(), vec![0, 1, 2, 3, 4, 6]);
        assert!(LagSchedule::scikit_beam(3, 7).is_err());
        // Default multi-tau: levels until (num_bufs/2)·2^L ≥ T.
        let d = LagSchedule::multi_tau(100, 8).unwrap();
        assert_eq!(d.n_levels(), 5);
        assert_eq!(*d.lag_frames().last().unwrap(), 7 << 4);
    }

    /// boost_corr `src/boost_corr/correlator/utils.py::gen_tau_bin(100, dpl=4)`
    /// (AZjk/boost_corr at commit ce33e38): 1..4 then x·2^L for x in 5..=8, stopping at the
    /// first x·2^L ≥ (100 // 2^L)·2^L; at L = 4 that is 96 ≥ 96.
    #[test]
    fn boost_corr_lags() {
        let s = LagSchedule::boost_corr(100, 4).unwrap();
        assert_eq!(
            s.lag_frames(),
            vec![1, 2, 3, 4, 5, 6, 7, 8, 10, 12, 14, 16, 20, 24, 28, 32, 40, 48, 56, 64, 80]
        );
        let e = s.entries();
        assert_eq!(e[8].bin_width_frames, 2);
        assert_eq!(e[20].bin_width_frames, 16);
        // 10 frames: 1..8 at level 0, then 10 ≥ (10//2)·2 stops.
        let s = LagSchedule::boost_corr(10, 4).unwrap();
        assert_eq!(s.lag_frames(), vec![1, 2, 3, 4, 5, 6, 7, 8]);
    }

    /// Xana `Xana/XpcsAna/pyxpcs3.py::pyxpcs(nf=100, chn=16)` (reiserm/Xana at commit
    /// 152d26b): srch = ceil(log2(100/16)) + 1 = 4, rcr = 16 + 8·3 = 40, lag = 1..16,
    /// 2·(9..16), 4·(9..16), 8·(9..16); four lags of the last register exceed 100, so
    /// rcrc = 40 - 4 - 1 = 35 entries are kept (ending at 88).
    #[test]
    fn xana_lags() {
        let s = LagSchedule::xana(100, 16).unwrap();
        let mut want: Vec<u64> = (1..=16).collect();
        want.extend((9..=16).map(|k| 2 * k));
        want.extend((9..=16).map(|k| 4 * k));
        want.extend([72, 80, 88]);
        assert_eq!(s.lag_frames(), want);
        assert_eq!(s.entries()[16].bin_width_frames, 2);
    }

    #[test]
    fn linear_and_errors() {
        assert_eq!(
            LagSchedule::linear(3).unwrap().lag_frames(),
            vec![0, 1, 2, 3]
        );
        assert!(LagSchedule::from_levels(vec![vec![2, 1]], "x").is_err());
        assert!(LagSchedule::from_levels(vec![vec![]], "x").is_err());
        assert!(LagSchedule::xana(10, 16).is_err());
    }
}
