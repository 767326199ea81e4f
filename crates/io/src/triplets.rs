//! APS-style `(index, frame, count)` triplets ("ifc"), streamed into pixel blocks.
//!
//! The sparse form the APS 8-ID-I pipeline (boost_corr) holds its Rigaku and Timepix photons
//! in: three equal-length integer arrays, `index` = row-major pixel (row · cols + col), `frame`
//! (0-based), `count` (photons). Two containers:
//!
//! - HDF5 ([`TripletsH5`]): 1-D datasets `index`, `frame`, `count` in one group (found at the
//!   root or in a top-level group, or named), any integer types;
//! - NPY ([`TripletsNpy`]): one (3, N) integer array, rows index, frame, count (the layout of
//!   boost_corr's `convert_sparse` output), C or Fortran order.
//!
//! Records may come in any order; repeated (pixel, frame) pairs are summed and zero counts
//! dropped ([`crate::records::PixelBlocks`]). The frame shape is not stored: the caller gives
//! it. Frames: given, or the largest frame + 1. Both readers implement
//! [`crate::records::PhotonRecords`]: memory is one batch of records per pass, whatever the
//! file's length.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use crate::atomic::note_input;
use crate::h5util::{has_dataset, open_1d_int, open_read, read_u32_range, IntClass};
use crate::npy::{decode_counts, parse_header, NpyHeader};
use crate::records::{
    checked_pixels, PhotonRecords, PixelBlocks, RecordBatch, SliceRecords, BATCH_RECORDS,
    DEFAULT_MAX_BLOCK_EVENTS,
};
use xpcs_core::data::EventList;
use xpcs_core::error::{Error, Result};

/// The three dataset names, in record order.
pub const NAMES: [&str; 3] = ["index", "frame", "count"];

/// Triplets in an HDF5 group (see the module docs).
#[derive(Debug)]
pub struct TripletsH5 {
    path: PathBuf,
    _file: hdf5::File,
    group: String,
    ds: Vec<(hdf5::Dataset, IntClass)>,
    len: usize,
    shape: (usize, usize),
    n_frames: Option<usize>,
}

/// The group of `file` holding `index`, `frame` and `count`: the root, else the first
/// top-level group (by name) that does.
fn find_group(file: &hdf5::File) -> Option<String> {
    let holds = |g: &str| NAMES.iter().all(|n| has_dataset(file, &format!("{g}/{n}")));
    if holds("") {
        return Some("/".into());
    }
    let mut names = file.member_names().ok()?;
    names.sort();
    names
        .into_iter()
        .map(|n| format!("/{n}"))
        .find(|g| file.group(g).is_ok() && holds(g))
}

/// Whether `path` is an HDF5 file holding triplets (at the root or in a top-level group).
pub fn is_triplets_h5(path: &Path) -> bool {
    hdf5::File::open(path)
        .map(|f| find_group(&f).is_some())
        .unwrap_or(false)
}

impl TripletsH5 {
    /// Opens the triplets of `group` (default: found as in [`is_triplets_h5`]) for a detector
    /// of `shape`; `n_frames` default: the largest frame + 1.
    pub fn open(
        path: &Path,
        group: Option<&str>,
        shape: (usize, usize),
        n_frames: Option<usize>,
    ) -> Result<Self> {
        checked_pixels(path, shape)?;
        let file = open_read(path)?;
        let group = match group {
            Some(g) => g.trim_end_matches('/').to_string(),
            None => find_group(&file).ok_or_else(|| {
                Error::format(
                    path,
                    "no group holding the triplet datasets index, frame and count",
                )
            })?,
        };
        let g = group.trim_end_matches('/');
        let mut ds = Vec::with_capacity(3);
        let mut len = None;
        for n in NAMES {
            let full = format!("{g}/{n}");
            let (d, cls, l) = open_1d_int(&file, &full, path)?;
            if len.is_some_and(|x| x != l) {
                return Err(Error::ShapeMismatch {
                    origin: path.display().to_string(),
                    what: format!("{full} vs {g}/index"),
                    expected: vec![len.unwrap_or(0)],
                    got: vec![l],
                });
            }
            len = Some(l);
            ds.push((d, cls));
        }
        Ok(TripletsH5 {
            path: path.to_path_buf(),
            _file: file,
            group,
            ds,
            len: len.unwrap_or(0),
            shape,
            n_frames,
        })
    }

    /// The group read.
    pub fn group(&self) -> &str {
        &self.group
    }
}

impl PhotonRecords for TripletsH5 {
    fn origin(&self) -> &Path {
        &self.path
    }
    fn frame_shape(&self) -> (usize, usize) {
        self.shape
    }
    fn n_frames(&self) -> Option<usize> {
        self.n_frames
    }
    fn frame_time_s(&self) -> Option<f64> {
        None
    }
    fn n_records_hint(&self) -> Option<u64> {
        Some(self.len as u64)
    }
    fn scan(&mut self, visit: &mut dyn FnMut(&RecordBatch) -> Result<()>) -> Result<()> {
        let g = self.group.trim_end_matches('/');
        for s in (0..self.len).step_by(BATCH_RECORDS) {
            let r = s..(s + BATCH_RECORDS).min(self.len);
            let mut cols = Vec::with_capacity(3);
            for ((d, cls), n) in self.ds.iter().zip(NAMES) {
                cols.push(read_u32_range(
                    d,
                    *cls,
                    r.clone(),
                    &self.path,
                    &format!("{g}/{n}"),
                )?);
            }
            let counts = cols.pop().unwrap_or_default();
            let frames = cols.pop().unwrap_or_default();
            let pixels = cols.pop().unwrap_or_default();
            visit(&RecordBatch {
                pixels,
                frames,
                counts,
            })?;
        }
        Ok(())
    }
}

/// Triplets as one (3, N) integer NPY array (see the module docs).
#[derive(Debug)]
pub struct TripletsNpy {
    path: PathBuf,
    file: File,
    header: NpyHeader,
    len: usize,
    shape: (usize, usize),
    n_frames: Option<usize>,
}

/// Whether an NPY header describes triplets: rank 2 with 3 rows, integer dtype.
pub fn is_triplets_header(h: &NpyHeader) -> bool {
    h.shape.len() == 2
        && h.shape[0] == 3
        && matches!(
            h.dtype.kind,
            crate::npy::ScalarKind::Int | crate::npy::ScalarKind::UInt
        )
}

impl TripletsNpy {
    /// Opens a (3, N) triplet array for a detector of `shape`; `n_frames` default: the
    /// largest frame + 1.
    pub fn open(path: &Path, shape: (usize, usize), n_frames: Option<usize>) -> Result<Self> {
        checked_pixels(path, shape)?;
        let mut file = File::open(path).map_err(|e| Error::io(path, e))?;
        note_input(path);
        let flen = file.metadata().map_err(|e| Error::io(path, e))?.len();
        let header = parse_header(&mut file, flen, path)?;
        if !is_triplets_header(&header) {
            return Err(Error::format(
                path,
                format!(
                    "triplets must be a (3, N) integer array (rows index, frame, count), got shape {:?} of {}",
                    header.shape,
                    header.dtype.descr()
                ),
            ));
        }
        let len = header.shape[1];
        Ok(TripletsNpy {
            path: path.to_path_buf(),
            file,
            header,
            len,
            shape,
            n_frames,
        })
    }
}

impl PhotonRecords for TripletsNpy {
    fn origin(&self) -> &Path {
        &self.path
    }
    fn frame_shape(&self) -> (usize, usize) {
        self.shape
    }
    fn n_frames(&self) -> Option<usize> {
        self.n_frames
    }
    fn frame_time_s(&self) -> Option<f64> {
        None
    }
    fn n_records_hint(&self) -> Option<u64> {
        Some(self.len as u64)
    }
    fn scan(&mut self, visit: &mut dyn FnMut(&RecordBatch) -> Result<()>) -> Result<()> {
        let es = self.header.dtype.size;
        let dt = self.header.dtype;
        let base = self.header.data_offset;
        let mut raw = Vec::new();
        let mut b = RecordBatch::default();
        let io = |e| Error::io(&self.path, e);
        for s in (0..self.len).step_by(BATCH_RECORDS) {
            let k = (s + BATCH_RECORDS).min(self.len) - s;
            b.pixels.resize(k, 0);
            b.frames.resize(k, 0);
            b.counts.resize(k, 0);
            if self.header.fortran_order {
                // Column i = record i: (index, frame, count) contiguous.
                raw.resize(3 * k * es, 0);
                self.file
                    .seek(SeekFrom::Start(base + (3 * s * es) as u64))
                    .and_then(|_| self.file.read_exact(&mut raw))
                    .map_err(io)?;
                let mut all = vec![0u32; 3 * k];
                decode_counts(&raw, dt, &mut all, "triplet", &self.path)?;
                for (i, r) in all.chunks_exact(3).enumerate() {
                    b.pixels[i] = r[0];
                    b.frames[i] = r[1];
                    b.counts[i] = r[2];
                }
            } else {
                raw.resize(k * es, 0);
                for (row, (out, what)) in [
                    (&mut b.pixels, "index"),
                    (&mut b.frames, "frame"),
                    (&mut b.counts, "count"),
                ]
                .into_iter()
                .enumerate()
                {
                    let off = base + ((row * self.len + s) * es) as u64;
                    self.file
                        .seek(SeekFrom::Start(off))
                        .and_then(|_| self.file.read_exact(&mut raw))
                        .map_err(io)?;
                    decode_counts(&raw, dt, out, what, &self.path)?;
                }
            }
            visit(&b)?;
        }
        Ok(())
    }
}

/// Builds an [`EventList`] from triplets held in memory (any order; repeated pairs summed;
/// zero counts dropped). `origin` names them in errors.
pub fn events_from_triplets(
    shape: (usize, usize),
    n_frames: usize,
    frame_time_s: f64,
    index: &[u32],
    frame: &[u32],
    count: &[u32],
    origin: &str,
) -> Result<EventList> {
    let src = SliceRecords::new(origin, shape, Some(n_frames), None, index, frame, count)?;
    PixelBlocks::new(src, DEFAULT_MAX_BLOCK_EVENTS)?.into_event_list(frame_time_s)
}

/// Reads HDF5 triplets under `group` (default: found) into an [`EventList`]; `n_frames`
/// default: the largest frame + 1.
pub fn read_triplets_h5(
    path: &Path,
    group: Option<&str>,
    shape: (usize, usize),
    n_frames: Option<usize>,
    frame_time_s: f64,
) -> Result<EventList> {
    let src = TripletsH5::open(path, group, shape, n_frames)?;
    PixelBlocks::new(src, DEFAULT_MAX_BLOCK_EVENTS)?.into_event_list(frame_time_s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array1;
    use xpcs_core::data::FrameStack;

    fn stack(t: usize, r: usize, c: usize, seed: u32) -> FrameStack {
        let v: Vec<u16> = (0..t * r * c)
            .map(|i| {
                let h = (i as u32)
                    .wrapping_mul(2654435761)
                    .wrapping_add(seed.wrapping_mul(40503));
                if h % 2 == 0 {
                    (h >> 24) as u16 % 5 + 1
                } else {
                    0
                }
            })
            .collect();
        FrameStack::from_u16(t, r, c, v).unwrap()
    }

    /// Scrambled frame-major triplets with one event split in two and a zero count.
    fn scrambled(s: &FrameStack) -> (Vec<u32>, Vec<u32>, Vec<u32>) {
        let (mut idx, mut fr, mut ct) = (vec![], vec![], vec![]);
        let n = s.n_pixels();
        for t in (0..s.n_frames()).rev() {
            for p in 0..n {
                let c = s.get(t, p);
                if c > 1 {
                    idx.extend([p as u32, p as u32]);
                    fr.extend([t as u32, t as u32]);
                    ct.extend([c - 1, 1]);
                } else if c == 1 {
                    idx.push(p as u32);
                    fr.push(t as u32);
                    ct.push(1);
                }
            }
        }
        idx.push(0);
        fr.push(0);
        ct.push(0);
        (idx, fr, ct)
    }

    #[test]
    fn every_container_matches_the_reference() {
        let s = stack(6, 3, 4, 3);
        let ev = EventList::from_stack(&s, 0.1).unwrap();
        let (idx, fr, ct) = scrambled(&s);
        let got = events_from_triplets((3, 4), 6, 0.1, &idx, &fr, &ct, "t").unwrap();
        assert_eq!(got, ev);
        let dir = tempfile::tempdir().unwrap();
        // HDF5, i64 datasets in a group, found without naming it.
        let p = dir.path().join("trip.h5");
        {
            let f = hdf5::File::create(&p).unwrap();
            let g = f.create_group("sparse").unwrap();
            for (n, v) in NAMES.iter().zip([&idx, &fr, &ct]) {
                g.new_dataset_builder()
                    .with_data(&Array1::from(
                        v.iter().map(|&x| i64::from(x)).collect::<Vec<_>>(),
                    ))
                    .create(*n)
                    .unwrap();
            }
        }
        assert!(is_triplets_h5(&p));
        assert_eq!(
            read_triplets_h5(&p, Some("/sparse"), (3, 4), Some(6), 0.1).unwrap(),
            ev
        );
        assert_eq!(read_triplets_h5(&p, None, (3, 4), None, 0.1).unwrap(), ev);
        // NPY (3, N), C and Fortran order.
        let n = idx.len();
        let mut c_order = idx.clone();
        c_order.extend(&fr);
        c_order.extend(&ct);
        let pc = dir.path().join("ifc.npy");
        crate::npy::write_npy(&pc, &[3, n], &c_order, &[], false).unwrap();
        let got = PixelBlocks::new(TripletsNpy::open(&pc, (3, 4), None).unwrap(), 7)
            .unwrap()
            .into_event_list(0.1)
            .unwrap();
        assert_eq!(got, ev);
        let f_order: Vec<u32> = (0..n).flat_map(|i| [idx[i], fr[i], ct[i]]).collect();
        let mut bytes = crate::npy::npy_bytes(&[3, n], &f_order).unwrap();
        let at = bytes.windows(5).position(|w| w == b"False").unwrap();
        bytes[at..at + 5].copy_from_slice(b"True ");
        let pf = dir.path().join("ifc_f.npy");
        std::fs::write(&pf, &bytes).unwrap();
        let got = PixelBlocks::new(TripletsNpy::open(&pf, (3, 4), Some(6)).unwrap(), 1000)
            .unwrap()
            .into_event_list(0.1)
            .unwrap();
        assert_eq!(got, ev);
        assert!(events_from_triplets((3, 4), 6, 0.1, &[12], &[0], &[1], "t").is_err());
        assert!(TripletsNpy::open(&pc, (0, 4), None).is_err());
    }
}
