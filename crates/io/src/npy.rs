//! NPY and NPZ: photon-count stacks, label maps, masks, expected intensities; NPY exports.
//!
//! Inputs:
//! - stacks: rank 3, axis order (frame, row, col), any integer dtype (`u1 u2 u4 u8 i1 i2 i4
//!   i8`), little or big endian, C or Fortran order → [`FrameStack`] (u8 and u16 files keep
//!   their type; wider types are range-checked into u32: a negative count or one above
//!   u32::MAX is an error naming the element);
//! - label maps: rank 2 (row, col), any integer dtype → u32 labels (0 = excluded, k ≥ 1 =
//!   bin k; negative is an error);
//! - masks: rank 2, bool or integer (nonzero = valid pixel);
//! - expected intensities: any rank, f32/f64 (or integer) → f64.
//!
//! [`NpyFrames`] streams a stack from an `.npy` file one frame at a time (C order: one seek and
//! one read per frame, peak memory two frames; Fortran order: blocks of frames read pixel by
//! pixel, peak memory ≤ [`FORTRAN_BLOCK_BYTES`] + one frame), so a stack larger than memory is
//! processed in constant memory.
//!
//! Every size declared in a header is checked against the file length before anything is
//! allocated, so a corrupted header yields one [`Error::Format`], never a huge allocation.
//!
//! Outputs: [`write_npy`] writes a C-order little-endian array (g2 and two-time exports)
//! through [`crate::atomic`].
//!
//! Reference: the NPY format, NumPy Enhancement Proposal 1 (NEP 1) and `numpy.lib.format`.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::atomic::{note_input, write_atomic};
use xpcs_core::data::{
    check_frame_buffer, max_into, pixel_maxima_by_frames, read_frames_singly, CountWord, Counts,
    EventList, FrameSource, FrameStack, LabelMap, NonzeroFrames, StackView,
};
use xpcs_core::error::{Error, Result};

/// Largest header we accept (numpy itself writes < 1 kB; a bigger one is corruption).
pub const MAX_HEADER_BYTES: usize = 1 << 20;
/// Read-block size for Fortran-order streaming.
pub const FORTRAN_BLOCK_BYTES: usize = 64 << 20;
/// Largest rank accepted.
const MAX_RANK: usize = 32;

/// The scalar kind of an NPY dtype.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScalarKind {
    /// `b1` / `?`: one byte, 0 or 1.
    Bool,
    /// Signed integer.
    Int,
    /// Unsigned integer.
    UInt,
    /// IEEE float.
    Float,
}

/// A simple (non-structured) NPY dtype.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NpyDtype {
    /// Scalar kind.
    pub kind: ScalarKind,
    /// Bytes per element (1, 2, 4 or 8).
    pub size: usize,
    /// Byte order of multi-byte elements.
    pub big_endian: bool,
}

impl NpyDtype {
    /// The numpy `descr` string, e.g. `<u2`.
    pub fn descr(&self) -> String {
        let e = if self.size == 1 {
            '|'
        } else if self.big_endian {
            '>'
        } else {
            '<'
        };
        let k = match self.kind {
            ScalarKind::Bool => 'b',
            ScalarKind::Int => 'i',
            ScalarKind::UInt => 'u',
            ScalarKind::Float => 'f',
        };
        format!("{e}{k}{}", self.size)
    }
}

/// A parsed NPY header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NpyHeader {
    /// Element type.
    pub dtype: NpyDtype,
    /// True when the data is in Fortran (column-major) order.
    pub fortran_order: bool,
    /// Array shape.
    pub shape: Vec<usize>,
    /// Byte offset of the data from the start of the array's bytes.
    pub data_offset: u64,
}

impl NpyHeader {
    /// Number of elements (checked).
    pub fn n_elements(&self) -> Option<usize> {
        self.shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d))
    }
    /// Bytes of data (checked).
    pub fn data_bytes(&self) -> Option<u64> {
        self.n_elements()
            .and_then(|n| (n as u64).checked_mul(self.dtype.size as u64))
    }
}

/// A format error; control characters (which may come from the file) are escaped so that
/// the message stays one line.
fn fmt_err(origin: &Path, msg: impl Into<String>) -> Error {
    Error::format(origin, crate::h5util::one_line(&msg.into()))
}

/// Parses an NPY header from `r` (positioned at the magic string). `total_len` is the length
/// of the array's bytes (file or archive member): the declared data size must match it.
pub fn parse_header(r: &mut impl Read, total_len: u64, origin: &Path) -> Result<NpyHeader> {
    let mut pre = [0u8; 10];
    r.read_exact(&mut pre[..8])
        .map_err(|_| fmt_err(origin, "not an NPY file: shorter than the 8-byte magic"))?;
    if &pre[..6] != b"\x93NUMPY" {
        return Err(fmt_err(origin, "not an NPY file: bad magic string"));
    }
    let major = pre[6];
    let (hlen, prefix) = match major {
        1 => {
            r.read_exact(&mut pre[8..10])
                .map_err(|_| fmt_err(origin, "NPY header truncated"))?;
            (u16::from_le_bytes([pre[8], pre[9]]) as usize, 10usize)
        }
        2 | 3 => {
            let mut b = [0u8; 4];
            r.read_exact(&mut b)
                .map_err(|_| fmt_err(origin, "NPY header truncated"))?;
            (u32::from_le_bytes(b) as usize, 12usize)
        }
        v => {
            return Err(Error::out_of_range(
                origin.display().to_string(),
                "NPY format version",
                v,
                "1, 2 or 3",
            ))
        }
    };
    if hlen > MAX_HEADER_BYTES || (prefix + hlen) as u64 > total_len {
        return Err(fmt_err(
            origin,
            format!(
                "NPY header length {hlen} exceeds the file ({total_len} bytes) or the {MAX_HEADER_BYTES}-byte limit"
            ),
        ));
    }
    let mut h = vec![0u8; hlen];
    r.read_exact(&mut h)
        .map_err(|_| fmt_err(origin, "NPY header truncated"))?;
    let text = std::str::from_utf8(&h).map_err(|_| fmt_err(origin, "NPY header is not UTF-8"))?;
    let (descr, fortran_order, shape) = parse_dict(text).map_err(|m| fmt_err(origin, m))?;
    let dtype = parse_descr(&descr).map_err(|m| fmt_err(origin, m))?;
    let header = NpyHeader {
        dtype,
        fortran_order,
        shape,
        data_offset: (prefix + hlen) as u64,
    };
    let need = header.data_bytes().ok_or_else(|| {
        fmt_err(
            origin,
            format!("shape {:?} overflows the address space", header.shape),
        )
    })?;
    let have = total_len - header.data_offset;
    if need != have {
        return Err(fmt_err(
            origin,
            format!(
                "shape {:?} of {} needs {need} data bytes, the file holds {have}{}",
                header.shape,
                dtype.descr(),
                if need > have { " (truncated?)" } else { "" }
            ),
        ));
    }
    Ok(header)
}

fn parse_descr(d: &str) -> std::result::Result<NpyDtype, String> {
    let bad = || format!("unsupported dtype {d:?} (allowed: bool, u1-u8, i1-i8, f4, f8)");
    let mut chars = d.chars();
    let (big_endian, rest) = match chars.next() {
        Some('<') | Some('|') | Some('=') => (false, chars.as_str()),
        Some('>') => (true, chars.as_str()),
        Some('?') if d.len() == 1 => (false, "b1"),
        _ => return Err(bad()),
    };
    let rest = if rest == "?" { "b1" } else { rest };
    let (k, n) = rest.split_at(rest.len().min(1));
    let size: usize = n.parse().map_err(|_| bad())?;
    let kind = match k {
        "b" if size == 1 => ScalarKind::Bool,
        "i" => ScalarKind::Int,
        "u" => ScalarKind::UInt,
        "f" if size == 4 || size == 8 => ScalarKind::Float,
        _ => return Err(bad()),
    };
    if ![1, 2, 4, 8].contains(&size) {
        return Err(bad());
    }
    Ok(NpyDtype {
        kind,
        size,
        big_endian: big_endian && size > 1,
    })
}

/// Tokens of the Python dict literal in an NPY header.
#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Str(String),
    Int(u64),
    Bool(bool),
    Sym(char),
}

fn tokenize(s: &str) -> std::result::Result<Vec<Tok>, String> {
    let b = s.as_bytes();
    let mut i = 0;
    let mut out = Vec::new();
    while i < b.len() {
        let c = b[i] as char;
        match c {
            ' ' | '\n' | '\t' | '\r' => i += 1,
            '{' | '}' | '(' | ')' | '[' | ']' | ':' | ',' => {
                out.push(Tok::Sym(c));
                i += 1;
            }
            '\'' | '"' => {
                let end = s[i + 1..]
                    .find(c)
                    .ok_or("unterminated string in NPY header")?;
                out.push(Tok::Str(s[i + 1..i + 1 + end].to_string()));
                i += end + 2;
            }
            '0'..='9' => {
                let st = i;
                while i < b.len() && b[i].is_ascii_digit() {
                    i += 1;
                }
                let v: u64 = s[st..i]
                    .parse()
                    .map_err(|_| format!("shape value '{}' too large", &s[st..i]))?;
                // Python 2 long suffix.
                if i < b.len() && b[i] == b'L' {
                    i += 1;
                }
                out.push(Tok::Int(v));
            }
            _ if s[i..].starts_with("True") => {
                out.push(Tok::Bool(true));
                i += 4;
            }
            _ if s[i..].starts_with("False") => {
                out.push(Tok::Bool(false));
                i += 5;
            }
            _ => return Err(format!("unexpected character {c:?} in NPY header")),
        }
    }
    Ok(out)
}

fn parse_dict(s: &str) -> std::result::Result<(String, bool, Vec<usize>), String> {
    let t = tokenize(s)?;
    let mut i = 0;
    let expect = |i: &mut usize, c: char| -> std::result::Result<(), String> {
        if t.get(*i) == Some(&Tok::Sym(c)) {
            *i += 1;
            Ok(())
        } else {
            Err(format!("malformed NPY header: expected '{c}'"))
        }
    };
    expect(&mut i, '{')?;
    let (mut descr, mut fortran, mut shape) = (None, None, None);
    loop {
        if t.get(i) == Some(&Tok::Sym('}')) {
            break;
        }
        let key = match t.get(i) {
            Some(Tok::Str(k)) => k.clone(),
            _ => return Err("malformed NPY header: expected a key".into()),
        };
        i += 1;
        expect(&mut i, ':')?;
        match key.as_str() {
            "descr" => match t.get(i) {
                Some(Tok::Str(d)) => {
                    descr = Some(d.clone());
                    i += 1;
                }
                _ => return Err("structured dtypes are not supported".into()),
            },
            "fortran_order" => match t.get(i) {
                Some(Tok::Bool(b)) => {
                    fortran = Some(*b);
                    i += 1;
                }
                _ => return Err("malformed NPY header: fortran_order".into()),
            },
            "shape" => {
                expect(&mut i, '(')?;
                let mut dims = Vec::new();
                loop {
                    match t.get(i) {
                        Some(Tok::Sym(')')) => {
                            i += 1;
                            break;
                        }
                        Some(Tok::Int(v)) => {
                            if dims.len() >= MAX_RANK {
                                return Err(format!("rank above {MAX_RANK}"));
                            }
                            dims.push(usize::try_from(*v).map_err(|_| "shape too large")?);
                            i += 1;
                            if t.get(i) == Some(&Tok::Sym(',')) {
                                i += 1;
                            }
                        }
                        _ => return Err("malformed NPY header: shape".into()),
                    }
                }
                shape = Some(dims);
            }
            other => return Err(format!("unknown NPY header key {other:?}")),
        }
        if t.get(i) == Some(&Tok::Sym(',')) {
            i += 1;
        }
    }
    match (descr, fortran, shape) {
        (Some(d), Some(f), Some(s)) => Ok((d, f, s)),
        _ => Err("NPY header lacks descr, fortran_order or shape".into()),
    }
}

/// Reads one element as i128 (every supported integer fits), bool as 0/1.
#[inline]
fn int_at(b: &[u8], dt: NpyDtype) -> i128 {
    macro_rules! rd {
        ($t:ty) => {{
            let a = b.try_into().expect("element width");
            i128::from(if dt.big_endian {
                <$t>::from_be_bytes(a)
            } else {
                <$t>::from_le_bytes(a)
            })
        }};
    }
    match (dt.kind, dt.size) {
        (ScalarKind::Bool, _) | (ScalarKind::UInt, 1) => i128::from(b[0]),
        (ScalarKind::Int, 1) => i128::from(b[0] as i8),
        (ScalarKind::UInt, 2) => rd!(u16),
        (ScalarKind::Int, 2) => rd!(i16),
        (ScalarKind::UInt, 4) => rd!(u32),
        (ScalarKind::Int, 4) => rd!(i32),
        (ScalarKind::UInt, 8) => rd!(u64),
        (ScalarKind::Int, 8) => rd!(i64),
        _ => 0,
    }
}

#[inline]
fn float_at(b: &[u8], dt: NpyDtype) -> f64 {
    match (dt.kind, dt.size) {
        (ScalarKind::Float, 4) => {
            let a = b.try_into().expect("f4");
            f64::from(if dt.big_endian {
                f32::from_be_bytes(a)
            } else {
                f32::from_le_bytes(a)
            })
        }
        (ScalarKind::Float, 8) => {
            let a = b.try_into().expect("f8");
            if dt.big_endian {
                f64::from_be_bytes(a)
            } else {
                f64::from_le_bytes(a)
            }
        }
        _ => int_at(b, dt) as f64,
    }
}

/// Decodes integer elements of `bytes` into u32 counts, with the range check.
pub(crate) fn decode_counts(
    bytes: &[u8],
    dt: NpyDtype,
    out: &mut [u32],
    what: &str,
    origin: &Path,
) -> Result<()> {
    if dt.kind == ScalarKind::Float || dt.kind == ScalarKind::Bool {
        return Err(fmt_err(
            origin,
            format!(
                "{what} must be an integer dtype, got {} (float arrays are expected intensities: use read_f64)",
                dt.descr()
            ),
        ));
    }
    // Fast paths for the detector's own types.
    match (dt.kind, dt.size, dt.big_endian) {
        (ScalarKind::UInt, 1, _) => {
            out.iter_mut()
                .zip(bytes)
                .for_each(|(o, &b)| *o = u32::from(b));
            return Ok(());
        }
        (ScalarKind::UInt, 2, false) => {
            out.iter_mut()
                .zip(bytes.chunks_exact(2))
                .for_each(|(o, b)| *o = u32::from(u16::from_le_bytes([b[0], b[1]])));
            return Ok(());
        }
        (ScalarKind::UInt, 4, false) => {
            out.iter_mut()
                .zip(bytes.chunks_exact(4))
                .for_each(|(o, b)| *o = u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
            return Ok(());
        }
        _ => {}
    }
    for (i, (o, b)) in out.iter_mut().zip(bytes.chunks_exact(dt.size)).enumerate() {
        let v = int_at(b, dt);
        *o = u32::try_from(v).map_err(|_| {
            Error::out_of_range(
                origin.display().to_string(),
                format!("{what} element {i}"),
                v,
                "0..=4294967295 (a count or label must be a non-negative integer fitting u32)",
            )
        })?;
    }
    Ok(())
}

/// Reorders a Fortran-order array into C order.
fn fortran_to_c<T: Copy + Default>(data: &[T], shape: &[usize]) -> Vec<T> {
    let n = data.len();
    let mut out = vec![T::default(); n];
    if n == 0 {
        return out;
    }
    let rank = shape.len();
    // Fortran strides (in elements).
    let mut fstride = vec![1usize; rank];
    for k in 1..rank {
        fstride[k] = fstride[k - 1] * shape[k - 1];
    }
    let mut idx = vec![0usize; rank];
    for o in out.iter_mut() {
        let src: usize = idx.iter().zip(&fstride).map(|(i, s)| i * s).sum();
        *o = data[src];
        // Increment the C-order multi-index.
        for k in (0..rank).rev() {
            idx[k] += 1;
            if idx[k] < shape[k] {
                break;
            }
            idx[k] = 0;
        }
    }
    out
}

/// An NPY array loaded in memory: header plus raw data bytes.
struct Raw {
    header: NpyHeader,
    bytes: Vec<u8>,
}

fn read_raw_file(path: &Path) -> Result<Raw> {
    let mut f = File::open(path).map_err(|e| Error::io(path, e))?;
    note_input(path);
    let len = f.metadata().map_err(|e| Error::io(path, e))?.len();
    let header = parse_header(&mut f, len, path)?;
    // The size matches the file (checked in parse_header), so this allocation is justified.
    let n = (len - header.data_offset) as usize;
    let mut bytes = vec![0u8; n];
    f.read_exact(&mut bytes).map_err(|e| Error::io(path, e))?;
    Ok(Raw { header, bytes })
}

fn raw_from_bytes(buf: Vec<u8>, origin: &Path) -> Result<Raw> {
    let header = parse_header(&mut &buf[..], buf.len() as u64, origin)?;
    let bytes = buf[header.data_offset as usize..].to_vec();
    Ok(Raw { header, bytes })
}

fn check_rank(h: &NpyHeader, rank: usize, what: &str, axes: &str, origin: &Path) -> Result<()> {
    if h.shape.len() != rank {
        return Err(fmt_err(
            origin,
            format!(
                "{what} must have rank {rank} ({axes}), got shape {:?}",
                h.shape
            ),
        ));
    }
    Ok(())
}

fn stack_from_raw(raw: Raw, origin: &Path) -> Result<FrameStack> {
    let h = &raw.header;
    check_rank(h, 3, "a frame stack", "frames, rows, cols", origin)?;
    let (t, r, c) = (h.shape[0], h.shape[1], h.shape[2]);
    let n = t * r * c;
    let mut counts = vec![0u32; n];
    decode_counts(&raw.bytes, h.dtype, &mut counts, "count", origin)?;
    if h.fortran_order {
        counts = fortran_to_c(&counts, &h.shape);
    }
    // Keep narrow detector types narrow (half or a quarter of the memory).
    match (h.dtype.kind, h.dtype.size) {
        (ScalarKind::UInt, 1) => {
            FrameStack::from_u8(t, r, c, counts.iter().map(|&x| x as u8).collect())
        }
        (ScalarKind::UInt, 2) => {
            FrameStack::from_u16(t, r, c, counts.iter().map(|&x| x as u16).collect())
        }
        _ => FrameStack::from_u32(t, r, c, counts),
    }
}

fn labels_from_raw(raw: Raw, origin: &Path) -> Result<LabelMap> {
    let h = &raw.header;
    check_rank(h, 2, "a label map", "rows, cols", origin)?;
    let (r, c) = (h.shape[0], h.shape[1]);
    let mut labels = vec![0u32; r * c];
    decode_counts(&raw.bytes, h.dtype, &mut labels, "label", origin)?;
    if h.fortran_order {
        labels = fortran_to_c(&labels, &h.shape);
    }
    LabelMap::new(r, c, labels, &origin.display().to_string())
}

fn mask_from_raw(raw: Raw, origin: &Path) -> Result<(usize, usize, Vec<bool>)> {
    let h = &raw.header;
    check_rank(h, 2, "a mask", "rows, cols", origin)?;
    if h.dtype.kind == ScalarKind::Float {
        return Err(fmt_err(
            origin,
            format!("a mask must be bool or integer, got {}", h.dtype.descr()),
        ));
    }
    let mut m: Vec<bool> = raw
        .bytes
        .chunks_exact(h.dtype.size)
        .map(|b| int_at(b, h.dtype) != 0)
        .collect();
    if h.fortran_order {
        m = fortran_to_c(&m, &h.shape);
    }
    Ok((h.shape[0], h.shape[1], m))
}

fn f64_from_raw(raw: Raw, origin: &Path) -> Result<(Vec<usize>, Vec<f64>)> {
    let h = &raw.header;
    let mut v: Vec<f64> = raw
        .bytes
        .chunks_exact(h.dtype.size)
        .map(|b| float_at(b, h.dtype))
        .collect();
    if let Some(i) = v.iter().position(|x| !x.is_finite()) {
        return Err(Error::out_of_range(
            origin.display().to_string(),
            format!("element {i}"),
            v[i],
            "finite",
        ));
    }
    if h.fortran_order {
        v = fortran_to_c(&v, &h.shape);
    }
    Ok((h.shape.clone(), v))
}

/// Reads the header of an `.npy` file.
pub fn read_header(path: &Path) -> Result<NpyHeader> {
    let mut f = File::open(path).map_err(|e| Error::io(path, e))?;
    let len = f.metadata().map_err(|e| Error::io(path, e))?.len();
    parse_header(&mut f, len, path)
}

/// Reads a whole (frame, row, col) count stack from an `.npy` file.
pub fn read_stack(path: &Path) -> Result<FrameStack> {
    stack_from_raw(read_raw_file(path)?, path)
}

/// Reads a (row, col) label map from an `.npy` file.
pub fn read_labels(path: &Path) -> Result<LabelMap> {
    labels_from_raw(read_raw_file(path)?, path)
}

/// Reads a (row, col) mask from an `.npy` file: (rows, cols, row-major valid flags).
pub fn read_mask(path: &Path) -> Result<(usize, usize, Vec<bool>)> {
    mask_from_raw(read_raw_file(path)?, path)
}

/// Reads any float or integer array as f64 (shape, C-order values); non-finite values are an
/// error. For expected intensities and q-maps.
pub fn read_f64(path: &Path) -> Result<(Vec<usize>, Vec<f64>)> {
    f64_from_raw(read_raw_file(path)?, path)
}

/// Checks that a label map has the detector's shape.
pub fn check_label_shape(map: &LabelMap, frame_shape: (usize, usize), origin: &Path) -> Result<()> {
    if map.shape() != frame_shape {
        return Err(Error::ShapeMismatch {
            origin: origin.display().to_string(),
            what: "label map vs detector frame (rows, cols)".into(),
            expected: vec![frame_shape.0, frame_shape.1],
            got: vec![map.shape().0, map.shape().1],
        });
    }
    Ok(())
}

/// Arrays inside an `.npz` archive (numpy's `savez` / `savez_compressed`).
pub mod npz {
    use super::*;

    /// Largest expansion a deflate stream can reach (1032:1), with slack: a member declaring
    /// more than this is corrupt, and we refuse it before allocating.
    const MAX_DEFLATE_RATIO: u64 = 1100;

    /// Names of the arrays in the archive (without the `.npy` suffix).
    pub fn names(path: &Path) -> Result<Vec<String>> {
        let f = File::open(path).map_err(|e| Error::io(path, e))?;
        let z = zip::ZipArchive::new(f)
            .map_err(|e| fmt_err(path, format!("not an NPZ (zip) archive: {e}")))?;
        Ok(z.file_names()
            .map(|n| n.strip_suffix(".npy").unwrap_or(n).to_string())
            .collect())
    }

    fn member(path: &Path, name: Option<&str>) -> Result<(Vec<u8>, PathBuf)> {
        let f = File::open(path).map_err(|e| Error::io(path, e))?;
        note_input(path);
        let file_len = f.metadata().map_err(|e| Error::io(path, e))?.len();
        let mut z = zip::ZipArchive::new(f)
            .map_err(|e| fmt_err(path, format!("not an NPZ (zip) archive: {e}")))?;
        let all: Vec<String> = z.file_names().map(str::to_string).collect();
        let chosen = match name {
            Some(n) => {
                let want = format!("{n}.npy");
                all.iter()
                    .find(|x| **x == want || **x == n)
                    .cloned()
                    .ok_or_else(|| {
                        fmt_err(
                            path,
                            format!("no array '{n}' in the archive (has: {})", all.join(", ")),
                        )
                    })?
            }
            None if all.len() == 1 => all[0].clone(),
            None => {
                return Err(fmt_err(
                    path,
                    format!(
                        "archive holds {} arrays ({}); name one",
                        all.len(),
                        all.join(", ")
                    ),
                ))
            }
        };
        let origin = PathBuf::from(format!("{}:{chosen}", path.display()));
        let mut m = z
            .by_name(&chosen)
            .map_err(|e| fmt_err(&origin, format!("unreadable archive member: {e}")))?;
        let declared = m.size();
        if declared > file_len.saturating_mul(MAX_DEFLATE_RATIO) + (1 << 20) {
            return Err(fmt_err(
                &origin,
                format!(
                    "member declares {declared} bytes, impossible for a {file_len}-byte archive"
                ),
            ));
        }
        let mut buf = Vec::new();
        // `take` bounds the read by the declared size; the buffer grows with real data only.
        (&mut m)
            .take(declared)
            .read_to_end(&mut buf)
            .map_err(|e| fmt_err(&origin, format!("corrupt archive member: {e}")))?;
        if buf.len() as u64 != declared {
            return Err(fmt_err(&origin, "archive member truncated"));
        }
        Ok((buf, origin))
    }

    /// Reads a count stack from an `.npz` member (`name`, or the only member).
    pub fn read_stack(path: &Path, name: Option<&str>) -> Result<FrameStack> {
        let (b, o) = member(path, name)?;
        stack_from_raw(raw_from_bytes(b, &o)?, &o)
    }
    /// Reads a label map from an `.npz` member.
    pub fn read_labels(path: &Path, name: Option<&str>) -> Result<LabelMap> {
        let (b, o) = member(path, name)?;
        labels_from_raw(raw_from_bytes(b, &o)?, &o)
    }
    /// Reads a mask from an `.npz` member.
    pub fn read_mask(path: &Path, name: Option<&str>) -> Result<(usize, usize, Vec<bool>)> {
        let (b, o) = member(path, name)?;
        mask_from_raw(raw_from_bytes(b, &o)?, &o)
    }
    /// Reads a float array from an `.npz` member.
    pub fn read_f64(path: &Path, name: Option<&str>) -> Result<(Vec<usize>, Vec<f64>)> {
        let (b, o) = member(path, name)?;
        f64_from_raw(raw_from_bytes(b, &o)?, &o)
    }

    /// Reads a 1-D integer member as u64 values (a negative value is an error).
    fn read_u64(path: &Path, name: &str) -> Result<Vec<u64>> {
        let (b, o) = member(path, Some(name))?;
        let raw = raw_from_bytes(b, &o)?;
        let h = &raw.header;
        check_rank(h, 1, name, "n", &o)?;
        if !matches!(h.dtype.kind, ScalarKind::UInt | ScalarKind::Int) {
            return Err(fmt_err(
                &o,
                format!("must be an integer array, got {}", h.dtype.descr()),
            ));
        }
        raw.bytes
            .chunks_exact(h.dtype.size)
            .enumerate()
            .map(|(i, b)| {
                u64::try_from(int_at(b, h.dtype)).map_err(|_| {
                    Error::out_of_range(
                        o.display().to_string(),
                        format!("element {i}"),
                        int_at(b, h.dtype),
                        "≥ 0",
                    )
                })
            })
            .collect()
    }

    /// True when the archive holds the members of an event NPZ (`offsets`, `frames`,
    /// `counts`, `shape`, `frame_time_s`), as `xpcs-twin simulate --out X.npz` writes it.
    pub fn is_event_npz(path: &Path) -> bool {
        names(path).is_ok_and(|n| {
            ["offsets", "frames", "counts", "shape", "frame_time_s"]
                .iter()
                .all(|m| n.iter().any(|x| x == m))
        })
    }

    /// Reads an event NPZ (see [`is_event_npz`]): per-pixel CSR `offsets` (pixels + 1),
    /// `frames`, `counts`, `shape` = [rows, cols, frames], `frame_time_s` (one value, s). Every
    /// CSR invariant is checked ([`EventList::new`]).
    pub fn read_events(path: &Path) -> Result<EventList> {
        let shape = read_u64(path, "shape")?;
        if shape.len() != 3 {
            return Err(Error::ShapeMismatch {
                origin: format!("{}:shape", path.display()),
                what: "[rows, cols, frames]".into(),
                expected: vec![3],
                got: vec![shape.len()],
            });
        }
        let (_, ft) = read_f64(path, Some("frame_time_s"))?;
        if ft.len() != 1 {
            return Err(fmt_err(path, "frame_time_s must hold one value (s)"));
        }
        let small = |v: u64, what: &str| {
            usize::try_from(v)
                .ok()
                .filter(|&x| x <= u32::MAX as usize)
                .ok_or_else(|| {
                    Error::out_of_range(path.display().to_string(), what, v, "≤ 4294967295")
                })
        };
        let (rows, cols, n_frames) = (
            small(shape[0], "shape[0] (rows)")?,
            small(shape[1], "shape[1] (cols)")?,
            small(shape[2], "shape[2] (frames)")?,
        );
        let offsets = read_u64(path, "offsets")?;
        let to_u32 = |v: Vec<u64>, what: &str| {
            crate::h5util::to_u32_checked(v.into_iter().map(i128::from), path, what)
        };
        let frames = to_u32(read_u64(path, "frames")?, "frames")?;
        let counts = to_u32(read_u64(path, "counts")?, "counts")?;
        EventList::new(rows, cols, n_frames, ft[0], offsets, frames, counts).map_err(|e| {
            Error::invalid(
                path.display().to_string(),
                crate::h5util::one_line(&e.to_string()),
            )
        })
    }

    /// A [`FrameSource`] streaming a C-order (frame, row, col) integer stack stored in an
    /// `.npz` member, stored or deflated: the member is decompressed as it is read, one frame
    /// at a time (peak memory: one frame plus the inflater's 32 KiB window), so an archive
    /// larger than memory streams. Fortran-order members are refused (they cannot be read
    /// frame by frame from a compressed stream).
    pub struct NpzFrames {
        origin: PathBuf,
        reader: Box<dyn Read + Send>,
        header: NpyHeader,
        rows: usize,
        cols: usize,
        n_frames: usize,
        next: usize,
        raw: Vec<u8>,
    }

    impl std::fmt::Debug for NpzFrames {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("NpzFrames")
                .field("origin", &self.origin)
                .field("shape", &self.header.shape)
                .field("next", &self.next)
                .finish()
        }
    }

    impl NpzFrames {
        /// Opens member `name` of `path` (or the only rank-3 member when `None`).
        pub fn open(path: &Path, name: Option<&str>) -> Result<Self> {
            let f = File::open(path).map_err(|e| Error::io(path, e))?;
            note_input(path);
            let file_len = f.metadata().map_err(|e| Error::io(path, e))?.len();
            let mut z = zip::ZipArchive::new(f)
                .map_err(|e| fmt_err(path, format!("not an NPZ (zip) archive: {e}")))?;
            let all: Vec<String> = z.file_names().map(str::to_string).collect();
            let chosen = match name {
                Some(n) => all
                    .iter()
                    .find(|x| **x == format!("{n}.npy") || **x == n)
                    .cloned()
                    .ok_or_else(|| {
                        fmt_err(
                            path,
                            format!("no array '{n}' in the archive (has: {})", all.join(", ")),
                        )
                    })?,
                None if all.len() == 1 => all[0].clone(),
                None => {
                    return Err(fmt_err(
                        path,
                        format!(
                            "archive holds {} arrays ({}); name the frames with --dataset",
                            all.len(),
                            all.join(", ")
                        ),
                    ))
                }
            };
            let origin = PathBuf::from(format!("{}:{chosen}", path.display()));
            let (method, start, csize, size) = {
                let m = z
                    .by_name(&chosen)
                    .map_err(|e| fmt_err(&origin, format!("unreadable archive member: {e}")))?;
                (
                    m.compression(),
                    m.data_start(),
                    m.compressed_size(),
                    m.size(),
                )
            };
            if start.saturating_add(csize) > file_len
                || size > file_len.saturating_mul(MAX_DEFLATE_RATIO) + (1 << 20)
            {
                return Err(fmt_err(
                    &origin,
                    format!(
                        "member of {csize} → {size} bytes does not fit a {file_len}-byte archive"
                    ),
                ));
            }
            let mut f = File::open(path).map_err(|e| Error::io(path, e))?;
            f.seek(SeekFrom::Start(start))
                .map_err(|e| Error::io(path, e))?;
            let body = std::io::BufReader::new(f.take(csize));
            let mut reader: Box<dyn Read + Send> = match method {
                zip::CompressionMethod::Stored => Box::new(body),
                zip::CompressionMethod::Deflated => {
                    Box::new(flate2::read::DeflateDecoder::new(body))
                }
                other => {
                    return Err(fmt_err(
                        &origin,
                        format!("compression {other} not supported (stored or deflate)"),
                    ))
                }
            };
            let header = parse_header(&mut reader, size, &origin)?;
            check_rank(&header, 3, "a frame stack", "frames, rows, cols", &origin)?;
            if matches!(header.dtype.kind, ScalarKind::Float | ScalarKind::Bool) {
                return Err(fmt_err(
                    &origin,
                    format!(
                        "counts must be an integer dtype, got {}",
                        header.dtype.descr()
                    ),
                ));
            }
            if header.fortran_order && header.shape.iter().filter(|&&d| d > 1).count() > 1 {
                return Err(fmt_err(
                    &origin,
                    "Fortran-order stacks cannot be streamed from an archive: save the frames \
                     C-ordered (np.ascontiguousarray) or as .npy",
                ));
            }
            let (n_frames, rows, cols) = (header.shape[0], header.shape[1], header.shape[2]);
            Ok(NpzFrames {
                origin,
                reader,
                header,
                rows,
                cols,
                n_frames,
                next: 0,
                raw: Vec::new(),
            })
        }

        /// The parsed header (dtype, shape).
        pub fn header(&self) -> &NpyHeader {
            &self.header
        }
    }

    impl FrameSource for NpzFrames {
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
            check_frame_buffer(
                &self.origin.display().to_string(),
                (self.rows, self.cols),
                out.len(),
            )?;
            self.raw
                .resize(self.rows * self.cols * self.header.dtype.size, 0);
            self.reader.read_exact(&mut self.raw).map_err(|e| {
                fmt_err(
                    &self.origin,
                    format!("corrupt or truncated member at frame {}: {e}", self.next),
                )
            })?;
            decode_counts(&self.raw, self.header.dtype, out, "count", &self.origin)
                .map_err(|e| frame_ctx(e, self.next))?;
            self.next += 1;
            Ok(true)
        }
    }
}

/// A [`FrameSource`] streaming an `.npy` stack one frame at a time.
#[derive(Debug)]
pub struct NpyFrames {
    path: PathBuf,
    file: File,
    header: NpyHeader,
    rows: usize,
    cols: usize,
    n_frames: usize,
    next: usize,
    raw: Vec<u8>,
    /// Fortran order: frames [block_start, block_start + block_len) held pixel-major.
    block_start: usize,
    block_len: usize,
    /// The whole data range mapped for [`FrameSource::read_frames`] (C order, unsigned
    /// little-endian words), made on first use; `Some(None)` once mapping was refused.
    map: Option<Option<MappedFile>>,
}

impl NpyFrames {
    /// Opens a rank-3 integer `.npy` stack for streaming.
    pub fn open(path: &Path) -> Result<Self> {
        let mut file = File::open(path).map_err(|e| Error::io(path, e))?;
        note_input(path);
        let len = file.metadata().map_err(|e| Error::io(path, e))?.len();
        let header = parse_header(&mut file, len, path)?;
        check_rank(&header, 3, "a frame stack", "frames, rows, cols", path)?;
        if matches!(header.dtype.kind, ScalarKind::Float | ScalarKind::Bool) {
            return Err(fmt_err(
                path,
                format!(
                    "counts must be an integer dtype, got {}",
                    header.dtype.descr()
                ),
            ));
        }
        let (n_frames, rows, cols) = (header.shape[0], header.shape[1], header.shape[2]);
        Ok(NpyFrames {
            path: path.to_path_buf(),
            file,
            header,
            rows,
            cols,
            n_frames,
            next: 0,
            raw: Vec::new(),
            block_start: 0,
            block_len: 0,
            map: None,
        })
    }

    /// The parsed header.
    pub fn header(&self) -> &NpyHeader {
        &self.header
    }

    /// Moves the cursor so that the next [`FrameSource::read_next`] returns frame `t`.
    pub fn seek_frame(&mut self, t: usize) -> Result<()> {
        if t > self.n_frames {
            return Err(Error::out_of_range(
                self.path.display().to_string(),
                "frame",
                t,
                format!("0..={}", self.n_frames),
            ));
        }
        self.next = t;
        Ok(())
    }

    fn read_c(&mut self, t: usize, out: &mut [u32]) -> Result<()> {
        let n = self.rows * self.cols;
        let fb = n * self.header.dtype.size;
        self.raw.resize(fb, 0);
        let off = self.header.data_offset + (t * fb) as u64;
        self.file
            .seek(SeekFrom::Start(off))
            .and_then(|_| self.file.read_exact(&mut self.raw))
            .map_err(|e| Error::io(&self.path, e))?;
        decode_counts(&self.raw, self.header.dtype, out, "count", &self.path)
            .map_err(|e| frame_ctx(e, t))
    }

    fn read_fortran(&mut self, t: usize, out: &mut [u32]) -> Result<()> {
        use std::os::unix::fs::FileExt;
        let n = self.rows * self.cols;
        let es = self.header.dtype.size;
        if !(self.block_start..self.block_start + self.block_len).contains(&t) {
            // Element (t, r, c) sits at t + T (r + R c): one pixel's frames are contiguous,
            // so read `block` frames of every pixel with one positioned read per pixel.
            let block = (FORTRAN_BLOCK_BYTES / (n * es).max(1)).clamp(1, self.n_frames - t);
            self.raw.resize(block * n * es, 0);
            for p in 0..n {
                let off = self.header.data_offset + ((p * self.n_frames + t) * es) as u64;
                self.file
                    .read_exact_at(&mut self.raw[p * block * es..(p + 1) * block * es], off)
                    .map_err(|e| Error::io(&self.path, e))?;
            }
            self.block_start = t;
            self.block_len = block;
        }
        let k = t - self.block_start;
        let bl = self.block_len;
        let mut tmp = [0u32; 1];
        for r in 0..self.rows {
            for c in 0..self.cols {
                let p = r + self.rows * c;
                let i = (p * bl + k) * es;
                decode_counts(
                    &self.raw[i..i + es],
                    self.header.dtype,
                    &mut tmp,
                    "count",
                    &self.path,
                )
                .map_err(|e| frame_ctx(e, t))?;
                out[r * self.cols + c] = tmp[0];
            }
        }
        Ok(())
    }
}

fn frame_ctx(e: Error, t: usize) -> Error {
    match e {
        Error::OutOfRange {
            origin,
            field,
            value,
            allowed,
        } => Error::OutOfRange {
            origin,
            field: format!("frame {t}: {field}"),
            value,
            allowed,
        },
        e => e,
    }
}

/// Bytes of frames one task of [`NpyFrames`]' parallel event scan reads at once.
const SCAN_TASK_BYTES: usize = if cfg!(test) { 4096 } else { 1 << 20 };

impl NpyFrames {
    /// Whether the data lie in C order: a C-order file, or a Fortran-order one with at most
    /// one axis longer than 1 (both orders are then the same).
    fn c_layout(&self) -> bool {
        let long = [self.n_frames, self.rows, self.cols]
            .iter()
            .filter(|&&n| n > 1)
            .count();
        !self.header.fortran_order || long <= 1
    }

    /// The parallel event scan of a C-order little-endian u1/u2/u4 stack (frames not yet
    /// read): runs of consecutive frames, one rayon task each, read with one positioned read
    /// into the task's buffer and scanned for nonzero words; then the per-pixel transposition
    /// ([`EventList::from_nonzero_frames`]). None for other layouts.
    fn scan_events(&mut self, frame_time_s: f64) -> Option<Result<EventList>> {
        Some(match self.mappable()? {
            1 => self.scan_words::<u8>(frame_time_s),
            2 => self.scan_words::<u16>(frame_time_s),
            _ => self.scan_words::<u32>(frame_time_s),
        })
    }

    /// [`FrameSource::read_frames`] of a C-order little-endian u1/u2/u4 stack: the frames
    /// widened from the mapped file in parallel, one rayon task per frame, and their pages
    /// then dropped from the process (resident memory stays one batch). None for other
    /// layouts, or when the system refuses the mapping (then frame by frame).
    fn read_frames_mapped(&mut self, out: &mut [u32]) -> Option<Result<usize>> {
        let size = self.mappable()?;
        let n_pix = self.rows * self.cols;
        let (next, n_frames) = (self.next, self.n_frames);
        let map = self.mapping()?;
        if n_pix == 0 {
            return Some(Ok(0));
        }
        if out.len() % n_pix != 0 {
            return Some(Err(Error::invalid(
                self.path.display().to_string(),
                format!(
                    "frame buffer of {} counts is not a whole number of {} × {} frames",
                    out.len(),
                    self.rows,
                    self.cols
                ),
            )));
        }
        let k = (out.len() / n_pix).min(n_frames - next);
        let r = next * n_pix..(next + k) * n_pix;
        let done = match size {
            1 => map
                .words::<u8>()
                .map(|w| widen(&w[r.clone()], &mut out[..k * n_pix], n_pix)),
            2 => map
                .words::<u16>()
                .map(|w| widen(&w[r.clone()], &mut out[..k * n_pix], n_pix)),
            _ => map
                .words::<u32>()
                .map(|w| widen(&w[r.clone()], &mut out[..k * n_pix], n_pix)),
        };
        // A misaligned data offset (possible with a hand-written header): frame by frame.
        done?;
        map.release(r.start * size, r.end * size);
        self.next += k;
        Some(Ok(k))
    }

    /// [`FrameSource::pixel_maxima`] of a C-order little-endian u1/u2/u4 stack, on the
    /// mapped words in place (no widening): [`NpyFrames::lend_frames_mapped`] in batches of
    /// [`MAP_BATCH_BYTES`]. None for other layouts or when the mapping is refused.
    fn pixel_maxima_mapped(&mut self) -> Option<Result<Vec<u32>>> {
        let size = self.mappable()?;
        let mut max = vec![0u32; self.rows * self.cols];
        let batch = MAP_BATCH_BYTES / (size * max.len()).max(1);
        let done = self.lend_frames_mapped(batch, &mut |v: &StackView<'_>| {
            match v.counts() {
                Counts::U8(w) => max_into(&mut max, w),
                Counts::U16(w) => max_into(&mut max, w),
                Counts::U32(w) => max_into(&mut max, w),
            }
            Ok(())
        })?;
        Some(done.map(|()| max))
    }

    /// [`FrameSource::lend_frames`] of a C-order little-endian u1/u2/u4 stack: views of the
    /// mapped words, batch after batch, each batch's pages dropped from the process once `f`
    /// returns (resident memory stays one batch). None for other layouts, or when the system
    /// refuses the mapping or the words are misaligned (nothing is read then).
    fn lend_frames_mapped(
        &mut self,
        batch: usize,
        f: &mut dyn FnMut(&StackView<'_>) -> Result<()>,
    ) -> Option<Result<()>> {
        let size = self.mappable()?;
        let (rows, cols) = (self.rows, self.cols);
        let n_pix = rows * cols;
        let (first, n_frames) = (self.next, self.n_frames);
        let map = self.mapping()?;
        let view = |r: std::ops::Range<usize>| -> Option<Counts<'_>> {
            Some(match size {
                1 => Counts::U8(&map.words::<u8>()?[r]),
                2 => Counts::U16(&map.words::<u16>()?[r]),
                _ => Counts::U32(&map.words::<u32>()?[r]),
            })
        };
        // Aligned words (a hand-written header may misalign them): else not lent.
        view(0..0)?;
        let batch = batch.max(1);
        let mut t = first;
        while t < n_frames && n_pix > 0 {
            let k = batch.min(n_frames - t);
            let r = t * n_pix..(t + k) * n_pix;
            let counts = view(r.clone()).expect("aligned words (checked above)");
            let lent = StackView::new(k, rows, cols, counts).and_then(|v| f(&v));
            map.release(r.start * size, r.end * size);
            if let Err(e) = lent {
                return Some(Err(e));
            }
            t += k;
        }
        self.next = n_frames;
        Some(Ok(()))
    }

    /// The word size of a stack whose frames can be used from the mapped file as they lie
    /// (C order, unsigned, little-endian or single bytes, 1, 2 or 4 bytes); None otherwise.
    fn mappable(&self) -> Option<usize> {
        let dt = self.header.dtype;
        let plain = self.c_layout()
            && dt.kind == ScalarKind::UInt
            && (dt.size == 1 || (cfg!(target_endian = "little") && !dt.big_endian))
            && matches!(dt.size, 1 | 2 | 4);
        plain.then_some(dt.size)
    }

    /// The whole data range mapped (made on first use); None when the system refuses.
    fn mapping(&mut self) -> Option<&MappedFile> {
        if self.map.is_none() {
            let len = self.n_frames * self.rows * self.cols * self.header.dtype.size;
            self.map = Some(MappedFile::map(&self.file, self.header.data_offset, len));
        }
        self.map.as_ref().and_then(|m| m.as_ref())
    }

    fn scan_words<W: CountWord + Default + Plain>(
        &mut self,
        frame_time_s: f64,
    ) -> Result<EventList> {
        use rayon::prelude::*;
        use std::os::unix::fs::FileExt;
        let n_pix = self.rows * self.cols;
        let wb = std::mem::size_of::<W>();
        let first = self.next;
        let left = self.n_frames - first;
        let per_task = (SCAN_TASK_BYTES / (n_pix * wb).max(1)).clamp(1, left.max(1));
        let (file, path, data_offset) = (&self.file, &self.path, self.header.data_offset);
        let start = data_offset + (first * n_pix * wb) as u64;
        // The frames mapped from the page cache (no copy); else positioned reads.
        let map = MappedFile::map(file, start, left * n_pix * wb);
        let words = map.as_ref().and_then(|m| m.words::<W>());
        let parts: Vec<NonzeroFrames> = (0..left.div_ceil(per_task))
            .into_par_iter()
            .map_init(Vec::<W>::new, |buf, k| {
                let t0 = k * per_task;
                let nf = per_task.min(left - t0);
                let mut nz = NonzeroFrames::new(n_pix)?;
                if let (Some(m), Some(w)) = (&map, words) {
                    let r = t0 * n_pix..(t0 + nf) * n_pix;
                    for fr in w[r.clone()].chunks_exact(n_pix) {
                        nz.push_frame(fr)?;
                    }
                    // Done with these pages: unmapped, so resident memory stays a few tasks.
                    m.release(r.start * wb, r.end * wb);
                    return Ok(nz);
                }
                buf.resize(nf * n_pix, W::default());
                let off = start + (t0 * n_pix * wb) as u64;
                file.read_exact_at(W::as_bytes_mut(buf), off)
                    .map_err(|e| Error::io(path, e))?;
                for fr in buf.chunks_exact(n_pix) {
                    nz.push_frame(fr)?;
                }
                Ok(nz)
            })
            .collect::<Result<_>>()?;
        drop(map);
        self.next = self.n_frames;
        EventList::from_nonzero_frames(self.rows, self.cols, frame_time_s, &parts)
    }
}

/// Bytes of stored words the mapped scans take per batch.
const MAP_BATCH_BYTES: usize = 32 << 20;

/// Widens `src` into `out` (same length), in parallel over chunks of `frame` words.
fn widen<W: Copy + Into<u32> + Sync>(src: &[W], out: &mut [u32], frame: usize) {
    use rayon::prelude::*;
    out.par_chunks_mut(frame)
        .zip(src.par_chunks(frame))
        .for_each(|(o, s)| {
            for (o, &x) in o.iter_mut().zip(s) {
                *o = x.into();
            }
        });
}

/// A read-only private mapping of a byte range of a file (the frames of a stack), unmapped
/// on drop. The file is an input nobody writes while it is read (a file truncated under the
/// mapping would end the process with SIGBUS, as for any memory-mapped reader).
struct MappedFile {
    base: *mut libc::c_void,
    map_len: usize,
    /// Offset of the range within the mapping (the mapping starts on a page boundary).
    skip: usize,
    len: usize,
    page: usize,
}

impl std::fmt::Debug for MappedFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MappedFile({} bytes)", self.len)
    }
}

// SAFETY: the mapping is read-only and owned; shared references only read it or drop pages
// of it (madvise), which the kernel serialises.
unsafe impl Sync for MappedFile {}
unsafe impl Send for MappedFile {}

impl MappedFile {
    /// Maps `len` bytes of `file` from byte `start`; None when the system refuses.
    fn map(file: &File, start: u64, len: usize) -> Option<Self> {
        use std::os::unix::io::AsRawFd;
        // SAFETY: sysconf has no preconditions.
        let page = usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).ok()?;
        if len == 0 || page == 0 {
            return None;
        }
        let skip = (start % page as u64) as usize;
        let map_len = skip.checked_add(len)?;
        let off = libc::off_t::try_from(start - skip as u64).ok()?;
        // SAFETY: a fresh read-only private mapping of an open file; checked below.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                map_len,
                libc::PROT_READ,
                libc::MAP_PRIVATE,
                file.as_raw_fd(),
                off,
            )
        };
        if base == libc::MAP_FAILED {
            return None;
        }
        Some(MappedFile {
            base,
            map_len,
            skip,
            len,
            page,
        })
    }

    /// The range as words, if suitably aligned.
    fn words<W: Plain>(&self) -> Option<&[W]> {
        // SAFETY: the mapping is `map_len` readable bytes for the life of `self`; every bit
        // pattern is a valid W (Plain) and align_to only hands out aligned words.
        let bytes =
            unsafe { std::slice::from_raw_parts(self.base.cast::<u8>().add(self.skip), self.len) };
        let (pre, w, post) = unsafe { bytes.align_to::<W>() };
        (pre.is_empty() && post.is_empty()).then_some(w)
    }

    /// Drops the whole pages of bytes `a..b` of the range from this process (they stay in
    /// the page cache; a later read maps them again).
    fn release(&self, a: usize, b: usize) {
        let (a, b) = (a + self.skip, b + self.skip);
        let a = a.div_ceil(self.page) * self.page;
        let b = b / self.page * self.page;
        if b > a {
            // SAFETY: whole pages inside the mapping; MADV_DONTNEED on a read-only private
            // file mapping only discards page-table entries.
            unsafe {
                libc::madvise(
                    self.base.cast::<u8>().add(a).cast(),
                    b - a,
                    libc::MADV_DONTNEED,
                )
            };
        }
    }
}

impl Drop for MappedFile {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `map`, unmapped once.
        unsafe { libc::munmap(self.base, self.map_len) };
    }
}

/// Count words whose memory is their little-endian bytes on this machine, any bit pattern
/// valid: a buffer of them can be read into directly.
trait Plain: Sized + Copy {
    fn as_bytes_mut(v: &mut [Self]) -> &mut [u8];
}

macro_rules! plain {
    ($($t:ty),*) => {$(
        impl Plain for $t {
            fn as_bytes_mut(v: &mut [Self]) -> &mut [u8] {
                // SAFETY: an unsigned integer has no padding and every bit pattern is valid;
                // u8 has alignment 1 and the byte length is the slice's size in memory.
                unsafe {
                    std::slice::from_raw_parts_mut(v.as_mut_ptr().cast::<u8>(), std::mem::size_of_val(v))
                }
            }
        }
    )*};
}
plain!(u8, u16, u32);

impl FrameSource for NpyFrames {
    fn frame_shape(&self) -> (usize, usize) {
        (self.rows, self.cols)
    }
    fn n_frames(&self) -> usize {
        self.n_frames
    }
    fn skip_frames(&mut self, n: usize) -> Result<()> {
        self.next = self.next.saturating_add(n).min(self.n_frames);
        Ok(())
    }
    fn read_frames(&mut self, out: &mut [u32]) -> Result<usize> {
        match self.read_frames_mapped(out) {
            Some(r) => r,
            None => read_frames_singly(self, out),
        }
    }
    fn count_bound(&self) -> u32 {
        let dt = self.header.dtype;
        match (dt.kind, dt.size) {
            (ScalarKind::UInt, 1) => u8::MAX.into(),
            (ScalarKind::UInt, 2) => u16::MAX.into(),
            (ScalarKind::Int, 1) => i8::MAX as u32,
            (ScalarKind::Int, 2) => i16::MAX as u32,
            _ => u32::MAX,
        }
    }
    fn lend_frames(
        &mut self,
        batch: usize,
        f: &mut dyn FnMut(&StackView<'_>) -> Result<()>,
    ) -> Option<Result<()>> {
        self.lend_frames_mapped(batch, f)
    }
    fn pixel_maxima(&mut self) -> Result<Vec<u32>> {
        match self.pixel_maxima_mapped() {
            Some(r) => r,
            None => pixel_maxima_by_frames(self),
        }
    }
    fn read_events(&mut self, frame_time_s: f64) -> Result<EventList> {
        match self.scan_events(frame_time_s) {
            Some(r) => r,
            None => EventList::from_source(self, frame_time_s),
        }
    }
    fn read_next(&mut self, out: &mut [u32]) -> Result<bool> {
        if self.next >= self.n_frames {
            return Ok(false);
        }
        check_frame_buffer(
            &self.path.display().to_string(),
            (self.rows, self.cols),
            out.len(),
        )?;
        let t = self.next;
        if !self.c_layout() {
            self.read_fortran(t, out)?;
        } else {
            self.read_c(t, out)?;
        }
        self.next += 1;
        Ok(true)
    }
}

/// Element types [`write_npy`] can store (little-endian).
pub trait NpyElem: Copy {
    /// The numpy `descr`.
    const DESCR: &'static str;
    /// Appends the little-endian bytes.
    fn put(self, out: &mut Vec<u8>);
}

macro_rules! npy_elem {
    ($t:ty, $d:expr) => {
        impl NpyElem for $t {
            const DESCR: &'static str = $d;
            fn put(self, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.to_le_bytes());
            }
        }
    };
}
npy_elem!(u8, "|u1");
npy_elem!(u16, "<u2");
npy_elem!(u32, "<u4");
npy_elem!(u64, "<u8");
npy_elem!(i32, "<i4");
npy_elem!(i64, "<i8");
npy_elem!(f32, "<f4");
npy_elem!(f64, "<f8");

/// The bytes of an NPY (version 1.0, C order) file holding `data` with `shape`.
pub fn npy_bytes<T: NpyElem>(shape: &[usize], data: &[T]) -> Result<Vec<u8>> {
    let n: usize = shape.iter().product();
    if n != data.len() {
        return Err(Error::ShapeMismatch {
            origin: "npy export".into(),
            what: "data length vs shape".into(),
            expected: shape.to_vec(),
            got: vec![data.len()],
        });
    }
    let dims = match shape.len() {
        1 => format!("({},)", shape[0]),
        _ => format!(
            "({})",
            shape
                .iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let mut h = format!(
        "{{'descr': '{}', 'fortran_order': False, 'shape': {dims}, }}",
        T::DESCR
    );
    // Pad with spaces so that the data starts on a 64-byte boundary; end with a newline.
    let total = 10 + h.len() + 1;
    h.push_str(&" ".repeat((64 - total % 64) % 64));
    h.push('\n');
    let mut out = Vec::with_capacity(10 + h.len() + data.len() * 8);
    out.extend_from_slice(b"\x93NUMPY\x01\x00");
    out.extend_from_slice(&(h.len() as u16).to_le_bytes());
    out.extend_from_slice(h.as_bytes());
    for &x in data {
        x.put(&mut out);
    }
    Ok(out)
}

/// Writes an NPY file atomically (see [`crate::atomic`]): C order, little endian.
pub fn write_npy<T: NpyElem>(
    path: &Path,
    shape: &[usize],
    data: &[T],
    inputs: &[&Path],
    force: bool,
) -> Result<PathBuf> {
    let bytes = npy_bytes(shape, data)?;
    write_atomic(path, inputs, force, |w| {
        w.write_all(&bytes).map_err(|e| Error::io(path, e))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(48))]
        /// The parallel event scan (mapped or read, in tasks of several frames) = the events
        /// of the stack read densely, for every integer dtype, byte order and memory order
        /// (the layouts it does not scan take the frame-by-frame path), 1 and 2 threads.
        #[test]
        fn read_events_equals_dense_read(
            descr in proptest::sample::select(vec!["|u1", "<u2", "<u4", ">u2", ">u4", "<i2", "<u8"]),
            fortran in proptest::prelude::any::<bool>(),
            t in 1usize..6,
            rows in 1usize..5,
            cols in proptest::sample::select(vec![1usize, 5, 33, 700]),
            vals in proptest::collection::vec(proptest::prop_oneof![6 => proptest::strategy::Just(0i128), 1 => 1i128..200], 6 * 4 * 700),
        ) {
            let n = t * rows * cols;
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("s.npy");
            std::fs::write(&path, make_npy(descr, fortran, &[t, rows, cols], &vals[..n])).unwrap();
            let want = EventList::from_stack(&read_stack(&path).unwrap(), 0.1).unwrap();
            for threads in [1, 2] {
                let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
                let got = pool.install(|| NpyFrames::open(&path).unwrap().read_events(0.1)).unwrap();
                proptest::prop_assert_eq!(&got, &want);
            }
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(48))]
        /// The batch reads (mapped and widened in parallel for plain layouts), the per-pixel
        /// maxima (scanned in place) and the count bound, through a frame selection as the
        /// pipeline uses them, against the frame-by-frame reads of the same selection, for
        /// every integer dtype, byte order and memory order, 1 and 2 threads.
        #[test]
        fn batch_reads_and_maxima_equal_frame_by_frame_reads(
            descr in proptest::sample::select(vec!["|u1", "<u2", "<u4", ">u2", "<i2", "<u8"]),
            fortran in proptest::prelude::any::<bool>(),
            t in 1usize..9,
            rows in 1usize..4,
            cols in proptest::sample::select(vec![1usize, 5, 33, 700]),
            (begin, len, stride, avg) in (0usize..4, 0usize..9, 1usize..3, 1usize..3),
            batch in 1usize..5,
            vals in proptest::collection::vec(proptest::prop_oneof![4 => proptest::strategy::Just(0i128), 1 => 1i128..127], 8 * 3 * 700),
        ) {
            use xpcs_core::data::{FrameSelection, SelectedFrames};
            let n_pix = rows * cols;
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("s.npy");
            std::fs::write(&path, make_npy(descr, fortran, &[t, rows, cols], &vals[..t * n_pix])).unwrap();
            let sel = FrameSelection { begin: begin.min(t - 1), end: Some(begin + len), stride, avg };
            let Ok(res) = sel.resolve(t, "s.npy") else { return Ok(()) };
            // Reference: frame by frame.
            let mut src = NpyFrames::open(&path).unwrap();
            let mut one = SelectedFrames::new(&mut src, res).unwrap();
            let mut want = vec![0u32; res.n_out * n_pix];
            for f in want.chunks_exact_mut(n_pix) {
                proptest::prop_assert!(one.read_next(f).unwrap());
            }
            let mut want_max = vec![0u32; n_pix];
            for f in want.chunks_exact(n_pix) {
                for (m, &x) in want_max.iter_mut().zip(f) {
                    *m = (*m).max(x);
                }
            }
            for threads in [1, 2] {
                let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
                let (got, got_max, bound, lent) = pool.install(|| {
                    let mut src = NpyFrames::open(&path).unwrap();
                    let mut sel_src = SelectedFrames::new(&mut src, res).unwrap();
                    let bound = sel_src.count_bound();
                    let mut got = vec![0u32; res.n_out * n_pix];
                    let mut buf = vec![0u32; batch * n_pix];
                    let mut done = 0;
                    loop {
                        let k = sel_src.read_frames(&mut buf).unwrap();
                        if k == 0 {
                            break;
                        }
                        got[done * n_pix..(done + k) * n_pix].copy_from_slice(&buf[..k * n_pix]);
                        done += k;
                    }
                    assert_eq!(done, res.n_out);
                    let mut src = NpyFrames::open(&path).unwrap();
                    let mut sel_src = SelectedFrames::new(&mut src, res).unwrap();
                    let got_max = sel_src.pixel_maxima().unwrap();
                    // Lent frames (no copy), widened here: None, or the same frames.
                    let mut src = NpyFrames::open(&path).unwrap();
                    let mut sel_src = SelectedFrames::new(&mut src, res).unwrap();
                    let mut lent = Vec::new();
                    let mut sizes = Vec::new();
                    let r = sel_src.lend_frames(batch, &mut |v| {
                        sizes.push(v.n_frames());
                        let mut f = vec![0u32; n_pix];
                        for i in 0..v.n_frames() {
                            v.frame_into(i, &mut f);
                            lent.extend_from_slice(&f);
                        }
                        Ok(())
                    });
                    let lent = r.map(|r| r.map(|()| (lent, sizes)).unwrap());
                    (got, got_max, bound, lent)
                });
                proptest::prop_assert_eq!(&got, &want);
                proptest::prop_assert_eq!(&got_max, &want_max);
                proptest::prop_assert!(want.iter().all(|&x| x <= bound));
                // A whole selection of a plain little-endian C-order file whose words are
                // aligned (numpy pads its headers to 64 bytes; this test's writer does not)
                // is lent, in batches of `batch` frames; any other is not.
                let offset = NpyFrames::open(&path).unwrap().header.data_offset as usize;
                let word = parse_descr(descr).unwrap().size;
                let plain = matches!(descr, "|u1" | "<u2" | "<u4")
                    && (!fortran || [t, rows, cols].iter().filter(|&&n| n > 1).count() <= 1)
                    && offset % word == 0;
                let whole = res.begin == 0 && res.stride == 1 && res.avg == 1 && res.n_out == t;
                proptest::prop_assert_eq!(lent.is_some(), plain && whole, "{} {} {:?}", descr, fortran, res);
                if let Some((lent, sizes)) = lent {
                    proptest::prop_assert_eq!(&lent, &want);
                    let (last, rest) = sizes.split_last().unwrap();
                    proptest::prop_assert!(rest.iter().all(|&k| k == batch) && *last <= batch);
                    proptest::prop_assert_eq!(sizes.iter().sum::<usize>(), t);
                }
            }
        }
    }

    /// Builds NPY bytes for arbitrary dtype/order from C-order i128 values (test reference).
    pub(crate) fn make_npy(
        descr: &str,
        fortran: bool,
        shape: &[usize],
        c_vals: &[i128],
    ) -> Vec<u8> {
        let dt = parse_descr(descr).unwrap();
        let vals: Vec<i128> = if fortran {
            // Inverse of fortran_to_c: element at C index goes to its F position.
            let rank = shape.len();
            let n = c_vals.len();
            let mut out = vec![0i128; n];
            let mut idx = vec![0usize; rank];
            for &v in c_vals {
                let mut f = 0;
                let mut s = 1;
                for k in 0..rank {
                    f += idx[k] * s;
                    s *= shape[k];
                }
                out[f] = v;
                for k in (0..rank).rev() {
                    idx[k] += 1;
                    if idx[k] < shape[k] {
                        break;
                    }
                    idx[k] = 0;
                }
            }
            out
        } else {
            c_vals.to_vec()
        };
        let dims = shape.iter().map(|d| format!("{d},")).collect::<String>();
        let h = format!(
            "{{'descr': '{descr}', 'fortran_order': {}, 'shape': ({dims}), }}\n",
            if fortran { "True" } else { "False" }
        );
        let mut out = b"\x93NUMPY\x01\x00".to_vec();
        out.extend_from_slice(&(h.len() as u16).to_le_bytes());
        out.extend_from_slice(h.as_bytes());
        for v in vals {
            let le = v.to_le_bytes();
            let mut b = le[..dt.size].to_vec();
            if dt.big_endian {
                b.reverse();
            }
            out.extend_from_slice(&b);
        }
        out
    }

    #[test]
    fn all_integer_dtypes_both_orders() {
        let dir = tempfile::tempdir().unwrap();
        let shape = [3usize, 2, 4];
        let vals: Vec<i128> = (0..24).map(|i| (i * 7 % 11) as i128).collect();
        for descr in [
            "|u1", "<u2", ">u2", "<u4", ">u4", "<u8", ">i8", "|i1", "<i2", ">i4",
        ] {
            for fortran in [false, true] {
                let p = dir.path().join(format!("s{}{fortran}.npy", &descr[1..]));
                std::fs::write(&p, make_npy(descr, fortran, &shape, &vals)).unwrap();
                let s = read_stack(&p).unwrap();
                let mut src = NpyFrames::open(&p).unwrap();
                let mut buf = vec![0u32; 8];
                for t in 0..3 {
                    assert!(src.read_next(&mut buf).unwrap());
                    for px in 0..8 {
                        let want = vals[t * 8 + px] as u32;
                        assert_eq!(s.get(t, px), want, "{descr} F={fortran}");
                        assert_eq!(buf[px], want, "stream {descr} F={fortran}");
                    }
                }
                assert!(!src.read_next(&mut buf).unwrap());
            }
        }
    }

    #[test]
    fn range_checks_and_float_rejection() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("neg.npy");
        std::fs::write(&p, make_npy("<i4", false, &[1, 1, 2], &[1, -3])).unwrap();
        let e = read_stack(&p).unwrap_err().to_string();
        assert!(e.contains("-3") && e.contains("element 1"), "{e}");
        let p = dir.path().join("big.npy");
        std::fs::write(&p, make_npy("<u8", false, &[1, 1, 1], &[1i128 << 33])).unwrap();
        assert!(read_stack(&p).is_err());
        let p = dir.path().join("lab.npy");
        std::fs::write(&p, make_npy("<i8", false, &[1, 2], &[0, -1])).unwrap();
        assert!(read_labels(&p).is_err());
        let p = dir.path().join("f.npy");
        std::fs::write(&p, npy_bytes(&[1, 1, 2], &[0.5f32, 1.0]).unwrap()).unwrap();
        assert!(read_stack(&p).is_err());
        let (sh, v) = read_f64(&p).unwrap();
        assert_eq!((sh, v), (vec![1, 1, 2], vec![0.5, 1.0]));
    }

    #[test]
    fn writer_roundtrip_and_labels_fortran() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("g2.npy");
        let data: Vec<f64> = (0..6).map(|i| i as f64 * 0.25).collect();
        write_npy(&p, &[2, 3], &data, &[], false).unwrap();
        assert!(write_npy(&p, &[2, 3], &data, &[], false).is_err());
        assert_eq!(read_f64(&p).unwrap(), (vec![2, 3], data));
        let q = dir.path().join("l.npy");
        std::fs::write(&q, make_npy(">i2", true, &[2, 3], &[0, 1, 2, 3, 0, 1])).unwrap();
        let m = read_labels(&q).unwrap();
        assert_eq!(m.labels(), &[0, 1, 2, 3, 0, 1]);
        assert!(check_label_shape(&m, (3, 2), &q).is_err());
    }
}
