"""Decodes files xpcs-twin wrote in beamline formats with independent readers (numpy, h5py +
hdf5plugin), following each format's published layout, and compares them with the photons the
Rust side meant to write.

Usage: python check_written_formats.py DIR

DIR/manifest.json lists cases {"kind": "rigaku" | "rigaku3m" | "imm" | "eiger", "file": name,
"expected": name of a uint32 NPY (n, 4) of (frame, row, col, count) sorted, "shape": [frames,
rows, cols]} (eiger adds "bits"). Exit 0 when every file decodes to its expected photons;
prints one line per case.

Layouts (tests/fixtures/PROVENANCE.md): Rigaku = little-endian u64 words, count bits 0-11,
pixel index bits 16-36 (row * 1024 + col in a 512 x 1024 module; 2**20 subtracted when every
index carries it), frame bits 40-63; 3M = six files NAME.000-.005, grid position p holds
suffix (5, 0, 4, 1, 3, 2)[p] at top (p // 2) * 582, left (p % 2) * 1076. IMM = per frame a
1024-byte header (compression at 4, rows 108, cols 112, bytes 116, dlen 152) then dlen u16
values (full frame) or dlen int32 indices + dlen u16 values (compression 6). Eiger = master
/entry/data/data_NNNNNN external links to data files, pixel_mask in detectorSpecific, flagged
pixels hold 2**bits - 1.
"""
import json
import os
import sys

import h5py
import hdf5plugin  # noqa: F401  (registers filter 32008 for h5py)
import numpy as np

MOD_H, MOD_W = 512, 1024
ORDER = (5, 0, 4, 1, 3, 2)


def coo_of_dense(stack):
    f, r, c = np.nonzero(stack)
    out = np.stack([f, r, c, stack[f, r, c]], axis=1).astype(np.uint32)
    return out[np.lexsort((out[:, 2], out[:, 1], out[:, 0]))]


def rigaku_module(path):
    a = np.fromfile(path, dtype="<u8")
    index = ((a >> np.uint64(16)) & np.uint64(2**21 - 1)).astype(np.int64)
    frame = (a >> np.uint64(40)).astype(np.int64)
    count = (a & np.uint64(0xFFF)).astype(np.int64)
    if index.size and index.min() >= 2**20:
        index -= 2**20
    assert np.all(np.diff(frame) >= 0), f"{path}: records not sorted by frame"
    return frame, index // MOD_W, index % MOD_W, count


def decode_rigaku(path):
    f, r, c, n = rigaku_module(path)
    return np.stack([f, r, c, n], axis=1)


def decode_rigaku3m(path):
    parts = []
    for p, suffix in enumerate(ORDER):
        f, r, c, n = rigaku_module(f"{path}.{suffix:03d}")
        top, left = (p // 2) * (MOD_H + 70), (p % 2) * (MOD_W + 52)
        parts.append(np.stack([f, r + top, c + left, n], axis=1))
    return np.concatenate(parts)


def decode_imm(path, shape):
    raw = open(path, "rb").read()
    n_frames, rows, cols = shape
    stack = np.zeros(shape, np.uint32)
    pos, t = 0, 0
    while pos < len(raw):
        h = raw[pos:pos + 1024]
        comp, = np.frombuffer(h[4:8], "<i4")
        r, c, nbytes = np.frombuffer(h[108:120], "<i4")
        dlen, = np.frombuffer(h[152:156], "<u4")
        assert h[1012:1024] == b"\xff" * 12 and (r, c, nbytes) == (rows, cols, 2)
        pos += 1024
        if comp == 6:
            idx = np.frombuffer(raw, "<i4", dlen, pos)
            val = np.frombuffer(raw, "<u2", dlen, pos + 4 * dlen)
            stack[t].flat[idx] = val
            pos += 6 * int(dlen)
        else:
            stack[t] = np.frombuffer(raw, "<u2", rows * cols, pos).reshape(rows, cols)
            pos += 2 * rows * cols
        t += 1
    assert t == n_frames, f"{path}: {t} frames, expected {n_frames}"
    return coo_of_dense(stack)


def decode_eiger(path, bits):
    with h5py.File(path, "r") as f:
        links = sorted(k for k in f["/entry/data"] if k.startswith("data_"))
        frames = []
        for k in links:
            ds = f[f"/entry/data/{k}"]
            plist = ds.id.get_create_plist()
            assert plist.get_filter(0)[0] == 32008, f"{k}: not bitshuffle-LZ4"
            assert ds.chunks == (1,) + ds.shape[1:], f"{k}: not one frame per chunk"
            frames.extend(ds[i] for i in range(ds.shape[0]))
        stack = np.stack(frames).astype(np.uint32)
        det = f["/entry/instrument/detector"]
        mask = det["detectorSpecific/pixel_mask"][()]
        assert int(det["bit_depth_image"][()]) == bits
        assert int(det["pixel_mask_applied"][()]) == 1
        flagged = 2**bits - 1
        assert np.all(stack[:, mask != 0] == flagged), "flagged pixels must hold 2^bits - 1"
        stack[:, mask != 0] = 0
    return coo_of_dense(stack)


def main():
    d = sys.argv[1]
    cases = json.load(open(os.path.join(d, "manifest.json")))
    bad = 0
    for case in cases:
        path = os.path.join(d, case["file"])
        kind = case["kind"]
        if kind == "rigaku":
            got = decode_rigaku(path)
        elif kind == "rigaku3m":
            got = decode_rigaku3m(path)
        elif kind == "imm":
            got = decode_imm(path, case["shape"])
        elif kind == "eiger":
            got = decode_eiger(path, case["bits"])
        else:
            raise SystemExit(f"unknown kind {kind}")
        got = got.astype(np.uint32)
        got = got[np.lexsort((got[:, 2], got[:, 1], got[:, 0]))]
        want = np.load(os.path.join(d, case["expected"]))
        ok = got.shape == want.shape and np.array_equal(got, want)
        print(f"{'OK  ' if ok else 'FAIL'} {kind:9s} {case['file']}: {len(got)} photon records"
              + ("" if ok else f", expected {len(want)}"))
        bad += not ok
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
