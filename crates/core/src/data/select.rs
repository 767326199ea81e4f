//! Frame ranges as the APS 8-ID-I pipeline (boost_corr) names them: `begin`, `end`, `stride`,
//! `avg`.
//!
//! Input: any [`FrameSource`] of `n` raw frames and a [`FrameSelection`]. Output: a
//! [`FrameSource`] ([`SelectedFrames`]) of `n_out` frames, streamed (one raw frame buffer).
//!
//! Semantics (boost_corr `XpcsDataset.update_batch_info` / `get_raw_index`):
//! - `begin`: first raw frame (0-based, inclusive); `end`: one past the last raw frame
//!   (exclusive), `None` = the end of the file, clamped to it.
//! - `stride` keeps every `stride`-th raw frame from `begin` on (`raw[begin:end:stride]`);
//!   `avg` then merges `avg` consecutive kept frames into one.
//! - The span `end − begin` is rounded down to a multiple of `stride × avg`, so every output
//!   frame merges exactly `avg` kept frames: `n_out = ⌊(end − begin) / (stride × avg)⌋`, and output
//!   frame m holds raw frames `begin + (m·avg + j)·stride`, j = 0..avg.
//! - Time between output frames: `frame_time × stride × avg` (the APS results file stores the raw
//!   `frame_time` with `stride_frame` and `avg_frame`, and the viewer multiplies).
//!
//! One difference, by design: boost_corr *averages* the `avg` frames (floats); here they are
//! *summed* (integer photon counts, exact). g2 and its errors are ratios of intensity moments,
//! invariant under scaling all intensities, so they are identical; the mean intensities of a
//! results file are divided by `avg` when written (counts per raw frame, as boost_corr's).

use super::events::EventList;
use super::frames::{pixel_maxima_by_frames, read_frames_singly, FrameSource, StackView};
use crate::error::{Error, Result};

/// Which raw frames to correlate, in boost_corr's terms (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameSelection {
    /// First raw frame (0-based, inclusive).
    pub begin: usize,
    /// One past the last raw frame; `None` = to the end of the file.
    pub end: Option<usize>,
    /// Keep every `stride`-th raw frame (≥ 1).
    pub stride: usize,
    /// Merge `avg` consecutive kept frames into one (≥ 1).
    pub avg: usize,
}

impl Default for FrameSelection {
    fn default() -> Self {
        FrameSelection {
            begin: 0,
            end: None,
            stride: 1,
            avg: 1,
        }
    }
}

/// A [`FrameSelection`] resolved against a file of `n_raw` frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResolvedSelection {
    /// First raw frame.
    pub begin: usize,
    /// One past the last raw frame used (after rounding to whole output frames).
    pub end: usize,
    /// Stride (≥ 1).
    pub stride: usize,
    /// Frames merged per output frame (≥ 1).
    pub avg: usize,
    /// Output frames.
    pub n_out: usize,
}

impl ResolvedSelection {
    /// Every frame of a series of `n` frames.
    pub fn all(n: usize) -> Self {
        ResolvedSelection {
            begin: 0,
            end: n,
            stride: 1,
            avg: 1,
            n_out: n,
        }
    }

    /// Raw frame periods per output frame: `stride × avg`.
    pub fn frames_per_output(&self) -> usize {
        self.stride * self.avg
    }
}

impl FrameSelection {
    /// True when every frame is used unchanged.
    pub fn is_all(&self) -> bool {
        *self == FrameSelection::default()
    }

    /// Resolves against `n_raw` frames (`origin` names the file in errors): `end` clamped to
    /// `n_raw`, the span rounded down to whole output frames; refuses stride or avg of 0 and
    /// a range without a single output frame.
    pub fn resolve(&self, n_raw: usize, origin: &str) -> Result<ResolvedSelection> {
        for (f, v) in [("--stride", self.stride), ("--avg", self.avg)] {
            if v == 0 {
                return Err(Error::out_of_range(origin, f, v, "≥ 1"));
            }
        }
        let end = self.end.map_or(n_raw, |e| e.min(n_raw));
        if self.begin >= end {
            return Err(Error::out_of_range(
                origin,
                "--begin",
                self.begin,
                format!("< end = {end} (the file holds {n_raw} frames)"),
            ));
        }
        let per = self
            .stride
            .checked_mul(self.avg)
            .ok_or_else(|| Error::invalid(origin, "--stride × --avg overflows"))?;
        let n_out = (end - self.begin) / per;
        if n_out == 0 {
            return Err(Error::invalid(
                origin,
                format!(
                    "frames {}..{end} hold no output frame of stride {} × avg {} = {per} raw frames",
                    self.begin, self.stride, self.avg
                ),
            ));
        }
        Ok(ResolvedSelection {
            begin: self.begin,
            end: self.begin + n_out * per,
            stride: self.stride,
            avg: self.avg,
            n_out,
        })
    }
}

/// A [`FrameSource`] delivering the frames of a [`ResolvedSelection`] of another source:
/// skips to `begin`, keeps every `stride`-th frame, sums `avg` consecutive kept frames
/// (saturating at 2³² − 1). Memory: one raw frame.
pub struct SelectedFrames<'a> {
    inner: &'a mut dyn FrameSource,
    sel: ResolvedSelection,
    next_out: usize,
    /// Raw frames of `inner` consumed so far.
    pos: usize,
    raw: Vec<u32>,
}

impl<'a> SelectedFrames<'a> {
    /// Wraps `inner` (which must not have been read yet).
    pub fn new(inner: &'a mut dyn FrameSource, sel: ResolvedSelection) -> Result<Self> {
        if sel.end > inner.n_frames() {
            return Err(Error::out_of_range(
                "frame selection",
                "end",
                sel.end,
                format!("≤ {} frames", inner.n_frames()),
            ));
        }
        let (r, c) = inner.frame_shape();
        Ok(SelectedFrames {
            inner,
            sel,
            next_out: 0,
            pos: 0,
            raw: vec![0; r * c],
        })
    }

    fn read_raw(&mut self, t: usize) -> Result<()> {
        if t > self.pos {
            self.inner.skip_frames(t - self.pos)?;
            self.pos = t;
        }
        if !self.inner.read_next(&mut self.raw)? {
            return Err(Error::invalid(
                "frame selection",
                format!("the source ended before frame {t}"),
            ));
        }
        self.pos += 1;
        Ok(())
    }
}

impl FrameSource for SelectedFrames<'_> {
    fn frame_shape(&self) -> (usize, usize) {
        self.inner.frame_shape()
    }
    fn n_frames(&self) -> usize {
        self.sel.n_out
    }
    fn read_next(&mut self, out: &mut [u32]) -> Result<bool> {
        if self.next_out >= self.sel.n_out {
            return Ok(false);
        }
        let m = self.next_out;
        for j in 0..self.sel.avg {
            let t = self.sel.begin + (m * self.sel.avg + j) * self.sel.stride;
            self.read_raw(t)?;
            if j == 0 {
                out.copy_from_slice(&self.raw);
            } else {
                for (o, &x) in out.iter_mut().zip(&self.raw) {
                    *o = o.saturating_add(x);
                }
            }
        }
        self.next_out += 1;
        Ok(true)
    }
    fn read_frames(&mut self, out: &mut [u32]) -> Result<usize> {
        if self.sel.stride != 1 || self.sel.avg != 1 {
            return read_frames_singly(self, out);
        }
        // Consecutive raw frames: the inner source's own batch read.
        let n = self.raw.len();
        let left = self.sel.n_out - self.next_out;
        let want = out.len().checked_div(n).map_or(0, |k| k.min(left));
        if want == 0 {
            return Ok(0);
        }
        let t = self.sel.begin + self.next_out;
        if t > self.pos {
            self.inner.skip_frames(t - self.pos)?;
            self.pos = t;
        }
        let mut got = 0;
        while got < want {
            let k = self.inner.read_frames(&mut out[got * n..want * n])?;
            if k == 0 {
                return Err(Error::invalid(
                    "frame selection",
                    format!("the source ended before frame {}", t + got),
                ));
            }
            got += k;
        }
        self.pos += got;
        self.next_out += got;
        Ok(got)
    }
    fn count_bound(&self) -> u32 {
        // A sum of `avg` raw frames (saturating, as read_next sums).
        let avg = u32::try_from(self.sel.avg).unwrap_or(u32::MAX);
        self.inner.count_bound().saturating_mul(avg)
    }
    fn lend_frames(
        &mut self,
        batch: usize,
        f: &mut dyn FnMut(&StackView<'_>) -> Result<()>,
    ) -> Option<Result<()>> {
        // Only a selection that is the whole of a source not read yet lends its frames.
        let whole = self.sel.begin == 0
            && self.sel.stride == 1
            && self.sel.avg == 1
            && self.sel.end == self.inner.n_frames()
            && self.pos == 0
            && self.next_out == 0;
        if !whole {
            return None;
        }
        let r = self.inner.lend_frames(batch, f)?;
        self.pos = self.sel.end;
        self.next_out = self.sel.n_out;
        Some(r)
    }
    fn pixel_maxima(&mut self) -> Result<Vec<u32>> {
        // The inner source's own scan when the rest of the selection is the rest of it.
        let t = self.sel.begin + self.next_out;
        let to_end = self.sel.end == self.inner.n_frames();
        if self.sel.stride != 1 || self.sel.avg != 1 || !to_end {
            return pixel_maxima_by_frames(self);
        }
        if t > self.pos {
            self.inner.skip_frames(t - self.pos)?;
        }
        let max = self.inner.pixel_maxima()?;
        self.pos = self.sel.end;
        self.next_out = self.sel.n_out;
        Ok(max)
    }
}

/// The largest count per pixel per frame the correlators accept (2²⁰ − 1): their exact integer
/// sums of products stay within u64 for any realistic scan below it. Larger values are the
/// detector's gap/overflow markers (2¹⁶ − 1, 2³² − 1) that the detector mask removes.
pub const MAX_COUNT: u32 = (1 << 20) - 1;

/// A [`FrameSource`] that refuses counts above [`MAX_COUNT`] in the pixels that `valid` keeps
/// (an error naming the frame, the pixel and the value; never a wrapped sum).
pub struct CheckedCounts<'a> {
    inner: &'a mut dyn FrameSource,
    valid: &'a [bool],
    next: usize,
    origin: String,
}

impl<'a> CheckedCounts<'a> {
    /// Wraps `inner`; `valid` has one flag per pixel (true = correlated).
    pub fn new(inner: &'a mut dyn FrameSource, valid: &'a [bool], origin: &str) -> Self {
        CheckedCounts {
            inner,
            valid,
            next: 0,
            origin: origin.to_string(),
        }
    }
}

impl FrameSource for CheckedCounts<'_> {
    fn frame_shape(&self) -> (usize, usize) {
        self.inner.frame_shape()
    }
    fn n_frames(&self) -> usize {
        self.inner.n_frames()
    }
    fn read_next(&mut self, out: &mut [u32]) -> Result<bool> {
        if !self.inner.read_next(out)? {
            return Ok(false);
        }
        if let Some((p, x)) = first_over_range(out, self.valid) {
            let cols = self.inner.frame_shape().1;
            return Err(count_out_of_range(&self.origin, self.next, p, cols, x));
        }
        self.next += 1;
        Ok(true)
    }
    fn read_frames(&mut self, out: &mut [u32]) -> Result<usize> {
        use rayon::prelude::*;
        let k = self.inner.read_frames(out)?;
        let (rows, cols) = self.inner.frame_shape();
        let n_pix = rows * cols;
        if n_pix == 0 || k == 0 || self.inner.count_bound() <= MAX_COUNT {
            self.next += k;
            return Ok(k);
        }
        let valid = self.valid;
        // The first offending (frame, pixel) in reading order, found in parallel.
        let bad = out[..k * n_pix]
            .par_chunks(n_pix)
            .enumerate()
            .find_map_first(|(i, frame)| first_over_range(frame, valid).map(|(p, x)| (i, p, x)));
        if let Some((i, p, x)) = bad {
            return Err(count_out_of_range(&self.origin, self.next + i, p, cols, x));
        }
        self.next += k;
        Ok(k)
    }
    fn skip_frames(&mut self, n: usize) -> Result<()> {
        self.next += n;
        self.inner.skip_frames(n)
    }
    fn lend_frames(
        &mut self,
        batch: usize,
        f: &mut dyn FnMut(&StackView<'_>) -> Result<()>,
    ) -> Option<Result<()>> {
        // Lent frames are not checked: only a source whose words cannot exceed the range.
        if self.inner.count_bound() > MAX_COUNT {
            return None;
        }
        let next = &mut self.next;
        self.inner.lend_frames(batch, &mut |v: &StackView<'_>| {
            *next += v.n_frames();
            f(v)
        })
    }
    fn count_bound(&self) -> u32 {
        // Pixels that are not kept pass any count through: the inner bound, not MAX_COUNT.
        self.inner.count_bound()
    }
}

/// The first (pixel, count) of `frame` above [`MAX_COUNT`] in a pixel that `valid` keeps
/// (pixels beyond `valid` are kept). A vectorised maximum first: almost every frame has
/// nothing to report.
fn first_over_range(frame: &[u32], valid: &[bool]) -> Option<(usize, u32)> {
    if frame.iter().fold(0, |m, &x| m.max(x)) <= MAX_COUNT {
        return None;
    }
    frame
        .iter()
        .enumerate()
        .find(|&(p, &x)| x > MAX_COUNT && valid.get(p).copied().unwrap_or(true))
        .map(|(p, &x)| (p, x))
}

/// The error for a count above [`MAX_COUNT`] at (frame, pixel) of a frame `cols` wide.
fn count_out_of_range(origin: &str, frame: usize, pixel: usize, cols: usize, x: u32) -> Error {
    let cols = cols.max(1);
    Error::out_of_range(
        origin,
        format!(
            "frame {frame} pixel (row {}, col {})",
            pixel / cols,
            pixel % cols
        ),
        x,
        format!("≤ {MAX_COUNT} counts (a gap or overflow marker? mask the pixel)"),
    )
}

/// [`CheckedCounts`]' rule on photons already turned into events: a count above
/// [`MAX_COUNT`] in a pixel that `valid` keeps is an error naming its frame and pixel.
pub fn check_event_counts(events: &EventList, valid: &[bool], origin: &str) -> Result<()> {
    let cols = events.frame_shape().1;
    for p in 0..events.n_pixels() {
        if !valid.get(p).copied().unwrap_or(true) {
            continue;
        }
        let (frames, counts) = events.pixel(p);
        if let Some(i) = counts.iter().position(|&x| x > MAX_COUNT) {
            return Err(count_out_of_range(
                origin,
                frames[i] as usize,
                p,
                cols,
                counts[i],
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::FrameStack;
    use proptest::prelude::*;

    proptest! {
        /// The batch read of the count check (frames checked in parallel) accepts and refuses
        /// exactly what the frame-by-frame check does, with the same message (the first
        /// offending frame and pixel in reading order), for any batch size and thread count.
        #[test]
        fn batch_count_check_equals_frame_by_frame(
            n in 1usize..12,
            batch in 1usize..5,
            big in prop::collection::vec((0usize..12 * 6, prop::sample::select(vec![MAX_COUNT, MAX_COUNT + 1, u32::MAX])), 0..3),
            masked in prop::collection::vec(any::<bool>(), 6),
        ) {
            let mut data: Vec<u32> = (0..n * 6).map(|i| (i * 5 % 7) as u32).collect();
            for &(i, v) in &big {
                if i < data.len() {
                    data[i] = v;
                }
            }
            let stack = FrameStack::from_u32(n, 2, 3, data).unwrap();
            let valid: Vec<bool> = masked.iter().map(|m| !m).collect();
            let mut src = stack.frames();
            let mut one = CheckedCounts::new(&mut src, &valid, "x");
            let mut want = Vec::new();
            let mut buf = vec![0u32; 6];
            let want_err = loop {
                match one.read_next(&mut buf) {
                    Ok(true) => want.extend_from_slice(&buf),
                    Ok(false) => break None,
                    Err(e) => break Some(e.to_string()),
                }
            };
            for threads in [1, 2] {
                let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
                let (got, got_err, bound) = pool.install(|| {
                    let mut src = stack.frames();
                    let mut many = CheckedCounts::new(&mut src, &valid, "x");
                    let bound = many.count_bound();
                    let mut got = Vec::new();
                    let mut buf = vec![0u32; batch * 6];
                    let err = loop {
                        match many.read_frames(&mut buf) {
                            Ok(0) => break None,
                            Ok(k) => got.extend_from_slice(&buf[..k * 6]),
                            Err(e) => break Some(e.to_string()),
                        }
                    };
                    (got, err, bound)
                });
                prop_assert_eq!(&got_err, &want_err);
                if want_err.is_none() {
                    prop_assert_eq!(&got, &want);
                    // The bound holds for what passes, masked pixels' markers included.
                    prop_assert!(got.iter().all(|&x| x <= bound));
                }
            }
        }

        /// Every output frame equals the brute-force sum of the raw frames the definition
        /// names, for any begin/end/stride/avg.
        #[test]
        fn selection_matches_definition(n in 1usize..40, begin in 0usize..40, end in prop::option::of(0usize..50),
                                        stride in 1usize..5, avg in 1usize..5) {
            let data: Vec<u16> = (0..n * 2).map(|i| (i * 7 % 13) as u16).collect();
            let stack = FrameStack::from_u16(n, 1, 2, data).unwrap();
            let sel = FrameSelection { begin, end, stride, avg };
            let Ok(r) = sel.resolve(n, "t") else {
                let e = end.map_or(n, |e| e.min(n));
                prop_assert!(begin >= e || (e - begin) / (stride * avg) == 0);
                return Ok(());
            };
            let mut src = stack.frames();
            let mut s = SelectedFrames::new(&mut src, r).unwrap();
            let mut out = vec![0u32; 2];
            for m in 0..r.n_out {
                prop_assert!(s.read_next(&mut out).unwrap());
                for (p, &got) in out.iter().enumerate() {
                    let want: u32 = (0..avg).map(|j| stack.get(begin + (m * avg + j) * stride, p)).sum();
                    prop_assert_eq!(got, want);
                }
            }
            prop_assert!(!s.read_next(&mut out).unwrap());
            prop_assert!(r.end <= n);
        }
    }

    #[test]
    fn boost_corr_rounding() {
        // 1000 frames from 10, stride 3, avg 4: span 990 → 82 output frames of 12 raw ones.
        let r = FrameSelection {
            begin: 10,
            end: None,
            stride: 3,
            avg: 4,
        }
        .resolve(1000, "t")
        .unwrap();
        assert_eq!((r.n_out, r.end), (82, 10 + 82 * 12));
        assert!(FrameSelection {
            stride: 0,
            ..Default::default()
        }
        .resolve(10, "t")
        .is_err());
    }

    /// The count rule on frames ([`CheckedCounts`]) and on the same photons as events
    /// ([`check_event_counts`]) refuse the same (first) value with the same message, and
    /// both accept it in a pixel that is not kept.
    #[test]
    fn count_rule_is_the_same_for_frames_and_events() {
        let (t, r, c) = (3usize, 2usize, 2usize);
        let mut data = vec![1u32; t * r * c];
        data[r * c + 3] = MAX_COUNT + 1; // frame 1, pixel (1, 1)
        let stack = FrameStack::from_u32(t, r, c, data).unwrap();
        let events = EventList::from_stack(&stack, 0.1).unwrap();
        let all = [true; 4];
        let mut src = stack.frames();
        let mut checked = CheckedCounts::new(&mut src, &all, "t");
        let mut buf = vec![0u32; r * c];
        let frame_err = loop {
            match checked.read_next(&mut buf) {
                Ok(true) => continue,
                Ok(false) => panic!("the count above the range was accepted"),
                Err(e) => break e.to_string(),
            }
        };
        let event_err = check_event_counts(&events, &all, "t")
            .unwrap_err()
            .to_string();
        assert_eq!(frame_err, event_err);
        assert!(
            event_err.contains("frame 1 pixel (row 1, col 1)"),
            "{event_err}"
        );
        let masked = [true, true, true, false];
        check_event_counts(&events, &masked, "t").unwrap();
        let mut src = stack.frames();
        let mut checked = CheckedCounts::new(&mut src, &masked, "t");
        while checked.read_next(&mut buf).unwrap() {}
    }
}
