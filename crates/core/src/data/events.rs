//! Sparse photon lists: per-pixel compressed sparse rows.

use super::frames::{CountDtype, FrameSource, FrameStack};
use super::nonzero::NonzeroFrames;
use crate::error::{Error, Result};

/// Sparse photons: for each pixel (row-major), the frames in which it counted and how many.
///
/// CSR layout: the events of pixel `p` are `frames[offsets[p]..offsets[p+1]]` (strictly
/// increasing frame indices) with `counts[...]` (each ≥ 1). Plus the detector shape, the number
/// of frames and the frame time. Conversion to and from [`FrameStack`] is lossless.
///
/// Reference: the sparse ("event") representation of Chushkin, Caronna & Madsen, J. Appl.
/// Cryst. 45, 807 (2012).
#[doc(alias = "sparse")]
#[derive(Debug, Clone, PartialEq)]
pub struct EventList {
    rows: usize,
    cols: usize,
    n_frames: usize,
    frame_time_s: f64,
    offsets: Vec<u64>,
    frames: Vec<u32>,
    counts: Vec<u32>,
}

impl EventList {
    /// Builds an event list from its CSR parts, checking every invariant.
    pub fn new(
        rows: usize,
        cols: usize,
        n_frames: usize,
        frame_time_s: f64,
        offsets: Vec<u64>,
        frames: Vec<u32>,
        counts: Vec<u32>,
    ) -> Result<Self> {
        let origin = "event list";
        crate::check::check_frame_time(origin, "frame_time_s", frame_time_s)?;
        if n_frames > u32::MAX as usize {
            return Err(Error::out_of_range(
                origin,
                "n_frames",
                n_frames,
                "≤ 2^32 - 1",
            ));
        }
        let n_pix = rows
            .checked_mul(cols)
            .ok_or_else(|| Error::invalid(origin, format!("shape ({rows}, {cols}) overflows")))?;
        if offsets.len() != n_pix + 1 {
            return Err(Error::ShapeMismatch {
                origin: origin.into(),
                what: "offsets (pixels + 1)".into(),
                expected: vec![n_pix + 1],
                got: vec![offsets.len()],
            });
        }
        if offsets[0] != 0 {
            return Err(Error::invalid(
                origin,
                format!("offsets must start at 0, got {}", offsets[0]),
            ));
        }
        check_csr(origin, 0, &offsets, &frames, &counts, n_frames, u32::MAX)?;
        Ok(EventList {
            rows,
            cols,
            n_frames,
            frame_time_s,
            offsets,
            frames,
            counts,
        })
    }

    /// The events of a dense stack (lossless).
    pub fn from_stack(stack: &FrameStack, frame_time_s: f64) -> Result<Self> {
        Self::from_source(&mut stack.frames(), frame_time_s)
    }

    /// Reads a frame source once and stores its nonzero counts (memory ∝ events, not frames):
    /// each frame scanned into [`NonzeroFrames`], then transposed in parallel.
    pub fn from_source<S: FrameSource + ?Sized>(source: &mut S, frame_time_s: f64) -> Result<Self> {
        let (rows, cols) = source.frame_shape();
        let n_frames = source.n_frames();
        let n_pix = rows * cols;
        let mut nz = NonzeroFrames::new(n_pix)?;
        let mut buf = vec![0u32; n_pix];
        let mut t = 0usize;
        while source.read_next(&mut buf)? {
            nz.push_frame(&buf)?;
            t += 1;
        }
        if t != n_frames {
            return Err(Error::invalid(
                "frame source",
                format!("delivered {t} frames, announced {n_frames}"),
            ));
        }
        EventList::from_nonzero_frames(rows, cols, frame_time_s, &[nz])
    }

    /// An event list from CSR parts that hold the invariants by construction (the producer
    /// in this crate guarantees them; checked in debug builds).
    pub(super) fn from_parts_unchecked(
        rows: usize,
        cols: usize,
        n_frames: usize,
        frame_time_s: f64,
        offsets: Vec<u64>,
        frames: Vec<u32>,
        counts: Vec<u32>,
    ) -> Result<Self> {
        debug_assert!(check_csr(
            "event list",
            0,
            &offsets,
            &frames,
            &counts,
            n_frames,
            u32::MAX
        )
        .is_ok());
        Ok(EventList {
            rows,
            cols,
            n_frames,
            frame_time_s,
            offsets,
            frames,
            counts,
        })
    }

    /// The dense stack (in the smallest integer type that holds the largest count).
    pub fn to_stack(&self) -> FrameStack {
        let max = self.counts.iter().copied().max().unwrap_or(0);
        let n_pix = self.n_pixels();
        let mut data = vec![0u32; self.n_frames * n_pix];
        for p in 0..n_pix {
            let (f, c) = self.pixel(p);
            for (&t, &k) in f.iter().zip(c) {
                data[t as usize * n_pix + p] = k;
            }
        }
        let (n, r, cl) = (self.n_frames, self.rows, self.cols);
        let stack = match CountDtype::for_max(max) {
            CountDtype::U8 => {
                FrameStack::from_u8(n, r, cl, data.iter().map(|&x| x as u8).collect())
            }
            CountDtype::U16 => {
                FrameStack::from_u16(n, r, cl, data.iter().map(|&x| x as u16).collect())
            }
            CountDtype::U32 => FrameStack::from_u32(n, r, cl, data),
        };
        stack.expect("shape is consistent by construction")
    }

    /// Frame shape (rows, cols).
    pub fn frame_shape(&self) -> (usize, usize) {
        (self.rows, self.cols)
    }
    /// Pixels per frame.
    pub fn n_pixels(&self) -> usize {
        self.rows * self.cols
    }
    /// Number of frames.
    pub fn n_frames(&self) -> usize {
        self.n_frames
    }
    /// Frame time (s).
    pub fn frame_time_s(&self) -> f64 {
        self.frame_time_s
    }
    /// Number of (pixel, frame) entries.
    pub fn n_events(&self) -> usize {
        self.frames.len()
    }
    /// Total photons.
    pub fn total_counts(&self) -> u64 {
        self.counts.iter().map(|&c| u64::from(c)).sum()
    }
    /// CSR offsets (length pixels + 1).
    pub fn offsets(&self) -> &[u64] {
        &self.offsets
    }
    /// Frame index of every event.
    pub fn frames(&self) -> &[u32] {
        &self.frames
    }
    /// Count of every event (≥ 1).
    pub fn counts(&self) -> &[u32] {
        &self.counts
    }
    /// The (frames, counts) of pixel `p`.
    #[inline]
    pub fn pixel(&self, p: usize) -> (&[u32], &[u32]) {
        let r = self.offsets[p] as usize..self.offsets[p + 1] as usize;
        (&self.frames[r.clone()], &self.counts[r])
    }
}

/// Checks the CSR invariants of the events of pixels `first_pixel ..
/// first_pixel + offsets.len() - 1`: the one check every event producer and consumer runs
/// (event lists, event files read and written, the event correlator's pixel blocks).
///
/// `offsets` may start anywhere (`offsets[0]` is the base: pixel `first_pixel + i` has the
/// events `offsets[i] - base .. offsets[i + 1] - base` of `frames` and `counts`); they never
/// decrease and end at base + the number of events; `frames` and `counts` have equal lengths;
/// each pixel's frames are strictly increasing and below `n_frames`; counts are 1 to
/// `max_count`. Errors name `origin` and the pixel.
pub fn check_csr(
    origin: &str,
    first_pixel: usize,
    offsets: &[u64],
    frames: &[u32],
    counts: &[u32],
    n_frames: usize,
    max_count: u32,
) -> Result<()> {
    check_csr_layout(origin, first_pixel, offsets, frames.len(), counts.len())?;
    let base = offsets[0];
    for (i, w) in offsets.windows(2).enumerate() {
        let r = (w[0] - base) as usize..(w[1] - base) as usize;
        check_pixel_events(
            origin,
            first_pixel + i,
            &frames[r.clone()],
            &counts[r],
            n_frames,
            max_count,
        )?;
    }
    Ok(())
}

/// The layout half of [`check_csr`]: as many frame entries (`n_events`) as counts
/// (`n_counts`), offsets present, never decreasing and spanning the events. Callers that visit every pixel's events anyway
/// run this first and [`check_pixel_events`] on each pixel as they go (one pass over the
/// events instead of two).
pub fn check_csr_layout(
    origin: &str,
    first_pixel: usize,
    offsets: &[u64],
    n_events: usize,
    n_counts: usize,
) -> Result<()> {
    if n_events != n_counts {
        return Err(Error::ShapeMismatch {
            origin: origin.into(),
            what: format!("frames vs counts of the pixels from {first_pixel}"),
            expected: vec![n_events],
            got: vec![n_counts],
        });
    }
    let (Some(&base), Some(&last)) = (offsets.first(), offsets.last()) else {
        return Err(Error::invalid(
            origin,
            format!("offsets of the pixels from {first_pixel}: none given (need pixels + 1)"),
        ));
    };
    if last.checked_sub(base) != Some(n_events as u64) {
        return Err(Error::invalid(
            origin,
            format!(
                "offsets of the pixels from {first_pixel} must span the {n_events} events, got {base}..{last}"
            ),
        ));
    }
    if let Some(i) = offsets.windows(2).position(|w| w[1] < w[0] || w[1] > last) {
        let w = &offsets[i..i + 2];
        return Err(Error::invalid(
            origin,
            format!(
                "offsets of pixel {} ({}..{}) decrease or pass the end {last}",
                first_pixel + i,
                w[0],
                w[1]
            ),
        ));
    }
    Ok(())
}

/// The per-pixel half of [`check_csr`]: pixel `p`'s frames strictly increasing and below
/// `n_frames`, its counts 1 to `max_count`.
#[inline]
pub fn check_pixel_events(
    origin: &str,
    p: usize,
    fr: &[u32],
    ct: &[u32],
    n_frames: usize,
    max_count: u32,
) -> Result<()> {
    if fr.windows(2).any(|x| x[1] <= x[0]) {
        return Err(Error::invalid(
            origin,
            format!("frames of pixel {p} are not strictly increasing"),
        ));
    }
    if let Some(&f) = fr.last() {
        if f as usize >= n_frames {
            return Err(Error::out_of_range(
                origin,
                format!("frame index of pixel {p}"),
                f,
                format!("0..{n_frames}"),
            ));
        }
    }
    if let Some(&c) = ct.iter().find(|&&c| c == 0 || c > max_count) {
        return Err(Error::out_of_range(
            origin,
            format!("count of pixel {p}"),
            c,
            format!("1..={max_count}"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dense_sparse_roundtrip() {
        let data: Vec<u16> = (0..60u16).map(|i| if i % 7 == 0 { i } else { 0 }).collect();
        let s = FrameStack::from_u16(5, 3, 4, data).unwrap();
        let e = EventList::from_stack(&s, 0.1).unwrap();
        assert_eq!(e.total_counts(), s.total_counts());
        let back = e.to_stack();
        for t in 0..5 {
            for p in 0..12 {
                assert_eq!(back.get(t, p), s.get(t, p));
            }
        }
    }

    #[test]
    fn rejects_bad_csr() {
        assert!(EventList::new(1, 1, 3, 0.1, vec![0, 2], vec![1, 1], vec![1, 1]).is_err());
        assert!(EventList::new(1, 1, 3, 0.1, vec![0, 1], vec![3], vec![1]).is_err());
        assert!(EventList::new(1, 1, 3, 0.0, vec![0, 0], vec![], vec![]).is_err());
        assert!(EventList::new(1, 1, 3, 0.1, vec![0, 1], vec![2], vec![0]).is_err());
    }

    /// The one CSR check: a valid block passes from any base; each broken invariant is
    /// refused naming the pixel it breaks at.
    #[test]
    fn csr_check_names_the_broken_invariant() {
        // Pixels 5, 6, 7: events {0, 3}, {}, {1}; offsets from base 10.
        let offs = [10u64, 12, 12, 13];
        let (fr, ct) = ([0u32, 3, 1], [1u32, 2, 1]);
        check_csr("t", 5, &offs, &fr, &ct, 4, u32::MAX).unwrap();
        let bad = |o: &[u64], f: &[u32], c: &[u32], n: usize, m: u32| {
            check_csr("t", 5, o, f, c, n, m).unwrap_err().to_string()
        };
        assert!(bad(&offs, &fr, &[1, 2], 4, 9).contains("frames vs counts"));
        assert!(bad(&[], &[], &[], 4, 9).contains("none given"));
        assert!(bad(&[10, 12, 12, 14], &fr, &ct, 4, 9).contains("span the 3 events"));
        assert!(bad(&[10, 11, 10, 13], &fr, &ct, 4, 9).contains("pixel 6"));
        assert!(bad(&[10, 14, 9, 13], &fr, &ct, 4, 9).contains("pixel 5"));
        assert!(bad(&offs, &[3, 0, 1], &ct, 4, 9).contains("pixel 5 are not strictly"));
        assert!(bad(&offs, &fr, &ct, 3, 9).contains("frame index of pixel 5"));
        assert!(bad(&offs, &fr, &[1, 2, 0], 4, 9).contains("count of pixel 7"));
        assert!(bad(&offs, &fr, &ct, 4, 1).contains("count of pixel 5"));
    }
}
