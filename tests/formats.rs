//! The beamline formats end to end: `simulate --format` writes a scan as each detector's
//! acquisition system would, `correlate` reads it back to g2 bit-identical to the same photons
//! read from `.npy`; `correlate` reads the independent fixtures of `tests/fixtures/real` to
//! the g2 of their expected arrays; an independent Python reader (numpy, h5py + hdf5plugin,
//! in the venv `scripts/pyenv` makes) decodes what we write; bad sparse input exits 2.

mod common;

use common::{root, venv_python};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use xpcs_twin::data::EventList;
use xpcs_twin::io::npy::{read_f64, read_stack, write_npy};
use xpcs_twin::io::output::{write_photons, Acquisition, PhotonFormat};

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_xpcs-twin"))
        .args(args)
        .output()
        .expect("run xpcs-twin")
}

fn ok(o: &Output) {
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

fn s(p: &Path) -> String {
    p.display().to_string()
}

/// Correlates `input` with `labels` (extra arguments appended); returns the bytes of the
/// exported g2.npy and g2_err.npy.
fn g2_of(input: &Path, labels: &Path, dir: &Path, tag: &str, extra: &[&str]) -> (Vec<u8>, Vec<u8>) {
    let npy = dir.join(format!("{tag}_npy"));
    let mut a = vec![
        "correlate".to_string(),
        s(input),
        "--qmap".into(),
        s(labels),
        "--frame-time".into(),
        "0.01".into(),
        "--out".into(),
        s(&dir.join(format!("{tag}_results.hdf"))),
        "--npy-dir".into(),
        s(&npy),
    ];
    a.extend(extra.iter().map(|x| x.to_string()));
    let a: Vec<&str> = a.iter().map(String::as_str).collect();
    ok(&run(&a));
    (
        std::fs::read(npy.join("g2.npy")).unwrap(),
        std::fs::read(npy.join("g2_err.npy")).unwrap(),
    )
}

/// simulate → write in each format → correlate → g2 and g2_err identical, bit for bit, to the
/// same photons written as `.npy` (same seed). Rigaku needs its module shape (512 × 1024);
/// the others run on a small frame.
#[test]
fn simulate_every_format_correlates_like_npy() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let model = s(&root().join("models/samples/pt42.toml"));
    let sim = |out: &Path, format: &str, rows: &str, cols: &str, frames: &str| {
        ok(&run(&[
            "simulate",
            "--model",
            &model,
            "--frames",
            frames,
            "--rows",
            rows,
            "--cols",
            cols,
            "--mean-counts",
            "0.05",
            "--seed",
            "11",
            "--format",
            format,
            "--out",
            &s(out),
        ]))
    };
    // Small frame: npy reference, then eiger, imm, events.
    let reference = d.join("small.npy");
    sim(&reference, "npy", "24", "40", "120");
    let labels = d.join("small.labels.npy");
    let want = g2_of(&reference, &labels, d, "ref_small", &[]);
    // The dense and the event correlator agree on the reference itself.
    assert_eq!(
        g2_of(&reference, &labels, d, "ref_small_sparse", &["--sparse"]),
        want
    );
    for (format, name) in [
        ("eiger", "e_master.h5"),
        ("imm", "i.imm"),
        ("events", "v.h5"),
    ] {
        let out = d.join(name);
        sim(&out, format, "24", "40", "120");
        let got = g2_of(&out, &labels, d, format, &[]);
        assert!(
            got == want,
            "{format}: g2 differs from the .npy of the same photons"
        );
    }
    assert!(d.join("e_data_000001.h5").exists());
    // One Rigaku module.
    let reference = d.join("big.npy");
    sim(&reference, "npy", "512", "1024", "24");
    let labels = d.join("big.labels.npy");
    let want = g2_of(&reference, &labels, d, "ref_big", &[]);
    let out = d.join("r.bin");
    sim(&out, "rigaku", "512", "1024", "24");
    assert!(
        g2_of(&out, &labels, d, "rigaku", &[]) == want,
        "rigaku: g2 differs"
    );
    // A shape the Rigaku format cannot hold is refused before any work, naming the shapes.
    let o = run(&[
        "simulate",
        "--model",
        &model,
        "--frames",
        "4",
        "--rows",
        "8",
        "--cols",
        "8",
        "--format",
        "rigaku",
        "--out",
        &s(&d.join("bad.bin")),
    ]);
    assert_eq!(o.status.code(), Some(2));
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        e.contains("512 × 1024") && e.trim().lines().count() == 1,
        "{e}"
    );
    assert!(!d.join("bad.bin").exists() && !d.join("bad.truth.json").exists());
}

fn real(name: &str) -> PathBuf {
    root().join("tests/fixtures/real").join(name)
}

/// A label map of `rows × cols`: four bands of rows, without the pixels `exclude` flags.
fn band_labels(path: &Path, rows: usize, cols: usize, exclude: &[bool]) {
    let l: Vec<u32> = (0..rows * cols)
        .map(|p| {
            if exclude.get(p).copied().unwrap_or(false) {
                0
            } else {
                (4 * (p / cols) / rows + 1) as u32
            }
        })
        .collect();
    write_npy(path, &[rows, cols], &l, &[], false).unwrap();
}

/// `correlate` on each independent fixture (Rigaku 500k and 3M, IMM sparse and full frames,
/// ESRF ID10 sparse, triplets in HDF5 and NPY, Eiger master) gives the g2 of the fixture's
/// expected array written as `.npy`, bit for bit.
#[test]
fn correlate_reads_the_beamline_fixtures() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // Dense reference from a COO table (frame, row, col, count).
    let from_coo = |name: &str, shape: [usize; 3], out: &Path| {
        let (_, v) = read_f64(&real(name)).unwrap();
        let mut dense = vec![0u32; shape.iter().product()];
        for r in v.chunks_exact(4) {
            let (t, y, x) = (r[0] as usize, r[1] as usize, r[2] as usize);
            dense[(t * shape[1] + y) * shape[2] + x] = r[3] as u32;
        }
        write_npy(out, &shape, &dense, &[], false).unwrap();
    };
    let rig = d.join("rigaku500k_dense.npy");
    from_coo("rigaku500k_expected_coo.npy", [8, 512, 1024], &rig);
    let rig3 = d.join("rigaku3m_dense.npy");
    from_coo("rigaku3m_expected_coo.npy", [6, 1676, 2100], &rig3);
    let cases: Vec<(&str, PathBuf)> = vec![
        ("rigaku500k.bin", rig),
        ("rigaku3m.bin.000", rig3),
        ("imm_sparse.imm", real("imm_sparse_expected.npy")),
        ("imm_dense.imm", real("imm_dense_expected.npy")),
        (
            "esrf_id10_eiger4m_v2_sparse_frame_0_00000.h5",
            real("esrf_id10_sparse_expected.npy"),
        ),
        ("aps_triplets.h5", real("aps_triplets_expected.npy")),
        ("aps_triplets_ifc.npy", real("aps_triplets_expected.npy")),
        (
            "eiger_bslz4_u32_master.h5",
            real("eiger_bslz4_u32_expected.npy"),
        ),
    ];
    for (i, (name, expected)) in cases.into_iter().enumerate() {
        let st = read_stack(&expected).unwrap();
        let (rows, cols) = st.frame_shape();
        // Eiger gap and overflow pixels (2^bits − 1) are masked, as at the beamline.
        let flagged: Vec<bool> = (0..rows * cols)
            .map(|p| (0..st.n_frames()).any(|t| st.get(t, p) >= 65535))
            .collect();
        let labels = d.join(format!("labels{i}.npy"));
        band_labels(&labels, rows, cols, &flagged);
        let want = g2_of(&expected, &labels, d, &format!("want{i}"), &["--sparse"]);
        // Shape-less formats (ESRF sparse, triplets) take the q-map's shape.
        let got = g2_of(&real(name), &labels, d, &format!("got{i}"), &[]);
        assert!(got == want, "{name}: g2 differs from its expected array's");
    }
    // A q-map of another shape: a sparse file that declares its shape (IMM) is refused before
    // any per-pixel state; a shape-less one (triplets) finds a pixel beyond it.
    let tiny = d.join("tiny.npy");
    band_labels(&tiny, 8, 8, &[]);
    for (name, needle) in [
        ("imm_sparse.imm", "frame shape in the file"),
        ("aps_triplets.h5", "pixel index"),
    ] {
        let o = run(&[
            "correlate",
            &s(&real(name)),
            "--qmap",
            &s(&tiny),
            "--frame-time",
            "0.01",
            "--out",
            &s(&d.join("x_results.hdf")),
        ]);
        let e = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{name}: {e}");
        assert!(
            e.contains(needle) && e.trim().lines().count() == 1,
            "{name}: {e}"
        );
    }
}

/// Corrupted sparse files: exit 2, one line naming the file, no output.
#[test]
fn correlate_bad_sparse_input_is_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let labels = d.join("labels.npy");
    band_labels(&labels, 512, 1024, &[]);
    let good = std::fs::read(real("rigaku500k.bin")).unwrap();
    let imm = std::fs::read(real("imm_sparse.imm")).unwrap();
    let mut cases: Vec<(&str, Vec<u8>)> = vec![
        ("trunc.bin", good[..good.len() - 5].to_vec()),
        ("empty.bin", vec![]),
        ("trunc.imm", imm[..imm.len() - 7].to_vec()),
    ];
    // A record whose index lies between the module (2^19) and the offset (2^20).
    let mut hole = good.clone();
    hole[2] = 0x00;
    hole[3] = 0x00;
    hole[4] = 0x09; // index = 9 · 2^16 ≥ 2^19
    cases.push(("hole.bin", hole));
    // An IMM header with an absurd shape.
    let mut absurd = imm.clone();
    absurd[108..112].copy_from_slice(&i32::MAX.to_le_bytes());
    cases.push(("absurd.imm", absurd));
    for (name, bytes) in cases {
        let p = d.join(name);
        std::fs::write(&p, &bytes).unwrap();
        let out = d.join("r_results.hdf");
        let o = run(&[
            "correlate",
            &s(&p),
            "--qmap",
            &s(&labels),
            "--frame-time",
            "0.01",
            "--out",
            &s(&out),
        ]);
        let e = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{name}: {e}");
        assert!(
            e.contains(name) && e.trim().lines().count() == 1,
            "{name}: {e}"
        );
        assert!(!out.exists(), "{name} left an output");
    }
}

/// (frame, row, col, count) of every photon, sorted, as the Python checker expects; pixels
/// with `skip[p]` left out.
fn coo(ev: &EventList, skip: Option<&[u32]>) -> Vec<u32> {
    let cols = ev.frame_shape().1;
    let mut v: Vec<[u32; 4]> = Vec::new();
    for p in 0..ev.n_pixels() {
        if skip.is_some_and(|m| m[p] != 0) {
            continue;
        }
        let (fr, ct) = ev.pixel(p);
        for (&f, &c) in fr.iter().zip(ct) {
            v.push([f, (p / cols) as u32, (p % cols) as u32, c]);
        }
    }
    v.sort_unstable();
    v.into_iter().flatten().collect()
}

fn hashed_events(t: usize, r: usize, c: usize, every: u32, max: u32, skip_gaps: bool) -> EventList {
    let mut off = vec![0u64];
    let (mut fr, mut ct) = (vec![], vec![]);
    for p in 0..r * c {
        let in_gap = skip_gaps && xpcs_twin::io::rigaku::module_of(p / c, p % c).is_none();
        for f in 0..t {
            let h = ((p * t + f) as u32).wrapping_mul(2654435761);
            if !in_gap && h % every == 0 {
                fr.push(f as u32);
                ct.push((h >> 8) % max + 1);
            }
        }
        off.push(fr.len() as u64);
    }
    EventList::new(r, c, t, 0.01, off, fr, ct).unwrap()
}

/// Our Rigaku (500k and 3M), IMM (sparse and full frames) and Eiger (master + data files,
/// pixel mask) files decode, with numpy / h5py + hdf5plugin and the published layouts
/// (tests/python/check_written_formats.py), to exactly the photons we wrote.
#[test]
fn python_reads_what_we_write() {
    let py = match venv_python() {
        Ok(p) => p,
        Err(why) => {
            eprintln!("SKIP python_reads_what_we_write: {why}");
            return;
        }
    };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let acq = Acquisition {
        count_time_s: 0.009,
        pixel_size_m: 75e-6,
        distance_m: 5.0,
        energy_kev: 21.0,
        pixel_mask: vec![],
        description: "check".into(),
        frames_per_file: 3,
    };
    let mut manifest = Vec::new();
    let mut add =
        |kind: &str, file: &str, ev: &EventList, skip: Option<&[u32]>, extra: serde_json::Value| {
            let exp = format!("{file}.expected.npy");
            let c = coo(ev, skip);
            write_npy(&d.join(&exp), &[c.len() / 4, 4], &c, &[], false).unwrap();
            let (r, cc) = ev.frame_shape();
            let mut m = serde_json::json!({"kind": kind, "file": file, "expected": exp,
            "shape": [ev.n_frames(), r, cc]});
            if let (Some(o), serde_json::Value::Object(e)) = (m.as_object_mut(), extra) {
                o.extend(e);
            }
            manifest.push(m);
        };
    // Rigaku: the last frame must hold a photon (the frame count is the last record's + 1).
    let rig = hashed_events(6, 512, 1024, 997, 4095, false);
    write_photons(
        &d.join("r.bin"),
        PhotonFormat::Rigaku,
        &rig,
        &acq,
        &[],
        false,
    )
    .unwrap();
    add("rigaku", "r.bin", &rig, None, serde_json::json!({}));
    let rig3 = hashed_events(3, 1676, 2100, 4999, 9, true);
    write_photons(
        &d.join("m.bin"),
        PhotonFormat::Rigaku,
        &rig3,
        &acq,
        &[],
        false,
    )
    .unwrap();
    add("rigaku3m", "m.bin", &rig3, None, serde_json::json!({}));
    let small = hashed_events(7, 20, 30, 5, 60_000, false);
    write_photons(
        &d.join("s.imm"),
        PhotonFormat::Imm,
        &small,
        &acq,
        &[],
        false,
    )
    .unwrap();
    add("imm", "s.imm", &small, None, serde_json::json!({}));
    xpcs_twin::io::imm::write_imm(&d.join("f.imm"), &small, false, &[], false).unwrap();
    add("imm", "f.imm", &small, None, serde_json::json!({}));
    let mut mask = vec![0u32; 600];
    for p in [0usize, 31, 299, 599] {
        mask[p] = if p % 2 == 0 { 1 } else { 2 };
    }
    let eig = hashed_events(7, 20, 30, 5, 9, false);
    let acq_m = Acquisition {
        pixel_mask: mask.clone(),
        ..acq.clone()
    };
    write_photons(
        &d.join("e_master.h5"),
        PhotonFormat::Eiger,
        &eig,
        &acq_m,
        &[],
        false,
    )
    .unwrap();
    add(
        "eiger",
        "e_master.h5",
        &eig,
        Some(&mask),
        serde_json::json!({"bits": 16}),
    );
    std::fs::write(
        d.join("manifest.json"),
        serde_json::to_vec(&manifest).unwrap(),
    )
    .unwrap();
    let o = Command::new(&py)
        .arg(root().join("tests/python/check_written_formats.py"))
        .arg(d)
        .output()
        .unwrap();
    eprintln!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        o.status.success(),
        "the Python reader disagrees: {:?}",
        o.status
    );
    assert_eq!(String::from_utf8_lossy(&o.stdout).matches("OK ").count(), 5);
}
