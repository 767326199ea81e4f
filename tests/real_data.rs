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
/// τ(q) power law recovers the writer's exponent.
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
    // The writer's τ(q) exponent, from its truth at the first and last bin (a pure power law).
    let truth = exp["kww_truth_per_bin"].as_array().unwrap();
    let (t0, t1) = (&truth[0], &truth[truth.len() - 1]);
    let f = |t: &serde_json::Value, k: &str| t[k].as_f64().unwrap();
    let alpha_true = -(f(t1, "tau_s") / f(t0, "tau_s")).ln() / (f(t1, "q") / f(t0, "q")).ln();
    let pl = group(fits, "power_law");
    let alpha = num(pl, "alpha")[0];
    let alpha_err = num(pl, "alpha_err")[0];
    assert!(
        (alpha - alpha_true).abs() < 5.0 * alpha_err,
        "α = {alpha} ± {alpha_err}, truth {alpha_true}"
    );
}

/// Runs `correlate` and returns (stderr, JSON summary); panics unless it succeeds.
fn correlate(args: &[&str], dir: &Path, name: &str) -> (String, serde_json::Value) {
    let out = dir.join(format!("{name}_results.hdf"));
    let j = dir.join(format!("{name}.json"));
    let mut a = vec!["correlate".to_string()];
    a.extend(args.iter().map(|s| s.to_string()));
    a.extend([
        "--out".into(),
        s(&out),
        "--json".into(),
        s(&j),
        "--force".into(),
    ]);
    let a: Vec<&str> = a.iter().map(String::as_str).collect();
    let o = run(&a);
    assert!(o.status.success(), "{name}: {}", text(&o.stderr));
    let v = serde_json::from_slice(&std::fs::read(&j).unwrap()).unwrap();
    (text(&o.stderr), v)
}

/// Label map of `rows × cols`: 3 rings around (rc, cc), 12 px wide.
fn rings(dir: &Path, rows: usize, cols: usize, rc: f64, cc: f64) -> PathBuf {
    let l: Vec<u8> = (0..rows * cols)
        .map(|p| {
            let (r, c) = ((p / cols) as f64, (p % cols) as f64);
            1 + ((r - rc).hypot(c - cc) / 12.0).min(2.0) as u8
        })
        .collect();
    let p = dir.join("rings.npy");
    xpcs_twin::io::npy::write_npy(&p, &[rows, cols], &l, &[], true).unwrap();
    p
}

/// An Eiger master file with gaps (306 pixels flagged in `pixel_mask`, holding 2^n − 1 in every
/// frame) and 2 transient overflows: `correlate` masks all 308 with no flag, says so, records it,
/// and its g2 equals the g2 of the decoded stack with those pixels masked explicitly. For
/// bitshuffle-LZ4 u32, LZ4 u16 and deflate u32, each a master + 2 linked data files.
#[test]
fn eiger_masks_apply_by_default() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for stem in ["eiger_bslz4_u32", "eiger_lz4_u16", "eiger_deflate_u32"] {
        let exp = json(&format!("{stem}_expected.json"));
        let stack =
            xpcs_twin::io::npy::read_stack(&fixture(&format!("{stem}_expected.npy"))).unwrap();
        let (rows, cols) = stack.frame_shape();
        let labels = rings(d, rows, cols, 27.25, 30.5);
        let bits = exp["bit_depth_image"].as_u64().unwrap();
        let max = ((1u64 << bits) - 1) as u32;
        let cutoff = exp["countrate_correction_count_cutoff"].as_u64().unwrap();
        // The reference mask, straight from the definition over the decoded frames.
        let valid: Vec<u8> = (0..rows * cols)
            .map(|p| {
                u8::from((0..stack.n_frames()).all(|t| {
                    let x = stack.get(t, p);
                    x != max && u64::from(x) <= cutoff
                }))
            })
            .collect();
        let n_masked = valid.iter().filter(|&&v| v == 0).count();
        assert_eq!(
            n_masked,
            exp["pixel_mask_nonzero"].as_u64().unwrap() as usize + 2
        );
        let mask = d.join("ref_mask.npy");
        xpcs_twin::io::npy::write_npy(&mask, &[rows, cols], &valid, &[], true).unwrap();
        let master = fixture(&format!("{stem}_master.h5"));
        let (err, got) = correlate(&[&s(&master), "--qmap", &s(&labels)], d, stem);
        assert!(
            err.contains(&format!(
                "{n_masked} pixel(s) masked (306 by the file's pixel_mask, 2 more"
            )),
            "{err}"
        );
        let npy = fixture(&format!("{stem}_expected.npy"));
        let (_, want) = correlate(
            &[
                &s(&npy),
                "--qmap",
                &s(&labels),
                "--mask",
                &s(&mask),
                "--frame-time",
                "0.001",
                "--no-detector-mask",
            ],
            d,
            &format!("{stem}_ref"),
        );
        // The same g2 to the bit; delays differ only in the master's f32 frame time.
        for k in ["g2", "g2_err", "n_pixels", "lag_frames", "status"] {
            for b in 0..3 {
                assert_eq!(got["bins"][b][k], want["bins"][b][k], "{stem} bin {b} {k}");
            }
        }
        assert_eq!(got["detector_mask"]["n_masked"], n_masked);
        let r = read_results(&d.join(format!("{stem}_results.hdf"))).unwrap();
        let dm = group(&r.twin.extra, "detector_mask");
        assert_eq!(num(dm, "n_masked"), vec![n_masked as f64]);
        assert_eq!(num(dm, "n_pixel_mask"), vec![306.0]);
    }
    // Without the detector mask, u32 gap markers are refused (exit 2, one line), never summed.
    let labels = d.join("rings.npy");
    let o = run(&[
        "correlate",
        &s(&fixture("eiger_bslz4_u32_master.h5")),
        "--qmap",
        &s(&labels),
        "--out",
        &s(&d.join("nomask_results.hdf")),
        "--no-detector-mask",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o.stderr));
    assert_eq!(
        text(&o.stderr).trim().lines().count(),
        1,
        "{}",
        text(&o.stderr)
    );
    assert!(text(&o.stderr).contains("4294967295"));
    assert!(!d.join("nomask_results.hdf").exists());
}

/// NeXus NXdetector frames at `/entry/instrument/detector/data`, found with or without
/// `--dataset`, and the same stack from a deflated NPZ member, give the same g2 as the decoded
/// stack.
#[test]
fn nexus_and_npz_frames() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let npy = fixture("nexus_nxdetector_u16_expected.npy");
    let stack = xpcs_twin::io::npy::read_stack(&npy).unwrap();
    let (rows, cols) = stack.frame_shape();
    let labels = rings(d, rows, cols, 14.0, 20.0);
    let nx = fixture("nexus_nxdetector_u16.h5");
    let (_, want) = correlate(
        &[&s(&npy), "--qmap", &s(&labels), "--frame-time", "0.002"],
        d,
        "ref",
    );
    let (_, a) = correlate(&[&s(&nx), "--qmap", &s(&labels)], d, "nx");
    let (_, b) = correlate(
        &[
            &s(&nx),
            "--qmap",
            &s(&labels),
            "--dataset",
            "/entry/instrument/detector/data",
        ],
        d,
        "nx_dataset",
    );
    assert_eq!(a["bins"], want["bins"]);
    assert_eq!(b["bins"], want["bins"]);
    assert_eq!(a["frame_time_s"], 0.002);
    // An NPZ archive (deflate) with two members: the frames stream from the named one.
    let z = d.join("stack.npz");
    {
        let f = std::fs::File::create(&z).unwrap();
        let mut w = zip::ZipWriter::new(f);
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated);
        w.start_file("frames.npy", opts).unwrap();
        std::io::Write::write_all(&mut w, &std::fs::read(&npy).unwrap()).unwrap();
        w.start_file("labels.npy", opts).unwrap();
        std::io::Write::write_all(&mut w, &std::fs::read(&labels).unwrap()).unwrap();
        w.finish().unwrap();
    }
    let (_, c) = correlate(
        &[
            &s(&z),
            "--dataset",
            "frames",
            "--qmap",
            &s(&labels),
            "--frame-time",
            "0.002",
        ],
        d,
        "npz",
    );
    assert_eq!(c["bins"], want["bins"]);
    // Without --dataset the archive's two members are named in the one-line error.
    let o = run(&[
        "correlate",
        &s(&z),
        "--qmap",
        &s(&labels),
        "--frame-time",
        "0.002",
        "--out",
        &s(&d.join("x_results.hdf")),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stderr).contains("--dataset"), "{}", text(&o.stderr));
}

/// `--begin/--end/--stride/--avg` (boost_corr's meaning): the g2 equals that of the stack
/// pre-selected by the definition (raw frames begin + (m·avg + j)·stride summed over j) with
/// the frame time × stride × avg; the results file records the APS keys; lag 0 is not in
/// `normalized_g2`.
#[test]
fn frame_selection_matches_its_definition() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (n, rows, cols) = (60usize, 12usize, 10usize);
    // A fixed pseudo-random sparse stack (counts 0..3).
    let raw: Vec<u16> = (0..n * rows * cols)
        .map(|i| ((i as u64).wrapping_mul(2654435761) >> 7) as u16 % 4)
        .collect();
    let full = d.join("full.npy");
    xpcs_twin::io::npy::write_npy(&full, &[n, rows, cols], &raw, &[], true).unwrap();
    let (begin, end, stride, avg) = (3usize, 58usize, 2usize, 3usize);
    let n_out = (end - begin) / (stride * avg);
    let px = rows * cols;
    let mut sel = vec![0u16; n_out * px];
    for m in 0..n_out {
        for j in 0..avg {
            let t = begin + (m * avg + j) * stride;
            for p in 0..px {
                sel[m * px + p] += raw[t * px + p];
            }
        }
    }
    let pre = d.join("pre.npy");
    xpcs_twin::io::npy::write_npy(&pre, &[n_out, rows, cols], &sel, &[], true).unwrap();
    let labels = rings(d, rows, cols, 5.0, 5.0);
    let (_, got) = correlate(
        &[
            &s(&full),
            "--qmap",
            &s(&labels),
            "--frame-time",
            "0.01",
            "--begin",
            "3",
            "--end",
            "58",
            "--stride",
            "2",
            "--avg",
            "3",
        ],
        d,
        "sel",
    );
    let (_, want) = correlate(
        &[&s(&pre), "--qmap", &s(&labels), "--frame-time", "0.06"],
        d,
        "pre",
    );
    assert_eq!(got["n_frames"], n_out);
    assert_eq!(
        got["frames_used"],
        serde_json::json!([3, 3 + n_out * 6, 2, 3])
    );
    for b in 0..2 {
        for k in ["g2", "g2_err", "lag_frames"] {
            assert_eq!(got["bins"][b][k], want["bins"][b][k], "bin {b} {k}");
        }
    }
    let r = read_results(&d.join("sel_results.hdf")).unwrap();
    let m = r.multitau.as_ref().unwrap();
    assert_eq!((m.stride_frame, m.avg_frame), (2, 3));
    assert_eq!(m.frame_range, Some((3, 3 + (n_out * 6) as i64)));
    assert_eq!(r.frame_time_s, 0.01, "the raw frame time, as APS stores it");
    assert_eq!(m.delay_frames[0], 1, "lag 0 is not in normalized_g2");
    // Intensities per raw frame (the summed frames divided by avg).
    let mean_pre = read_results(&d.join("pre_results.hdf"))
        .unwrap()
        .scattering_2d;
    for (a, b) in r.scattering_2d.iter().zip(&mean_pre) {
        assert!((a * 3.0 - b).abs() <= 1e-5 * b.max(1.0), "{a} × 3 vs {b}");
    }
    // A range without one output frame: exit 2, one line naming the flag.
    let o = run(&[
        "correlate",
        &s(&full),
        "--qmap",
        &s(&labels),
        "--frame-time",
        "0.01",
        "--begin",
        "70",
        "--out",
        &s(&d.join("bad_results.hdf")),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stderr).contains("--begin"), "{}", text(&o.stderr));
}

/// q from the beamline's q-map (the APS results file's `/xpcs/qmap`: LZF uint8/uint16 roi
/// maps, uint8 index mapping), from geometry, or from a CSV of bin q values; without any, the
/// results file holds NaN (with its note), `fit` says "q unknown" and refuses τ(q).
#[test]
fn q_sources_and_q_unknown() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let aps = fixture("aps8idi_rigaku500k_results.hdf");
    let exp = json("aps8idi_rigaku500k_results_expected.json");
    let (rows, cols) = (512usize, 1024usize);
    // Three frames of Poisson-like counts on the Rigaku module.
    let raw: Vec<u8> = (0..3 * rows * cols)
        .map(|i| (((i as u64).wrapping_mul(2654435761) >> 9) % 7 == 0) as u8)
        .collect();
    let frames = d.join("rigaku.npy");
    xpcs_twin::io::npy::write_npy(&frames, &[3, rows, cols], &raw, &[], true).unwrap();
    let (_, v) = correlate(
        &[&s(&frames), "--qmap", &s(&aps), "--frame-time", "0.001"],
        d,
        "qmap",
    );
    assert_eq!(v["q_source"], "q-map file");
    let want_q = exp["dynamic"]["q_of_bin"].as_array().unwrap();
    assert_eq!(v["bins"].as_array().unwrap().len(), 27);
    for (b, q) in want_q.iter().enumerate() {
        let got = v["bins"][b]["q_inv_angstrom"].as_f64().unwrap();
        assert!((got - q.as_f64().unwrap()).abs() < 1e-12, "bin {}", b + 1);
    }
    // The roi map alone, without q.
    let roi = xpcs_twin::io::maps::read_label_map(&aps, None).unwrap();
    let lab = d.join("roi.npy");
    xpcs_twin::io::npy::write_npy(&lab, &[rows, cols], roi.labels(), &[], true).unwrap();
    // Geometry: the writer's own (10 keV, 4 m, 76 µm, beam at row 270.25, col 60.5): each
    // bin's mean q lies inside the bin's edges (linear bins of width 0.000844 Å⁻¹).
    let (_, g) = correlate(
        &[
            &s(&frames),
            "--qmap",
            &s(&lab),
            "--frame-time",
            "0.001",
            "--energy-kev",
            "10",
            "--distance-m",
            "4",
            "--pixel-size-um",
            "76",
            "--beam-center-px",
            "270.25,60.5",
        ],
        d,
        "geo",
    );
    assert_eq!(g["q_source"], "geometry");
    let half_width = (0.0240 - 0.0012) / 27.0 / 2.0;
    for (b, q) in want_q.iter().enumerate() {
        let got = g["bins"][b]["q_inv_angstrom"].as_f64().unwrap();
        assert!(
            (got - q.as_f64().unwrap()).abs() <= half_width,
            "bin {}: {got}",
            b + 1
        );
    }
    // q from geometry and from the q-map at once: refused (one source).
    let o = run(&[
        "correlate",
        &s(&frames),
        "--qmap",
        &s(&aps),
        "--frame-time",
        "0.001",
        "--energy-kev",
        "10",
        "--distance-m",
        "4",
        "--pixel-size-um",
        "76",
        "--beam-center-px",
        "270.25,60.5",
        "--out",
        &s(&d.join("two_results.hdf")),
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o.stderr));
    // q values from a CSV.
    let csv = d.join("q.csv");
    let qs: Vec<String> = want_q.iter().map(|q| q.to_string()).collect();
    std::fs::write(&csv, format!("# q (1/A)\n{}\n", qs.join(",\n"))).unwrap();
    let (_, c) = correlate(
        &[
            &s(&frames),
            "--qmap",
            &s(&lab),
            "--frame-time",
            "0.001",
            "--q-values",
            &s(&csv),
        ],
        d,
        "csv",
    );
    assert_eq!(c["q_source"], "--q-values");
    assert_eq!(c["bins"][26]["q_inv_angstrom"], want_q[26]);
    // No q at all: NaN in the file with its note, never 1, 2, 3 ...
    let (_, u) = correlate(
        &[&s(&frames), "--qmap", &s(&lab), "--frame-time", "0.001"],
        d,
        "unknown",
    );
    assert_eq!(u["q_source"], "unknown");
    assert!(u["bins"][0]["q_inv_angstrom"].is_null());
    let res = d.join("unknown_results.hdf");
    let r = read_results(&res).unwrap();
    assert!(r
        .partition
        .dynamic_axes()
        .iter()
        .all(|a| a.q_inv_angstrom.is_nan()));
    let f = hdf5::File::open(&res).unwrap();
    let note: hdf5::types::FixedUnicode<64> = f
        .dataset("/xpcs/qmap/dynamic_v_list_dim0")
        .unwrap()
        .attr("note")
        .unwrap()
        .read_scalar()
        .unwrap();
    assert!(note.as_str().starts_with("q unknown"));
    drop(f);
    let fj = d.join("fit.json");
    let o = run(&["fit", &s(&res), "--model", "exp", "--json", &s(&fj)]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(text(&o.stderr).contains("τ(q) power law not fitted: q unknown"));
    assert!(text(&o.stdout).contains("q unknown"));
    let fit: serde_json::Value = serde_json::from_slice(&std::fs::read(&fj).unwrap()).unwrap();
    assert_eq!(fit["q_unknown"], true);
    assert!(fit["power_law"].is_null());
}
