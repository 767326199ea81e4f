//! `xpcs-twin correlate`: photons on disk → g2 (and two-time maps) in an APS results file.

use anyhow::{Context, Result};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use std::path::{Path, PathBuf};
use xpcs_twin::correlate::{
    two_time_stack, BinStatus, DenseMultiTau, Estimator, EventCorrelator, G2Result, LagSchedule,
    TwoTimeResult,
};
use xpcs_twin::data::{CountDtype, FrameSource, FrameStack, QPartition};
use xpcs_twin::io::assemble::{assemble, RunMeta};
use xpcs_twin::io::atomic::{check_outputs, write_json};
use xpcs_twin::io::results::{write_results, Geometry, Node, Tree};
use xpcs_twin::io::{
    input::{Input, InputOptions},
    maps,
    npy::write_npy,
};
use xpcs_twin::Error;

/// Correlate a stack of photon-counting frames: multi-tau g2 per q-bin (and optionally the
/// two-time maps), written as an APS 8-ID-I results file that XPCS viewers open.
///
/// Memory (peak resident, measured with /usr/bin/time -v on 256 × 256 px, 4 q-bins): the dense
/// multi-tau path streams the frames; it holds about 30 MB plus 130 bytes per pixel per
/// multi-tau level, and the levels grow with the frames (log2(frames / num-bufs) + 1): 79 MB
/// for 250 frames, 95 MB for 1000, 112 MB for 4000 (at 512 × 512 px: ~30 MB more per level).
/// `--twotime` adds the stack as u32 (4 bytes per pixel-frame) and the maps (8 to 16 bytes per
/// cell of the n × n map per q-bin, n = frames / bin-frames): 0.40 GB for 1000 frames (0.49 GB
/// with 16 q-bins), 1.39 GB for 4000 frames (2000 × 2000 maps). `--sparse` holds the photons
/// (12 bytes per nonzero pixel-frame); an event file is read 65 536 pixels at a time (its
/// two-time maps, if asked, are held whole).
#[derive(Debug, Args)]
#[command(
    after_help = "Example:\n  xpcs-twin correlate examples/speckle_small.npy \
    --qmap examples/speckle_small_labels.npy --frame-time 0.1 \
    --out out/example_results.hdf --twotime"
)]
pub struct CorrelateArgs {
    /// Photons: .npy (frames × rows × cols, any unsigned integer type), Eiger/NeXus HDF5
    /// (.h5/.hdf/.hdf5/.nxs with /entry/data/data or a master file, deflate/LZ4/bitshuffle-LZ4),
    /// IMM (.imm), or a sparse photon file that goes straight to the event correlator (implies
    /// --sparse): an xpcs-twin event file (.h5 with /events, e.g. from `simulate`), Rigaku
    /// 64-bit .bin (one module; or NAME.bin.000 for the 3M's six files), ESRF ID10 sparse .h5
    /// (the first numbered file), APS (index, frame, count) triplets (.h5, or a (3, N) .npy).
    /// Files that do not store the frame shape (ESRF sparse, triplets) take the q-map's.
    pub frames: PathBuf,
    /// Dynamic q-bin label map (.npy, .npz or .h5; 0 = excluded, k ≥ 1 = bin k), rows × cols.
    #[arg(long)]
    pub qmap: PathBuf,
    /// Static (finer) label map for scattering_1d and per-sub-bin normalisation (default: the
    /// dynamic map).
    #[arg(long)]
    pub static_qmap: Option<PathBuf>,
    /// Mask (.npy/.npz/.h5, nonzero = valid pixel; default: labels > 0).
    #[arg(long)]
    pub mask: Option<PathBuf>,
    /// Frame period in seconds, 1e-9 to 1e5 (required unless the file stores it, as Eiger
    /// HDF5 and xpcs-twin event files do; Rigaku, IMM, ESRF sparse, triplets and NPY do not).
    #[arg(long, allow_negative_numbers = true)]
    pub frame_time: Option<f64>,
    /// Results file to write (`*_results.hdf` is what the APS viewer lists).
    #[arg(long)]
    pub out: PathBuf,
    /// Also write a JSON summary: per q-bin lag_frames, delay_s, g2, g2_err.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Also export NPY arrays into this folder: g2.npy and g2_err.npy (n_lags × n_bins, f64),
    /// lag_frames.npy (u64), delay_s.npy (f64), and c2_NNNNN.npy (n × n, f64) per two-time bin.
    #[arg(long)]
    pub npy_dir: Option<PathBuf>,
    /// Also compute the two-time maps C(t1, t2) of every q-bin (memory: see above; about
    /// 4 bytes per pixel-frame plus 8-16 bytes per map cell per q-bin).
    #[arg(long)]
    pub twotime: bool,
    /// Raw frames summed into one two-time frame (default: the smallest that keeps the map
    /// at most 2000 × 2000).
    #[arg(long)]
    pub twotime_bin_frames: Option<usize>,
    /// Use the event (sparse) correlator: work ∝ photon pairs; best below ~0.1 photon per
    /// pixel per frame. Same numbers as the dense path, bit for bit.
    #[arg(long)]
    pub sparse: bool,
    /// g2 estimator: symmetric (scikit-beam, boost_corr, Xana), symmetric-static (normalised
    /// per static sub-bin, then averaged, as APS), frame (ratio of two-time diagonal sums).
    #[arg(long, default_value = "symmetric")]
    pub estimator: String,
    /// Multi-tau buffers per level (lags per level).
    #[arg(long, default_value_t = 8)]
    pub num_bufs: usize,
    /// Incident energy (keV), recorded in the results file (metadata only).
    #[arg(long, default_value_t = 21.0)]
    pub energy_kev: f64,
    /// Pixel size (µm), recorded in the results file (metadata only).
    #[arg(long, default_value_t = 75.0)]
    pub pixel_size_um: f64,
    /// Sample–detector distance (m), recorded in the results file (metadata only).
    #[arg(long, default_value_t = 5.0)]
    pub distance_m: f64,
    /// Replace existing output files (inputs are never overwritten).
    #[arg(long)]
    pub force: bool,
}

fn parse_estimator(name: &str) -> Result<Estimator, Error> {
    match name {
        "symmetric" => Ok(Estimator::Symmetric),
        "symmetric-static" => Ok(Estimator::SymmetricStatic),
        "frame" => Ok(Estimator::Frame),
        other => Err(Error::out_of_range(
            "command line",
            "--estimator",
            other,
            "symmetric, symmetric-static or frame",
        )),
    }
}

/// Opens FRAMES as frames (streamed) or events (by pixel block) for a detector of `shape` (the
/// q-map's); also returns the frame time the file records, if any.
fn open_input(path: &Path, shape: (usize, usize)) -> Result<(Input, Option<f64>), Error> {
    let opts = InputOptions {
        detector_shape: Some(shape),
        ..InputOptions::default()
    };
    let input = xpcs_twin::io::input::open_input(path, &opts)?;
    let ft = input.frame_time_s();
    Ok((input, ft))
}

#[derive(Serialize)]
struct BinSummary {
    label: usize,
    q_inv_angstrom: f64,
    n_pixels: u64,
    status: BinStatus,
    lag_frames: Vec<u64>,
    delay_s: Vec<f64>,
    g2: Vec<f64>,
    g2_err: Vec<f64>,
    twotime_key: Option<String>,
}

#[derive(Serialize)]
struct Summary {
    frames: String,
    qmap: String,
    results: String,
    frame_time_s: f64,
    n_frames: usize,
    estimator: &'static str,
    schedule: String,
    correlator: &'static str,
    twotime_bin_frames: Option<usize>,
    bins: Vec<BinSummary>,
}

fn bar(len: u64, what: &str) -> ProgressBar {
    let b = ProgressBar::new(len);
    b.set_style(
        ProgressStyle::with_template(&format!(
            "{what} {{bar:40}} {{pos}}/{{len}} frames, eta {{eta}}"
        ))
        .expect("valid template"),
    );
    b
}

/// Reads every frame into memory (u32), with a progress bar.
fn read_all(src: &mut dyn FrameSource) -> Result<FrameStack, Error> {
    let b = bar(src.n_frames() as u64, "read");
    let (r, c) = src.frame_shape();
    let mut stack = FrameStack::zeros(src.n_frames(), r, c, CountDtype::U32);
    let mut buf = vec![0u32; r * c];
    for t in 0..src.n_frames() {
        if !src.read_next(&mut buf)? {
            return Err(Error::invalid("frames", format!("ended after {t} frames")));
        }
        stack.set_frame(t, &buf)?;
        b.inc(1);
    }
    b.finish_and_clear();
    Ok(stack)
}

/// Runs the subcommand.
pub fn run(a: CorrelateArgs) -> Result<()> {
    let estimator = parse_estimator(&a.estimator)?;
    if a.num_bufs < 2 || a.num_bufs % 2 != 0 {
        return Err(Error::out_of_range(
            "command line",
            "--num-bufs",
            a.num_bufs,
            "an even number ≥ 2",
        )
        .into());
    }
    for (flag, v) in [
        ("--energy-kev", a.energy_kev),
        ("--pixel-size-um", a.pixel_size_um),
        ("--distance-m", a.distance_m),
    ] {
        xpcs_twin::check::check_positive("command line", flag, v)?;
    }
    // The q-map's shape is the detector's: formats without a shape take it, sparse formats
    // with one are checked against it before allocating per-pixel state.
    let qmap_shape = maps::read_label_map(&a.qmap, None)?.shape();
    let (mut input, file_ft) = open_input(&a.frames, qmap_shape)?;
    let frame_time_s = match (a.frame_time, file_ft) {
        (Some(f), _) => f,
        (None, Some(f)) => f,
        (None, None) => {
            return Err(Error::invalid(
                a.frames.display().to_string(),
                "no frame time in the file: give --frame-time (s)",
            )
            .into())
        }
    };
    xpcs_twin::check::check_frame_time("command line", "--frame-time", frame_time_s)?;
    let (shape, n_frames) = (input.frame_shape(), input.n_frames());
    if n_frames < 2 {
        return Err(
            Error::out_of_range(a.frames.display().to_string(), "frames", n_frames, "≥ 2").into(),
        );
    }
    let part: QPartition = maps::read_partition(
        shape,
        (&a.qmap, None),
        a.static_qmap.as_deref().map(|p| (p, None)),
        a.mask.as_deref().map(|p| (p, None)),
    )?;
    // Refuse bad outputs before any work: never over an input, never over a file without --force.
    let mut inputs: Vec<&Path> = vec![&a.frames, &a.qmap];
    inputs.extend(a.static_qmap.as_deref());
    inputs.extend(a.mask.as_deref());
    // Every output at once: none an input, none a device, no two the same file.
    let mut outputs: Vec<PathBuf> = vec![a.out.clone()];
    outputs.extend(a.json.clone());
    if let Some(dir) = &a.npy_dir {
        outputs.extend(npy_names(&part, a.twotime).iter().map(|n| dir.join(n)));
    }
    let outputs: Vec<&Path> = outputs.iter().map(PathBuf::as_path).collect();
    check_outputs(&outputs, &inputs, a.force)?;
    let sched = LagSchedule::multi_tau(n_frames, a.num_bufs)?;
    let bin_frames = a
        .twotime_bin_frames
        .unwrap_or_else(|| n_frames.div_ceil(2000).max(1));
    if a.twotime && (bin_frames == 0 || bin_frames > n_frames / 2) {
        return Err(Error::out_of_range(
            "command line",
            "--twotime-bin-frames",
            bin_frames,
            format!("1 to {} (half the frames)", n_frames / 2),
        )
        .into());
    }

    let sparse = a.sparse || matches!(input, Input::Events(_));
    let (g2, intensity, two_time): (G2Result, _, Option<TwoTimeResult>) = match &mut input {
        Input::Events(src) => {
            // Pixel blocks straight from the file: memory ∝ one block, not the whole list.
            let mut ev = EventCorrelator::new(&part, &sched, n_frames);
            if a.twotime {
                ev = ev.with_two_time(&part, &[], bin_frames)?;
            }
            src.correlate_into(&mut ev)?;
            (ev.finish(estimator)?, ev.intensity(), ev.two_time())
        }
        Input::Frames { source: src, .. } if a.sparse => {
            let events = src.read_events(frame_time_s)?;
            let mut ev = EventCorrelator::new(&part, &sched, n_frames);
            if a.twotime {
                ev = ev.with_two_time(&part, &[], bin_frames)?;
            }
            ev.push_events(&events)?;
            (ev.finish(estimator)?, ev.intensity(), ev.two_time())
        }
        Input::Frames { source: src, .. } if a.twotime => {
            let stack = read_all(src.as_mut())?;
            let mut mt = DenseMultiTau::new(&part, &sched);
            mt.push_stack(&stack, 0..n_frames)?;
            let tt = two_time_stack(&stack, &part, &[], bin_frames)?;
            (mt.finish(estimator)?, mt.intensity(), Some(tt))
        }
        Input::Frames { source: src, .. } => {
            let b = bar(n_frames as u64, "correlate");
            let mut mt = DenseMultiTau::new(&part, &sched);
            let mut counting = CountingSource {
                inner: src.as_mut(),
                bar: &b,
            };
            mt.push_source(&mut counting, 64)?;
            b.finish_and_clear();
            (mt.finish(estimator)?, mt.intensity(), None)
        }
    };
    let g2 = g2.without_empty_lags();
    let mut extra = Tree::new();
    extra.insert(
        "frames_file".into(),
        Node::Text(a.frames.display().to_string()),
    );
    extra.insert("qmap_file".into(), Node::Text(a.qmap.display().to_string()));
    extra.insert(
        "correlator".into(),
        Node::Text(if sparse { "event" } else { "dense" }.into()),
    );
    extra.insert(
        "geometry_note".into(),
        Node::Text("energy, pixel size and distance are the command-line values (metadata)".into()),
    );
    let meta = RunMeta {
        start_time: "unknown".into(),
        frame_time_s,
        count_time_s: frame_time_s,
        energy_kev: a.energy_kev,
        geometry: Geometry {
            beam_center_x_px: shape.1 as f64 / 2.0,
            beam_center_y_px: shape.0 as f64 / 2.0,
            pixel_size_m: a.pixel_size_um * 1e-6,
            detector_distance_m: a.distance_m,
        },
        seed: 0,
        extra,
    };
    let res = assemble(meta, &part, Some(&g2), &intensity, two_time.as_ref());
    let written = write_results(&a.out, &res, a.force)
        .with_context(|| format!("writing {}", a.out.display()))?;

    let delay_s = g2.delay_s(frame_time_s);
    let bins: Vec<BinSummary> = (0..part.n_bins())
        .map(|b| BinSummary {
            label: b + 1,
            q_inv_angstrom: part.dynamic_axes()[b].q_inv_angstrom,
            n_pixels: g2.bin_pixels[b],
            status: g2.bin_status[b],
            lag_frames: g2.lag_frames.clone(),
            delay_s: delay_s.clone(),
            g2: g2.g2.column(b).to_vec(),
            g2_err: g2.g2_err.column(b).to_vec(),
            twotime_key: two_time.as_ref().and_then(|tt| {
                tt.bins
                    .iter()
                    .position(|&k| k == b + 1)
                    .map(|_| format!("/xpcs/twotime/correlation_map/c2_{:05}", b + 1))
            }),
        })
        .collect();
    if let Some(dir) = &a.npy_dir {
        export_npy(dir, &g2, frame_time_s, two_time.as_ref(), &inputs, a.force)?;
    }
    print_table(&g2, frame_time_s);
    if let Some(j) = &a.json {
        let summary = Summary {
            frames: a.frames.display().to_string(),
            qmap: a.qmap.display().to_string(),
            results: written.display().to_string(),
            frame_time_s,
            n_frames,
            estimator: estimator.name(),
            schedule: g2.schedule.clone(),
            correlator: if sparse { "event" } else { "dense" },
            twotime_bin_frames: a.twotime.then_some(bin_frames),
            bins,
        };
        write_json(j, &summary, &inputs, a.force)?;
    }
    eprintln!("wrote {}", written.display());
    Ok(())
}

/// The file names `--npy-dir` receives (c2 maps: one per non-empty bin, as two-time
/// processes them).
fn npy_names(part: &QPartition, twotime: bool) -> Vec<String> {
    let mut v: Vec<String> = ["g2.npy", "g2_err.npy", "lag_frames.npy", "delay_s.npy"]
        .map(String::from)
        .to_vec();
    if twotime {
        let sizes = part.dynamic().bin_sizes();
        v.extend(
            (1..=part.n_bins())
                .filter(|&b| sizes.get(b - 1).is_some_and(|&n| n > 0))
                .map(|b| format!("c2_{b:05}.npy")),
        );
    }
    v
}

/// Writes the NPY exports (each file atomically).
fn export_npy(
    dir: &Path,
    g2: &G2Result,
    frame_time_s: f64,
    two_time: Option<&TwoTimeResult>,
    inputs: &[&Path],
    force: bool,
) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let shape = [g2.g2.nrows(), g2.g2.ncols()];
    let flat = |a: &ndarray::Array2<f64>| a.iter().copied().collect::<Vec<f64>>();
    write_npy(&dir.join("g2.npy"), &shape, &flat(&g2.g2), inputs, force)?;
    write_npy(
        &dir.join("g2_err.npy"),
        &shape,
        &flat(&g2.g2_err),
        inputs,
        force,
    )?;
    let n = g2.lag_frames.len();
    write_npy(
        &dir.join("lag_frames.npy"),
        &[n],
        &g2.lag_frames,
        inputs,
        force,
    )?;
    write_npy(
        &dir.join("delay_s.npy"),
        &[n],
        &g2.delay_s(frame_time_s),
        inputs,
        force,
    )?;
    if let Some(tt) = two_time {
        for (i, &b) in tt.bins.iter().enumerate() {
            let c = tt.c2(i);
            let path = dir.join(format!("c2_{b:05}.npy"));
            write_npy(&path, &[c.nrows(), c.ncols()], &flat(&c), inputs, force)?;
        }
    }
    Ok(())
}

/// A compact table: g2 - 1 at a few lags per bin, so a user sees the decay at a glance.
fn print_table(g2: &G2Result, frame_time_s: f64) {
    let n = g2.lag_frames.len();
    let picks: Vec<usize> = [0usize, 1, n / 4, n / 2, 3 * n / 4, n - 1]
        .into_iter()
        .filter(|&i| i < n)
        .fold(Vec::new(), |mut v, i| {
            if !v.contains(&i) {
                v.push(i);
            }
            v
        });
    print!("{:>4} {:>8} ", "bin", "pixels");
    for &i in &picks {
        print!(
            "{:>11}",
            format!("{} s", fmt_delay(g2.lag_frames[i] as f64 * frame_time_s))
        );
    }
    println!("   (g2 - 1 at delay)");
    for b in 0..g2.g2.ncols() {
        print!("{:>4} {:>8} ", b + 1, g2.bin_pixels[b]);
        for &i in &picks {
            let v = g2.g2[[i, b]] - 1.0;
            print!(
                "{:>11}",
                if v.is_finite() {
                    format!("{v:.4}")
                } else {
                    "—".into()
                }
            );
        }
        if g2.bin_status[b] != BinStatus::Ok {
            print!("   {:?}", g2.bin_status[b]);
        }
        println!();
    }
}

/// A frame source that advances a progress bar.
struct CountingSource<'a> {
    inner: &'a mut dyn FrameSource,
    bar: &'a ProgressBar,
}

impl FrameSource for CountingSource<'_> {
    fn frame_shape(&self) -> (usize, usize) {
        self.inner.frame_shape()
    }
    fn n_frames(&self) -> usize {
        self.inner.n_frames()
    }
    fn read_next(&mut self, out: &mut [u32]) -> xpcs_twin::Result<bool> {
        let more = self.inner.read_next(out)?;
        if more {
            self.bar.inc(1);
        }
        Ok(more)
    }
}

/// Three significant digits without trailing noise: 0.1, 1.6, 25.6, 409.6 → "0.1", "1.6", ...
fn fmt_delay(s: f64) -> String {
    if s == 0.0 {
        return "0".into();
    }
    let digits = (2 - s.abs().log10().floor() as i32).max(0) as usize;
    let t = format!("{s:.digits$}");
    if t.contains('.') {
        t.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        t
    }
}
