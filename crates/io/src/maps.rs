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

use crate::h5util::{guard_size, h5err, has_dataset, open_read, read_u32_any};
use crate::npy;
use xpcs_core::data::{BinAxis, LabelMap, QPartition};
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
    let s = match static_map {
        Some((p, n)) => Some((read_label_map(p, n)?, p)),
        None => None,
    };
    let m = match mask {
        Some((p, n)) => Some((read_mask(p, n)?, p)),
        None => None,
    };
    partition_of(frame_shape, (d, dynamic.0), s, m)
}

/// A label map or a mask with the file (or object) it came from, for error messages.
pub type Named<'a, T> = (T, &'a Path);

/// [`read_partition`] of maps already in memory (the Python package's arrays): the same checks
/// and messages, each map named by its origin.
pub fn partition_of(
    frame_shape: (usize, usize),
    dynamic: Named<'_, LabelMap>,
    static_map: Option<Named<'_, LabelMap>>,
    mask: Option<Named<'_, (usize, usize, Vec<bool>)>>,
) -> Result<QPartition> {
    let (d, d_origin) = dynamic;
    npy::check_label_shape(&d, frame_shape, d_origin)?;
    let s = match static_map {
        Some((s, p)) => {
            npy::check_label_shape(&s, frame_shape, p)?;
            s
        }
        None => d.clone(),
    };
    let m = match mask {
        Some(((r, c, m), p)) => {
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
    QPartition::new(m, d, s, &d_origin.display().to_string())
}

/// Reads a 1-D numeric dataset as f64 (any integer or float type).
fn f64_list(f: &hdf5::File, path: &Path, name: &str) -> Result<Vec<f64>> {
    if !has_dataset(f, name) {
        return Err(Error::format(path, format!("missing dataset {name}")));
    }
    let ds = f.dataset(name).map_err(h5err(path, name))?;
    guard_size(&ds, 8, path, name)?;
    ds.read_raw::<f64>().map_err(h5err(path, name))
}

/// The bin centres of `{group}/{kind}_roi_map` (kind = dynamic or static) from the APS q-map
/// encoding: `{kind}_v_list_dim0` (q, Å⁻¹), `{kind}_v_list_dim1` (φ, deg) and
/// `{kind}_index_mapping` (grid index i_q · n_φ + i_φ of label k + 1), any numeric types.
pub(crate) fn read_axes(
    f: &hdf5::File,
    path: &Path,
    group: &str,
    kind: &str,
    n_bins: usize,
) -> Result<Vec<BinAxis>> {
    let d0 = f64_list(f, path, &format!("{group}/{kind}_v_list_dim0"))?;
    let d1 = f64_list(f, path, &format!("{group}/{kind}_v_list_dim1"))?;
    let idx = f64_list(f, path, &format!("{group}/{kind}_index_mapping"))?;
    if idx.len() != n_bins {
        return Err(Error::ShapeMismatch {
            origin: path.display().to_string(),
            what: format!("{kind}_index_mapping vs max({kind}_roi_map)"),
            expected: vec![n_bins],
            got: vec![idx.len()],
        });
    }
    let n1 = d1.len().max(1);
    let cells = d0.len() * d1.len();
    idx.iter()
        .map(|&i| {
            if !(i >= 0.0 && i.fract() == 0.0 && i < cells as f64) {
                return Err(Error::out_of_range(
                    path.display().to_string(),
                    format!("{group}/{kind}_index_mapping"),
                    i,
                    format!("whole numbers in 0..{cells}"),
                ));
            }
            let i = i as usize;
            Ok(BinAxis {
                q_inv_angstrom: d0[i / n1],
                phi_deg: d1[i % n1],
            })
        })
        .collect()
}

/// The group of an HDF5 q-map: `/qmap` (a pySimpleMask q-map file) or `/xpcs/qmap` (a
/// results file), whichever holds `dynamic_roi_map`.
pub fn qmap_group(path: &Path) -> Result<Option<&'static str>> {
    let f = open_read(path)?;
    Ok(["/qmap", "/xpcs/qmap"]
        .into_iter()
        .find(|g| has_dataset(&f, &format!("{g}/dynamic_roi_map"))))
}

/// A q-partition with bin centres from an APS / pySimpleMask q-map HDF5 (group `/qmap` or
/// `/xpcs/qmap`): `dynamic_roi_map`, `static_roi_map` (default: the dynamic one), `mask`
/// (default: labels > 0) and, when present, the q, φ bin centres (`*_v_list_dim0/1`,
/// `*_index_mapping`; without them q stays unknown: NaN). Any integer dtype. The maps must
/// have the detector's `frame_shape`.
pub fn read_qmap_h5(path: &Path, frame_shape: (usize, usize)) -> Result<QPartition> {
    let g = qmap_group(path)?.ok_or_else(|| {
        Error::format(
            path,
            "no /qmap/dynamic_roi_map or /xpcs/qmap/dynamic_roi_map (an APS q-map file)",
        )
    })?;
    let f = open_read(path)?;
    let dyn_name = format!("{g}/dynamic_roi_map");
    let d = read_label_map(path, Some(&dyn_name))?;
    npy::check_label_shape(&d, frame_shape, path)?;
    let st_name = format!("{g}/static_roi_map");
    let s = if has_dataset(&f, &st_name) {
        let s = read_label_map(path, Some(&st_name))?;
        npy::check_label_shape(&s, frame_shape, path)?;
        s
    } else {
        d.clone()
    };
    let mask_name = format!("{g}/mask");
    let m = if has_dataset(&f, &mask_name) {
        let (r, c, m) = read_mask(path, Some(&mask_name))?;
        if (r, c) != frame_shape {
            return Err(Error::ShapeMismatch {
                origin: path.display().to_string(),
                what: "mask vs detector frame (rows, cols)".into(),
                expected: vec![frame_shape.0, frame_shape.1],
                got: vec![r, c],
            });
        }
        m
    } else {
        d.labels().iter().map(|&l| l > 0).collect()
    };
    let (nd, ns) = (d.n_bins(), s.n_bins());
    let p = QPartition::new(m, d, s, &path.display().to_string())?;
    let has_q = |k: &str| {
        ["v_list_dim0", "v_list_dim1", "index_mapping"]
            .iter()
            .all(|x| has_dataset(&f, &format!("{g}/{k}_{x}")))
    };
    if !has_q("dynamic") {
        return Ok(p);
    }
    let dax = read_axes(&f, path, g, "dynamic", nd)?;
    let sax = if has_q("static") && has_dataset(&f, &st_name) {
        read_axes(&f, path, g, "static", ns)?
    } else {
        dax.clone()
    };
    p.with_axes(dax, sax)
}

/// Bin q values (Å⁻¹), one per dynamic bin in label order, from an `.npy` (any numeric
/// dtype and rank, flattened) or a text/CSV file (numbers separated by commas, spaces or
/// newlines; `#` starts a comment). Every value must be finite and > 0.
pub fn read_q_values(path: &Path) -> Result<Vec<f64>> {
    let v = match kind(path) {
        Kind::Npy => npy::read_f64(path)?.1,
        Kind::Npz => npy::npz::read_f64(path, None)?.1,
        Kind::Hdf5 => {
            let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
            crate::atomic::note_input(path);
            let mut v = Vec::new();
            for (ln, line) in text.lines().enumerate() {
                let line = line.split('#').next().unwrap_or("");
                for tok in line
                    .split(|c: char| c == ',' || c == ';' || c.is_whitespace())
                    .filter(|t| !t.is_empty())
                {
                    let x: f64 = tok.parse().map_err(|_| {
                        Error::format(
                            path,
                            crate::h5util::one_line(&format!(
                                "line {}: {tok:?} is not a number (q values in Å⁻¹)",
                                ln + 1
                            )),
                        )
                    })?;
                    v.push(x);
                }
            }
            v
        }
    };
    if let Some((i, &x)) = v
        .iter()
        .enumerate()
        .find(|(_, x)| !(x.is_finite() && **x > 0.0))
    {
        return Err(Error::out_of_range(
            path.display().to_string(),
            format!("q value {}", i + 1),
            x,
            "> 0 and finite (Å⁻¹)",
        ));
    }
    Ok(v)
}

/// `p` with `valid` (true = keep) and-ed into its mask; bin centres kept (a trailing bin that
/// loses every pixel drops out of the label count, and its centre with it).
pub fn restrict_mask(p: &QPartition, valid: &[bool], origin: &str) -> Result<QPartition> {
    let mask: Vec<bool> = p.mask().iter().zip(valid).map(|(&a, &b)| a && b).collect();
    let q = QPartition::new(mask, p.dynamic().clone(), p.static_map().clone(), origin)?;
    let (nd, ns) = (q.n_bins(), q.static_map().n_bins());
    let dax = p.dynamic_axes()[..nd.min(p.dynamic_axes().len())].to_vec();
    let sax = p.static_axes()[..ns.min(p.static_axes().len())].to_vec();
    q.with_axes(dax, sax)
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
