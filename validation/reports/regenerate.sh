#!/bin/sh
# Regenerates the committed campaign reports (markdown + PNG + summary JSON) with the seeds
# fixed in the campaign files. Run from the repository root:
#   sh validation/reports/regenerate.sh
# Each report.md records the xpcs-twin version, the campaign file, the scale and the seed.
set -e
cargo build --release
for c in pt42-eiger pt42-eiger-domains ce68-maxipix; do
  target/release/xpcs-twin twin "models/$c.toml" --out "validation/reports/$c" --force
  rm -rf "validation/reports/$c/scans"   # per-scan HDF5/JSON: large, regenerated on demand
done
