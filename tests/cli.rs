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

#[test]
fn fit_bad_input_is_exit_2_or_a_recorded_failure() {
    let dir = tempfile::tempdir().unwrap();
    let s = |p: &Path| p.display().to_string();
    // No g2 at all: exit 2, one line naming the file, nothing written.
    let mut r = example_results();
    r.multitau = None;
    r.twotime = None;
    let no_g2 = dir.path().join("no_g2.hdf");
    write_results(&no_g2, &r, false).unwrap();
    let json = dir.path().join("x.json");
    let o = run(&["fit", &s(&no_g2), "--json", &s(&json)]);
    assert_eq!(o.status.code(), Some(2));
    let e = stderr(&o);
    assert!(e.contains("no_g2.hdf") && e.contains("no g2"), "{e}");
    assert_eq!(e.trim_end().lines().count(), 1, "{e}");
    assert!(!json.exists());

    // A fixed parameter outside its domain, an unknown parameter, an unknown model: exit 2.
    let res = example_file(dir.path());
    let before = std::fs::read(&res).unwrap();
    for (args, needle) in [
        (vec!["--fix", "tau=-1"], "tau"),
        (vec!["--fix", "gamma=1"], "gamma"),
        (vec!["--fix", "baseline"], "--fix"),
        (vec!["--model", "gauss"], "--model"),
    ] {
        let mut a = vec![
            "fit",
            res.to_str().unwrap(),
            "--json",
            json.to_str().unwrap(),
        ];
        a.extend(args);
        let o = run(&a);
        assert_eq!(o.status.code(), Some(2), "{a:?}");
        assert!(stderr(&o).contains(needle), "{a:?}: {}", stderr(&o));
        assert!(!json.exists(), "{a:?}");
        assert_eq!(
            std::fs::read(&res).unwrap(),
            before,
            "{a:?} changed the input"
        );
    }

    // Bin 1: every error zero (no data: the points are left out, with one warning line), so
    // too few points; bin 2: too few finite points. Both are recorded failures with their
    // reason; bin 3 still fits; no NaN reaches the file.
    let mut r = example_results();
    let m = r.multitau.as_mut().unwrap();
    m.g2_err.column_mut(0).fill(0.0);
    let n = m.g2.nrows();
    for i in 2..n {
        m.g2[[i, 1]] = f32::NAN;
    }
    let bad = dir.path().join("bad.hdf");
    write_results(&bad, &r, false).unwrap();
    let o = run(&["fit", &s(&bad), "--twotime-ages", "0"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let back = read_results(&bad).unwrap();
    let Some(Node::Group(fits)) = back.twin.extra.get("fits") else {
        panic!("no fits");
    };
    let Some(Node::Group(g2)) = fits.get("g2") else {
        panic!("no fits/g2");
    };
    let status = |b: &str| match g2.get(b) {
        Some(Node::Group(t)) => match t.get("status") {
            Some(Node::Text(s)) => s.clone(),
            other => panic!("{other:?}"),
        },
        other => panic!("{other:?}"),
    };
    assert!(
        status("bin_001").contains("too few"),
        "{}",
        status("bin_001")
    );
    let warn = stderr(&o);
    assert_eq!(
        warn.lines().filter(|l| l.contains("hold no data")).count(),
        1,
        "{warn}"
    );
    assert!(
        status("bin_002").contains("too few"),
        "{}",
        status("bin_002")
    );
    assert_eq!(status("bin_003"), "converged");
    fn no_nan(t: &xpcs_twin::io::results::Tree) {
        for (k, v) in t {
            match v {
                Node::F64 { data, .. } => assert!(data.iter().all(|x| x.is_finite()), "{k}"),
                Node::Group(g) => no_nan(g),
                Node::Text(_) => {}
            }
        }
    }
    no_nan(fits);
    let Some(Node::F64 { data, .. }) = g2.get("converged_bins") else {
        panic!("no converged_bins");
    };
    assert_eq!(data, &vec![3.0]);
}

#[test]
fn describe_campaign_and_bad_pressure() {
    let ce = repo("models/ce68-maxipix.toml");
    let o = run(&["describe", &ce, "--pressure", "1.1"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    for key in [
        "contrast",
        "speckle size",
        "count rate",
        "data volume",
        "τ start",
    ] {
        assert!(out.contains(key), "missing {key}: {out}");
    }
    let o = run(&["describe", &ce, "--pressure", "1.2"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--pressure"), "{}", stderr(&o));
    let o = run(&["describe", "no-such-campaign.toml"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("no-such-campaign.toml"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn simulate_event_file_matches_dense_stack() {
    let dir = tempfile::tempdir().unwrap();
    let model = repo("models/samples/ce68.toml");
    let base = [
        "simulate",
        "--model",
        &model,
        "--frames",
        "40",
        "--rows",
        "24",
        "--cols",
        "20",
        "--seed",
        "7",
        "--block-pixels",
        "64",
    ];
    let h5 = dir.path().join("ev.h5");
    let npy = dir.path().join("st.npy");
    let npz = dir.path().join("evz.npz");
    for out in [&h5, &npy, &npz] {
        let mut a = base.to_vec();
        a.extend(["--out", out.to_str().unwrap()]);
        let o = run(&a);
        assert!(o.status.success(), "{}", stderr(&o));
    }
    // Same seed, same blocks: the streamed event file holds exactly the dense stack.
    let ev = xpcs_twin::io::events::read_events(&h5).unwrap();
    let st = xpcs_twin::io::npy::read_stack(&npy).unwrap();
    let dense = ev.to_stack();
    assert_eq!(dense.frame_shape(), (24, 20));
    assert_eq!(dense.n_frames(), 40);
    for t in 0..40 {
        for p in 0..24 * 20 {
            assert_eq!(dense.get(t, p), st.get(t, p), "frame {t} pixel {p}");
        }
    }
    assert!(ev.total_counts() > 0);
    let labels = xpcs_twin::io::npy::read_labels(&dir.path().join("ev.labels.npy")).unwrap();
    assert_eq!(labels.shape(), (24, 20));
    assert!(dir.path().join("ev.mask.npy").exists());
    // The event file and the dense stack correlate to the same numbers, bit for bit.
    let labels_path = dir.path().join("ev.labels.npy");
    let mut summaries = Vec::new();
    for (input, name) in [
        (&h5, "from_events"),
        (&npy, "from_stack"),
        (&npz, "from_event_npz"),
    ] {
        let out = dir.path().join(format!("{name}_results.hdf"));
        let j = dir.path().join(format!("{name}.json"));
        let o = run(&[
            "correlate",
            input.to_str().unwrap(),
            "--qmap",
            labels_path.to_str().unwrap(),
            "--frame-time",
            "5",
            "--out",
            out.to_str().unwrap(),
            "--json",
            j.to_str().unwrap(),
            "--twotime",
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
        let v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&j).unwrap()).unwrap();
        summaries.push(v);
    }
    assert_eq!(summaries[0]["correlator"], "event");
    assert_eq!(summaries[1]["correlator"], "dense");
    assert_eq!(summaries[0]["bins"], summaries[1]["bins"]);
    // The event NPZ `simulate` writes is read back by `correlate` (it said "unknown frame file
    // type" before).
    assert_eq!(summaries[2]["correlator"], "event");
    assert_eq!(summaries[0]["bins"], summaries[2]["bins"]);
    // Refused overwrite: exit 2, names the file; a bad extension leaves nothing behind.
    let mut a = base.to_vec();
    a.extend(["--out", h5.to_str().unwrap()]);
    let o = run(&a);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("ev.h5"), "{}", stderr(&o));
    let before = listing(dir.path());
    let bad = dir.path().join("x.tif");
    let mut a = base.to_vec();
    a.extend(["--out", bad.to_str().unwrap()]);
    let o = run(&a);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("x.tif"), "{}", stderr(&o));
    assert_eq!(listing(dir.path()), before);
}

/// `simulate --beam/--dac/--detector`: the Ce campaign's instrument on a 64 × 64 region at
/// the centre of the Maxipix 2 × 2 (across its central gaps). The outputs are all there; the
/// gaps are masked, unlabelled and empty; the photons per valid pixel and frame match the
/// scene's mean within 10 % (gain thinning and dead time remove a few %; Poisson and speckle
/// noise over ~40 000 photons is < 1 %); bad presets and distances exit 2 naming the option.
#[test]
fn simulate_through_the_instrument() {
    let dir = tempfile::tempdir().unwrap();
    let model = repo("models/samples/ce68.toml");
    let out = dir.path().join("ce.npz");
    let args = [
        "simulate",
        "--model",
        &model,
        "--beam",
        "id10-21kev",
        "--dac",
        "ce-dac",
        "--detector",
        "maxipix-2x2-cdte",
        "--rows",
        "64",
        "--cols",
        "64",
        "--frames",
        "40",
        "--qbins",
        "2",
        "--seed",
        "5",
    ];
    let mut a = args.to_vec();
    a.extend(["--out", out.to_str().unwrap()]);
    let o = run(&a);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        listing(dir.path()),
        [
            "ce.kossel_mask.npy",
            "ce.labels.npy",
            "ce.mask.npy",
            "ce.npz",
            "ce.static_labels.npy",
            "ce.truth.json"
        ]
    );
    let truth: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("ce.truth.json")).unwrap())
            .unwrap();
    let scene = &truth["scene"];
    assert_eq!(scene["kind"], "instrument model");
    assert_eq!(scene["detector_shape"], serde_json::json!([516, 516]));
    let c = scene["contrast"].as_f64().unwrap();
    assert!(c > 0.0 && c < 1.0, "{c}");
    let labels = xpcs_twin::io::npy::read_labels(&dir.path().join("ce.labels.npy")).unwrap();
    let (mr, mc, msk) = xpcs_twin::io::npy::read_mask(&dir.path().join("ce.mask.npy")).unwrap();
    assert_eq!((labels.shape(), (mr, mc)), ((64, 64), (64, 64)));
    let lab = labels.labels();
    let n_valid = msk.iter().filter(|&&m| m).count();
    assert!(n_valid < 64 * 64 && n_valid > 3500, "{n_valid}");
    assert!((0..64 * 64).all(|p| msk[p] || lab[p] == 0));
    assert_eq!(lab.iter().copied().max(), Some(2));
    let z = std::fs::File::open(&out).unwrap();
    let mut z = ndarray_npy::NpzReader::new(z).unwrap();
    let offsets: ndarray::Array1<u64> = z.by_name("offsets").unwrap();
    let counts: ndarray::Array1<u32> = z.by_name("counts").unwrap();
    for p in (0..64 * 64).filter(|&p| !msk[p]) {
        assert_eq!(offsets[p], offsets[p + 1], "masked pixel {p} has photons");
    }
    let total: u64 = counts.iter().map(|&c| u64::from(c)).sum();
    let want = scene["mean_counts_per_frame"].as_f64().unwrap() * n_valid as f64 * 40.0;
    let ratio = total as f64 / want;
    assert!((0.9..=1.02).contains(&ratio), "{total} photons vs {want}");
    // Bad input: exit 2, the option named.
    let bad = dir.path().join("bad.npz");
    for (opt, val, needle) in [
        ("--beam", "nope", "--beam"),
        ("--distance", "0.001", "--distance"),
    ] {
        let mut a = args.to_vec();
        let i = a.iter().position(|x| *x == opt).map(|i| i + 1);
        match i {
            Some(i) => a[i] = val,
            None => a.extend([opt, val]),
        }
        a.extend(["--out", bad.to_str().unwrap()]);
        let o = run(&a);
        assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
        assert!(stderr(&o).contains(needle), "{}", stderr(&o));
    }
    assert!(!bad.exists());
}

/// Writes an example results file + fit plots into $XPCS_TWIN_PLOTS_DIR for visual checks
/// (run with `--ignored`).
#[test]
#[ignore]
fn example_plots_for_inspection() {
    let dir = PathBuf::from(std::env::var("XPCS_TWIN_PLOTS_DIR").unwrap());
    std::fs::create_dir_all(&dir).unwrap();
    let res = dir.join("res.hdf");
    write_results(&res, &example_results(), true).unwrap();
    let o = run(&[
        "fit",
        res.to_str().unwrap(),
        "--plots",
        dir.join("plots").to_str().unwrap(),
        "--twotime-ages",
        "2",
        "--min-pairs",
        "2",
        "--force",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    eprintln!("{}", String::from_utf8_lossy(&o.stdout));
}

/// The bundled example through `correlate` (dense and sparse) and `fit`: the two correlators
/// agree bit for bit, and the fitted τ of every ring matches the generator's τ_q = 40/q frames
/// (examples/README.md) within 5 σ of the fit's own error (5σ: 5 rings, a false alarm rate
/// below 3e-6 if the errors are honest).
#[test]
fn correlate_then_fit_recovers_the_example_truth() {
    let dir = tempfile::tempdir().unwrap();
    let s = |p: &Path| p.display().to_string();
    let (frames, labels) = (
        repo("examples/speckle_small.npy"),
        repo("examples/speckle_small_labels.npy"),
    );
    let mut json = Vec::new();
    for (name, sparse) in [("dense", false), ("sparse", true)] {
        let out = dir.path().join(format!("{name}_results.hdf"));
        let j = dir.path().join(format!("{name}.json"));
        let mut args = vec![
            "correlate".to_string(),
            frames.clone(),
            "--qmap".into(),
            labels.clone(),
            "--frame-time".into(),
            "0.1".into(),
            "--out".into(),
            s(&out),
            "--json".into(),
            s(&j),
            "--twotime".into(),
        ];
        if sparse {
            args.push("--sparse".into());
        } else {
            args.extend(["--npy-dir".to_string(), s(&dir.path().join("npy"))]);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let o = run(&args);
        assert!(o.status.success(), "{}", stderr(&o));
        let v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&j).unwrap()).unwrap();
        json.push(v);
    }
    assert_eq!(
        json[0]["bins"], json[1]["bins"],
        "dense and event correlators differ"
    );
    let res = dir.path().join("dense_results.hdf");
    let o = run(&["fit", &s(&res), "--model", "exp", "--twotime-ages", "0"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let back = read_results(&res).unwrap();
    let Some(Node::Group(fits)) = back.twin.extra.get("fits") else {
        panic!("no fits group");
    };
    let Some(Node::Group(g2)) = fits.get("g2") else {
        panic!("no fits/g2");
    };
    let (Some(Node::F64 { data: tau, .. }), Some(Node::F64 { data: err, .. })) =
        (g2.get("tau_s"), g2.get("tau_err_s"))
    else {
        panic!(
            "no tau_s / tau_err_s in {:?}",
            g2.keys().collect::<Vec<_>>()
        );
    };
    assert_eq!(tau.len(), 5);
    for (q, (t, e)) in tau.iter().zip(err).enumerate() {
        let truth = 40.0 / (q + 1) as f64 * 0.1;
        assert!(
            (t - truth).abs() < 5.0 * e,
            "ring {}: τ = {t} ± {e} s, truth {truth} s",
            q + 1
        );
    }
}

/// Bad input to `correlate`: exit 2, one line naming the problem, no output file.
#[test]
fn correlate_bad_input_is_exit_2_and_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let s = |p: &Path| p.display().to_string();
    let out = dir.path().join("r_results.hdf");
    let (frames, labels) = (
        repo("examples/speckle_small.npy"),
        repo("examples/speckle_small_labels.npy"),
    );
    let small = dir.path().join("small_labels.npy");
    xpcs_twin::io::npy::write_npy(&small, &[4, 4], &[1u32; 16], &[], false).unwrap();
    let zeros = dir.path().join("zero_labels.npy");
    xpcs_twin::io::npy::write_npy(&zeros, &[64, 64], &vec![0u32; 64 * 64], &[], false).unwrap();
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec![
                frames.clone(),
                "--qmap".into(),
                labels.clone(),
                "--frame-time".into(),
                "-1".into(),
            ],
            "--frame-time",
        ),
        (
            vec![
                frames.clone(),
                "--qmap".into(),
                labels.clone(),
                "--frame-time".into(),
                "NaN".into(),
            ],
            "--frame-time",
        ),
        (
            vec![frames.clone(), "--qmap".into(), labels.clone()],
            "--frame-time",
        ),
        (
            vec![
                frames.clone(),
                "--qmap".into(),
                s(&small),
                "--frame-time".into(),
                "0.1".into(),
            ],
            "shape mismatch",
        ),
        (
            vec![
                frames.clone(),
                "--qmap".into(),
                s(&zeros),
                "--frame-time".into(),
                "0.1".into(),
            ],
            "no pixel",
        ),
        (
            vec![
                s(&dir.path().join("missing.npy")),
                "--qmap".into(),
                labels.clone(),
                "--frame-time".into(),
                "0.1".into(),
            ],
            "missing.npy",
        ),
        (
            vec![
                labels.clone(),
                "--qmap".into(),
                labels.clone(),
                "--frame-time".into(),
                "0.1".into(),
            ],
            "speckle_small_labels.npy",
        ),
    ];
    for (mut args, needle) in cases {
        args.insert(0, "correlate".into());
        args.extend(["--out".to_string(), s(&out)]);
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        let o = run(&a);
        let e = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{a:?}: {e}");
        assert!(e.contains(needle), "{a:?}: {e}");
        assert_eq!(e.trim().lines().count(), 1, "{a:?}: {e}");
        assert!(!out.exists(), "{a:?} left an output");
    }
    // Never over an input, even with --force.
    let o = run(&[
        "correlate",
        &frames,
        "--qmap",
        &labels,
        "--frame-time",
        "0.1",
        "--out",
        &labels,
        "--force",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("refusing"), "{}", stderr(&o));
}
