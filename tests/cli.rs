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
    let o = run(&["fit", &s(&bad), "--no-twotime"]);
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
        "ph/s on the sample",
        "flux provenance",
        "Gy/s",
        "Gy in this scan",
        "accumulated dose",
        "computed from the cell",
        "upstream anvil, Compton",
        "glass, Compton",
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

/// The number after `key` in `text` (up to the next space, comma or parenthesis).
fn number_after(text: &str, key: &str) -> f64 {
    let i = text
        .find(key)
        .unwrap_or_else(|| panic!("no `{key}` in {text}"))
        + key.len();
    text[i..]
        .split(|c: char| c.is_whitespace() || c == ',' || c == '(' || c == ';')
        .next()
        .unwrap()
        .parse()
        .unwrap_or_else(|e| panic!("`{key}`: {e} in {text}"))
}

#[test]
fn plan_uses_the_diluted_contrast_describe_prints() {
    // The planner's precision depends on what g2 − 1 shows, c (1 − x_b)², not on the
    // instrument's c: with c it was optimistic by (1 − x_b)⁻² in the low-count regime.
    let ce = repo("models/ce68-maxipix.toml");
    let d = run(&["describe", &ce, "--pressure", "1.1"]);
    assert!(d.status.success(), "{}", stderr(&d));
    let d = String::from_utf8_lossy(&d.stdout).to_string();
    let diluted = number_after(&d, "after incoherent dilution ");
    let instrument = number_after(&d, "contrast            ");
    assert!(diluted < 0.7 * instrument, "{diluted} {instrument}");
    let p = run(&["plan", &ce, "--pressure", "1.1", "--mc-repeats", "0"]);
    assert!(p.status.success(), "{}", stderr(&p));
    let p = String::from_utf8_lossy(&p.stdout).to_string();
    let c = number_after(&p, ", contrast ");
    // describe prints 4 decimals, plan 5.
    assert!(
        (c - diluted).abs() < 6e-5,
        "plan c = {c}, describe {diluted}: {p}"
    );
    assert!(p.contains("Gy/s") && p.contains("on the sample"), "{p}");
}

#[test]
fn plan_pressure_selects_the_isobar_or_is_refused() {
    // --pressure plans that isobar only (not the first one of the file), for a campaign and
    // for a sample file; a pressure without an isobar exits 2 naming the allowed pressures.
    let ce = repo("models/ce68-maxipix.toml");
    let p = run(&["plan", &ce, "--pressure", "5.6", "--mc-repeats", "0"]);
    assert!(p.status.success(), "{}", stderr(&p));
    let out = String::from_utf8_lossy(&p.stdout).to_string();
    assert_eq!(out.matches("\n== ").count(), 1, "{out}");
    assert!(out.contains("== 03-c5.6GPa"), "{out}");
    assert!(out.contains("τ = 800.0000 s"), "{out}");
    let sample = repo("models/samples/ce68.toml");
    let p = run(&["plan", &sample, "--pressure", "8.2", "--mc-repeats", "0"]);
    assert!(p.status.success(), "{}", stderr(&p));
    let out = String::from_utf8_lossy(&p.stdout).to_string();
    assert!(
        out.contains("== 8.2 gpa compression") && out.contains("τ = 300.0000 s"),
        "{out}"
    );
    for model in [&ce, &sample] {
        let p = run(&["plan", model, "--pressure", "2", "--mc-repeats", "0"]);
        assert_eq!(p.status.code(), Some(2), "{}", stderr(&p));
        let e = stderr(&p);
        assert!(
            e.contains("--pressure") && e.contains("0, 1.1, 2.9, 5.6, 8.2"),
            "{e}"
        );
    }
}

#[test]
fn plan_recommends_an_attenuator_series() {
    let ce = repo("models/ce68-maxipix.toml");
    let p = run(&[
        "plan",
        &ce,
        "--pressure",
        "0",
        "--mc-repeats",
        "0",
        "--attenuators",
        "1,0.5,0.25",
    ]);
    assert!(p.status.success(), "{}", stderr(&p));
    let out = String::from_utf8_lossy(&p.stdout).to_string();
    assert!(out.contains("ATTENUATOR SERIES"), "{out}");
    let k = number_after(&out, "so k ≥ ");
    assert!(k > 0.0 && k.is_finite(), "{out}");
    // A transmission outside (0, 1] and a series without --pressure are refused.
    let p = run(&["plan", &ce, "--pressure", "0", "--attenuators", "1,1.5"]);
    assert_eq!(p.status.code(), Some(2), "{}", stderr(&p));
    assert!(stderr(&p).contains("transmission"), "{}", stderr(&p));
    let p = run(&["plan", &ce, "--campaign", "--attenuators", "1,0.5"]);
    assert_eq!(p.status.code(), Some(2), "{}", stderr(&p));
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
    let o = run(&["fit", &s(&res), "--model", "exp", "--no-twotime"]);
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

/// `shard` ×N + `merge` = the whole scan: one Pt scan (reduced, 4 blocks of 4096 pixels) as
/// 1 shard and as 3 shards (merged out of order) gives results files with the same g2, g2_err,
/// jackknife replicates, two-time maps and intensities, bit for bit; merge refuses a missing
/// shard and a partial of another scan (one line, exit 2); shard refuses a bad `i/N`.
#[test]
fn shards_merge_into_the_whole_scan() {
    let dir = tempfile::tempdir().unwrap();
    let d = |f: &str| dir.path().join(f).display().to_string();
    let model = repo("models/pt42-eiger.toml");
    let shard = |spec: &str, scan: &str, out: &str| {
        let o = run(&[
            "shard",
            &model,
            "--scan",
            scan,
            "--shard",
            spec,
            "--out",
            &d(out),
        ]);
        assert!(o.status.success(), "shard {spec}: {}", stderr(&o));
    };
    shard("1/1", "9", "whole.part");
    for i in 1..=3 {
        shard(&format!("{i}/3"), "09-c7GPa", &format!("p{i}.part"));
    }
    let o = run(&["merge", &d("whole.part"), "--out", &d("whole.hdf")]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = run(&[
        "merge",
        &d("p3.part"),
        &d("p1.part"),
        &d("p2.part"),
        "--out",
        &d("m.hdf"),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let a = read_results(Path::new(&d("whole.hdf"))).unwrap();
    let b = read_results(Path::new(&d("m.hdf"))).unwrap();
    let bits32 = |x: &[f32]| x.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
    let (ma, mb) = (a.multitau.as_ref().unwrap(), b.multitau.as_ref().unwrap());
    assert!(!ma.g2.is_empty());
    assert_eq!(
        bits32(ma.g2.as_slice().unwrap()),
        bits32(mb.g2.as_slice().unwrap())
    );
    assert_eq!(
        bits32(ma.g2_err.as_slice().unwrap()),
        bits32(mb.g2_err.as_slice().unwrap())
    );
    let jk = |m: &xpcs_twin::io::results::Multitau| {
        m.g2_jackknife
            .as_ref()
            .unwrap()
            .iter()
            .map(|v| v.to_bits())
            .collect::<Vec<_>>()
    };
    assert_eq!(jk(ma), jk(mb));
    let (ta, tb) = (a.twotime.as_ref().unwrap(), b.twotime.as_ref().unwrap());
    assert_eq!(ta.c2.len(), tb.c2.len());
    for (x, y) in ta.c2.iter().zip(&tb.c2) {
        assert_eq!(bits32(x.as_slice().unwrap()), bits32(y.as_slice().unwrap()));
    }
    assert_eq!(bits32(&a.scattering_2d), bits32(&b.scattering_2d));
    assert_eq!(bits32(&a.intensity_vs_time), bits32(&b.intensity_vs_time));

    // A missing shard, another scan's partial, a bad shard spec: one line each, exit 2.
    let o = run(&["merge", &d("p1.part"), &d("p3.part"), "--out", &d("x.hdf")]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("missing"), "{}", stderr(&o));
    shard("1/4", "4", "other.part");
    let o = run(&[
        "merge",
        &d("p1.part"),
        &d("other.part"),
        "--out",
        &d("x.hdf"),
    ]);
    assert_eq!(o.status.code(), Some(2));
    let e = stderr(&o);
    assert!(e.contains("other.part") && e.contains("another run"), "{e}");
    assert_eq!(e.trim().lines().count(), 1, "{e}");
    assert!(!dir.path().join("x.hdf").exists());
    let o = run(&[
        "shard",
        &model,
        "--scan",
        "5",
        "--shard",
        "4/3",
        "--out",
        &d("y.part"),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("i/N"), "{}", stderr(&o));
}

/// A summary JSON without where the sums came from (`partials`): the one field in which a
/// run from partial files differs from a simulating run (timings are in timing.json only).
fn without_partials(v: &serde_json::Value) -> serde_json::Value {
    let mut v = v.clone();
    if let Some(m) = v.as_object_mut() {
        m.remove("partials");
    }
    v
}

/// `shard --list-json` lists the scans with their shard limit; `twin --partials DIR` made
/// from every shard of every scan (3 shards of one scan, 2 of the other) writes the report,
/// summary and results files of a simulating `twin` run: the same numbers to the bit, the same
/// failures, only the timings differ. A scan folder without partials, a missing shard and
/// partials of another seed are refused (exit 2, naming them); `--partials` excludes
/// `--max-memory`.
#[test]
fn twin_from_partials_equals_the_simulating_run() {
    let dir = tempfile::tempdir().unwrap();
    let d = |f: &str| dir.path().join(f).display().to_string();
    let model = repo("tests/dask/two-isobars.toml");
    let o = run(&["shard", &model, "--list-json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let list: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let scans: Vec<(String, u64)> = list["scans"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            assert_eq!(s["pixels"], 64 * 192);
            (
                s["label"].as_str().unwrap().to_string(),
                s["max_shards"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        scans,
        [("00-c0.5GPa".to_string(), 3), ("01-c1GPa".to_string(), 3)]
    );
    assert_eq!(list["seed"], 7);

    let o = run(&["twin", &model, "--out", &d("whole")]);
    assert!(o.status.success(), "{}", stderr(&o));
    // stderr is a pipe here, as in a batch job's log: the progress comes as plain lines.
    let log = stderr(&o);
    assert!(
        log.contains("scan 1/2 00-c0.5GPa: started") && log.contains("01-c1GPa: done in "),
        "{log}"
    );
    // Same seed, same bytes: a second run on one thread, more than a second later (HDF5
    // object times have 1 s resolution), writes the same files (report, summary, figures,
    // per-scan JSON and HDF5); only timing.json holds wall times.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let o = bin()
        .args(["twin", &model, "--out", &d("again")])
        .env("RAYON_NUM_THREADS", "1")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let tree = |root: &str| -> Vec<(String, Vec<u8>)> {
        let mut out = Vec::new();
        for sub in ["", "figures", "scans"] {
            let dir = dir.path().join(root).join(sub);
            for n in listing(&dir) {
                let p = dir.join(&n);
                if p.is_file() && n != "timing.json" {
                    out.push((format!("{sub}/{n}"), std::fs::read(&p).unwrap()));
                }
            }
        }
        out
    };
    let (first, second) = (tree("whole"), tree("again"));
    let names: Vec<&String> = first.iter().map(|f| &f.0).collect();
    assert!(names.len() >= 8, "{names:?}");
    assert!(names.iter().any(|n| n.ends_with(".png")), "{names:?}");
    for ((na, a), (nb, b)) in first.iter().zip(&second) {
        assert_eq!(na, nb);
        assert!(a == b, "{na} differs between two runs of the same campaign");
    }
    assert_eq!(first.len(), second.len());
    for (k, (label, _)) in scans.iter().enumerate() {
        let n = 3 - k;
        for i in 1..=n {
            let out = d(&format!("p/{label}/part_{i}.bin"));
            let o = run(&[
                "shard",
                &model,
                "--scan",
                label,
                "--shard",
                &format!("{i}/{n}"),
                "--out",
                &out,
            ]);
            assert!(o.status.success(), "{}", stderr(&o));
        }
    }
    let o = run(&["twin", &model, "--partials", &d("p"), "--out", &d("fromp")]);
    assert!(o.status.success(), "{}", stderr(&o));
    let json = |f: &str| -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(d(f)).unwrap()).unwrap()
    };
    let (a, b) = (json("whole/summary.json"), json("fromp/summary.json"));
    assert_eq!(a["failures"], b["failures"]);
    assert_eq!(b["partials"], d("p").as_str());
    assert_eq!(without_partials(&a), without_partials(&b));
    let bytes = |f: &str| std::fs::read(d(f)).unwrap();
    for (label, _) in &scans {
        let f = format!("scans/{label}.json");
        assert_eq!(
            bytes(&format!("whole/{f}")),
            bytes(&format!("fromp/{f}")),
            "{f}"
        );
        let f = format!("scans/{label}_results.hdf");
        let ra = read_results(Path::new(&d(&format!("whole/{f}")))).unwrap();
        let rb = read_results(Path::new(&d(&format!("fromp/{f}")))).unwrap();
        let (ma, mb) = (ra.multitau.unwrap(), rb.multitau.unwrap());
        let bits = |x: &ndarray::Array2<f32>| x.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        assert!(!ma.g2.is_empty());
        assert_eq!(bits(&ma.g2), bits(&mb.g2));
        assert_eq!(bits(&ma.g2_err), bits(&mb.g2_err));
    }
    // The report is the same bytes; the wall times are in timing.json, per scan.
    assert_eq!(bytes("whole/report.md"), bytes("fromp/report.md"));
    let timing = json("whole/timing.json");
    assert_eq!(timing["scans"].as_array().map(Vec::len), Some(scans.len()));
    assert!(timing["scans"][0]["wall_s"]
        .as_f64()
        .is_some_and(|w| w > 0.0));

    // Refusals: exit 2, one line naming the folder or file, no report written.
    let refused = |partials: &str, extra: &[&str], says: &[&str]| {
        let out = d(&format!("refused{}", extra.len() + partials.len()));
        let mut args = vec!["twin", &model, "--partials", partials, "--out", &out];
        args.extend_from_slice(extra);
        let o = run(&args);
        let e = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{e}");
        assert!(says.iter().all(|s| e.contains(s)), "{e}");
        assert!(!Path::new(&out).join("report.md").exists());
    };
    refused(
        &d("nowhere"),
        &[],
        &["no partial files of scan 00-c0.5GPa", "--shard i/N"],
    );
    std::fs::remove_file(d("p/01-c1GPa/part_2.bin")).unwrap();
    refused(&d("p"), &[], &["p/01-c1GPa", "missing"]);
    refused(
        &d("p"),
        &["--seed", "8"],
        &["part_1.bin", "another run", "seed"],
    );
    refused(&d("p"), &["--max-memory", "4"], &["--max-memory"]);
}

/// Runs `args`, killing the program if it takes longer than `secs` (a guard against a check
/// that comes after the work it should prevent).
fn run_within(args: &[&str], secs: u64) -> Output {
    let mut child = bin()
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn xpcs-twin");
    let t0 = std::time::Instant::now();
    while child.try_wait().unwrap().is_none() {
        if t0.elapsed().as_secs() >= secs {
            child.kill().unwrap();
            panic!("{args:?} still running after {secs} s");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

/// The temp files of ours in `dir` (`.xpcs-twin-<pid>-...`).
fn temp_files(dir: &Path) -> Vec<String> {
    listing(dir)
        .into_iter()
        .filter(|n| n.starts_with(".xpcs-twin-"))
        .collect()
}

/// An output is a regular file or nothing: `/dev/null` and a FIFO are refused even with
/// --force (and stay what they are); two outputs of one run may not be the same file, by
/// name or through a symlink, and nothing is written when they are.
#[test]
fn outputs_are_regular_files_and_pairwise_distinct() {
    use std::os::unix::fs::FileTypeExt;
    let dir = tempfile::tempdir().unwrap();
    let s = |p: &Path| p.display().to_string();
    let (frames, labels) = (
        repo("examples/speckle_small.npy"),
        repo("examples/speckle_small_labels.npy"),
    );
    let base = [
        "correlate",
        frames.as_str(),
        "--qmap",
        labels.as_str(),
        "--frame-time",
        "0.1",
        "--force",
    ];
    let fifo = dir.path().join("pipe");
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    for (target, kind) in [("/dev/null".to_string(), "device"), (s(&fifo), "FIFO")] {
        for flag in ["--out", "--json"] {
            let mut a = base.to_vec();
            let ok_out = s(&dir.path().join("ok_results.hdf"));
            if flag == "--json" {
                a.extend(["--out", &ok_out]);
            }
            a.extend([flag, &target]);
            let o = run(&a);
            assert_eq!(o.status.code(), Some(2), "{a:?}: {}", stderr(&o));
            assert!(stderr(&o).contains(kind), "{a:?}: {}", stderr(&o));
        }
    }
    assert!(std::fs::metadata("/dev/null")
        .unwrap()
        .file_type()
        .is_char_device());
    assert!(std::fs::metadata(&fifo).unwrap().file_type().is_fifo());
    // --out and --json the same file (directly, or the JSON a symlink to the results file).
    let out = dir.path().join("x_results.hdf");
    let link = dir.path().join("x.json");
    std::os::unix::fs::symlink(&out, &link).unwrap();
    let out_s = s(&out);
    for json in [s(&out), s(&link)] {
        let mut a = base.to_vec();
        a.extend(["--out", &out_s, "--json", &json]);
        let o = run(&a);
        assert_eq!(o.status.code(), Some(2), "{a:?}: {}", stderr(&o));
        assert!(stderr(&o).contains("another output"), "{}", stderr(&o));
        assert!(!out.exists(), "{a:?} wrote the results");
    }
    // The NPY folder's files count too: --out inside it under an export's name.
    let npy = dir.path().join("npy");
    let g2 = npy.join("g2.npy");
    let (g2_s, npy_s) = (s(&g2), s(&npy));
    let mut a = base.to_vec();
    a.extend(["--out", &g2_s, "--npy-dir", &npy_s]);
    let o = run(&a);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(!g2.exists());
    // simulate: --out may not be the --labels input the maps are derived from.
    let lab = dir.path().join("s.labels.npy");
    xpcs_twin::io::npy::write_npy(&lab, &[8, 8], &[1u32; 64], &[], false).unwrap();
    let o = run(&[
        "simulate",
        "--model",
        &repo("models/samples/ce68.toml"),
        "--frames",
        "10",
        "--rows",
        "8",
        "--cols",
        "8",
        "--labels",
        &s(&lab),
        "--out",
        &s(&dir.path().join("s.npy")),
        "--force",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("input"), "{}", stderr(&o));
    assert_eq!(
        xpcs_twin::io::npy::read_labels(&lab).unwrap().labels(),
        &[1u32; 64]
    );
}

/// Values that cannot be simulated or analysed are refused at once, naming the flag and the
/// allowed range: sizes before any allocation (a 10 s guard; the size check is a pure
/// function run first, so the refusal takes milliseconds), counts that cannot fit the u32
/// count type, frame times outside 1e-9..1e5 s, --rows 0 before the bins derived from it.
#[test]
fn impossible_values_are_refused_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let model = repo("models/samples/ce68.toml");
    let out = |name: &str| dir.path().join(name).display().to_string();
    let sim = |extra: &[&str], o: &str| -> Output {
        let mut a = vec!["simulate", "--model", &model];
        a.extend(extra);
        a.extend(["--out", o]);
        run_within(&a, 10)
    };
    let (npy, h5) = (out("x.npy"), out("x.h5"));
    for (extra, o, needle) in [
        (
            vec!["--frames", "1000000000", "--rows", "16", "--cols", "16"],
            &npy,
            "--frames",
        ),
        (
            vec!["--frames", "1000000000", "--rows", "16", "--cols", "16"],
            &h5,
            "--frames",
        ),
        (
            vec!["--rows", "100000", "--cols", "100000", "--frames", "10"],
            &h5,
            "rows × cols",
        ),
        (vec!["--mean-counts=1e12", "--frames", "10"], &npy, "1e7"),
        (vec!["--rows", "0"], &npy, "--rows"),
        (vec!["--cols", "0"], &npy, "--cols"),
        (vec!["--frame-time", "1e308"], &npy, "1e-9 to 1e5 s"),
        (vec!["--frame-time", "1e-320"], &npy, "1e-9 to 1e5 s"),
    ] {
        let o = sim(&extra, o);
        let e = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{extra:?}: {e}");
        assert!(e.contains(needle), "{extra:?}: {e}");
        assert_eq!(e.trim().lines().count(), 1, "{extra:?}: {e}");
    }
    assert!(listing(dir.path()).is_empty(), "{:?}", listing(dir.path()));
    let (frames, labels) = (
        repo("examples/speckle_small.npy"),
        repo("examples/speckle_small_labels.npy"),
    );
    for ft in ["1e308", "1e-320", "2e5"] {
        let o = run(&[
            "correlate",
            &frames,
            "--qmap",
            &labels,
            "--frame-time",
            ft,
            "--out",
            &out("r_results.hdf"),
        ]);
        assert_eq!(o.status.code(), Some(2), "{ft}");
        assert!(stderr(&o).contains("1e-9 to 1e5 s"), "{}", stderr(&o));
    }
    let res = example_file(dir.path());
    let o = run(&["fit", &res.display().to_string(), "--twotime-ages", "0"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--twotime-ages"), "{}", stderr(&o));
    assert!(stderr(&o).contains("--no-twotime"), "{}", stderr(&o));
    let o = run_within(
        &[
            "describe",
            &repo("models/pt42-eiger.toml"),
            "--pressure",
            "NaN",
        ],
        10,
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--pressure"), "{}", stderr(&o));
}

/// A simulation killed while writing (SIGTERM, or Ctrl-C's SIGINT) removes its temp file and
/// exits 128 + the signal; a temp file left by a process that no longer runs (kill -9) is
/// removed by the next run writing into the same directory.
#[test]
fn killed_runs_leave_no_temp_files() {
    let dir = tempfile::tempdir().unwrap();
    let model = repo("models/samples/ce68.toml");
    for (sig, code) in [("TERM", 143), ("INT", 130)] {
        let out = dir.path().join(format!("big_{sig}.h5"));
        let mut child = bin()
            .args([
                "simulate",
                "--model",
                &model,
                "--frames",
                "200000",
                "--rows",
                "128",
                "--cols",
                "128",
                "--out",
                out.to_str().unwrap(),
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        // Wait for the temp file: the run has started writing.
        let t0 = std::time::Instant::now();
        while temp_files(dir.path()).is_empty() {
            assert!(
                child.try_wait().unwrap().is_none(),
                "finished before it could be killed"
            );
            assert!(t0.elapsed().as_secs() < 60, "no temp file after 60 s");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        std::thread::sleep(std::time::Duration::from_millis(300));
        let k = Command::new("kill")
            .args([format!("-{sig}"), child.id().to_string()])
            .status()
            .unwrap();
        assert!(k.success());
        let st = child.wait().unwrap();
        assert_eq!(st.code(), Some(code), "SIG{sig}: {st:?}");
        assert!(
            temp_files(dir.path()).is_empty(),
            "{:?}",
            listing(dir.path())
        );
        assert!(!out.exists());
    }
    // A stale temp file of a dead process: removed by the next run in this directory.
    let mut c = Command::new("true").spawn().unwrap();
    let dead = c.id();
    c.wait().unwrap();
    let stale = dir.path().join(format!(".xpcs-twin-{dead}-aBcD12.lost.h5"));
    std::fs::write(&stale, vec![0u8; 4096]).unwrap();
    let o = run(&[
        "simulate",
        "--model",
        &model,
        "--frames",
        "10",
        "--rows",
        "8",
        "--cols",
        "8",
        "--out",
        dir.path().join("small.npy").to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!stale.exists(), "stale temp file not removed");
    assert!(temp_files(dir.path()).is_empty());
}

/// Same seed, same bytes: every output of `correlate` (results HDF5, JSON, NPY) and of
/// `simulate` (HDF5 event file, maps, truth JSON) is identical across two runs more than a
/// second apart (HDF5 object times have 1 s resolution: tracked times would differ).
#[test]
fn same_inputs_give_the_same_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let d = |n: &str| dir.path().join(n).display().to_string();
    let (frames, labels) = (
        repo("examples/speckle_small.npy"),
        repo("examples/speckle_small_labels.npy"),
    );
    let mut snapshots = Vec::new();
    for k in 0..2 {
        if k == 1 {
            std::thread::sleep(std::time::Duration::from_millis(1100));
        }
        let o = run(&[
            "correlate",
            &frames,
            "--qmap",
            &labels,
            "--frame-time",
            "0.1",
            "--twotime",
            "--out",
            &d("c_results.hdf"),
            "--json",
            &d("c.json"),
            "--npy-dir",
            &d("npy"),
            "--force",
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
        let o = run(&[
            "simulate",
            "--model",
            &repo("models/samples/ce68.toml"),
            "--frames",
            "40",
            "--rows",
            "24",
            "--cols",
            "20",
            "--seed",
            "3",
            "--out",
            &d("s.h5"),
            "--force",
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
        let mut files: Vec<(String, Vec<u8>)> = Vec::new();
        for sub in [dir.path().to_path_buf(), dir.path().join("npy")] {
            for n in listing(&sub) {
                let p = sub.join(&n);
                if p.is_file() {
                    files.push((n, std::fs::read(&p).unwrap()));
                }
            }
        }
        snapshots.push(files);
    }
    let names: Vec<&String> = snapshots[0].iter().map(|f| &f.0).collect();
    for want in [
        "c_results.hdf",
        "c.json",
        "g2.npy",
        "s.h5",
        "s.truth.json",
        "s.labels.npy",
    ] {
        assert!(
            names.iter().any(|n| *n == want),
            "{want} missing: {names:?}"
        );
    }
    assert_eq!(snapshots[0].len(), snapshots[1].len());
    for (a, b) in snapshots[0].iter().zip(&snapshots[1]) {
        assert_eq!(a.0, b.0);
        assert!(a.1 == b.1, "{} differs between two identical runs", a.0);
    }
}

/// `plan --out`: plan.json holds the ΔC floor of the null simulation as a number (it was
/// once written as null although the simulation ran).
#[test]
fn plan_json_holds_the_null_floor() {
    let dir = tempfile::tempdir().unwrap();
    let o = run(&[
        "plan",
        &repo("models/samples/ce68.toml"),
        "--pressure",
        "1.1",
        "--mc-repeats",
        "10",
        "--out",
        dir.path().to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.lines().count() < 20, "{out}");
    let v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("plan.json")).unwrap()).unwrap();
    let null = &v["isobars"][0]["delta_c_null"];
    assert!(null.as_f64().is_some_and(|x| x > 0.0), "{null}");
}
