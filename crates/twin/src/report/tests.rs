use super::*;
use ndarray::Array2;
use rand_distr::{Distribution, Normal};
use xpcs_core::fit::{fit_curve, FitModel, FitOptions, Kww};
use xpcs_sim::rng;

/// Where example plots go: $XPCS_PLOT_DIR if set (to look at them), else a temp dir.
fn out_dir() -> (Option<tempfile::TempDir>, std::path::PathBuf) {
    match std::env::var_os("XPCS_PLOT_DIR") {
        Some(d) => {
            std::fs::create_dir_all(&d).unwrap();
            (None, d.into())
        }
        None => {
            let t = tempfile::tempdir().unwrap();
            let p = t.path().to_path_buf();
            (Some(t), p)
        }
    }
}

fn is_png(path: &std::path::Path) -> bool {
    let b = std::fs::read(path).unwrap();
    b.len() > 1000 && b.starts_with(&[0x89, b'P', b'N', b'G'])
}

#[test]
fn ticks_and_labels() {
    assert_eq!(
        nice_ticks(0.0, 1.0, 5),
        vec![0.0, 0.2, 0.4, 0.6000000000000001, 0.8, 1.0]
    );
    assert_eq!(fmt_number(0.2, Some(0.2)), "0.2");
    assert_eq!(fmt_number(1.006, Some(0.001)), "1.006");
    assert_eq!(fmt_number(100.0, None), "100");
    assert_eq!(fmt_number(1e-5, None), "1e-5");
    let t = log_ticks(-1.0, 3.0);
    assert_eq!(t, vec![-1.0, 0.0, 1.0, 2.0, 3.0]);
    let a = Axis::with_range(-1.0, 3.0, true);
    assert_eq!(a.label(-1.0), "0.1");
    assert_eq!(a.label(2.0), "100");
    // Narrow log range (2.7–3.0 Å⁻¹): uniform ticks with distinct labels.
    let n = Axis::with_range(2.7f64.log10(), 3.0f64.log10(), true);
    let labels: Vec<String> = n.ticks.iter().map(|&v| n.label(v)).collect();
    assert!(labels.len() >= 3, "{labels:?}");
    assert!(labels.windows(2).all(|w| w[0] != w[1]), "{labels:?}");
    assert_eq!(viridis(0.0), RGBColor(68, 1, 84));
    assert_eq!(viridis(1.0), RGBColor(253, 231, 37));
}

#[test]
fn g2_fit_plot_and_two_time_map() {
    let (_keep, dir) = out_dir();
    // g2 of a KWW with noise, its fit and residuals.
    let truth = [1.0, 0.18, 12.0, 1.6];
    let mut rng = rng::stream(3, 0);
    let noise = Normal::new(0.0, 0.004).unwrap();
    let t: Vec<f64> = (0..70).map(|i| 0.1 * 1.17f64.powi(i)).collect();
    let g2: Vec<f64> = t
        .iter()
        .map(|&x| Kww.eval(x, &truth) + noise.sample(&mut rng))
        .collect();
    let err = vec![0.004; t.len()];
    let r = fit_curve(&Kww, &t, &g2, &err, &FitOptions::default()).unwrap();
    let p = r.fitted().unwrap().values.clone();
    let tf: Vec<f64> = (0..400)
        .map(|i| 0.1 * 10f64.powf(i as f64 / 400.0 * 4.8))
        .collect();
    let yf: Vec<f64> = tf.iter().map(|&x| Kww.eval(x, &p)).collect();
    let res: Vec<f64> = t
        .iter()
        .zip(&g2)
        .zip(&err)
        .map(|((&x, y), e)| (y - Kww.eval(x, &p)) / e)
        .collect();
    let label = format!(
        "KWW fit: τ = {:.2} ± {:.2} s, β = {:.2} ± {:.2}",
        p[2],
        r.std_error("tau").unwrap(),
        p[3],
        r.std_error("kww_exponent").unwrap()
    );
    let plot = XyPlot::new("g2, q-bin 3 (q = 2.87 Å⁻¹)", "delay (s)", "g2")
        .log_axes(true, false)
        .with(Series::points("data", t.clone(), g2.clone()).with_errors(err.clone()))
        .with(Series::line(&label, tf, yf))
        .with_residuals("(g2 − fit)/σ", t.clone(), res);
    let p1 = dir.join("g2_fit.png");
    plot.write_png(&p1).unwrap();
    assert!(is_png(&p1));

    // Two-time map of an aging glass with two age cuts.
    let n = 300;
    let dt = 2.0;
    let u: Vec<f64> = (0..n)
        .map(|i| 2300.0 / 34.0 * (1.0 - (-(i as f64) * dt / 2300.0).exp()))
        .collect();
    let m = Array2::from_shape_fn((n, n), |(i, j)| {
        1.0 + 0.2 * (-2.0 * (u[j] - u[i]).abs().powf(1.6)).exp() + 0.01 * noise.sample(&mut rng)
    });
    let t_end = (n - 1) as f64 * dt;
    let cut = |age: f64, w: f64| Overlay {
        label: format!("age cut {age:.0} s"),
        points: vec![(age - w, age + w), (age + w, age - w)],
    };
    let mut hm = Heatmap::new(
        "Two-time correlation C(t1, t2)",
        m,
        (0.0, t_end),
        (0.0, t_end),
    )
    .labels("t1 (s)", "t2 (s)", "C(t1, t2)");
    hm.overlays = vec![cut(150.0, 100.0), cut(450.0, 100.0)];
    let p2 = dir.join("two_time.png");
    hm.write_png(&p2).unwrap();
    assert!(is_png(&p2));

    // τ vs pressure on a log y axis, two branches.
    let pr = vec![0.1, 1.5, 3.3, 4.9, 6.3, 7.0];
    let tau = vec![230.0, 90.0, 38.0, 45.0, 60.0, 75.0];
    let te: Vec<f64> = tau.iter().map(|t| 0.1 * t).collect();
    let plot = XyPlot::new("τ vs pressure", "pressure (GPa)", "τ (s)")
        .log_axes(false, true)
        .with(Series::points("compression", pr.clone(), tau.clone()).with_errors(te))
        .with(
            Series::line(
                "decompression",
                vec![7.0, 4.0, 0.5],
                vec![300.0, 500.0, 900.0],
            )
            .with_style(SeriesStyle::Dashed),
        );
    let p3 = dir.join("tau_vs_p.png");
    plot.write_png(&p3).unwrap();
    assert!(is_png(&p3));
    // No temp files left behind (checked in a private directory: XPCS_PLOT_DIR may be shared
    // with other tests writing at the same time).
    let private = tempfile::tempdir().unwrap();
    plot.write_png(&private.path().join("again.png")).unwrap();
    let names: Vec<String> = std::fs::read_dir(private.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, vec!["again.png".to_string()]);
    // Not a .png: refused.
    assert!(plot.write_png(&dir.join("x.jpg")).is_err());
}
