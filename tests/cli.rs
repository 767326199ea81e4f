//! End-to-end checks of the `xpcs-twin` binary: exit codes, outputs and error messages of
//! `fit`, `describe` and `simulate` on small inputs (each run ≤ a few seconds).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use xpcs_twin::io::results::{example_results, read_results, write_results, Node};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_xpcs-twin"))
}

fn run(args: &[&str]) -> Output {
    bin().args(args).output().expect("run xpcs-twin")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn repo(p: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(p)
        .display()
        .to_string()
}

/// Files in `dir` (names), sorted.
fn listing(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

fn example_file(dir: &Path) -> PathBuf {
    let p = dir.join("res.hdf");
    write_results(&p, &example_results(), false).unwrap();
    p
}

#[test]
fn fit_writes_fits_json_and_plots() {
    let dir = tempfile::tempdir().unwrap();
    let res = example_file(dir.path());
    let json = dir.path().join("fit.json");
    let plots = dir.path().join("plots");
    let s = |p: &Path| p.display().to_string();
    let o = run(&[
        "fit",
        &s(&res),
        "--model",
        "exp",
        "--json",
        &s(&json),
        "--plots",
        &s(&plots),
        "--twotime-ages",
        "2",
        "--min-pairs",
        "2",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let back = read_results(&res).unwrap();
    let Some(Node::Group(fits)) = back.twin.extra.get("fits") else {
        panic!("no /xpcs_twin/fits group");
    };
    let Some(Node::Group(g2)) = fits.get("g2") else {
        panic!("no fits/g2");
    };
    // The example's g2 = 1 + 0.3 exp(-2 lag/τ) with τ = 4, 8, 16 frames (noiseless): the
    // exponential model recovers τ (g2 model: exp(-2t/τ)) to the solver tolerance.
    let Some(Node::F64 { data: tau, .. }) = g2.get("tau_s") else {
        panic!("no tau_s");
    };
    let ft = back.frame_time_s;
    for (t, want) in tau.iter().zip([4.0, 8.0, 16.0]) {
        assert!(
            (t / (want * ft) - 1.0).abs() < 1e-3,
            "τ {t} vs {}",
            want * ft
        );
    }
    let text = std::fs::read_to_string(&json).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["bins"].as_array().unwrap().len(), 3);
    let pngs = listing(&plots);
    assert!(pngs.contains(&"g2_bin_001.png".to_string()), "{pngs:?}");
    assert!(pngs.contains(&"tau_vs_q.png".to_string()), "{pngs:?}");
    // A second run refuses to replace the fits without --force, and leaves the file as is.
    let before = std::fs::read(&res).unwrap();
    let o = run(&["fit", &s(&res)]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--force"), "{}", stderr(&o));
    assert_eq!(std::fs::read(&res).unwrap(), before);
}
