//! Label maps and masks from NPY, NPZ or HDF5, and a checked q-partition from them.
//!
//! Input: a path, with an optional array name (NPZ member or HDF5 dataset path). The format
//! is chosen by extension: `.npy`, `.npz`, else HDF5 (`.h5`, `.hdf`, `.hdf5`, `.nxs`, ...).
//! Output: [`LabelMap`] (u32 labels, 0 = excluded, k ≥ 1 = bin k, row-major (row, col)), a
//! mask (true = valid pixel), or a [`QPartition`] checked against the detector's frame shape.
//!
//! HDF5 defaults: labels `/xpcs/qmap/dynamic_roi_map` (an APS results file), static labels
//! `/xpcs/qmap/static_roi_map`, mask `/xpcs/qmap/mask`; a mask dataset may be bool or integer
//! (nonzero = valid).

use std::path::Path;

use crate::h5util::{h5err, has_dataset, open_read, read_u32_any};
use crate::npy;
use xpcs_core::data::{LabelMap, QPartition};
use xpcs_core::error::{Error, Result};

enum Kind {
    Npy,
    Npz,
    Hdf5,
}

fn kind(path: &Path) -> Kind {
    match path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("npy") => Kind::Npy,
        Some("npz") => Kind::Npz,
        _ => Kind::Hdf5,
    }
}

fn h5_u32_2d(path: &Path, name: &str) -> Result<(usize, usize, Vec<u32>)> {
    let f = open_read(path)?;
    if !has_dataset(&f, name) {
        return Err(Error::format(path, format!("missing dataset {name}")));
    }
    let ds = f.dataset(name).map_err(h5err(path, name))?;
    let td = ds
        .dtype()
        .and_then(|t| t.to_descriptor())
        .map_err(h5err(path, name))?;
    let (shape, v) = if matches!(td, hdf5::types::TypeDescriptor::Boolean) {
        crate::h5util::guard_size(&ds, 1, path, name)?;
        let b = ds.read_raw::<bool>().map_err(h5err(path, name))?;
        (ds.shape(), b.into_iter().map(u32::from).collect())
    } else {
        read_u32_any(&ds, path, name)?
    };
    if shape.len() != 2 {
        return Err(Error::format(
            path,
            format!("{name} must have rank 2 (rows, cols), got shape {shape:?}"),
        ));
    }
    Ok((shape[0], shape[1], v))
}

/// Reads a label map. `name`: NPZ member or HDF5 dataset (default
/// `/xpcs/qmap/dynamic_roi_map`); ignored for `.npy`.
pub fn read_label_map(path: &Path, name: Option<&str>) -> Result<LabelMap> {
    match kind(path) {
        Kind::Npy => npy::read_labels(path),
        Kind::Npz => npy::npz::read_labels(path, name),
        Kind::Hdf5 => {
            let name = name.unwrap_or("/xpcs/qmap/dynamic_roi_map");
            let (r, c, v) = h5_u32_2d(path, name)?;
            LabelMap::new(r, c, v, &format!("{}:{name}", path.display()))
        }
    }
}

/// Reads a mask: (rows, cols, valid flags). `name` as for [`read_label_map`] (default
/// `/xpcs/qmap/mask`).
pub fn read_mask(path: &Path, name: Option<&str>) -> Result<(usize, usize, Vec<bool>)> {
    match kind(path) {
        Kind::Npy => npy::read_mask(path),
        Kind::Npz => npy::npz::read_mask(path, name),
        Kind::Hdf5 => {
            let (r, c, v) = h5_u32_2d(path, name.unwrap_or("/xpcs/qmap/mask"))?;
            Ok((r, c, v.into_iter().map(|x| x != 0).collect()))
        }
    }
}

/// Builds a q-partition for a detector of `frame_shape` from a dynamic label map, an optional
/// static map (default: the dynamic one) and an optional mask (default: labels > 0). Every map
/// must have the detector's shape: a map of another shape is an error naming both shapes.
pub fn read_partition(
    frame_shape: (usize, usize),
    dynamic: (&Path, Option<&str>),
    static_map: Option<(&Path, Option<&str>)>,
    mask: Option<(&Path, Option<&str>)>,
) -> Result<QPartition> {
    let d = read_label_map(dynamic.0, dynamic.1)?;
    npy::check_label_shape(&d, frame_shape, dynamic.0)?;
    let s = match static_map {
        Some((p, n)) => {
            let s = read_label_map(p, n)?;
            npy::check_label_shape(&s, frame_shape, p)?;
            s
        }
        None => d.clone(),
    };
    let m = match mask {
        Some((p, n)) => {
            let (r, c, m) = read_mask(p, n)?;
            if (r, c) != frame_shape {
                return Err(Error::ShapeMismatch {
                    origin: p.display().to_string(),
                    what: "mask vs detector frame (rows, cols)".into(),
                    expected: vec![frame_shape.0, frame_shape.1],
                    got: vec![r, c],
                });
            }
            m
        }
        None => d.labels().iter().map(|&l| l > 0).collect(),
    };
    QPartition::new(m, d, s, &dynamic.0.display().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::{example_results, write_results};

    #[test]
    fn from_npy_and_results_file() {
        let dir = tempfile::tempdir().unwrap();
        let lab = dir.path().join("l.npy");
        npy::write_npy(&lab, &[2, 3], &[0u16, 1, 1, 2, 2, 0], &[], false).unwrap();
        let msk = dir.path().join("m.npy");
        npy::write_npy(&msk, &[2, 3], &[1u8, 1, 0, 1, 1, 1], &[], false).unwrap();
        let p = read_partition((2, 3), (&lab, None), None, Some((&msk, None))).unwrap();
        assert_eq!(p.dynamic().labels(), &[0, 1, 0, 2, 2, 0]);
        let e = read_partition((3, 2), (&lab, None), None, None).unwrap_err();
        assert!(matches!(e, Error::ShapeMismatch { .. }), "{e}");

        let r = dir.path().join("r_results.hdf");
        let res = example_results();
        write_results(&r, &res, false).unwrap();
        let q = read_partition(
            (8, 10),
            (&r, None),
            Some((&r, Some("/xpcs/qmap/static_roi_map"))),
            Some((&r, None)),
        )
        .unwrap();
        assert_eq!(q.dynamic().labels(), res.partition.dynamic().labels());
        assert_eq!(q.static_map().labels(), res.partition.static_map().labels());
        assert_eq!(q.mask(), res.partition.mask());
        assert!(read_label_map(&r, Some("/nope")).is_err());
    }
}
