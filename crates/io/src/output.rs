//! Photons out, in the file formats detectors and beamlines write: what `simulate --format`
//! produces, so that a beamline's own pipeline can read a simulated scan whose ground truth is
//! known.
//!
//! | [`PhotonFormat`] | files | as written by |
//! |---|---|---|
//! | `npy` | one `.npy` stack (frame, row, col), smallest unsigned type | numpy |
//! | `events` | one xpcs-twin event file `.h5` | [`crate::events`] |
//! | `eiger` | `NAME_master.h5` + `NAME_data_00000k.h5` (bitshuffle + LZ4, pixel mask, flagged pixels at 2^bits − 1) | a DECTRIS Eiger ([`crate::eiger::write_master`]) |
//! | `rigaku` | `NAME.bin` (512 × 1024) or `NAME.bin.000` … `.005` (1676 × 2100) | the APS 8-ID-I Rigaku ([`crate::rigaku::write_rigaku`]) |
//! | `imm` | `NAME.imm`, sparse frames | the legacy APS cameras ([`crate::imm::write_imm`]) |
//!
//! Every file is written atomically; a multi-file output appears whole or not at all.

use std::path::{Path, PathBuf};

use crate::records::FrameMajor;
use xpcs_core::data::EventList;
use xpcs_core::error::{Error, Result};

/// The output formats of [`write_photons`] (see the module table).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PhotonFormat {
    /// Dense NPY stack.
    Npy,
    /// xpcs-twin event file (HDF5).
    Events,
    /// DECTRIS Eiger master + data files.
    Eiger,
    /// Rigaku 64-bit sparse `.bin` module file(s).
    Rigaku,
    /// IMM, sparse frames.
    Imm,
}

impl PhotonFormat {
    /// The name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            PhotonFormat::Npy => "npy",
            PhotonFormat::Events => "events",
            PhotonFormat::Eiger => "eiger",
            PhotonFormat::Rigaku => "rigaku",
            PhotonFormat::Imm => "imm",
        }
    }

    /// The file extension an output of this format must have (so that readers recognise it).
    pub fn extension(self) -> &'static str {
        match self {
            PhotonFormat::Npy => "npy",
            PhotonFormat::Events | PhotonFormat::Eiger => "h5",
            PhotonFormat::Rigaku => "bin",
            PhotonFormat::Imm => "imm",
        }
    }

    /// Checks that `path` has this format's extension and that the format can hold frames of
    /// `shape` (Rigaku: one module or the 3M only).
    pub fn check(self, path: &Path, shape: (usize, usize)) -> Result<()> {
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .unwrap_or("")
            .to_ascii_lowercase();
        if ext != self.extension() {
            return Err(Error::invalid(
                path.display().to_string(),
                format!(
                    "a {} output must end in .{} (readers tell formats by extension)",
                    self.name(),
                    self.extension()
                ),
            ));
        }
        if self == PhotonFormat::Rigaku
            && shape != crate::rigaku::SHAPE_500K
            && shape != crate::rigaku::SHAPE_3M
        {
            return Err(Error::ShapeMismatch {
                origin: path.display().to_string(),
                what: "Rigaku frames (rows, cols): one module 512 × 1024, or the 3M 1676 × 2100"
                    .into(),
                expected: vec![512, 1024],
                got: vec![shape.0, shape.1],
            });
        }
        Ok(())
    }

    /// Every file a [`write_photons`] of this format at `path` writes (for overwrite checks
    /// before the work): frames of `shape`, `n_frames` frames, `frames_per_file` per Eiger
    /// data file.
    pub fn files(
        self,
        path: &Path,
        shape: (usize, usize),
        n_frames: usize,
        frames_per_file: usize,
    ) -> Vec<PathBuf> {
        match self {
            PhotonFormat::Eiger => {
                let mut v = vec![path.to_path_buf()];
                let n = n_frames.div_ceil(frames_per_file.max(1)).max(1);
                v.extend((1..=n).map(|k| crate::eiger::data_file_name(path, k)));
                v
            }
            PhotonFormat::Rigaku if shape == crate::rigaku::SHAPE_3M => {
                let name = path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                (0..6)
                    .map(|s| path.with_file_name(format!("{name}.{s:03}")))
                    .collect()
            }
            _ => vec![path.to_path_buf()],
        }
    }

    /// The real pixels (true) of this format's detector for frames of `shape`, when it has
    /// gaps the simulated photons must avoid (the Rigaku 3M); `None` otherwise.
    pub fn layout_mask(self, shape: (usize, usize)) -> Option<Vec<bool>> {
        (self == PhotonFormat::Rigaku && shape == crate::rigaku::SHAPE_3M)
            .then(crate::rigaku::gap_mask_3m)
    }
}

/// What a detector file records besides the photons.
#[derive(Debug, Clone, PartialEq)]
pub struct Acquisition {
    /// Exposure per frame (s); the frame period is the event list's.
    pub count_time_s: f64,
    /// Pixel size (m).
    pub pixel_size_m: f64,
    /// Sample–detector distance (m).
    pub distance_m: f64,
    /// Photon energy (keV).
    pub energy_kev: f64,
    /// NXmx pixel mask, rows · cols (bit 0 gap, 1 dead, 4 noisy); empty: none flagged.
    pub pixel_mask: Vec<u32>,
    /// Detector description.
    pub description: String,
    /// Frames per Eiger data file.
    pub frames_per_file: usize,
}

/// Writes `ev` in `format` at `path` (see the module table); returns the written paths.
pub fn write_photons(
    path: &Path,
    format: PhotonFormat,
    ev: &EventList,
    acq: &Acquisition,
    inputs: &[&Path],
    force: bool,
) -> Result<Vec<PathBuf>> {
    let (rows, cols) = ev.frame_shape();
    format.check(path, (rows, cols))?;
    match format {
        PhotonFormat::Npy => {
            let s = ev.to_stack();
            let shape = [s.n_frames(), rows, cols];
            let p = if let Some(v) = s.as_u8() {
                crate::npy::write_npy(path, &shape, v, inputs, force)
            } else if let Some(v) = s.as_u16() {
                crate::npy::write_npy(path, &shape, v, inputs, force)
            } else {
                let v = s.as_u32().expect("u8, u16 or u32");
                crate::npy::write_npy(path, &shape, v, inputs, force)
            }?;
            Ok(vec![p])
        }
        PhotonFormat::Events => {
            crate::atomic::check_output(path, inputs, force)?;
            Ok(vec![crate::events::write_events(path, ev, force)?])
        }
        PhotonFormat::Rigaku => crate::rigaku::write_rigaku(path, ev, inputs, force),
        PhotonFormat::Imm => Ok(vec![crate::imm::write_imm(path, ev, true, inputs, force)?]),
        PhotonFormat::Eiger => {
            let max = ev.counts().iter().copied().max().unwrap_or(0);
            let meta = crate::eiger::EigerMeta {
                frame_time_s: ev.frame_time_s(),
                count_time_s: acq.count_time_s,
                pixel_size_m: acq.pixel_size_m,
                detector_distance_m: acq.distance_m,
                beam_center_px: (cols as f64 / 2.0, rows as f64 / 2.0),
                photon_energy_ev: acq.energy_kev * 1e3,
                bit_depth: if max < u32::from(u16::MAX) { 16 } else { 32 },
                frames_per_file: acq.frames_per_file,
                pixel_mask: acq.pixel_mask.clone(),
                description: acq.description.clone(),
            };
            let fm = FrameMajor::from_events(ev);
            crate::eiger::write_master(path, &mut fm.frames(), &meta, inputs, force)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::{collect_events, open_input, Input, InputOptions};
    use xpcs_core::data::{CountDtype, FrameStack};

    fn events(t: usize, r: usize, c: usize) -> EventList {
        let v: Vec<u32> = (0..t * r * c)
            .map(|i| {
                let h = (i as u32).wrapping_mul(2654435761);
                if h % 9 == 0 {
                    h >> 29
                } else {
                    0
                }
            })
            .collect();
        EventList::from_stack(&FrameStack::from_u32(t, r, c, v).unwrap(), 0.01).unwrap()
    }

    fn read_back(path: &Path) -> EventList {
        match open_input(path, &InputOptions::default()).unwrap() {
            Input::Frames { mut source, .. } => {
                let s = FrameStack::from_source(source.as_mut(), CountDtype::U32).unwrap();
                EventList::from_stack(&s, 0.01).unwrap()
            }
            Input::Events(mut e) => collect_events(e.as_mut(), 0.01).unwrap(),
        }
    }

    /// Every format reads back to the same photons (the Rigaku frame count ends at the last
    /// frame with photons, so the list ends with a photon in the last frame).
    #[test]
    fn every_format_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let acq = Acquisition {
            count_time_s: 0.009,
            pixel_size_m: 75e-6,
            distance_m: 5.0,
            energy_kev: 21.0,
            pixel_mask: vec![],
            description: "test".into(),
            frames_per_file: 4,
        };
        let small = events(9, 6, 7);
        let mut rig = events(5, 512, 1024);
        let (o, mut f, c) = (
            rig.offsets().to_vec(),
            rig.frames().to_vec(),
            rig.counts().to_vec(),
        );
        *f.last_mut().unwrap() = 4;
        rig = EventList::new(512, 1024, 5, 0.01, o, f, c).unwrap();
        for (fmt, name, ev) in [
            (PhotonFormat::Npy, "a.npy", &small),
            (PhotonFormat::Events, "a.h5", &small),
            (PhotonFormat::Eiger, "a_master.h5", &small),
            (PhotonFormat::Imm, "a.imm", &small),
            (PhotonFormat::Rigaku, "a.bin", &rig),
        ] {
            let p = dir.path().join(name);
            write_photons(&p, fmt, ev, &acq, &[], false).unwrap();
            let got = read_back(&p);
            assert_eq!(got.offsets(), ev.offsets(), "{name}");
            assert_eq!(got.frames(), ev.frames(), "{name}");
            assert_eq!(got.counts(), ev.counts(), "{name}");
            assert_eq!(got.n_frames(), ev.n_frames(), "{name}");
        }
        assert!(PhotonFormat::Rigaku
            .check(Path::new("x.bin"), (6, 7))
            .is_err());
        assert!(PhotonFormat::Imm.check(Path::new("x.bin"), (6, 7)).is_err());
        assert_eq!(
            PhotonFormat::Rigaku
                .layout_mask(crate::rigaku::SHAPE_3M)
                .unwrap()
                .iter()
                .filter(|&&v| !v)
                .count(),
            1676 * 2100 - 6 * 512 * 1024
        );
    }
}
