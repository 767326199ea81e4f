//! Small HDF5 helpers shared by the readers and writers: error mapping, checked opens.

use std::path::Path;

use hdf5::types::{IntSize, TypeDescriptor};

use crate::atomic::note_input;
use crate::h5filters;
use xpcs_core::error::{Error, Result};

/// Maps an HDF5 error on `path` (and `what`, the object) to [`Error::Hdf5`], adding the last
/// filter decode error if one was raised (a corrupted chunk).
pub(crate) fn h5err(path: &Path, what: &str) -> impl Fn(hdf5::Error) -> Error {
    let what = what.to_string();
    let path = path.to_path_buf();
    move |e| {
        let detail = h5filters::take_last_filter_error()
            .map(|m| format!(" (decoder: {m})"))
            .unwrap_or_default();
        Error::Hdf5 {
            path: path.clone(),
            message: one_line(&format!("{what}: {e}{detail}")),
        }
    }
}

/// Opens an HDF5 file read-only, after registering the in-process filters.
pub(crate) fn open_read(path: &Path) -> Result<hdf5::File> {
    h5filters::register()?;
    let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    if meta.is_dir() {
        return Err(Error::format(path, "is a directory, not an HDF5 file"));
    }
    let f = open_unlocked(path)
        .map_err(|e| Error::format(path, one_line(&format!("not a readable HDF5 file ({e})"))))?;
    note_input(path);
    Ok(f)
}

/// Opens an HDF5 file read-only without HDF5's file lock. Why: HDF5 opens files without
/// close-on-exec, so a child process spawned by another thread while a file is open inherits
/// the descriptor and its lock and keeps it after the parent closes the file; a later open of
/// the same file then fails with "unable to lock file, errno = 11" (seen once in CI). Our
/// writers write private temp files renamed into place, so no reader can see a file being
/// written and the lock protects nothing here. Set per file on the access property list
/// (H5Pset_file_locking, HDF5 ≥ 1.10.7) rather than through HDF5_USE_FILE_LOCKING, which
/// would mean changing the environment of a running multi-threaded process.
pub(crate) fn open_unlocked(path: &Path) -> hdf5::Result<hdf5::File> {
    hdf5::File::with_options()
        .with_fapl(|p| p.file_locking(false))
        .open(path)
}

/// Creates a group without object times (files are byte-reproducible; datasets are created
/// without times by the hdf5 crate already).
pub(crate) fn create_group(parent: &hdf5::Group, name: &str) -> hdf5::Result<hdf5::Group> {
    parent
        .create_group_builder()
        .obj_track_times(false)
        .create(name)
}

/// True when `name` (a path, possibly nested) names a dataset in `g`.
pub(crate) fn has_dataset(g: &hdf5::Group, name: &str) -> bool {
    // link_exists fails on nested paths whose parents are missing: check each prefix.
    let mut acc = String::new();
    for part in name.trim_start_matches('/').split('/') {
        if !acc.is_empty() || name.starts_with('/') {
            acc.push('/');
        }
        acc.push_str(part);
        if !g.link_exists(&acc) {
            return false;
        }
    }
    g.dataset(name).is_ok()
}

/// True when `name` names a group in `g`.
pub(crate) fn has_group(g: &hdf5::Group, name: &str) -> bool {
    let mut acc = String::new();
    for part in name.trim_start_matches('/').split('/') {
        if !acc.is_empty() || name.starts_with('/') {
            acc.push('/');
        }
        acc.push_str(part);
        if !g.link_exists(&acc) {
            return false;
        }
    }
    g.group(name).is_ok()
}

/// Integer storage classes a count or label dataset may have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum IntClass {
    U8,
    U16,
    U32,
    /// Any other integer type: read as i64 (or u64) and range-checked.
    Wide {
        signed: bool,
    },
}

/// The integer class of a dataset, or a format error naming its actual type.
pub(crate) fn int_class(ds: &hdf5::Dataset, path: &Path, what: &str) -> Result<IntClass> {
    let td = ds
        .dtype()
        .and_then(|t| t.to_descriptor())
        .map_err(h5err(path, what))?;
    Ok(match td {
        TypeDescriptor::Unsigned(IntSize::U1) => IntClass::U8,
        TypeDescriptor::Unsigned(IntSize::U2) => IntClass::U16,
        TypeDescriptor::Unsigned(IntSize::U4) => IntClass::U32,
        TypeDescriptor::Unsigned(_) => IntClass::Wide { signed: false },
        TypeDescriptor::Integer(_) => IntClass::Wide { signed: true },
        other => {
            return Err(Error::format(
                path,
                format!("{what} must be an integer dataset, got {other}"),
            ))
        }
    })
}

/// Reads a whole integer, float or bool dataset as u32 values (range-checked: floats must be
/// whole numbers in 0..=4294967295), with its shape. Label maps come as uint8 (APS 8-ID-I),
/// uint16, uint32, int64 or float64 depending on the writer.
pub(crate) fn read_u32_any(
    ds: &hdf5::Dataset,
    path: &Path,
    what: &str,
) -> Result<(Vec<usize>, Vec<u32>)> {
    let shape = ds.shape();
    let td = ds
        .dtype()
        .and_then(|t| t.to_descriptor())
        .map_err(h5err(path, what))?;
    let e = h5err(path, what);
    if let TypeDescriptor::Float(fs) = td {
        guard_size(ds, fs as usize, path, what)?;
        let raw = ds.read_raw::<f64>().map_err(e)?;
        let v = raw
            .iter()
            .enumerate()
            .map(|(i, &x)| {
                if x.is_finite() && x >= 0.0 && x.fract() == 0.0 && x <= f64::from(u32::MAX) {
                    Ok(x as u32)
                } else {
                    Err(Error::out_of_range(
                        path.display().to_string(),
                        format!("{what}[{i}]"),
                        x,
                        "a whole number in 0..=4294967295",
                    ))
                }
            })
            .collect::<Result<Vec<u32>>>()?;
        return Ok((shape, v));
    }
    if td == TypeDescriptor::Boolean {
        guard_size(ds, 1, path, what)?;
        let raw = ds.read_raw::<bool>().map_err(e)?;
        return Ok((shape, raw.into_iter().map(u32::from).collect()));
    }
    let cls = int_class(ds, path, what)?;
    let es = match td {
        TypeDescriptor::Unsigned(s) | TypeDescriptor::Integer(s) => s as usize,
        _ => 8,
    };
    guard_size(ds, es, path, what)?;
    let v: Vec<u32> = match cls {
        IntClass::U8 => ds
            .read_raw::<u8>()
            .map_err(e)?
            .into_iter()
            .map(u32::from)
            .collect(),
        IntClass::U16 => ds
            .read_raw::<u16>()
            .map_err(e)?
            .into_iter()
            .map(u32::from)
            .collect(),
        IntClass::U32 => ds.read_raw::<u32>().map_err(e)?,
        IntClass::Wide { signed: true } => {
            let raw = ds.read_raw::<i64>().map_err(e)?;
            to_u32_checked(raw.into_iter().map(i128::from), path, what)?
        }
        IntClass::Wide { signed: false } => {
            let raw = ds.read_raw::<u64>().map_err(e)?;
            to_u32_checked(raw.into_iter().map(i128::from), path, what)?
        }
    };
    Ok((shape, v))
}

/// Reads elements `range` of a 1-D integer dataset of class `cls` as u32 values
/// (range-checked; `what` names the dataset in errors, with the element index).
pub(crate) fn read_u32_range(
    ds: &hdf5::Dataset,
    cls: IntClass,
    range: std::ops::Range<usize>,
    path: &Path,
    what: &str,
) -> Result<Vec<u32>> {
    let e = h5err(path, what);
    let sel = ndarray::s![range.clone()];
    let wide = |v: Vec<i128>| -> Result<Vec<u32>> {
        v.into_iter()
            .enumerate()
            .map(|(i, x)| {
                u32::try_from(x).map_err(|_| {
                    Error::out_of_range(
                        path.display().to_string(),
                        format!("{what}[{}]", range.start + i),
                        x,
                        "0..=4294967295",
                    )
                })
            })
            .collect()
    };
    Ok(match cls {
        IntClass::U8 => ds
            .read_slice_1d::<u8, _>(sel)
            .map_err(e)?
            .iter()
            .map(|&x| u32::from(x))
            .collect(),
        IntClass::U16 => ds
            .read_slice_1d::<u16, _>(sel)
            .map_err(e)?
            .iter()
            .map(|&x| u32::from(x))
            .collect(),
        IntClass::U32 => ds.read_slice_1d::<u32, _>(sel).map_err(e)?.to_vec(),
        IntClass::Wide { signed: true } => wide(
            ds.read_slice_1d::<i64, _>(sel)
                .map_err(e)?
                .iter()
                .map(|&x| i128::from(x))
                .collect(),
        )?,
        IntClass::Wide { signed: false } => wide(
            ds.read_slice_1d::<u64, _>(sel)
                .map_err(e)?
                .iter()
                .map(|&x| i128::from(x))
                .collect(),
        )?,
    })
}

/// Opens the 1-D integer dataset `name` of `file` for sliced reading: its class and length,
/// the length checked against the bytes the file stores ([`guard_size`]).
pub(crate) fn open_1d_int(
    file: &hdf5::Group,
    name: &str,
    path: &Path,
) -> Result<(hdf5::Dataset, IntClass, usize)> {
    if !has_dataset(file, name) {
        return Err(Error::format(path, format!("missing dataset {name}")));
    }
    let ds = file.dataset(name).map_err(h5err(path, name))?;
    if ds.ndim() != 1 {
        return Err(Error::format(
            path,
            format!("{name} must be 1-D, got shape {:?}", ds.shape()),
        ));
    }
    let cls = int_class(&ds, path, name)?;
    guard_size(&ds, class_bytes(cls), path, name)?;
    let n = ds.shape()[0];
    Ok((ds, cls, n))
}

/// Bytes per element of an integer class as stored (wide types: 8).
pub(crate) fn class_bytes(cls: IntClass) -> usize {
    match cls {
        IntClass::U8 => 1,
        IntClass::U16 => 2,
        IntClass::U32 => 4,
        IntClass::Wide { .. } => 8,
    }
}

pub(crate) fn to_u32_checked(
    it: impl Iterator<Item = i128>,
    path: &Path,
    what: &str,
) -> Result<Vec<u32>> {
    it.enumerate()
        .map(|(i, x)| {
            u32::try_from(x).map_err(|_| {
                Error::out_of_range(
                    path.display().to_string(),
                    format!("{what}[{i}]"),
                    x,
                    "0..=4294967295",
                )
            })
        })
        .collect()
}

/// Reads an optional scalar (shape [] or any shape of one element, as h5py writes [1, 1]) as
/// f64: None when absent.
fn read_opt_scalar(g: &hdf5::Group, name: &str, path: &Path) -> Result<Option<f64>> {
    if !has_dataset(g, name) {
        return Ok(None);
    }
    let ds = g.dataset(name).map_err(h5err(path, name))?;
    if n_elems(&ds) != Some(1) {
        return Err(Error::format(
            path,
            format!("{name} must be a scalar, got shape {:?}", ds.shape()),
        ));
    }
    Ok(Some(ds.read_raw::<f64>().map_err(h5err(path, name))?[0]))
}

/// Reads an optional positive, finite scalar (a frame time): None when absent.
pub(crate) fn read_positive_scalar(
    g: &hdf5::Group,
    name: &str,
    path: &Path,
) -> Result<Option<f64>> {
    let Some(v) = read_opt_scalar(g, name, path)? else {
        return Ok(None);
    };
    if !(v.is_finite() && v > 0.0) {
        return Err(Error::out_of_range(
            path.display().to_string(),
            name,
            v,
            "> 0 and finite (seconds)",
        ));
    }
    Ok(Some(v))
}

/// Reads an optional non-negative integer scalar (a bit depth, a count cutoff): None when
/// absent.
pub(crate) fn read_opt_u64(g: &hdf5::Group, name: &str, path: &Path) -> Result<Option<u64>> {
    let Some(v) = read_opt_scalar(g, name, path)? else {
        return Ok(None);
    };
    if !(v.is_finite() && v >= 0.0 && v.fract() == 0.0 && v < 1.8e19) {
        return Err(Error::out_of_range(
            path.display().to_string(),
            name,
            v,
            "a whole number ≥ 0",
        ));
    }
    Ok(Some(v as u64))
}

/// The largest expansion any filter we read can reach (deflate 1032:1), with slack.
pub(crate) const MAX_EXPANSION: u128 = 1100;

/// Refuses a dataset whose declared size (elements × its stored element size; `elem_bytes`
/// when the type is unreadable) the bytes it stores in the file cannot justify: protects every
/// read from allocating for a corrupted shape (the read may widen each element, at most 8×).
pub(crate) fn guard_size(
    ds: &hdf5::Dataset,
    elem_bytes: usize,
    path: &Path,
    what: &str,
) -> Result<()> {
    let elem_bytes = ds.dtype().map(|t| t.size()).unwrap_or(elem_bytes).max(1);
    // The product of the dims can overflow u64 in a corrupt file: multiply in u128, checked.
    let declared = ds
        .shape()
        .iter()
        .try_fold(elem_bytes as u128, |a, &d| a.checked_mul(d as u128))
        .unwrap_or(u128::MAX);
    // A corrupt layout message can also claim a huge storage size: the file length bounds it.
    let file_len = ds.file().map(|f| f.size()).unwrap_or(0);
    let stored = u128::from(ds.storage_size().min(file_len));
    // Without a filter the stored bytes are the data: no expansion is justified.
    let ratio = if ds.filters().is_empty() {
        1
    } else {
        MAX_EXPANSION
    };
    if declared > ratio * stored + (1 << 20) {
        return Err(Error::format(
            path,
            format!(
                "{what} declares shape {:?} ({declared} bytes) but stores only {stored} bytes: corrupt or truncated",
                ds.shape()
            ),
        ));
    }
    Ok(())
}

/// Number of elements of a dataset, None when the product of its dims overflows.
pub(crate) fn n_elems(ds: &hdf5::Dataset) -> Option<usize> {
    ds.shape().iter().try_fold(1usize, |a, &d| a.checked_mul(d))
}

/// Creates an HDF5 file in the 1.10 format, whose metadata (superblock v3, object headers v2,
/// chunk indexes) carries checksums: a corrupted copy of a file we wrote is then detected by
/// the C library instead of being parsed. h5py (HDF5 ≥ 1.10) and the APS viewer read it.
/// Without object times (the root group's here, the others' in [`create_group`]): the same
/// content gives the same bytes. Without a file lock (a private temp file; see
/// [`open_unlocked`]).
pub(crate) fn create_h5(path: &Path) -> Result<hdf5::File> {
    crate::h5filters::register()?;
    hdf5::File::with_options()
        .with_fapl(|p| p.libver_v110().file_locking(false))
        .with_fcpl(|p| p.obj_track_times(false))
        .create(path)
        .map_err(h5err(path, "create"))
}

/// Writes a 0-d UTF-8 string dataset. Strings are stored fixed-length (NUL-padded, in the
/// dataset itself, as h5py's `np.bytes_` / boost_corr do), never variable-length: those live
/// in the global heap, which has no checksum, and a corrupted heap can crash the C library.
pub(crate) fn write_text(g: &hdf5::Group, leaf: &str, s: &str, path: &Path) -> Result<()> {
    use hdf5::types::FixedUnicode;
    let err = |_| {
        Error::invalid(
            leaf,
            format!("string of {} bytes is longer than 16384", s.len()),
        )
    };
    macro_rules! put {
        ($n:expr) => {{
            let v: FixedUnicode<$n> = s.parse().map_err(err)?;
            g.new_dataset_builder()
                .with_data(&ndarray::arr0(v))
                .create(leaf)
                .map_err(h5err(path, leaf))?;
        }};
    }
    match s.len() {
        0..=64 => put!(64),
        65..=1024 => put!(1024),
        _ => put!(16384),
    }
    Ok(())
}

/// Writes a 1-D array of short UTF-8 strings (≤ 64 bytes each), fixed-length.
pub(crate) fn write_text_array(
    g: &hdf5::Group,
    leaf: &str,
    items: &[&str],
    path: &Path,
) -> Result<()> {
    let v = items
        .iter()
        .map(|s| s.parse::<hdf5::types::FixedUnicode<64>>())
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|_| Error::invalid(leaf, "string longer than 64 bytes"))?;
    g.new_dataset_builder()
        .with_data(&ndarray::Array1::from(v))
        .create(leaf)
        .map_err(h5err(path, leaf))?;
    Ok(())
}

/// Writes a 0-d fixed-length string attribute (≤ 64 bytes).
pub(crate) fn write_text_attr(
    loc: &hdf5::Location,
    name: &str,
    s: &str,
    path: &Path,
) -> Result<()> {
    let v: hdf5::types::FixedUnicode<64> = s
        .parse()
        .map_err(|_| Error::invalid(name, "attribute string longer than 64 bytes"))?;
    loc.new_attr::<hdf5::types::FixedUnicode<64>>()
        .shape(())
        .create(name)
        .and_then(|a| a.write_scalar(&v))
        .map_err(h5err(path, name))
}

/// Reads a 0-d string dataset, fixed- or variable-length, ASCII or UTF-8.
pub(crate) fn read_text(ds: &hdf5::Dataset, path: &Path, name: &str) -> Result<String> {
    use hdf5::types::{FixedAscii, FixedUnicode, VarLenAscii, VarLenUnicode};
    if n_elems(ds) != Some(1) {
        return Err(Error::format(
            path,
            format!("{name} must be a single string, got shape {:?}", ds.shape()),
        ));
    }
    let td = ds
        .dtype()
        .and_then(|t| t.to_descriptor())
        .map_err(h5err(path, name))?;
    let e = h5err(path, name);
    Ok(match td {
        TypeDescriptor::FixedAscii(n) | TypeDescriptor::FixedUnicode(n) if n > 16384 => {
            return Err(Error::format(
                path,
                format!("{name}: string of {n} bytes (limit 16384)"),
            ))
        }
        TypeDescriptor::FixedAscii(_) => ds.read_raw::<FixedAscii<16384>>().map_err(e)?[0]
            .as_str()
            .to_string(),
        TypeDescriptor::FixedUnicode(_) => ds.read_raw::<FixedUnicode<16384>>().map_err(e)?[0]
            .as_str()
            .to_string(),
        TypeDescriptor::VarLenAscii => ds.read_raw::<VarLenAscii>().map_err(e)?[0]
            .as_str()
            .to_string(),
        TypeDescriptor::VarLenUnicode => ds.read_raw::<VarLenUnicode>().map_err(e)?[0]
            .as_str()
            .to_string(),
        other => {
            return Err(Error::format(
                path,
                format!("{name} must be a string, got {other}"),
            ))
        }
    })
}

/// Escapes control characters (newlines from file content or library messages) so that every
/// error stays on one line.
pub(crate) fn one_line(s: &str) -> String {
    if !s.chars().any(char::is_control) {
        return s.to_string();
    }
    s.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}
