//! Any frame or event input of `correlate`, opened by its type, and the detector's own mask.
//!
//! Input: a path (and, for HDF5 or NPZ, an optional dataset / member name). By extension:
//! `.npy` → [`NpyFrames`]; `.npz` → an event NPZ (`offsets`, `frames`, `counts`, `shape`,
//! `frame_time_s`, as `xpcs-twin simulate` writes it) or a frame stack streamed from a member
//! ([`NpzFrames`]); `.h5 .hdf .hdf5 .nxs .cxi` → an xpcs-twin event file ([`EventReader`]) or
//! Eiger/NeXus frames ([`EigerFrames`]: `/entry/data/data`, a master file's linked data files,
//! the NXdetector's `/entry/instrument/detector/data`, or `dataset`).
//!
//! Output: [`Input`]: the frames (streamed) or events, the frame time the file records, and
//! what marks the detector's invalid pixels ([`DetectorInfo`]). [`scan_detector_mask`] turns
//! that into a per-pixel mask ([`DetectorMask`]) in one streamed pass over the frames.
//!
//! Which pixels the detector mask removes, for the whole scan:
//! - every pixel whose Eiger/NeXus `pixel_mask` is non-zero (any bit: gap, dead, cold, hot,
//!   noisy, cluster, ...);
//! - every pixel that holds the overflow value 2ⁿ − 1 (n = `bit_depth_image`, else the stored
//!   type's bits) in any frame used, or exceeds `countrate_correction_count_cutoff` (the largest
//!   count the detector's rate correction trusts, where the file has it) in any frame used.
//!
//! Why the whole scan and not only the frames where a pixel overflowed: the multi-tau and
//! two-time estimators normalise each pixel by its own time averages (⟨I⟩ past and future
//! sums); a pixel missing from some frames biases those sums and the correlation of every lag
//! that spans the gap. Crystallography treats the cutoff per image (an "overload" excluded from
//! that image's integration, e.g. DIALS trusted_range); XPCS correlators (boost_corr, the ESRF
//! ones) take one static mask for the scan, and a pixel that reached the cutoff once has a count
//! rate where the rate correction is already unreliable. So: masked for the scan, and reported.

use std::path::Path;

use crate::eiger::EigerFrames;
use crate::events::{is_event_file, EventReader};
use crate::npy::npz::{is_event_npz, read_events as read_events_npz, NpzFrames};
use crate::npy::NpyFrames;
use xpcs_core::data::{EventList, FrameSource};
use xpcs_core::error::{Error, Result};

/// The data of an input.
pub enum InputData {
    /// Frames, streamed one at a time.
    Frames(Box<dyn FrameSource>),
    /// An xpcs-twin event file, read by pixel block.
    EventFile(EventReader),
    /// Events held in memory (an event NPZ).
    Events(EventList),
}

/// What marks the detector's invalid pixels in an input.
#[derive(Debug, Clone, PartialEq)]
pub struct DetectorInfo {
    /// The file's pixel mask as valid flags (true = good), if it has one.
    pub pixel_mask: Option<Vec<bool>>,
    /// The overflow value 2ⁿ − 1.
    pub overflow_value: u32,
    /// The largest count the detector trusts (`countrate_correction_count_cutoff`).
    pub count_cutoff: Option<u64>,
    /// Where these came from, in words (for the report).
    pub source: String,
}

/// An opened input.
pub struct Input {
    /// Frames or events.
    pub data: InputData,
    /// What kind of file, in words ("NPY stack", "Eiger/NeXus HDF5", ...).
    pub kind: &'static str,
    /// The frame time the file records (s), if any.
    pub frame_time_s: Option<f64>,
    /// Invalid-pixel markers (frame inputs only).
    pub detector: Option<DetectorInfo>,
}

impl Input {
    /// Frame shape (rows, cols).
    pub fn frame_shape(&self) -> (usize, usize) {
        match &self.data {
            InputData::Frames(s) => s.frame_shape(),
            InputData::EventFile(r) => r.frame_shape(),
            InputData::Events(e) => e.frame_shape(),
        }
    }
    /// Frames in the file.
    pub fn n_frames(&self) -> usize {
        match &self.data {
            InputData::Frames(s) => s.n_frames(),
            InputData::EventFile(r) => r.n_frames(),
            InputData::Events(e) => e.n_frames(),
        }
    }
}

fn dtype_overflow(bits: usize) -> u32 {
    (((1u64) << (8 * bits).clamp(1, 32)) - 1) as u32
}

/// Opens `path` by its extension (see the module docs); `dataset` names the HDF5 dataset or
/// NPZ member of the frames.
pub fn open_input(path: &Path, dataset: Option<&str>) -> Result<Input> {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    match ext.as_str() {
        "npy" => {
            let f = NpyFrames::open(path)?;
            let overflow_value = dtype_overflow(f.header().dtype.size);
            Ok(Input {
                kind: "NPY stack",
                frame_time_s: None,
                detector: Some(DetectorInfo {
                    pixel_mask: None,
                    overflow_value,
                    count_cutoff: None,
                    source: format!("the stored type's maximum {overflow_value}"),
                }),
                data: InputData::Frames(Box::new(f)),
            })
        }
        "npz" if dataset.is_none() && is_event_npz(path) => {
            let ev = read_events_npz(path)?;
            Ok(Input {
                kind: "event NPZ",
                frame_time_s: Some(ev.frame_time_s()),
                detector: None,
                data: InputData::Events(ev),
            })
        }
        "npz" => {
            let f = NpzFrames::open(path, dataset)?;
            let overflow_value = dtype_overflow(f.header().dtype.size);
            Ok(Input {
                kind: "NPZ stack",
                frame_time_s: None,
                detector: Some(DetectorInfo {
                    pixel_mask: None,
                    overflow_value,
                    count_cutoff: None,
                    source: format!("the stored type's maximum {overflow_value}"),
                }),
                data: InputData::Frames(Box::new(f)),
            })
        }
        "h5" | "hdf" | "hdf5" | "nxs" | "cxi" if dataset.is_none() && is_event_file(path) => {
            let r = EventReader::open(path)?;
            Ok(Input {
                kind: "xpcs-twin event file",
                frame_time_s: Some(r.frame_time_s()),
                detector: None,
                data: InputData::EventFile(r),
            })
        }
        "h5" | "hdf" | "hdf5" | "nxs" | "cxi" => {
            let f = EigerFrames::open_dataset(path, dataset)?;
            let flags = f.detector_flags().clone();
            let pixel_mask = f.pixel_mask()?;
            let mut source = match flags.bit_depth_image {
                Some(b) => format!("bit_depth_image {b}"),
                None => format!("the stored type ({} bits)", flags.dtype_bits),
            };
            if pixel_mask.is_some() {
                source.push_str(", pixel_mask");
            }
            if let Some(c) = flags.count_cutoff {
                source.push_str(&format!(", countrate_correction_count_cutoff {c}"));
            }
            Ok(Input {
                kind: "Eiger/NeXus HDF5",
                frame_time_s: f.frame_time_s(),
                detector: Some(DetectorInfo {
                    pixel_mask,
                    overflow_value: flags.overflow_value(),
                    count_cutoff: flags.count_cutoff,
                    source,
                }),
                data: InputData::Frames(Box::new(f)),
            })
        }
        _ => Err(Error::format(
            path,
            "unknown frame file type (allowed: .npy, .npz, .h5, .hdf, .hdf5, .nxs, .cxi)",
        )),
    }
}

/// The detector's mask for one scan, with what it removed.
#[derive(Debug, Clone, PartialEq)]
pub struct DetectorMask {
    /// Valid flags per pixel (true = kept), row-major.
    pub valid: Vec<bool>,
    /// Pixels flagged by the file's pixel mask.
    pub n_pixel_mask: usize,
    /// Further pixels that held the overflow value or exceeded the count cutoff in a frame.
    pub n_overflow: usize,
    /// The overflow value used.
    pub overflow_value: u32,
    /// The count cutoff used, if any.
    pub count_cutoff: Option<u64>,
    /// Where the markers came from.
    pub source: String,
}

impl DetectorMask {
    /// Pixels masked in all.
    pub fn n_masked(&self) -> usize {
        self.valid.iter().filter(|&&v| !v).count()
    }

    /// One line for the user: how many pixels, why.
    pub fn summary(&self) -> String {
        let cut = self
            .count_cutoff
            .map(|c| format!(" or > {c} counts"))
            .unwrap_or_default();
        format!(
            "detector mask: {} pixel(s) masked ({} by the file's pixel_mask, {} more holding \
             {}{cut} in some frame; from {}); --no-detector-mask keeps them",
            self.n_masked(),
            self.n_pixel_mask,
            self.n_overflow,
            self.overflow_value,
            self.source
        )
    }
}

/// Streams every frame of `src` once and marks the pixels that overflow (see the module docs),
/// on top of `info.pixel_mask`.
pub fn scan_detector_mask(src: &mut dyn FrameSource, info: &DetectorInfo) -> Result<DetectorMask> {
    let (r, c) = src.frame_shape();
    let n = r * c;
    let mut valid = info.pixel_mask.clone().unwrap_or_else(|| vec![true; n]);
    if valid.len() != n {
        return Err(Error::ShapeMismatch {
            origin: "detector mask".into(),
            what: "pixel_mask vs frame".into(),
            expected: vec![r, c],
            got: vec![valid.len()],
        });
    }
    let n_pixel_mask = valid.iter().filter(|&&v| !v).count();
    let limit = info
        .count_cutoff
        .map_or(u64::from(info.overflow_value), |c| {
            c.min(u64::from(info.overflow_value))
        });
    let mut buf = vec![0u32; n];
    let mut n_overflow = 0;
    while src.read_next(&mut buf)? {
        for (v, &x) in valid.iter_mut().zip(&buf) {
            // Invalid: the overflow value, or above the cutoff.
            if *v && (x == info.overflow_value || u64::from(x) > limit) {
                *v = false;
                n_overflow += 1;
            }
        }
    }
    Ok(DetectorMask {
        valid,
        n_pixel_mask,
        n_overflow,
        overflow_value: info.overflow_value,
        count_cutoff: info.count_cutoff,
        source: info.source.clone(),
    })
}
