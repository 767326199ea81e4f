//! ESRF ID10 sparse frame files (the Eiger 4M "v2" sparse layout the ID10 XPCS tools read).
//!
//! **Layout** (as read by ID10_tools of Brugnara's XPCS library, `load_sparse_e4m`, version
//! `v2`): the frames of a scan are split over files `…_sparse_frame_0_00000.h5`,
//! `…_00001.h5`, … (a fixed number of frames per file, 10000 at ID10; the last file holds the
//! rest). Each file stores its frames as CSR by frame under `/entry_0000/measurement/data`:
//!
//! | dataset | shape, type | meaning |
//! |---|---|---|
//! | `frame_ptr` | (frames + 1,) integer | frame k's pixels are `index[frame_ptr[k]..frame_ptr[k+1]]`; `frame_ptr[0]` = 0, last = stored pixels |
//! | `index` | (stored pixels,) integer | row-major pixel index (row · cols + col) |
//! | `intensity` | (stored pixels,) integer | photons |
//!
//! The files do not store the frame shape (the tools know the detector: 2162 rows × 2068
//! columns for the ID10 Eiger 4M) nor the frame time (in the scan's master file): both come
//! from the caller. `index` and `intensity` may be compressed (bitshuffle + LZ4 is decoded
//! in-process).
//!
//! [`EsrfSparse`] opens the file it is given and the consecutive numbered files after it, and
//! is a [`PhotonRecords`] source: `frame_ptr` of one file in memory (8 bytes per frame of
//! that file), `index`/`intensity` read in batches. Repeated pixels within a frame are summed,
//! zero intensities dropped.

use std::path::{Path, PathBuf};

use crate::h5util::{has_dataset, open_1d_int, open_read, read_u32_range, IntClass};
use crate::records::{checked_pixels, PhotonRecords, RecordBatch, BATCH_RECORDS};
use xpcs_core::error::{Error, Result};

/// Group holding the CSR datasets.
pub const DATA_GROUP: &str = "/entry_0000/measurement/data";

/// Whether `path` is an HDF5 file in the ESRF sparse layout (has `DATA_GROUP/frame_ptr`).
pub fn is_esrf_sparse(path: &Path) -> bool {
    hdf5::File::open(path)
        .map(|f| has_dataset(&f, &format!("{DATA_GROUP}/frame_ptr")))
        .unwrap_or(false)
}

/// The file named by `path` and the consecutive numbered files after it (`…_00000.h5`,
/// `…_00001.h5`, …: the digits before the extension are incremented, width kept).
pub fn series_files(path: &Path) -> Vec<PathBuf> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let (base, ext) = name.rsplit_once('.').unwrap_or((name.as_str(), ""));
    let digits = base.len() - base.trim_end_matches(|c: char| c.is_ascii_digit()).len();
    let mut out = vec![path.to_path_buf()];
    if digits == 0 {
        return out;
    }
    let (stem, num) = base.split_at(base.len() - digits);
    let Ok(mut k) = num.parse::<u64>() else {
        return out;
    };
    loop {
        k += 1;
        let next = path.with_file_name(format!("{stem}{k:0digits$}.{ext}"));
        if !next.is_file() {
            return out;
        }
        out.push(next);
    }
}

#[derive(Debug)]
struct Part {
    path: PathBuf,
    _file: hdf5::File,
    frame_ptr: Vec<u64>,
    index: (hdf5::Dataset, IntClass),
    intensity: (hdf5::Dataset, IntClass),
}

/// An ESRF sparse series (see the module docs) as a [`PhotonRecords`] source.
#[derive(Debug)]
pub struct EsrfSparse {
    path: PathBuf,
    parts: Vec<Part>,
    shape: (usize, usize),
    n_frames: usize,
}

impl EsrfSparse {
    /// Opens the series starting at `path` for frames of `shape` (rows, cols): reads and
    /// checks every file's `frame_ptr` (0 first, non-decreasing, last = the length of `index`
    /// and `intensity`).
    pub fn open(path: &Path, shape: (usize, usize)) -> Result<Self> {
        checked_pixels(path, shape)?;
        let mut parts = Vec::new();
        let mut n_frames = 0usize;
        for f in series_files(path) {
            let file = open_read(&f)?;
            let name = |d: &str| format!("{DATA_GROUP}/{d}");
            let (fp_ds, fp_cls, n_ptr) = open_1d_int(&file, &name("frame_ptr"), &f)?;
            if n_ptr == 0 {
                return Err(Error::format(
                    &f,
                    format!(
                        "{} is empty (frames + 1 entries expected)",
                        name("frame_ptr")
                    ),
                ));
            }
            let frame_ptr: Vec<u64> =
                read_u32_range(&fp_ds, fp_cls, 0..n_ptr, &f, &name("frame_ptr"))?
                    .into_iter()
                    .map(u64::from)
                    .collect();
            let (ix, ix_cls, n_ix) = open_1d_int(&file, &name("index"), &f)?;
            let (it, it_cls, n_it) = open_1d_int(&file, &name("intensity"), &f)?;
            if n_ix != n_it {
                return Err(Error::ShapeMismatch {
                    origin: f.display().to_string(),
                    what: format!("{} vs {}", name("intensity"), name("index")),
                    expected: vec![n_ix],
                    got: vec![n_it],
                });
            }
            if frame_ptr[0] != 0
                || frame_ptr.windows(2).any(|w| w[1] < w[0])
                || frame_ptr[n_ptr - 1] != n_ix as u64
            {
                return Err(Error::format(
                    &f,
                    format!(
                        "{} must rise from 0 to the {n_ix} stored pixels, got {}..{}",
                        name("frame_ptr"),
                        frame_ptr[0],
                        frame_ptr[n_ptr - 1]
                    ),
                ));
            }
            n_frames += n_ptr - 1;
            parts.push(Part {
                path: f,
                _file: file,
                frame_ptr,
                index: (ix, ix_cls),
                intensity: (it, it_cls),
            });
        }
        Ok(EsrfSparse {
            path: path.to_path_buf(),
            parts,
            shape,
            n_frames,
        })
    }

    /// The files of the series, in frame order.
    pub fn files(&self) -> Vec<&Path> {
        self.parts.iter().map(|p| p.path.as_path()).collect()
    }
}

impl PhotonRecords for EsrfSparse {
    fn origin(&self) -> &Path {
        &self.path
    }
    fn n_records_hint(&self) -> Option<u64> {
        Some(
            self.parts
                .iter()
                .map(|p| *p.frame_ptr.last().unwrap_or(&0))
                .sum(),
        )
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
    fn scan(&mut self, visit: &mut dyn FnMut(&RecordBatch) -> Result<()>) -> Result<()> {
        let mut first_frame = 0u32;
        let mut b = RecordBatch::default();
        for part in &self.parts {
            let n = *part.frame_ptr.last().unwrap_or(&0) as usize;
            let mut k = 0usize; // frame within the file of the current element
            for s in (0..n).step_by(BATCH_RECORDS) {
                let r = s..(s + BATCH_RECORDS).min(n);
                let ix = format!("{DATA_GROUP}/index");
                let it = format!("{DATA_GROUP}/intensity");
                b.pixels = read_u32_range(&part.index.0, part.index.1, r.clone(), &part.path, &ix)?;
                b.counts = read_u32_range(
                    &part.intensity.0,
                    part.intensity.1,
                    r.clone(),
                    &part.path,
                    &it,
                )?;
                b.frames.clear();
                for e in r {
                    while part.frame_ptr[k + 1] as usize <= e {
                        k += 1;
                    }
                    b.frames.push(first_frame + k as u32);
                }
                visit(&b)?;
            }
            first_frame += (part.frame_ptr.len() - 1) as u32;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::PixelBlocks;
    use ndarray::Array1;
    use xpcs_core::data::{EventList, FrameStack};

    fn write_part(p: &Path, frames: &[Vec<(u32, u16)>], bslz4: bool) {
        crate::h5filters::register().unwrap();
        let f = hdf5::File::create(p).unwrap();
        let g = f.create_group("entry_0000/measurement/data").unwrap();
        let mut ptr = vec![0u32];
        let (mut ix, mut it) = (vec![], vec![]);
        for fr in frames {
            for &(i, v) in fr {
                ix.push(i as i32);
                it.push(v);
            }
            ptr.push(ix.len() as u32);
        }
        g.new_dataset_builder()
            .with_data(&Array1::from(ptr))
            .create("frame_ptr")
            .unwrap();
        let filt = |es| {
            if bslz4 {
                vec![hdf5::filters::Filter::user(
                    crate::h5filters::BSHUF_FILTER_ID,
                    &[0, 0, es, 0, crate::h5filters::BSHUF_COMPRESS_LZ4],
                )]
            } else {
                vec![]
            }
        };
        let n = ix.len().max(1);
        g.new_dataset_builder()
            .chunk(n)
            .set_filters(&filt(4))
            .with_data(&Array1::from(ix))
            .create("index")
            .unwrap();
        g.new_dataset_builder()
            .chunk(n)
            .set_filters(&filt(2))
            .with_data(&Array1::from(it))
            .create("intensity")
            .unwrap();
    }

    #[test]
    fn series_of_files_reads_as_one_scan() {
        let dir = tempfile::tempdir().unwrap();
        let (t, r, c) = (7usize, 5usize, 6usize);
        let v: Vec<u32> = (0..t * r * c)
            .map(|i| if i % 5 == 1 { (i % 3) as u32 + 1 } else { 0 })
            .collect();
        let stack = FrameStack::from_u32(t, r, c, v.clone()).unwrap();
        let frames: Vec<Vec<(u32, u16)>> = (0..t)
            .map(|k| {
                (0..r * c)
                    .filter(|&p| v[k * r * c + p] > 0)
                    .map(|p| (p as u32, v[k * r * c + p] as u16))
                    .collect()
            })
            .collect();
        let name = |i: usize| dir.path().join(format!("scan_sparse_frame_0_{i:05}.h5"));
        write_part(&name(0), &frames[..4], false);
        write_part(&name(1), &frames[4..], true);
        assert_eq!(series_files(&name(0)), vec![name(0), name(1)]);
        assert_eq!(series_files(&name(1)), vec![name(1)]);
        assert!(is_esrf_sparse(&name(0)));
        let src = EsrfSparse::open(&name(0), (r, c)).unwrap();
        assert_eq!(src.n_frames(), Some(7));
        let got = PixelBlocks::new(src, 4)
            .unwrap()
            .into_event_list(0.1)
            .unwrap();
        assert_eq!(got, EventList::from_stack(&stack, 0.1).unwrap());
        // Pixel beyond the given shape, inconsistent frame_ptr.
        assert!(PixelBlocks::new(EsrfSparse::open(&name(0), (2, 3)).unwrap(), 4).is_err());
        let bad = dir.path().join("bad_00000.h5");
        {
            let f = hdf5::File::create(&bad).unwrap();
            let g = f.create_group("entry_0000/measurement/data").unwrap();
            for (n, v) in [
                ("frame_ptr", vec![0i64, 3, 2]),
                ("index", vec![0, 1]),
                ("intensity", vec![1, 1]),
            ] {
                g.new_dataset_builder()
                    .with_data(&Array1::from(v))
                    .create(n)
                    .unwrap();
            }
        }
        assert!(EsrfSparse::open(&bad, (2, 3)).is_err());
    }
}
