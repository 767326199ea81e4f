"""Reverse filter check: files written by xpcs-twin's in-process LZ4 (32004) and
bitshuffle+LZ4 (32008) encoders must decode with the reference plugins (hdf5plugin).

Run:
    XPCS_TWIN_FILTER_OUT=/tmp/xpcs_twin_filters \
        cargo test --lib write_files_for_reference_plugins -- --ignored
    python3 validation/viewer/check_filters.py /tmp/xpcs_twin_filters
Needs numpy, h5py, hdf5plugin (pip install h5py hdf5plugin).
"""
import os
import sys

import h5py
import hdf5plugin  # noqa: F401  (registers the reference plugins)
import numpy as np

d = sys.argv[1] if len(sys.argv) > 1 else "/tmp/xpcs_twin_filters"
want = np.load(os.path.join(d, "ours_expected.npy"))
for name, fid in [("ours_bslz4.h5", "32008"), ("ours_lz4.h5", "32004")]:
    with h5py.File(os.path.join(d, name), "r") as f:
        ds = f["entry/data/data"]
        assert fid in ds._filters, (name, ds._filters)
        got = ds[()]
        assert got.dtype == want.dtype and got.shape == want.shape, (name, got.dtype, got.shape)
        assert np.array_equal(got, want), name
    print(f"check_filters: {name} (filter {fid}) decodes with hdf5plugin: OK")
