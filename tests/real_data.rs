//! Real beamline layouts through the command line: files written by the field's own software
//! (h5py + hdf5plugin following the published layouts, `tests/fixtures/make_real_fixtures.py`),
//! never by xpcs-twin's writers. Each run takes a few seconds at most.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use xpcs_twin::io::results::{read_results, Node};

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_xpcs-twin"))
        .args(args)
        .output()
        .expect("run xpcs-twin")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/real")
        .join(name)
}

fn json(name: &str) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(fixture(name)).unwrap()).unwrap()
}

fn s(p: &Path) -> String {
    p.display().to_string()
}

/// A group of `/xpcs_twin` (panics when absent).
fn group<'a>(t: &'a xpcs_twin::io::results::Tree, k: &str) -> &'a xpcs_twin::io::results::Tree {
    match t.get(k) {
        Some(Node::Group(g)) => g,
        other => panic!("{k}: {other:?}"),
    }
}

fn num(t: &xpcs_twin::io::results::Tree, k: &str) -> Vec<f64> {
    match t.get(k) {
        Some(Node::F64 { data, .. }) => data.clone(),
        other => panic!("{k}: {other:?}"),
    }
}

/// `fit` on a results file as the APS 8-ID-I pipeline writes it (LZF q-map, uint8 roi map,
/// [1, 1] frame time, g2 = 0 ± 0 at lags without data, 27 bins): every bin converges, the
/// zero-error points are left out with one warning line, q comes from the file, and the
/// τ(q) power law recovers the writer's α = 1.
#[test]
fn fit_reads_an_aps_results_file() {
    let dir = tempfile::tempdir().unwrap();
    let res = dir.path().join("aps_results.hdf");
    std::fs::copy(fixture("aps8idi_rigaku500k_results.hdf"), &res).unwrap();
    let exp = json("aps8idi_rigaku500k_results_expected.json");
    let out_json = dir.path().join("fit.json");
    let o = run(&["fit", &s(&res), "--json", &s(&out_json)]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let err = text(&o.stderr);
    // Points without data: 3 trailing lags in every bin, 2 and 4 more in bins 26 and 27.
    let n_missing = 27 * 3 + 2 + 4;
    let warn: Vec<&str> = err.lines().filter(|l| l.contains("hold no data")).collect();
    assert_eq!(warn.len(), 1, "{err}");
    assert!(warn[0].contains(&format!("{n_missing} of ")), "{err}");

    let r = read_results(&res).unwrap();
    let fits = group(&r.twin.extra, "fits");
    let g2 = group(fits, "g2");
    assert_eq!(num(g2, "converged_bins").len(), 27, "{}", text(&o.stdout));
    let q = num(g2, "q_inv_angstrom");
    let want_q = exp["dynamic"]["q_of_bin"].as_array().unwrap();
    for (a, b) in q.iter().zip(want_q) {
        assert!((a - b.as_f64().unwrap()).abs() < 1e-12);
    }
    // τ per bin against the writer's truth: within 5σ (noise is Gaussian with the file's
    // errors; 27 bins, so 5σ keeps a false alarm below 1e-5).
    let tau = num(g2, "tau_s");
    let tau_err = num(g2, "tau_err_s");
    for (k, t) in exp["kww_truth_per_bin"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
    {
        let truth = t["tau_s"].as_f64().unwrap();
        assert!(
            (tau[k] - truth).abs() < 5.0 * tau_err[k],
            "bin {}: τ {} ± {} vs {truth}",
            k + 1,
            tau[k],
            tau_err[k]
        );
    }
    let pl = group(fits, "power_law");
    let alpha = num(pl, "alpha")[0];
    let alpha_err = num(pl, "alpha_err")[0];
    assert!(
        (alpha - 1.0).abs() < 5.0 * alpha_err,
        "α = {alpha} ± {alpha_err}"
    );
}
