//! Agreement with an independent implementation: scipy's `curve_fit` on the committed datasets
//! in `validation/reference/` (see its PROVENANCE.md).

use super::*;
use std::path::PathBuf;

fn dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../..")).join("validation/reference")
}

fn read_csv(name: &str) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let text = std::fs::read_to_string(dir().join(name)).unwrap();
    let (mut t, mut y, mut s) = (Vec::new(), Vec::new(), Vec::new());
    for line in text.lines().skip(1) {
        let v: Vec<f64> = line.split(',').map(|x| x.parse().unwrap()).collect();
        t.push(v[0]);
        y.push(v[1]);
        s.push(v[2]);
    }
    (t, y, s)
}

#[test]
fn fits_agree_with_scipy_to_1e_4() {
    let js: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir().join("fit_reference.json")).unwrap())
            .unwrap();
    let cases = js["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 5);
    for case in cases {
        let (t, y, s) = read_csv(case["file"].as_str().unwrap());
        let model: Box<dyn FitModel> = match case["model"].as_str().unwrap() {
            "kww" => Box::new(Kww),
            "exp" => Box::new(Exponential),
            "kww-heterodyne" => Box::new(KwwHeterodyne),
            m => panic!("unknown model {m}"),
        };
        for (scale, key) in [
            (ErrorScale::Relative, "std_errors_relative"),
            (ErrorScale::Absolute, "std_errors_absolute"),
        ] {
            let mut o = FitOptions::default().with_error_scale(scale);
            for (k, v) in case["fixed"].as_object().unwrap() {
                o = o.fix(k, v.as_f64().unwrap());
            }
            let r = fit_curve(model.as_ref(), &t, &y, &s, &o).unwrap();
            assert!(r.is_ok(), "{}", r.summary());
            let name = case["name"].as_str().unwrap();
            for (p, v) in case["values"].as_object().unwrap() {
                let (mine, theirs) = (r.value(p).unwrap(), v.as_f64().unwrap());
                assert!(
                    (mine - theirs).abs() <= 1e-4 * theirs.abs(),
                    "{name} {p}: {mine} vs scipy {theirs}"
                );
                let (se, se_ref) = (r.std_error(p).unwrap(), case[key][p].as_f64().unwrap());
                assert!(
                    (se - se_ref).abs() <= 1e-4 * se_ref,
                    "{name} {p} ({key}): {se} vs scipy {se_ref}"
                );
            }
            if std::env::var_os("XPCS_SHOW_AGREEMENT").is_some() {
                let worst = case["values"]
                    .as_object()
                    .unwrap()
                    .iter()
                    .map(|(p, v)| {
                        let rv = (r.value(p).unwrap() / v.as_f64().unwrap() - 1.0).abs();
                        let re =
                            (r.std_error(p).unwrap() / case[key][p].as_f64().unwrap() - 1.0).abs();
                        rv.max(re)
                    })
                    .fold(0.0, f64::max);
                eprintln!("{name} ({key}): worst relative difference {worst:.2e}");
            }
            let chi2 = r.fitted().unwrap().chi2;
            let chi2_ref = case["chi2"].as_f64().unwrap();
            assert!(
                (chi2 - chi2_ref).abs() <= 1e-8 * chi2_ref,
                "{name}: chi2 {chi2} vs {chi2_ref}"
            );
        }
    }
}
