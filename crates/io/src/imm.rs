//! IMM files (the legacy APS 8-ID camera format), read and written.
//!
//! **Layout** (as boost_corr's `imm_handler.py` and xpcs-eigen's `immHeader.h` / `imm.cpp`
//! read it): a sequence of frames, each a 1024-byte little-endian header followed by its data.
//! Header fields used here (byte offset: type):
//!
//! | offset | field | meaning |
//! |---|---|---|
//! | 0 | `mode` (i32) | acquisition mode (2 when written here) |
//! | 4 | `compression` (i32) | 0 = full frame, 6 = sparse (index/value pairs) |
//! | 56 | `number` (i32) | frame number (1-based when written here) |
//! | 84–104 | `row_beg`, `row_end`, `col_beg`, `col_end`, `row_bin`, `col_bin` (i32) | region of interest |
//! | 108, 112 | `rows`, `cols` (i32) | frame shape |
//! | 116 | `bytes` (i32) | bytes per pixel value: 2 |
//! | 128 | `elapsed` (f64) | time of the frame (s) |
//! | 136 | `preset` (f64) | exposure (s) |
//! | 152 | `dlen` (u32) | data elements: rows · cols (full frame) or stored pixels (sparse) |
//! | 160 | `buffer_number` (i32) | 0-based frame counter |
//! | 616 | `immversion` (i32) | 12 |
//! | 1012 | 12 bytes | 0xFF |
//!
//! (the rest, 8–1011: date, prefix, suffix, shutter, ten EPICS PV names and values, camera
//! type, threshold..., is carried but not interpreted.) Data: full frame = `dlen` u16 values
//! (row-major); sparse = `dlen` i32 pixel indices (row-major), then `dlen` u16 values.
//!
//! Values are 16-bit; both published readers read them as *signed* shorts, so counts ≥ 32768
//! would come out negative there: this reader reads them unsigned. Only `bytes` = 2 and
//! compression 0 or 6 are accepted (what both readers handle); every frame must share shape
//! and compression. The frame count is found by walking the headers.
//!
//! Reading: [`ImmFile`] is a [`FrameSource`] (frame by frame, memory of one frame) and, for
//! sparse files, a [`PhotonRecords`] source (records in batches, straight to the event
//! correlator through [`crate::records::PixelBlocks`]; repeated indices in a frame are summed,
//! as xpcs-eigen's sparse matrix assembly does; zero values dropped). The declared shape is
//! checked against [`crate::records::MAX_PIXELS`] and every frame's data against the file
//! length before anything is allocated.
//!
//! Writing: [`write_imm`] (sparse or full frames).

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::atomic::{note_input, write_atomic};
use crate::records::{checked_pixels, FrameMajor, PhotonRecords, RecordBatch, BATCH_RECORDS};
use xpcs_core::data::{check_frame_buffer, EventList, FrameSource};
use xpcs_core::error::{Error, Result};

/// Bytes of a frame header.
pub const HEADER_BYTES: usize = 1024;
/// `compression` of a sparse frame.
pub const COMPRESSION_SPARSE: i32 = 6;
/// `immversion` written.
pub const IMM_VERSION: i32 = 12;

/// The header fields of one IMM frame that the readers and writer use.
#[derive(Debug, Clone, PartialEq)]
pub struct ImmHeader {
    /// Acquisition mode.
    pub mode: i32,
    /// 0 = full frame, 6 = sparse.
    pub compression: i32,
    /// Frame number.
    pub number: i32,
    /// Rows of the frame.
    pub rows: i32,
    /// Columns of the frame.
    pub cols: i32,
    /// Bytes per value (2).
    pub bytes: i32,
    /// Time of the frame (s).
    pub elapsed: f64,
    /// Exposure (s).
    pub preset: f64,
    /// Data elements (full: rows · cols; sparse: stored pixels).
    pub dlen: u32,
    /// 0-based frame counter.
    pub buffer_number: i32,
    /// Format version.
    pub immversion: i32,
}

fn i32_at(b: &[u8], o: usize) -> i32 {
    i32::from_le_bytes(b[o..o + 4].try_into().expect("4 bytes"))
}

impl ImmHeader {
    /// Parses the fields of a 1024-byte header.
    pub fn parse(b: &[u8; HEADER_BYTES]) -> Self {
        ImmHeader {
            mode: i32_at(b, 0),
            compression: i32_at(b, 4),
            number: i32_at(b, 56),
            rows: i32_at(b, 108),
            cols: i32_at(b, 112),
            bytes: i32_at(b, 116),
            elapsed: f64::from_le_bytes(b[128..136].try_into().expect("8 bytes")),
            preset: f64::from_le_bytes(b[136..144].try_into().expect("8 bytes")),
            dlen: u32::from_le_bytes(b[152..156].try_into().expect("4 bytes")),
            buffer_number: i32_at(b, 160),
            immversion: i32_at(b, 616),
        }
    }

    /// The 1024 header bytes as the acquisition system writes them: these fields, the region
    /// of interest = the whole frame, binning 1, `prefix` (≤ 16 bytes), suffix `.imm`, ROI
    /// number 1, zero padding and the 12 trailing 0xFF bytes.
    pub fn to_bytes(&self, prefix: &str) -> [u8; HEADER_BYTES] {
        let mut b = [0u8; HEADER_BYTES];
        let mut put = |o: usize, v: &[u8]| b[o..o + v.len()].copy_from_slice(v);
        put(0, &self.mode.to_le_bytes());
        put(4, &self.compression.to_le_bytes());
        let p = prefix.as_bytes();
        put(40, &p[..p.len().min(16)]);
        put(56, &self.number.to_le_bytes());
        put(60, b".imm");
        put(84, &0i32.to_le_bytes());
        put(88, &(self.rows - 1).to_le_bytes());
        put(92, &0i32.to_le_bytes());
        put(96, &(self.cols - 1).to_le_bytes());
        put(100, &1i32.to_le_bytes());
        put(104, &1i32.to_le_bytes());
        put(108, &self.rows.to_le_bytes());
        put(112, &self.cols.to_le_bytes());
        put(116, &self.bytes.to_le_bytes());
        put(128, &self.elapsed.to_le_bytes());
        put(136, &self.preset.to_le_bytes());
        put(152, &self.dlen.to_le_bytes());
        put(156, &1i32.to_le_bytes());
        put(160, &self.buffer_number.to_le_bytes());
        put(616, &self.immversion.to_le_bytes());
        put(1012, &[0xFF; 12]);
        b
    }

    /// Bytes of data following this header.
    fn payload(&self) -> u64 {
        u64::from(self.dlen) * if self.compression == 0 { 2 } else { 6 }
    }
}

/// An IMM file opened for reading (see the module docs).
#[derive(Debug)]
pub struct ImmFile {
    path: PathBuf,
    file: File,
    first: ImmHeader,
    rows: usize,
    cols: usize,
    sparse: bool,
    n_frames: usize,
    /// Stored pixels over all frames (the `dlen` sum).
    stored: u64,
    /// Next frame of [`FrameSource::read_next`] and its header's offset.
    next: usize,
    pos: u64,
    raw: Vec<u8>,
}

impl ImmFile {
    /// Opens `path` and walks every frame header: shape, compression and `bytes` consistent,
    /// data within the file.
    pub fn open(path: &Path) -> Result<Self> {
        let file = File::open(path).map_err(|e| Error::io(path, e))?;
        let meta = file.metadata().map_err(|e| Error::io(path, e))?;
        if meta.is_dir() {
            return Err(Error::format(path, "is a directory, not an IMM file"));
        }
        note_input(path);
        let len = meta.len();
        let o = || path.display().to_string();
        let mut first: Option<ImmHeader> = None;
        let (mut pos, mut k) = (0u64, 0usize);
        let mut stored = 0u64;
        let mut hb = [0u8; HEADER_BYTES];
        while pos < len {
            if len - pos < HEADER_BYTES as u64 {
                return Err(Error::format(
                    path,
                    format!(
                        "frame {k}: {} bytes left, less than a 1024-byte header (truncated?)",
                        len - pos
                    ),
                ));
            }
            file.read_exact_at(&mut hb, pos)
                .map_err(|e| Error::io(path, e))?;
            let h = ImmHeader::parse(&hb);
            match &first {
                None => {
                    if h.compression != 0 && h.compression != COMPRESSION_SPARSE {
                        return Err(Error::out_of_range(
                            o(),
                            "frame 0: compression",
                            h.compression,
                            "0 (full frames) or 6 (sparse)",
                        ));
                    }
                    if h.bytes != 2 {
                        return Err(Error::out_of_range(
                            o(),
                            "frame 0: bytes per value",
                            h.bytes,
                            "2",
                        ));
                    }
                    if h.rows < 1 || h.cols < 1 {
                        return Err(Error::out_of_range(
                            o(),
                            "frame 0: rows × cols",
                            format!("{} × {}", h.rows, h.cols),
                            "≥ 1 each",
                        ));
                    }
                    checked_pixels(path, (h.rows as usize, h.cols as usize))?;
                }
                Some(f) => {
                    if (h.rows, h.cols, h.compression, h.bytes)
                        != (f.rows, f.cols, f.compression, f.bytes)
                    {
                        return Err(Error::format(
                            path,
                            format!(
                                "frame {k}: rows, cols, compression, bytes = ({}, {}, {}, {}), frame 0 has ({}, {}, {}, {})",
                                h.rows, h.cols, h.compression, h.bytes, f.rows, f.cols, f.compression, f.bytes
                            ),
                        ));
                    }
                }
            }
            let n = (h.rows as u64) * (h.cols as u64);
            let ok = if h.compression == 0 {
                u64::from(h.dlen) == n
            } else {
                u64::from(h.dlen) <= n
            };
            if !ok {
                return Err(Error::out_of_range(
                    o(),
                    format!("frame {k}: dlen"),
                    h.dlen,
                    if h.compression == 0 {
                        format!("{n} (rows · cols of a full frame)")
                    } else {
                        format!("0..={n} (rows · cols)")
                    },
                ));
            }
            let end = pos + HEADER_BYTES as u64 + h.payload();
            if end > len {
                return Err(Error::format(
                    path,
                    format!(
                        "frame {k}: header declares {} data bytes, the file ends {} bytes after the header (truncated?)",
                        h.payload(),
                        len - pos - HEADER_BYTES as u64
                    ),
                ));
            }
            stored += u64::from(h.dlen);
            if first.is_none() {
                first = Some(h);
            }
            pos = end;
            k += 1;
        }
        let first = first.ok_or_else(|| Error::format(path, "empty file: no IMM frame header"))?;
        Ok(ImmFile {
            path: path.to_path_buf(),
            file,
            rows: first.rows as usize,
            cols: first.cols as usize,
            sparse: first.compression == COMPRESSION_SPARSE,
            first,
            n_frames: k,
            stored,
            next: 0,
            pos: 0,
            raw: Vec::new(),
        })
    }

    /// True for sparse (compression 6) files.
    pub fn is_sparse(&self) -> bool {
        self.sparse
    }

    /// The first frame's header.
    pub fn first_header(&self) -> &ImmHeader {
        &self.first
    }

    fn header_at(&self, pos: u64) -> Result<ImmHeader> {
        let mut hb = [0u8; HEADER_BYTES];
        self.file
            .read_exact_at(&mut hb, pos)
            .map_err(|e| Error::io(&self.path, e))?;
        Ok(ImmHeader::parse(&hb))
    }

    /// Reads `n` sparse records of the frame whose data starts at `data`, from element `s`:
    /// pixel indices into `idx`, values into `val` (checked indices).
    fn sparse_chunk(
        &mut self,
        data: u64,
        dlen: u64,
        s: u64,
        n: usize,
        frame: usize,
        out: &mut dyn FnMut(u32, u32),
    ) -> Result<()> {
        let npix = (self.rows * self.cols) as u64;
        self.raw.resize(6 * n, 0);
        let (ib, vb) = self.raw.split_at_mut(4 * n);
        let io = |e| Error::io(&self.path, e);
        self.file.read_exact_at(ib, data + 4 * s).map_err(io)?;
        self.file
            .read_exact_at(vb, data + 4 * dlen + 2 * s)
            .map_err(io)?;
        for (j, (i4, v2)) in ib.chunks_exact(4).zip(vb.chunks_exact(2)).enumerate() {
            let idx = i32::from_le_bytes(i4.try_into().expect("4 bytes"));
            if idx < 0 || idx as u64 >= npix {
                return Err(Error::out_of_range(
                    self.path.display().to_string(),
                    format!("frame {frame}: pixel index {}", s + j as u64),
                    idx,
                    format!("0..{npix} (rows · cols)"),
                ));
            }
            out(idx as u32, u32::from(u16::from_le_bytes([v2[0], v2[1]])));
        }
        Ok(())
    }
}

impl FrameSource for ImmFile {
    fn frame_shape(&self) -> (usize, usize) {
        (self.rows, self.cols)
    }
    fn n_frames(&self) -> usize {
        self.n_frames
    }
    fn read_next(&mut self, out: &mut [u32]) -> Result<bool> {
        if self.next >= self.n_frames {
            return Ok(false);
        }
        let n = self.rows * self.cols;
        check_frame_buffer(
            &self.path.display().to_string(),
            (self.rows, self.cols),
            out.len(),
        )?;
        let h = self.header_at(self.pos)?;
        let data = self.pos + HEADER_BYTES as u64;
        let t = self.next;
        if self.sparse {
            out.fill(0);
            let dlen = u64::from(h.dlen);
            let mut s = 0u64;
            while s < dlen {
                let k = (dlen - s).min(BATCH_RECORDS as u64) as usize;
                self.sparse_chunk(data, dlen, s, k, t, &mut |i, v| {
                    out[i as usize] = out[i as usize].saturating_add(v)
                })?;
                s += k as u64;
            }
        } else {
            self.raw.resize(2 * n, 0);
            self.file
                .read_exact_at(&mut self.raw, data)
                .map_err(|e| Error::io(&self.path, e))?;
            for (o, b) in out.iter_mut().zip(self.raw.chunks_exact(2)) {
                *o = u32::from(u16::from_le_bytes([b[0], b[1]]));
            }
        }
        self.pos = data + h.payload();
        self.next += 1;
        Ok(true)
    }
}

impl PhotonRecords for ImmFile {
    fn origin(&self) -> &Path {
        &self.path
    }
    fn n_records_hint(&self) -> Option<u64> {
        // Full frames: the nonzero pixels are known only after a scan.
        self.sparse.then_some(self.stored)
    }
    fn frame_shape(&self) -> (usize, usize) {
        (self.rows, self.cols)
    }
    fn n_frames(&self) -> Option<usize> {
        Some(self.n_frames)
    }
    fn frame_time_s(&self) -> Option<f64> {
        None
    }
    fn scan(&mut self, visit: &mut dyn FnMut(&RecordBatch) -> Result<()>) -> Result<()> {
        let mut pos = 0u64;
        let mut b = RecordBatch::with_capacity();
        let mut frame_buf = Vec::new();
        for t in 0..self.n_frames {
            let h = self.header_at(pos)?;
            let data = pos + HEADER_BYTES as u64;
            if self.sparse {
                let dlen = u64::from(h.dlen);
                let mut s = 0u64;
                while s < dlen {
                    let k = (dlen - s).min((BATCH_RECORDS - b.len()) as u64) as usize;
                    self.sparse_chunk(data, dlen, s, k, t, &mut |i, v| b.push(i, t as u32, v))?;
                    s += k as u64;
                    if b.len() == BATCH_RECORDS {
                        visit(&b)?;
                        b.clear();
                    }
                }
            } else {
                frame_buf.resize(self.rows * self.cols, 0u32);
                self.next = t;
                self.pos = pos;
                self.read_next(&mut frame_buf)?;
                for (p, &v) in frame_buf.iter().enumerate() {
                    if v > 0 {
                        b.push(p as u32, t as u32, v);
                        if b.len() == BATCH_RECORDS {
                            visit(&b)?;
                            b.clear();
                        }
                    }
                }
            }
            pos = data + h.payload();
        }
        if !b.is_empty() {
            visit(&b)?;
        }
        self.next = 0;
        self.pos = 0;
        Ok(())
    }
}

/// Writes `ev` as an IMM file: `sparse` frames (compression 6: indices then values) or full
/// frames (compression 0), 16-bit values (a count above 65535 is an error), `elapsed` = frame
/// × `frame_time_s`, `preset` = `frame_time_s`. Returns the written path.
pub fn write_imm(
    path: &Path,
    ev: &EventList,
    sparse: bool,
    inputs: &[&Path],
    force: bool,
) -> Result<PathBuf> {
    let origin = path.display().to_string();
    let (rows, cols) = ev.frame_shape();
    let (r32, c32) = match (i32::try_from(rows), i32::try_from(cols)) {
        (Ok(r), Ok(c)) if rows * cols <= i32::MAX as usize => (r, c),
        _ => {
            return Err(Error::out_of_range(
                origin,
                "frame shape",
                format!("({rows}, {cols})"),
                "rows · cols < 2^31 (32-bit header fields and indices)",
            ))
        }
    };
    if let Some(i) = ev.counts().iter().position(|&c| c > u32::from(u16::MAX)) {
        return Err(Error::out_of_range(
            origin,
            format!("photons of event {i}"),
            ev.counts()[i],
            "≤ 65535 (16-bit IMM values)",
        ));
    }
    let fm = FrameMajor::from_events(ev);
    let ft = ev.frame_time_s();
    let prefix = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    write_atomic(path, inputs, force, |w| {
        let io = |e| Error::io(path, e);
        let mut dense = vec![0u8; if sparse { 0 } else { 2 * rows * cols }];
        for t in 0..fm.n_frames() {
            let (px, ct) = fm.frame(t);
            let h = ImmHeader {
                mode: 2,
                compression: if sparse { COMPRESSION_SPARSE } else { 0 },
                number: t as i32 + 1,
                rows: r32,
                cols: c32,
                bytes: 2,
                elapsed: t as f64 * ft,
                preset: ft,
                dlen: if sparse { px.len() } else { rows * cols } as u32,
                buffer_number: t as i32,
                immversion: IMM_VERSION,
            };
            w.write_all(&h.to_bytes(&prefix)).map_err(io)?;
            if sparse {
                let mut b = Vec::with_capacity(6 * px.len());
                b.extend(px.iter().flat_map(|&p| (p as i32).to_le_bytes()));
                b.extend(ct.iter().flat_map(|&c| (c as u16).to_le_bytes()));
                w.write_all(&b).map_err(io)?;
            } else {
                dense.fill(0);
                for (&p, &c) in px.iter().zip(ct) {
                    let p = p as usize;
                    dense[2 * p..2 * p + 2].copy_from_slice(&(c as u16).to_le_bytes());
                }
                w.write_all(&dense).map_err(io)?;
            }
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::PixelBlocks;
    use xpcs_core::data::FrameStack;

    fn events(t: usize, r: usize, c: usize) -> EventList {
        let mut v: Vec<u32> = (0..t * r * c)
            .map(|i| {
                let h = (i as u32).wrapping_mul(2654435761);
                if h % 7 == 0 {
                    (h >> 24) % 4 + 1
                } else {
                    0
                }
            })
            .collect();
        v[5] = 40000; // above 2^15: read unsigned
        EventList::from_stack(&FrameStack::from_u32(t, r, c, v).unwrap(), 0.0125).unwrap()
    }

    #[test]
    fn header_layout_is_the_published_one() {
        let h = ImmHeader {
            mode: 2,
            compression: 6,
            number: 3,
            rows: 20,
            cols: 30,
            bytes: 2,
            elapsed: 0.025,
            preset: 0.01,
            dlen: 17,
            buffer_number: 2,
            immversion: 12,
        };
        let b = h.to_bytes("A001_Fixture_name_too_long");
        assert_eq!(&b[40..56], b"A001_Fixture_nam");
        assert_eq!(&b[1012..], &[0xFF; 12]);
        assert_eq!(i32_at(&b, 88), 19);
        assert_eq!(ImmHeader::parse(&b), h);
    }

    #[test]
    fn sparse_and_full_frames_roundtrip() {
        let dir = tempfile::tempdir().unwrap();
        let ev = events(6, 20, 30);
        let stack = ev.to_stack();
        for sparse in [true, false] {
            let p = dir.path().join(format!("f{sparse}.imm"));
            write_imm(&p, &ev, sparse, &[], false).unwrap();
            let len = std::fs::metadata(&p).unwrap().len();
            let want = if sparse {
                6 * 1024 + 6 * ev.n_events() as u64
            } else {
                6 * (1024 + 2 * 600)
            };
            assert_eq!(len, want);
            let mut f = ImmFile::open(&p).unwrap();
            assert_eq!(f.is_sparse(), sparse);
            assert_eq!(FrameSource::n_frames(&f), 6);
            let back = FrameStack::from_source(&mut f, stack.dtype()).unwrap();
            assert_eq!(back, stack, "sparse = {sparse}");
            let got = PixelBlocks::new(ImmFile::open(&p).unwrap(), 50)
                .unwrap()
                .into_event_list(0.0125)
                .unwrap();
            assert_eq!(got, ev, "sparse = {sparse}");
        }
    }

    #[test]
    fn bad_headers_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let ev = events(3, 4, 5);
        let p = dir.path().join("a.imm");
        write_imm(&p, &ev, true, &[], false).unwrap();
        let good = std::fs::read(&p).unwrap();
        let q = dir.path().join("b.imm");
        let mut cases: Vec<(&str, Vec<u8>)> = vec![];
        let mut set = |name: &'static str, off: usize, v: &[u8]| {
            let mut b = good.clone();
            b[off..off + v.len()].copy_from_slice(v);
            cases.push((name, b));
        };
        set("compression", 4, &3i32.to_le_bytes());
        set("bytes per value", 116, &4i32.to_le_bytes());
        set("rows × cols", 108, &(-1i32).to_le_bytes());
        set("frame shape", 108, &i32::MAX.to_le_bytes());
        set("dlen", 152, &u32::MAX.to_le_bytes());
        set("pixel index", 1024, &(-5i32).to_le_bytes());
        cases.push(("truncated", good[..good.len() - 1].to_vec()));
        cases.push(("empty", vec![]));
        for (what, bytes) in cases {
            std::fs::write(&q, &bytes).unwrap();
            let r = ImmFile::open(&q).and_then(|mut f| {
                let (r, c) = FrameSource::frame_shape(&f);
                let mut buf = vec![0u32; r * c];
                while f.read_next(&mut buf)? {}
                Ok(())
            });
            let e = r.expect_err(what).to_string();
            assert!(!e.contains('\n'), "{e}");
        }
        let mut big = ev.counts().to_vec();
        big[0] = 70000;
        let bad = EventList::new(
            4,
            5,
            3,
            0.1,
            ev.offsets().to_vec(),
            ev.frames().to_vec(),
            big,
        )
        .unwrap();
        assert!(write_imm(&dir.path().join("c.imm"), &bad, true, &[], false).is_err());
    }
}
