//! The Dask driver (distributed/xpcs_twin_dask.py) on a real LocalCluster: runs the pytest
//! suite tests/dask with the project's venv (`scripts/pyenv` creates it, with dask and
//! distributed, on first use) against the binary cargo built. The suite starts 2 worker
//! processes on 127.0.0.1, runs a two-scan campaign as 3 shards per scan, kills a worker
//! mid-shard, and compares every output with a single-machine `twin` run bit for bit.

mod common;

use common::{root, venv_python};
use std::process::Command;

#[test]
fn dask_local_cluster_runs_the_campaign_bit_identically() {
    let py = venv_python().unwrap_or_else(|why| panic!("no Python environment: {why}"));
    let o = Command::new(py)
        .args(["-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/dask"])
        .current_dir(root())
        .env("XPCS_TWIN_BIN", env!("CARGO_BIN_EXE_xpcs-twin"))
        .output()
        .expect("run pytest");
    let out = String::from_utf8_lossy(&o.stdout);
    let err = String::from_utf8_lossy(&o.stderr);
    println!("{out}");
    eprintln!("{err}");
    // pytest's exit code 5 (no test collected) is a failure too.
    assert!(
        o.status.success(),
        "pytest tests/dask failed ({})",
        o.status
    );
    assert!(out.contains(" passed") && !out.contains("skipped"), "{out}");
}
