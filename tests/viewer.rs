//! Opens a results file with the APS viewer's own loading code (pyxpcsviewer), when available.
//!
//! Runs `validation/viewer/check_results.py` with `$XPCS_TWIN_PYTHON` (default `python3`). When
//! that interpreter cannot import `pyxpcsviewer`, the test prints why and passes without
//! checking (install with `pip install xpcs-viewer==1.2.2` to run it).

use std::path::Path;
use std::process::Command;

use xpcs_twin::io::results::{example_results, write_results};

use xpcs_twin::data::BinAxis;
use xpcs_twin::io::results::ResultsFile;

#[test]
fn results_file_loads_in_pyxpcsviewer() {
    check_in_viewer("results_file_loads_in_pyxpcsviewer", example_results());
}

/// q unknown (NaN bin centres, no geometry: NaN energy, distance, pixel size, beam centre):
/// the file still loads, and the viewer shows NaN q, not a made-up one.
#[test]
fn q_unknown_results_file_loads_in_pyxpcsviewer() {
    let mut res = example_results();
    let nan = BinAxis {
        q_inv_angstrom: f64::NAN,
        phi_deg: f64::NAN,
    };
    let (nd, ns) = (res.partition.n_bins(), res.partition.static_map().n_bins());
    res.partition = res
        .partition
        .clone()
        .with_axes(vec![nan; nd], vec![nan; ns])
        .unwrap();
    res.energy_kev = f64::NAN;
    res.geometry.pixel_size_m = f64::NAN;
    res.geometry.detector_distance_m = f64::NAN;
    res.geometry.beam_center_x_px = f64::NAN;
    res.geometry.beam_center_y_px = f64::NAN;
    check_in_viewer("q_unknown_results_file_loads_in_pyxpcsviewer", res);
}

fn check_in_viewer(name: &str, res: ResultsFile) {
    let python = std::env::var("XPCS_TWIN_PYTHON").unwrap_or_else(|_| "python3".into());
    let probe = Command::new(&python)
        .args(["-c", "import pyxpcsviewer.core.xpcs_file"])
        .output();
    match probe {
        Ok(o) if o.status.success() => {}
        _ => {
            eprintln!(
                "SKIP {name}: `{python}` cannot import pyxpcsviewer \
                 (pip install xpcs-viewer==1.2.2, or set XPCS_TWIN_PYTHON)"
            );
            return;
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("twin_example_results.hdf");
    write_results(&file, &res, false).unwrap();

    let m = res.multitau.as_ref().unwrap();
    let t = res.twotime.as_ref().unwrap();
    let rows = |a: &ndarray::Array2<f32>| -> Vec<Vec<f32>> {
        a.outer_iter().map(|r| r.to_vec()).collect()
    };
    let expected = serde_json::json!({
        "g2": rows(&m.g2),
        "g2_err": rows(&m.g2_err),
        "delay_frames": m.delay_frames,
        "frame_time_s": res.frame_time_s,
        "stride_frame": m.stride_frame,
        "avg_frame": m.avg_frame,
        // NaN (unknown) becomes JSON null.
        "dynamic_q": res.partition.dynamic_axes().iter().map(|a| a.q_inv_angstrom).collect::<Vec<_>>(),
        "processed_bins": t.processed_bins,
        // The viewer rebuilds C + Cᵀ (diagonal once) from the stored upper triangle: the
        // full symmetric map must come back.
        "c2": t.c2.iter().map(rows).collect::<Vec<_>>(),
    });
    let exp = dir.path().join("expected.json");
    std::fs::write(&exp, serde_json::to_vec(&expected).unwrap()).unwrap();

    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("validation/viewer/check_results.py");
    let out = Command::new(&python)
        .arg(&script)
        .arg(&file)
        .arg(&exp)
        .output()
        .unwrap();
    eprintln!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "viewer check failed: {:?}",
        out.status
    );
}
