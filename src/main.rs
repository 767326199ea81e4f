//! The `xpcs-twin` command line: clap arguments → library pipeline.

mod cli;

use std::process::ExitCode;

fn main() -> ExitCode {
    match cli::run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            // Every failure the program reports is about its input or its environment
            // (bad file, bad value, refused overwrite): exit code 2, as for usage errors.
            ExitCode::from(2)
        }
    }
}
