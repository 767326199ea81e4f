//! `xpcs-twin twin [MODEL] --out DIR`: a whole campaign simulated and analysed, with every
//! recovered number beside its ground truth (see `xpcs_twin::twin`).

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Mutex;
use xpcs_twin::twin::scan::ShardPlan;
use xpcs_twin::twin::{
    run_campaign_from_partials, run_campaign_within, CampaignSetup, Progress, Scale,
};

/// Scale on the command line.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ScaleArg {
    /// The campaign's reduced preset (region of interest): minutes on 2 cores.
    Reduced,
    /// The beamline-sized detector.
    Full,
}

impl From<ScaleArg> for Scale {
    fn from(s: ScaleArg) -> Scale {
        match s {
            ScaleArg::Reduced => Scale::Reduced,
            ScaleArg::Full => Scale::Full,
        }
    }
}

/// The campaign, scale and seed of `twin` and `shard`.
#[derive(Debug, Args)]
pub(crate) struct CampaignChoice {
    /// Campaign file (default: models/pt42-eiger.toml, the Pt campaign).
    #[arg(default_value = "models/pt42-eiger.toml")]
    pub(crate) model: PathBuf,
    /// Scale preset.
    #[arg(long, value_enum, default_value_t = ScaleArg::Reduced)]
    pub(crate) scale: ScaleArg,
    /// Seed (default: the campaign file's).
    #[arg(long)]
    pub(crate) seed: Option<u64>,
    /// Overwrite existing outputs.
    #[arg(long)]
    pub(crate) force: bool,
}

/// Arguments of `twin`.
#[derive(Debug, Args)]
pub struct TwinArgs {
    #[command(flatten)]
    campaign: CampaignChoice,
    /// Output directory (figures/, scans/, report.md, summary.json).
    #[arg(long)]
    out: PathBuf,
    /// Memory budget (GiB): a scan that does not fit whole runs as detector shards, one after
    /// another, with the same results (default: 80 % of the available memory).
    #[arg(long, value_name = "GIB", conflicts_with = "partials")]
    max_memory: Option<f64>,
    /// Simulate nothing: read each scan's sums from the partial files DIR/<scan label>/*.bin
    /// (`xpcs-twin shard ... --out DIR/<scan label>/part_i.bin`, every shard of every scan
    /// once, run anywhere, e.g. by distributed/xpcs_twin_dask.py on a Dask cluster) and write
    /// the same outputs a simulating run writes. Refused, naming the file, when a scan's
    /// shards are missing, overlap, or belong to another campaign, scale or seed.
    #[arg(long, value_name = "DIR")]
    partials: Option<PathBuf>,
}

/// Progress bars of a campaign run: one for the campaign (isobars done) and a spinner with the
/// stage of the isobar in work.
pub(crate) struct Bars {
    overall: ProgressBar,
    current: Mutex<Option<ProgressBar>>,
    multi: MultiProgress,
    /// stderr is not a terminal (a batch job's log, `nohup`, Slurm): bars draw nothing, so
    /// the progress goes out as plain lines (each scan's start and end, its shards every
    /// tenth). Holds the tenths of the current scan's shards reported so far.
    plain: Option<Mutex<usize>>,
}

impl Bars {
    /// Bars for a campaign `name` of `n_scans` isobars.
    pub(crate) fn new(name: &str, n_scans: usize) -> Self {
        let multi = MultiProgress::new();
        let overall = multi.add(ProgressBar::new(n_scans as u64));
        overall.set_style(
            ProgressStyle::with_template(
                "{prefix} {bar:30} {pos}/{len} isobars, elapsed {elapsed}",
            )
            .expect("valid template"),
        );
        overall.set_prefix(name.to_string());
        let plain = (!std::io::stderr().is_terminal()).then(|| Mutex::new(0));
        Bars {
            overall,
            current: Mutex::new(None),
            multi,
            plain,
        }
    }

    /// Clears the bars (the caller prints its own summary line).
    pub(crate) fn clear(&self) {
        self.overall.finish_and_clear();
    }
}

impl Bars {
    /// The current scan's label and a line about it: printed above the bars on a terminal,
    /// with the time of day in a batch log.
    fn say(&self, line: impl Fn(&str) -> String) {
        if let Some(b) = self.current.lock().expect("lock").as_ref() {
            let text = line(&b.prefix());
            match self.plain {
                Some(_) => eprintln!("[{}] {text}", clock()),
                None => b.println(format!("  {text}")),
            }
        }
    }
}

impl Progress for Bars {
    fn scan_started(&self, k: usize, n: usize, label: &str) {
        let b = self.multi.add(ProgressBar::new_spinner());
        b.set_style(
            ProgressStyle::with_template("  {spinner} {prefix:>14} {msg} ({elapsed})")
                .expect("valid template"),
        );
        b.set_prefix(label.to_string());
        b.enable_steady_tick(std::time::Duration::from_millis(200));
        *self.current.lock().expect("lock") = Some(b);
        if let Some(tenths) = &self.plain {
            *tenths.lock().expect("lock") = 0;
            self.say(|l| format!("scan {}/{n} {l}: started", k + 1));
        }
    }
    fn stage(&self, _k: usize, stage: &str) {
        if let Some(b) = self.current.lock().expect("lock").as_ref() {
            b.set_message(stage.to_string());
        }
    }
    fn sharded(&self, _k: usize, plan: ShardPlan, peak_bytes: f64) {
        self.say(|l| {
            format!(
                "{l}: {} shards, {} at a time, estimated peak {:.2} GiB",
                plan.count,
                plan.concurrency,
                peak_bytes / (1u64 << 30) as f64
            )
        });
    }
    fn shards_done(&self, _k: usize, done: usize, count: usize, elapsed_s: f64) {
        let eta_min = (elapsed_s / done.max(1) as f64 * (count - done) as f64 / 60.0).ceil();
        if let Some(tenths) = &self.plain {
            let now = 10 * done / count.max(1);
            let mut t = tenths.lock().expect("lock");
            if now > *t {
                *t = now;
                drop(t);
                self.say(|l| {
                    format!(
                        "{l}: shards {done}/{count} after {elapsed_s:.0} s, ETA {eta_min:.0} min"
                    )
                });
            }
        }
        if let Some(b) = self.current.lock().expect("lock").as_ref() {
            b.set_message(format!("shards {done}/{count}, ETA {eta_min:.0} min"));
        }
    }
    fn scan_done(&self, _k: usize, seconds: f64) {
        if self.plain.is_some() {
            self.say(|l| format!("{l}: done in {seconds:.1} s"));
        }
        if let Some(b) = self.current.lock().expect("lock").take() {
            b.finish_with_message(format!("done in {seconds:.1} s"));
        }
        self.overall.inc(1);
    }
}

/// The time of day (UTC, hh:mm:ss) for the plain-line progress of a batch log.
fn clock() -> String {
    let s = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    format!("{:02}:{:02}:{:02} UTC", s / 3600 % 24, s / 60 % 60, s % 60)
}

/// `--max-memory` (GiB) in bytes, refused unless a positive number.
pub(super) fn budget_bytes(max_memory_gib: Option<f64>) -> Result<Option<f64>> {
    match max_memory_gib {
        Some(g) if !(g.is_finite() && g > 0.0) => {
            anyhow::bail!("--max-memory {g}: out of range (a positive number of GiB)")
        }
        Some(g) => Ok(Some(g * (1u64 << 30) as f64)),
        None => Ok(None),
    }
}

/// Runs `twin`.
pub fn run(a: TwinArgs) -> Result<()> {
    let c = &a.campaign;
    let scale = Scale::from(c.scale);
    let budget = budget_bytes(a.max_memory)?;
    // Deferred scans: one scan's per-pixel maps in memory at a time.
    let setup = CampaignSetup::load_deferred(&c.model, scale, c.seed)
        .with_context(|| format!("loading campaign {}", c.model.display()))?;
    let bars = Bars::new(&setup.config.name, setup.scans.len());
    let run = match &a.partials {
        Some(dir) => run_campaign_from_partials(&setup, Some(&a.out), c.force, dir, &bars)?,
        None => run_campaign_within(&setup, Some(&a.out), c.force, budget, &bars)?,
    };
    bars.overall.finish();
    if !run.removed.is_empty() {
        eprintln!(
            "removed {} file(s) of an earlier run that this campaign no longer writes (e.g. {})",
            run.removed.len(),
            run.removed[0].display()
        );
    }
    eprintln!(
        "{}: {} scans in {:.0} s; {} failed comparisons/checks; report: {}",
        setup.config.name,
        run.scans.len(),
        run.elapsed_s,
        run.failures,
        a.out.join("report.md").display()
    );
    Ok(())
}
