//! `xpcs-twin describe MODEL.toml [--pressure P]`: what the twin will do for each isobar of a
//! campaign file — count rate per pixel, contrast, speckle size in pixels, q range per bin,
//! τ per bin, expected data volume.
//!
//! Thin glue: the campaign is loaded by `twin::setup::CampaignSetup` (which validates the
//! sample, presets and protocol), the instrument numbers come from `instrument::describe` on
//! the full detector, τ per bin from the sample's pressure response: τ(q) = τ(q1) / (q/q1)^α at
//! the bin's q centre, at the start and at the end of the scan (they differ when it ages).

use anyhow::Result;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use std::fmt::Write as _;
use std::path::PathBuf;
use xpcs_twin::config::campaign::BandSpacing;
use xpcs_twin::instrument::describe::describe;
use xpcs_twin::instrument::geometry::{PartitionSpec, QBands};
use xpcs_twin::twin::setup::{CampaignSetup, Scale};

/// Arguments of `describe`.
#[derive(Debug, Args)]
pub struct DescribeArgs {
    /// Campaign file (models/*.toml).
    model: PathBuf,
    /// Describe only the isobar(s) at this pressure (GPa).
    #[arg(long)]
    pressure: Option<f64>,
}

/// Runs `describe`.
pub fn run(a: DescribeArgs) -> Result<()> {
    let origin = a.model.display().to_string();
    // The pressure is checked before any scan is set up (a bad one costs nothing).
    // Progress on stderr (hidden when it is not a terminal): the set-up and the per-isobar
    // instrument numbers take seconds each on a full detector.
    let spin = ProgressBar::new_spinner();
    spin.set_message("setting up the campaign (detector maps, scenes)");
    spin.enable_steady_tick(std::time::Duration::from_millis(200));
    let setup =
        CampaignSetup::load_at_pressure(&a.model, Scale::Reduced, None, a.pressure, "--pressure");
    spin.finish_and_clear();
    let setup = setup?;
    let scans: Vec<_> = setup.scans.iter().collect();
    let pc = &setup.config.partition;
    let spec = PartitionSpec {
        bands: match pc.spacing {
            BandSpacing::Uniform => QBands::Uniform(pc.q_bins),
            BandSpacing::EqualPixels => QBands::EqualPixels(pc.q_bins),
        },
        sectors: pc.phi_sectors,
        static_per_dynamic: pc.static_per_dynamic,
    };
    let response = &setup.sample.campaign.response;
    println!(
        "{}: campaign `{}`, sample {}, beam {}, DAC {}, detector {}",
        origin,
        setup.config.name,
        setup.sample_path.display(),
        setup.config.instrument.beam,
        setup.config.instrument.dac,
        setup.config.instrument.detector
    );
    let mut campaign_dose_gy = 0.0;
    let n_scans = scans.len();
    let bar = ProgressBar::new(scans.len() as u64);
    bar.set_style(
        ProgressStyle::with_template("describe {bar:40} {pos}/{len} isobars, eta {eta}")
            .expect("valid template"),
    );
    for s in scans {
        let iso = &s.isobar;
        let mut d = describe(
            &setup.instrument,
            iso.pressure_gpa,
            iso.frame_time_s,
            iso.n_frames,
            &spec,
            setup.config.instrument.mean_rate_hz,
        )?;
        let (t0, t1) = (s.facts.tau_start_s, s.facts.tau_end_s);
        for b in &mut d.bins {
            b.tau_s = Some(t0 / response.rate_factor(b.q_centre, iso.pressure_gpa));
        }
        let mut out = String::from("\n");
        writeln!(
            out,
            "== isobar {} ({:?}, {:.2} GPa): {} frames × {} s, waiting {} s, τ(q1) {:.4} s → {:.4} s{}",
            s.label,
            iso.direction,
            iso.pressure_gpa,
            iso.n_frames,
            iso.frame_time_s,
            iso.waiting_time_s,
            t0,
            t1,
            if iso.aging.is_some() { " (aging)" } else { "" }
        )?;
        campaign_dose_gy += d.scan_dose_gy;
        write!(out, "{d}")?;
        writeln!(
            out,
            "dose per isobar     rate {:.2e} Gy/s × {} s beam on = {:.2e} Gy; accumulated \
             {:.2e} Gy by the end of this scan (the described scans in protocol order)",
            d.dose.gy_per_s,
            iso.n_frames as f64 * iso.frame_time_s,
            d.scan_dose_gy,
            campaign_dose_gy
        )?;
        writeln!(out, "bin   q_centre  τ start (s)  τ end (s)    scan/τ_end")?;
        let scan_s = iso.n_frames as f64 * iso.frame_time_s;
        for b in &d.bins {
            let f = response.rate_factor(b.q_centre, iso.pressure_gpa);
            let (ts, te) = (t0 / f, t1 / f);
            writeln!(
                out,
                "{:<5} {:.4}    {:<12.4} {:<12.4} {:.1}",
                b.label,
                b.q_centre,
                ts,
                te,
                scan_s / te
            )?;
        }
        bar.suspend(|| print!("{out}"));
        bar.inc(1);
    }
    bar.finish_and_clear();
    println!();
    println!(
        "accumulated dose    {campaign_dose_gy:.2e} Gy over the {n_scans} scan(s) described \
         (beam on during the scans only)"
    );
    Ok(())
}
