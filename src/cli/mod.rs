//! Subcommands. Each lives in its own file and owns its clap `Args`.

mod attenuators;
mod bars;
mod correlate;
mod describe;
mod fit;
mod merge;
mod plan;
mod shard;
mod simulate;
mod twin;
mod validate;

use anyhow::Result;
use clap::{Parser, Subcommand};

/// A digital twin of an XPCS experiment: simulate, correlate, fit, plan.
#[derive(Debug, Parser)]
#[command(name = "xpcs-twin", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print the version and build facts.
    Version,
    /// Correlate frames on disk: multi-tau g2 (and two-time maps) → APS results file.
    Correlate(Box<correlate::CorrelateArgs>),
    /// Simulate a scan of a sample preset: stack + ground truth.
    Simulate(Box<simulate::SimulateArgs>),
    /// Simulate and analyse a whole campaign (default: the Pt campaign, reduced scale).
    Twin(Box<twin::TwinArgs>),
    /// One detector shard of one scan: simulate, count, correlate → partial file (sums).
    Shard(Box<shard::ShardArgs>),
    /// Add the partial files of every shard of a scan into its results file.
    Merge(merge::MergeArgs),
    /// Attenuator series of one isobar: τ at each transmission, slope of 1/τ vs dose rate.
    Attenuators(Box<attenuators::AttenuatorsArgs>),
    /// Run validation scenarios; exit non-zero if any recovered quantity misses its tolerance.
    Validate(validate::ValidateArgs),
    /// Fit g2 and two-time maps of a results file; fits go into the file, JSON and PNGs.
    Fit(Box<fit::FitArgs>),
    /// Print what the twin will do for a campaign file: rates, contrast, bins, τ, volume.
    Describe(Box<describe::DescribeArgs>),
    /// Plan a beamtime: frames and frame time for a precision target.
    Plan(Box<plan::PlanArgs>),
}

/// [`xpcs_twin::io::memory::return_freed_memory`] for this machine's thread count.
fn return_freed_memory() {
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    xpcs_twin::io::memory::return_freed_memory(threads);
}

/// Parses the command line and runs the chosen subcommand.
pub fn run() -> Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Version => {
            println!("xpcs-twin {}", env!("CARGO_PKG_VERSION"));
            Ok(())
        }
        Command::Correlate(args) => correlate::run(*args),
        Command::Simulate(args) => simulate::run(*args),
        Command::Twin(args) => {
            // Campaign runs (hours, shards of hundreds of MB freed and allocated on several
            // threads): freed buffers go back to the system, so that resident memory stays
            // near what is in use and the memory budget holds. Short commands keep the
            // allocator's defaults (reused heap memory needs no fresh zeroed pages).
            return_freed_memory();
            twin::run(*args)
        }
        Command::Shard(args) => {
            return_freed_memory();
            shard::run(*args)
        }
        Command::Merge(args) => merge::run(args),
        Command::Validate(args) => {
            return_freed_memory();
            validate::run(args)
        }
        Command::Attenuators(args) => attenuators::run(*args),
        Command::Plan(args) => plan::run(*args),
        Command::Fit(args) => fit::run(*args),
        Command::Describe(args) => describe::run(*args),
    }
}
