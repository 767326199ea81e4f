"""Every way of handing frames to the correlator gives the same g2, bit for bit: an array, the
same stack on disk memory-mapped, an iterator of frames, other dtypes and strides, files and
events."""

import numpy as np
import pytest

import xpcs_twin


def g2_of(frames, labels, **kw):
    return xpcs_twin.correlate.multitau(frames, labels, frame_time=0.1, **kw).g2


def same(a, b):
    return a.shape == b.shape and np.array_equal(a, b, equal_nan=True)


@pytest.fixture(scope="module")
def u16_stack(example):
    frames, labels, _, _ = example
    return frames.astype(np.uint16), labels


def test_memmap_and_array_agree(u16_stack, tmp_path):
    frames, labels = u16_stack
    ref = g2_of(frames, labels)
    np.save(tmp_path / "stack.npy", frames)
    mm = np.load(tmp_path / "stack.npy", mmap_mode="r")
    assert isinstance(mm, np.memmap) and not mm.flags.writeable
    assert same(g2_of(mm, labels), ref)
    raw = np.memmap(tmp_path / "raw.u16", dtype=np.uint16, mode="w+", shape=frames.shape)
    raw[:] = frames
    raw.flush()
    ro = np.memmap(tmp_path / "raw.u16", dtype=np.uint16, mode="r", shape=frames.shape)
    assert same(g2_of(ro, labels), ref)
    # The file path itself, streamed as the command line streams it.
    assert same(g2_of(tmp_path / "stack.npy", labels), ref)
    np.save(tmp_path / "labels.npy", labels)
    assert same(g2_of(str(tmp_path / "stack.npy"), str(tmp_path / "labels.npy")), ref)


def test_iterator_streams_the_same_g2(u16_stack):
    frames, labels = u16_stack
    ref = g2_of(frames, labels)
    it = (f for f in frames)
    assert same(g2_of(it, labels, n_frames=len(frames)), ref)
    # A list of frames (len() known, but still a sequence of 2-D arrays).
    assert same(g2_of(iter(list(frames)), labels, n_frames=len(frames)), ref)


def test_dtypes_and_strides_give_the_same_g2(u16_stack):
    frames, labels = u16_stack
    ref = g2_of(frames, labels)
    for dt in (np.uint8, np.uint32):
        assert same(g2_of(frames.astype(dt), labels), ref), dt
    f_order = np.asfortranarray(frames)
    assert not f_order.flags.c_contiguous
    assert same(g2_of(f_order, labels), ref)
    padded = np.zeros((frames.shape[0], frames.shape[1], 2 * frames.shape[2]), np.uint16)
    padded[:, :, ::2] = frames
    assert same(g2_of(padded[:, :, ::2], labels), ref)
    # Labels of any integer type, masks as booleans.
    assert same(g2_of(frames, labels.astype(np.int16)), ref)
    assert same(g2_of(frames, labels, mask=labels > 0), ref)


def test_events_in_memory_and_on_disk(root, cli, tmp_path):
    model = root / "models/samples/pt42.toml"
    s = xpcs_twin.simulate(model, frames=50, rows=16, cols=16, seed=3, output="events")
    ev = s["events"]
    assert ev.shape == (16, 16) and ev.n_frames == 50
    dense = ev.to_dense()
    assert int(dense.sum()) == ev.total_counts
    by_events = xpcs_twin.correlate.multitau(ev, s["labels"]).g2  # frame time from the events
    assert same(by_events, xpcs_twin.correlate.multitau(dense, s["labels"], s["frame_time_s"]).g2)
    # The command line's event file reads back as the same events.
    rc, _, err = cli("simulate", "--model", model, "--frames", 50, "--rows", 16, "--cols", 16,
                     "--seed", 3, "--out", tmp_path / "ev.h5")
    assert rc == 0, err
    r = xpcs_twin.io.read(tmp_path / "ev.h5")
    assert r["kind"] == "events"
    assert same(r["events"].offsets, ev.offsets) and same(r["events"].counts, ev.counts)
    assert same(xpcs_twin.correlate.multitau(tmp_path / "ev.h5", s["labels"]).g2, by_events)


def test_io_reads_frames_and_labels(example):
    frames, labels, fp, lp = example
    f = xpcs_twin.io.read(fp)
    assert f["kind"] == "frames" and f["frame_time_s"] is None
    assert f["frames"].dtype == np.uint8 and same(f["frames"], frames)
    lab = xpcs_twin.io.read(lp)
    assert lab["kind"] == "labels" and same(lab["labels"], labels.astype(np.uint32))


def test_eiger_hdf5_reads_as_the_cli_reads_it(example, cli, tmp_path):
    """An Eiger/NeXus file (h5py, deflate chunks) with its frame time: read, correlated by
    path (frame time from the file) and by the CLI give the same numbers."""
    h5py = pytest.importorskip("h5py")
    frames, labels, _, lp = example
    stack = frames[:120].astype(np.uint16)
    path = tmp_path / "scan_master.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("/entry/data/data", data=stack, chunks=(1, 64, 64),
                         compression="gzip")
        f["/entry/instrument/detector/frame_time"] = 0.05
    r = xpcs_twin.io.read(path)
    assert r["kind"] == "frames" and r["frame_time_s"] == 0.05
    assert same(r["frames"], stack.astype(np.uint8))  # counts ≤ 255: the smallest type
    c = xpcs_twin.correlate.multitau(path, labels)
    assert c.frame_time_s == 0.05
    assert same(c.g2, xpcs_twin.correlate.multitau(stack, labels, 0.05).g2)
    rc, _, err = cli("correlate", path, "--qmap", lp, "--out", tmp_path / "r.hdf",
                     "--npy-dir", tmp_path / "npy")
    assert rc == 0, err
    assert same(c.g2, np.load(tmp_path / "npy/g2.npy"))
