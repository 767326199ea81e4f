//! Rigaku 64-bit sparse `.bin` files (APS 8-ID-I, Rigaku XSPA-500k and XSPA-3M), read and
//! written.
//!
//! **Layout** (as the APS pipeline boost_corr reads it: `rigaku_handler.py`,
//! `rigaku_3M_handler.py`, `help_functions.convert_sparse`): no header, one little-endian u64
//! per photon record, records in frame order (pixel order within a frame):
//!
//! | bits | field |
//! |---|---|
//! | 0–11 | photons (1..4095) |
//! | 12–15 | unused (0) |
//! | 16–36 | pixel index in the module, row · 1024 + col |
//! | 37–39 | unused (0) |
//! | 40–63 | frame (0-based, < 2^24) |
//!
//! A module is 512 rows × 1024 columns. Frames of a file: the last record's frame + 1 (a
//! trailing frame without photons is not representable). Some modules of a 3M set store their
//! indices offset by 2^20: when every index of a file is ≥ 2^20, 2^20 is subtracted.
//!
//! **3M**: six module files `NAME.bin.000` … `NAME.bin.005`, assembled into a 3 × 2 grid of
//! modules with gaps of 70 rows and 52 columns: 1676 rows × 2100 columns. The module at grid
//! position k (row-major: k = 2 · grid_row + grid_col) is file suffix [`SUFFIX_AT_POSITION`]`[k]`
//! = (5, 0, 4, 1, 3, 2), its top-left pixel at (582 · grid_row, 1076 · grid_col). Frames: the
//! largest over the six files. Gap pixels hold no photons.
//!
//! Reading ([`RigakuRecords`], a [`PhotonRecords`] source for [`crate::records::PixelBlocks`])
//! streams the files in batches: memory is one batch plus the transposition's per-pixel state,
//! never a dense frame. Records need not be sorted (each pixel's records are sorted by the
//! transposition); repeated (pixel, frame) records are summed (boost_corr keeps the last one);
//! zero counts are dropped; the unused bits are ignored, as boost_corr does. The offset rule
//! is applied per file from its first record (boost_corr tests the minimum index: the same on
//! every file it reads correctly); a record disagreeing with its file's first is an error.
//!
//! Writing ([`write_rigaku`]) produces exactly that layout: single module files for 512 × 1024
//! frames, the six-file set for 1676 × 2100 frames (the gap pixels must be empty), records in
//! (frame, pixel) order, no index offset.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::atomic::{note_input, write_staged};
use crate::records::{FrameMajor, PhotonRecords, RecordBatch, BATCH_RECORDS};
use xpcs_core::data::EventList;
use xpcs_core::error::{Error, Result};

/// Rows of one module.
pub const MODULE_ROWS: usize = 512;
/// Columns of one module.
pub const MODULE_COLS: usize = 1024;
/// Pixels of one module (2^19).
pub const MODULE_PIXELS: usize = MODULE_ROWS * MODULE_COLS;
/// Rows between module rows of the 3M.
pub const GAP_ROWS: usize = 70;
/// Columns between module columns of the 3M.
pub const GAP_COLS: usize = 52;
/// Module grid of the 3M (rows, cols).
pub const GRID: (usize, usize) = (3, 2);
/// File suffix (`.000`–`.005`) of the module at each 3M grid position (row-major).
pub const SUFFIX_AT_POSITION: [usize; 6] = [5, 0, 4, 1, 3, 2];
/// Offset some 3M modules add to their pixel indices.
pub const INDEX_OFFSET: u32 = 1 << 20;
/// Largest count of a record (12 bits).
pub const MAX_COUNT: u32 = (1 << 12) - 1;
/// Frames a file can address (24 bits).
pub const MAX_FRAMES: usize = 1 << 24;
/// Frame shape of one module.
pub const SHAPE_500K: (usize, usize) = (MODULE_ROWS, MODULE_COLS);
/// Frame shape of the assembled 3M.
pub const SHAPE_3M: (usize, usize) = (
    GRID.0 * MODULE_ROWS + (GRID.0 - 1) * GAP_ROWS,
    GRID.1 * MODULE_COLS + (GRID.1 - 1) * GAP_COLS,
);

/// Splits a record into (pixel index as stored, frame, photons).
#[inline]
pub fn decode(word: u64) -> (u32, u32, u32) {
    (
        ((word >> 16) & 0x1F_FFFF) as u32,
        (word >> 40) as u32,
        (word & 0xFFF) as u32,
    )
}

/// Packs a record; every field must be in range (index < 2^21, frame < 2^24, count < 2^12).
#[inline]
pub fn encode(index: u32, frame: u32, count: u32) -> u64 {
    debug_assert!(index < 1 << 21 && (frame as usize) < MAX_FRAMES && count <= MAX_COUNT);
    (u64::from(frame) << 40) | (u64::from(index) << 16) | u64::from(count)
}

/// Top-left pixel (row, col) of the 3M module at grid position `k`.
pub fn module_origin(k: usize) -> (usize, usize) {
    (
        (k / GRID.1) * (MODULE_ROWS + GAP_ROWS),
        (k % GRID.1) * (MODULE_COLS + GAP_COLS),
    )
}

/// Grid position and module-local index of assembled 3M pixel (row, col); `None` in a gap.
pub fn module_of(row: usize, col: usize) -> Option<(usize, u32)> {
    let (gr, r) = (
        row / (MODULE_ROWS + GAP_ROWS),
        row % (MODULE_ROWS + GAP_ROWS),
    );
    let (gc, c) = (
        col / (MODULE_COLS + GAP_COLS),
        col % (MODULE_COLS + GAP_COLS),
    );
    (r < MODULE_ROWS && c < MODULE_COLS && gr < GRID.0 && gc < GRID.1)
        .then(|| (gr * GRID.1 + gc, (r * MODULE_COLS + c) as u32))
}

/// The 3M's real pixels (true) and gaps (false), row-major over [`SHAPE_3M`].
pub fn gap_mask_3m() -> Vec<bool> {
    let (rows, cols) = SHAPE_3M;
    (0..rows * cols)
        .map(|p| module_of(p / cols, p % cols).is_some())
        .collect()
}

/// The files of a Rigaku dataset named by `path`: a single `.bin`, or the six files of a 3M
/// set when `path` is one of `NAME.bin.000` … `NAME.bin.005` (or `NAME.bin` with no such file
/// but `NAME.bin.000` present). Returns the files in grid-position order and whether it is a
/// 3M set.
pub fn dataset_files(path: &Path) -> Result<(Vec<PathBuf>, bool)> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let stem = match name.rsplit_once('.') {
        Some((s, ext))
            if s.ends_with(".bin") && ext.len() == 3 && ext.bytes().all(|b| b.is_ascii_digit()) =>
        {
            Some(path.with_file_name(s))
        }
        _ if !path.exists() && path.with_file_name(format!("{name}.000")).exists() => {
            Some(path.to_path_buf())
        }
        _ => None,
    };
    let Some(stem) = stem else {
        return Ok((vec![path.to_path_buf()], false));
    };
    let sname = stem
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let files: Vec<PathBuf> = SUFFIX_AT_POSITION
        .iter()
        .map(|s| stem.with_file_name(format!("{sname}.{s:03}")))
        .collect();
    if let Some(m) = files.iter().find(|f| !f.is_file()) {
        return Err(Error::format(
            path,
            format!(
                "a Rigaku 3M set needs the six module files {sname}.000 … {sname}.005; {} is missing",
                m.display()
            ),
        ));
    }
    Ok((files, true))
}

#[derive(Debug, Clone)]
struct Module {
    path: PathBuf,
    /// Records of the file read by this source: `first .. first + records`.
    first: u64,
    records: u64,
    origin: (usize, usize),
    /// The file's indices carry the 2^20 offset (its first record does).
    offset: bool,
}

/// A Rigaku dataset (one module file or a 3M set) as a [`PhotonRecords`] source.
#[derive(Debug, Clone)]
pub struct RigakuRecords {
    path: PathBuf,
    modules: Vec<Module>,
    shape: (usize, usize),
    n_frames: usize,
    three_m: bool,
}

/// The first and last records of a file of `len` > 0 bytes.
fn ends_of(path: &Path, len: u64) -> Result<(u64, u64)> {
    use std::os::unix::fs::FileExt;
    let f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let (mut a, mut b) = ([0u8; 8], [0u8; 8]);
    f.read_exact_at(&mut a, 0)
        .and_then(|_| f.read_exact_at(&mut b, len - 8))
        .map_err(|e| Error::io(path, e))?;
    Ok((u64::from_le_bytes(a), u64::from_le_bytes(b)))
}

impl RigakuRecords {
    /// Opens the dataset named by `path` (see [`dataset_files`]); checks that each file holds
    /// whole 8-byte records and reads each file's last record for the frame count.
    pub fn open(path: &Path) -> Result<Self> {
        let (files, three_m) = dataset_files(path)?;
        let mut modules = Vec::with_capacity(files.len());
        let mut n_frames = 0usize;
        for (k, f) in files.into_iter().enumerate() {
            let meta = std::fs::metadata(&f).map_err(|e| Error::io(&f, e))?;
            if meta.is_dir() {
                return Err(Error::format(&f, "is a directory, not a Rigaku .bin file"));
            }
            let len = meta.len();
            if len % 8 != 0 {
                return Err(Error::format(
                    &f,
                    format!(
                        "{len} bytes is not a whole number of 8-byte photon records (truncated?)"
                    ),
                ));
            }
            note_input(&f);
            // The frames: the last record's + 1; the offset rule: the first record's index.
            let (first, last) = if len > 0 { ends_of(&f, len)? } else { (0, 0) };
            if len > 0 {
                n_frames = n_frames.max(decode(last).1 as usize + 1);
            }
            modules.push(Module {
                path: f,
                first: 0,
                records: len / 8,
                origin: if three_m { module_origin(k) } else { (0, 0) },
                offset: decode(first).0 >= INDEX_OFFSET,
            });
        }
        if n_frames == 0 {
            return Err(Error::format(
                path,
                "no photon records: the number of frames is unknown (the last record sets it)",
            ));
        }
        Ok(RigakuRecords {
            path: path.to_path_buf(),
            modules,
            shape: if three_m { SHAPE_3M } else { SHAPE_500K },
            n_frames,
            three_m,
        })
    }

    /// True for a six-module 3M set.
    pub fn is_3m(&self) -> bool {
        self.three_m
    }

    /// Photon records in all files.
    pub fn n_records(&self) -> u64 {
        self.modules.iter().map(|m| m.records).sum()
    }

    /// The files, in grid-position order.
    pub fn files(&self) -> Vec<&Path> {
        self.modules.iter().map(|m| m.path.as_path()).collect()
    }
}

impl PhotonRecords for RigakuRecords {
    fn origin(&self) -> &Path {
        &self.path
    }
    fn n_records_hint(&self) -> Option<u64> {
        Some(self.n_records())
    }
    fn frame_shape(&self) -> (usize, usize) {
        self.shape
    }
    fn n_frames(&self) -> Option<usize> {
        Some(self.n_frames)
    }
    fn frame_time_s(&self) -> Option<f64> {
        None
    }
    /// `n` sources, each a contiguous share of every file's records (for a parallel pass 1;
    /// in every file, part k's records precede part k + 1's).
    fn parts(&self, n: usize) -> Option<Vec<Box<dyn PhotonRecords + Send>>> {
        let n = n.max(1) as u64;
        Some(
            (0..n)
                .map(|k| {
                    let mut part = self.clone();
                    for m in &mut part.modules {
                        let (a, b) = (m.records * k / n, m.records * (k + 1) / n);
                        m.first += a;
                        m.records = b - a;
                    }
                    Box::new(part) as Box<dyn PhotonRecords + Send>
                })
                .collect(),
        )
    }
    fn scan(&mut self, visit: &mut dyn FnMut(&RecordBatch) -> Result<()>) -> Result<()> {
        use std::os::unix::fs::FileExt;
        let width = self.shape.1;
        let mut raw = vec![0u8; BATCH_RECORDS * 8];
        let mut b = RecordBatch::with_capacity();
        for m in &self.modules {
            let f = std::fs::File::open(&m.path).map_err(|e| Error::io(&m.path, e))?;
            let (top, left) = m.origin;
            let base = top * width + left;
            // The file's offset (2^20 or 0): every index must be offset + 0..2^19.
            let off = if m.offset { INDEX_OFFSET } else { 0 };
            let mut done = 0u64;
            while done < m.records {
                let k = (m.records - done).min(BATCH_RECORDS as u64) as usize;
                let at = m.first + done;
                f.read_exact_at(&mut raw[..k * 8], at * 8).map_err(|e| {
                    Error::format(
                        &m.path,
                        format!("cannot read records {at}..{} ({e})", at + k as u64),
                    )
                })?;
                b.pixels.resize(k, 0);
                b.frames.resize(k, 0);
                b.counts.resize(k, 0);
                let mut bad = false;
                for (j, w) in raw[..k * 8].chunks_exact(8).enumerate() {
                    let (idx, frame, count) =
                        decode(u64::from_le_bytes(w.try_into().expect("8 bytes")));
                    let local = idx.wrapping_sub(off) as usize;
                    bad |= local >= MODULE_PIXELS;
                    b.pixels[j] =
                        (base + (local >> 10) * width + (local & (MODULE_COLS - 1))) as u32;
                    b.frames[j] = frame;
                    b.counts[j] = count;
                }
                if bad {
                    let (i, idx) = raw[..k * 8]
                        .chunks_exact(8)
                        .map(|w| decode(u64::from_le_bytes(w.try_into().expect("8"))).0)
                        .enumerate()
                        .find(|&(_, idx)| idx.wrapping_sub(off) as usize >= MODULE_PIXELS)
                        .unwrap_or((0, 0));
                    return Err(Error::out_of_range(
                        m.path.display().to_string(),
                        format!("pixel index of record {}", at + i as u64),
                        idx,
                        if m.offset {
                            format!(
                                "2^20 + 0..{MODULE_PIXELS}: the file's first record carries the 2^20 offset, so every record does"
                            )
                        } else {
                            format!(
                                "0..{MODULE_PIXELS} (512 × 1024 module): the file's first record has no 2^20 offset, so no record has"
                            )
                        },
                    ));
                }
                visit(&b)?;
                done += k as u64;
            }
        }
        Ok(())
    }
}

/// Writes `ev` as the Rigaku acquisition system does (see the module docs): a 512 × 1024
/// list → one file at `path`; a 1676 × 2100 list → the six files `path.000` … `path.005`.
/// Counts above 4095, frames beyond 2^24 and photons in 3M gap pixels are errors (the format
/// cannot hold them). All files appear together, or none. Returns the written paths.
pub fn write_rigaku(
    path: &Path,
    ev: &EventList,
    inputs: &[&Path],
    force: bool,
) -> Result<Vec<PathBuf>> {
    let origin = path.display().to_string();
    let shape = ev.frame_shape();
    let three_m = match shape {
        SHAPE_500K => false,
        SHAPE_3M => true,
        _ => {
            return Err(Error::ShapeMismatch {
                origin,
                what: "Rigaku frames: one module (512 × 1024) or the 3M (1676 × 2100)".into(),
                expected: vec![MODULE_ROWS, MODULE_COLS],
                got: vec![shape.0, shape.1],
            })
        }
    };
    if ev.n_frames() > MAX_FRAMES {
        return Err(Error::out_of_range(
            origin,
            "frames",
            ev.n_frames(),
            format!("≤ {MAX_FRAMES} (24-bit frame field)"),
        ));
    }
    let fm = FrameMajor::from_events(ev);
    let n_mod = if three_m { 6 } else { 1 };
    let mut words: Vec<Vec<u64>> = vec![Vec::new(); n_mod];
    let cols = shape.1;
    for t in 0..fm.n_frames() {
        let (px, ct) = fm.frame(t);
        for (&p, &c) in px.iter().zip(ct) {
            let (row, col) = (p as usize / cols, p as usize % cols);
            if c > MAX_COUNT {
                return Err(Error::out_of_range(
                    origin,
                    format!("photons of pixel ({row}, {col}) in frame {t}"),
                    c,
                    format!("1..={MAX_COUNT} (12-bit count field)"),
                ));
            }
            let (k, local) = if three_m {
                module_of(row, col).ok_or_else(|| {
                    Error::invalid(
                        &origin,
                        format!(
                            "{c} photons in frame {t} at ({row}, {col}), a gap of the 3M: mask the gaps (rigaku::gap_mask_3m)"
                        ),
                    )
                })?
            } else {
                (0, p)
            };
            words[k].push(encode(local, t as u32, c));
        }
    }
    let mut staged = Vec::with_capacity(n_mod);
    for (k, w) in words.iter().enumerate() {
        let target = if three_m {
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            path.with_file_name(format!("{name}.{:03}", SUFFIX_AT_POSITION[k]))
        } else {
            path.to_path_buf()
        };
        staged.push(write_staged(&target, inputs, force, |out| {
            for chunk in w.chunks(BATCH_RECORDS) {
                let bytes: Vec<u8> = chunk.iter().flat_map(|x| x.to_le_bytes()).collect();
                out.write_all(&bytes).map_err(|e| Error::io(&target, e))?;
            }
            Ok(())
        })?);
    }
    staged.into_iter().map(|s| s.commit()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::PixelBlocks;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn encode_decode_roundtrip(i in 0u32..(1 << 21), f in 0u32..(1 << 24), c in 0u32..4096) {
            prop_assert_eq!(decode(encode(i, f, c)), (i, f, c));
        }
    }

    #[test]
    fn published_bit_layout() {
        // count 0xABC in bits 0-11, index 0x1ABCDE in 16-36, frame 0xFEDCBA in 40-63.
        let w: u64 = 0xFEDC_BA00_0000_0000 | (0x1A_BCDE << 16) | 0xABC;
        assert_eq!(decode(w), (0x1A_BCDE, 0xFE_DCBA, 0xABC));
        // Unused bits 12-15 and 37-39 are ignored.
        assert_eq!(decode(w | 0xF000 | (0x7 << 37)), decode(w));
        assert_eq!(SHAPE_3M, (1676, 2100));
        assert_eq!(module_origin(5), (1164, 1076));
        assert_eq!(module_of(582, 1076), Some((3, 0)));
        assert_eq!(module_of(512, 0), None);
        assert_eq!(module_of(0, 1024), None);
        assert_eq!(module_of(1675, 2099), Some((5, MODULE_PIXELS as u32 - 1)));
    }

    fn sparse_events(shape: (usize, usize), t: usize, every: usize, skip_gaps: bool) -> EventList {
        let (r, c) = shape;
        let mut off = vec![0u64];
        let (mut fr, mut ct) = (vec![], vec![]);
        for p in 0..r * c {
            if p % every == 3 && !(skip_gaps && module_of(p / c, p % c).is_none()) {
                for f in (p % 3..t).step_by(3) {
                    fr.push(f as u32);
                    ct.push(((p + f) % 5 + 1) as u32 * if p % 97 == 0 { 800 } else { 1 });
                }
            }
            off.push(fr.len() as u64);
        }
        EventList::new(r, c, t, 0.01, off, fr, ct).unwrap()
    }

    #[test]
    fn single_module_roundtrip_and_errors() {
        let dir = tempfile::tempdir().unwrap();
        let ev = sparse_events(SHAPE_500K, 7, 1000, false);
        let p = dir.path().join("a.bin");
        write_rigaku(&p, &ev, &[], false).unwrap();
        let bytes = std::fs::read(&p).unwrap();
        // Records in (frame, index) order.
        let keys: Vec<(u32, u32)> = bytes
            .chunks_exact(8)
            .map(|w| {
                let (i, f, _) = decode(u64::from_le_bytes(w.try_into().unwrap()));
                (f, i)
            })
            .collect();
        assert!(keys.windows(2).all(|w| w[0] < w[1]));
        let src = RigakuRecords::open(&p).unwrap();
        assert!(!src.is_3m());
        let n_last = src.n_frames().unwrap();
        let got = PixelBlocks::new(src, 5000)
            .unwrap()
            .into_event_list(0.01)
            .unwrap();
        // The last frame with photons sets the frame count.
        assert_eq!(n_last, *ev.frames().iter().max().unwrap() as usize + 1);
        let want = EventList::new(
            512,
            1024,
            n_last,
            0.01,
            ev.offsets().to_vec(),
            ev.frames().to_vec(),
            ev.counts().to_vec(),
        )
        .unwrap();
        assert_eq!(got, want);
        // The 2^20 offset is removed when every index carries it.
        let shifted: Vec<u8> = bytes
            .chunks_exact(8)
            .flat_map(|w| {
                let (i, f, c) = decode(u64::from_le_bytes(w.try_into().unwrap()));
                encode(i + INDEX_OFFSET, f, c).to_le_bytes()
            })
            .collect();
        let ps = dir.path().join("s.bin");
        std::fs::write(&ps, &shifted).unwrap();
        let src = RigakuRecords::open(&ps).unwrap();
        assert_eq!(
            PixelBlocks::new(src, 1 << 20)
                .unwrap()
                .into_event_list(0.01)
                .unwrap(),
            want
        );
        // ... but a file mixing both is refused.
        let mut mixed = shifted.clone();
        mixed[..8].copy_from_slice(&bytes[..8]);
        std::fs::write(&ps, &mixed).unwrap();
        let e = PixelBlocks::new(RigakuRecords::open(&ps).unwrap(), 1 << 20)
            .unwrap_err()
            .to_string();
        assert!(e.contains("2^20 offset"), "{e}");
        // Truncated record, empty file, index in the hole between 2^19 and 2^20.
        std::fs::write(&ps, &bytes[..bytes.len() - 3]).unwrap();
        assert!(RigakuRecords::open(&ps).is_err());
        std::fs::write(&ps, b"").unwrap();
        assert!(RigakuRecords::open(&ps).is_err());
        std::fs::write(&ps, encode(MODULE_PIXELS as u32, 0, 1).to_le_bytes()).unwrap();
        let e = PixelBlocks::new(RigakuRecords::open(&ps).unwrap(), 10)
            .unwrap_err()
            .to_string();
        assert!(e.contains("pixel index of record 0"), "{e}");
        // What the format cannot hold.
        let big = sparse_events(SHAPE_500K, 3, 100_000, false);
        let mut counts = big.counts().to_vec();
        counts[0] = MAX_COUNT + 1;
        let big = EventList::new(
            512,
            1024,
            3,
            0.1,
            big.offsets().to_vec(),
            big.frames().to_vec(),
            counts,
        )
        .unwrap();
        assert!(write_rigaku(&dir.path().join("x.bin"), &big, &[], false).is_err());
        let odd = sparse_events((4, 5), 3, 2, false);
        assert!(write_rigaku(&dir.path().join("y.bin"), &odd, &[], false).is_err());
        assert!(!dir.path().join("x.bin").exists());
    }

    #[test]
    fn three_m_set_roundtrip() {
        let dir = tempfile::tempdir().unwrap();
        let ev = sparse_events(SHAPE_3M, 5, 20_000, true);
        let p = dir.path().join("run.bin");
        let files = write_rigaku(&p, &ev, &[], false).unwrap();
        assert_eq!(files.len(), 6);
        for s in 0..6 {
            assert!(dir.path().join(format!("run.bin.{s:03}")).exists());
        }
        for name in ["run.bin.000", "run.bin.004", "run.bin"] {
            let src = RigakuRecords::open(&dir.path().join(name)).unwrap();
            assert!(src.is_3m());
            let got = PixelBlocks::new(src, 300)
                .unwrap()
                .into_event_list(0.01)
                .unwrap();
            assert_eq!(got, ev, "{name}");
        }
        // Photons in a gap cannot be written; a missing module file is named.
        let gap = sparse_events(SHAPE_3M, 5, 20_000, false);
        assert!(write_rigaku(&dir.path().join("g.bin"), &gap, &[], false).is_err());
        std::fs::remove_file(dir.path().join("run.bin.003")).unwrap();
        let e = RigakuRecords::open(&p).unwrap_err().to_string();
        assert!(e.contains("run.bin.003"), "{e}");
    }
}
