//! The `xpcs-twin` command line: clap arguments → library pipeline.

mod cli;

use std::process::ExitCode;

fn main() -> ExitCode {
    // Ctrl-C, SIGTERM, SIGHUP: delete the temp files being written, exit 128 + signal.
    if let Err(e) = xpcs_twin::io::atomic::remove_temp_files_on_signals() {
        eprintln!("warning: {e}");
    }
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
