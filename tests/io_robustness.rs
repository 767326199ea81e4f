//! Bad input and big input for every reader of `xpcs_twin::io`.
//!
//! 1. Mutation fuzzing (proptest): valid files of every format are truncated, bit-flipped,
//!    given wrong dtypes, wrong ranks, absurd shapes and header lengths, corrupted compressed
//!    chunks, negative or NaN frame times, label maps of another shape. Every case must end in
//!    `Ok` or one `Error` whose message is one line — never a panic (proptest reports it), never
//!    a hang (every reader is bounded by the file), never a Rust allocation larger than the file
//!    justifies (a per-thread tracking allocator measures the peak of each read).
//! 2. Streaming in bounded memory: NPY and Eiger stacks far larger than the allowed peak stream
//!    frame by frame; the event writer streams pixel blocks.
//!
//! This binary has its own global allocator (counting per thread), which is why it is separate
//! from the other integration tests. Cases per property: see [`scaled`]
//! (`XPCS_TWIN_FUZZ_SCALE=50 cargo test --release --test io_robustness` for a long session).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

use proptest::prelude::*;
use xpcs_twin::data::{CountDtype, EventList, FrameSource, FrameStack};
use xpcs_twin::io::eiger::{write_frames, Compression, EigerFrames};
use xpcs_twin::io::events::{read_events, EventReader, EventWriter};
use xpcs_twin::io::npy;
use xpcs_twin::io::results::{example_results, read_results, write_results};

// ------------------------------------------------------------ tracking allocator

struct Tracking;

#[global_allocator]
static ALLOC: Tracking = Tracking;

thread_local! {
    static CUR: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
}

unsafe impl GlobalAlloc for Tracking {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let p = System.alloc(l);
        if !p.is_null() {
            bump(l.size() as isize);
        }
        p
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        System.dealloc(p, l);
        bump(-(l.size() as isize));
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        let q = System.realloc(p, l, n);
        if !q.is_null() {
            bump(n as isize - l.size() as isize);
        }
        q
    }
}

fn bump(d: isize) {
    // try_with: thread-local storage may be gone while a thread shuts down.
    let _ = CUR.try_with(|c| {
        let v = c.get() + d;
        c.set(v);
        let _ = PEAK.try_with(|p| {
            if v > p.get() {
                p.set(v)
            }
        });
    });
}

/// Runs `f` and returns its result with the peak of live Rust allocations it made on this
/// thread (bytes above the level at entry).
fn peak_of<R>(f: impl FnOnce() -> R) -> (R, usize) {
    let base = CUR.with(Cell::get);
    PEAK.with(|p| p.set(base));
    let r = f();
    let peak = PEAK.with(Cell::get) - base;
    (r, peak.max(0) as usize)
}

static CASES: AtomicUsize = AtomicUsize::new(0);

/// Cases per proptest: `n` × `$XPCS_TWIN_FUZZ_SCALE` (default 1; CI keeps the default, a long
/// fuzzing session sets e.g. 50).
fn scaled(n: u32) -> u32 {
    let k: u32 = std::env::var("XPCS_TWIN_FUZZ_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    n.saturating_mul(k.max(1))
}

/// One reader call on possibly bad input: a one-line error or Ok, within `budget` bytes.
fn check<T>(what: &str, budget: usize, f: impl FnOnce() -> xpcs_twin::Result<T>) {
    CASES.fetch_add(1, Ordering::Relaxed);
    let (r, peak) = peak_of(f);
    if let Err(e) = &r {
        let m = e.to_string();
        assert!(
            !m.contains('\n') && !m.is_empty(),
            "{what}: error is not one line: {m:?}"
        );
    }
    assert!(
        peak <= budget,
        "{what}: allocated {peak} bytes, budget {budget}"
    );
}

fn report(test: &str, before: usize) {
    eprintln!(
        "{test}: {} reader calls on mutated input (total so far {})",
        CASES.load(Ordering::Relaxed) - before,
        CASES.load(Ordering::Relaxed)
    );
}

// ------------------------------------------------------------ NPY

fn npy_bytes_raw(version: u8, header: &str, data: &[u8]) -> Vec<u8> {
    let mut out = b"\x93NUMPY".to_vec();
    out.push(version);
    out.push(0);
    if version == 1 {
        out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    } else {
        out.extend_from_slice(&(header.len() as u32).to_le_bytes());
    }
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(data);
    out
}

/// Every reader of an NPY path; budget = what the file length justifies.
fn all_npy_readers(p: &Path) {
    let len = std::fs::metadata(p).map(|m| m.len() as usize).unwrap_or(0);
    // Widening to u32/f64 (≤ 8× the data) plus a Fortran reorder copy, plus the header.
    let budget = 20 * len + (2 << 20);
    check("npy::read_stack", budget, || npy::read_stack(p));
    check("npy::read_labels", budget, || npy::read_labels(p));
    check("npy::read_mask", budget, || npy::read_mask(p));
    check("npy::read_f64", budget, || npy::read_f64(p));
    check(
        "npy::NpyFrames",
        budget + npy::FORTRAN_BLOCK_BYTES.min(8 * len),
        || {
            let mut s = npy::NpyFrames::open(p)?;
            let (r, c) = s.frame_shape();
            let mut buf = vec![0u32; r * c];
            while s.read_next(&mut buf)? {}
            Ok(())
        },
    );
}

fn descr_strategy() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        "|u1", "<u2", ">u2", "<u4", ">u4", "<u8", ">u8", "|i1", "<i2", ">i4", "<i8", "<f4", ">f8",
        "|b1", "?", "<f2", "<c8", "|O", "<U4", "<u16", "u2", "", "<<u2", "<u0", "<u3",
    ])
    .prop_map(str::to_string)
}

fn dim_strategy() -> impl Strategy<Value = u64> {
    prop_oneof![
        4 => 0u64..6,
        1 => Just(1u64 << 40),
        1 => Just(1u64 << 62),
        1 => Just(u64::MAX),
        1 => 1000u64..100000,
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: scaled(400), failure_persistence: None, ..ProptestConfig::default() })]

    /// Headers built from arbitrary fields: dtypes valid and invalid, absurd shapes, ranks
    /// 0..6, any data length, versions 1..3 and invalid.
    #[test]
    fn npy_arbitrary_headers(descr in descr_strategy(), fortran in any::<bool>(),
                             shape in prop::collection::vec(dim_strategy(), 0..6),
                             data_len in 0usize..400, version in prop::sample::select(vec![1u8, 2, 3, 0, 9]),
                             extra_key in any::<bool>(), seed in any::<u8>()) {
        let dims: String = shape.iter().map(|d| format!("{d},")).collect();
        let mut h = format!("{{'descr': '{descr}', 'fortran_order': {}, 'shape': ({dims}), }}",
                            if fortran { "True" } else { "False" });
        if extra_key { h = h.replace("}", "'x': 1, }"); }
        h.push('\n');
        let data: Vec<u8> = (0..data_len).map(|i| (i as u8).wrapping_mul(seed) ^ 0x5a).collect();
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("h.npy");
        std::fs::write(&p, npy_bytes_raw(version, &h, &data)).unwrap();
        all_npy_readers(&p);
    }

    /// Valid files, then truncated, bit-flipped, or with bytes spliced in.
    #[test]
    fn npy_byte_mutations(descr in prop::sample::select(vec!["|u1", "<u2", ">i4", "<u8", "<i8", "<f4", "<f8", "|b1"]),
                          fortran in any::<bool>(), t in 1usize..4, r in 1usize..5, c in 1usize..5,
                          vals in prop::collection::vec(-3i64..300, 64),
                          op in 0u8..4, pos in any::<u16>(), xor in 1u8..=255, ins in prop::collection::vec(any::<u8>(), 1..12)) {
        let n = t * r * c;
        let dtype_size: usize = descr[2..].parse().unwrap();
        let mut data = Vec::new();
        for i in 0..n {
            let v = vals[i % vals.len()];
            let le = v.to_le_bytes();
            let mut b = le[..dtype_size].to_vec();
            if descr.starts_with('>') { b.reverse(); }
            data.extend_from_slice(&b);
        }
        let h = format!("{{'descr': '{descr}', 'fortran_order': {}, 'shape': ({t}, {r}, {c}), }}\n",
                        if fortran { "True" } else { "False" });
        let mut bytes = npy_bytes_raw(1, &h, &data);
        let at = pos as usize % bytes.len();
        match op {
            0 => bytes.truncate(at),
            1 => bytes[at] ^= xor,
            2 => { let tail = bytes.split_off(at); bytes.extend_from_slice(&ins); bytes.extend(tail); }
            _ => { bytes[8] = xor; bytes[9] = ins[0]; } // header length field
        }
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("m.npy");
        std::fs::write(&p, &bytes).unwrap();
        all_npy_readers(&p);
        // The same bytes inside an NPZ archive, stored and deflated, whole or mutated.
        let z = dir.path().join("m.npz");
        {
            let f = std::fs::File::create(&z).unwrap();
            let mut w = zip::ZipWriter::new(f);
            let opt = zip::write::SimpleFileOptions::default().compression_method(
                if op % 2 == 0 { zip::CompressionMethod::Stored } else { zip::CompressionMethod::Deflated });
            w.start_file("a.npy", opt).unwrap();
            w.write_all(&bytes).unwrap();
            w.finish().unwrap();
        }
        let mut zb = std::fs::read(&z).unwrap();
        if xor % 3 == 0 { let i = pos as usize % zb.len(); zb[i] ^= xor; }
        std::fs::write(&z, &zb).unwrap();
        let budget = 20 * (1100 * zb.len()).min(1 << 26) + (2 << 20);
        check("npz::read_stack", budget, || npy::npz::read_stack(&z, None));
        check("npz::read_labels", budget, || npy::npz::read_labels(&z, Some("a")));
        check("npz::read_f64", budget, || npy::npz::read_f64(&z, Some("missing")));
    }
}

// ------------------------------------------------------------ HDF5: Eiger

fn sparse_stack(t: usize, r: usize, c: usize, seed: u32) -> FrameStack {
    let v: Vec<u16> = (0..t * r * c)
        .map(|i| {
            let h = (i as u32).wrapping_mul(2654435761).wrapping_add(seed);
            if h % 5 == 0 {
                (h >> 24) as u16 % 9 + 1
            } else {
                0
            }
        })
        .collect();
    FrameStack::from_u16(t, r, c, v).unwrap()
}

fn read_all_frames(p: &Path) -> xpcs_twin::Result<u64> {
    let mut s = EigerFrames::open(p)?;
    let (r, c) = s.frame_shape();
    let mut buf = vec![0u32; r * c];
    let mut sum = 0u64;
    while s.read_next(&mut buf)? {
        sum += buf.iter().map(|&x| u64::from(x)).sum::<u64>();
    }
    let _ = s.pixel_mask()?;
    Ok(sum)
}

/// Byte ranges of the raw chunks of a dataset (file offset, size).
fn chunk_ranges(p: &Path, name: &str) -> Vec<(u64, u64)> {
    let f = hdf5::File::open(p).unwrap();
    let ds = f.dataset(name).unwrap();
    let n = ds.num_chunks().unwrap_or(0);
    (0..n)
        .filter_map(|i| ds.chunk_info(i))
        .map(|c| (c.addr, c.size))
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: scaled(120), failure_persistence: None, ..ProptestConfig::default() })]

    /// Corrupted compressed chunks (all compressions) and truncated files.
    #[test]
    fn eiger_corrupt_chunks_and_truncation(comp in 0usize..4, which in any::<u16>(), at in any::<u16>(),
                                           xor in 1u8..=255, nflip in 1usize..6, trunc in any::<bool>()) {
        let comps = [Compression::BitshuffleLz4, Compression::Lz4, Compression::Deflate(3), Compression::None];
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("e.h5");
        let s = sparse_stack(4, 12, 16, which as u32);
        write_frames(&p, &s, comps[comp], Some(0.01), false).unwrap();
        let mut bytes = std::fs::read(&p).unwrap();
        if trunc {
            bytes.truncate(at as usize % bytes.len());
        } else {
            let ch = chunk_ranges(&p, "/entry/data/data");
            let (addr, size) = ch[which as usize % ch.len()];
            for k in 0..nflip {
                let i = addr as usize + (at as usize + 97 * k) % size as usize;
                bytes[i] ^= xor;
            }
        }
        std::fs::write(&p, &bytes).unwrap();
        // Decoded frames are bounded by the declared shape (4 frames of 12 × 16).
        check("eiger corrupt", 4 << 20, || read_all_frames(&p));
    }
}

#[test]
fn eiger_semantic_defects() {
    let before = CASES.load(Ordering::Relaxed);
    let dir = tempfile::tempdir().unwrap();
    let mk = |name: &str, f: &dyn Fn(&hdf5::File)| {
        let p = dir.path().join(name);
        let file = hdf5::File::create(&p).unwrap();
        f(&file);
        drop(file);
        p
    };
    let data = |f: &hdf5::File| {
        f.create_group("entry")
            .unwrap()
            .create_group("data")
            .unwrap()
    };
    let ft = |f: &hdf5::File, v: ndarray::ArrayD<f64>| {
        f.create_group("entry/instrument")
            .unwrap()
            .create_group("detector")
            .unwrap()
            .new_dataset_builder()
            .with_data(&v)
            .create("frame_time")
            .unwrap();
    };
    let good = ndarray::Array3::<u16>::ones((2, 3, 4));
    let cases: Vec<(&str, std::path::PathBuf, bool)> = vec![
        (
            "rank2",
            mk("rank2.h5", &|f| {
                data(f)
                    .new_dataset_builder()
                    .with_data(&ndarray::Array2::<u16>::ones((3, 4)))
                    .create("data")
                    .unwrap();
            }),
            false,
        ),
        (
            "rank4",
            mk("rank4.h5", &|f| {
                data(f)
                    .new_dataset_builder()
                    .with_data(&ndarray::Array4::<u16>::ones((1, 2, 3, 4)))
                    .create("data")
                    .unwrap();
            }),
            false,
        ),
        (
            "float",
            mk("float.h5", &|f| {
                data(f)
                    .new_dataset_builder()
                    .with_data(&ndarray::Array3::<f32>::ones((2, 3, 4)))
                    .create("data")
                    .unwrap();
            }),
            false,
        ),
        (
            "negative",
            mk("neg.h5", &|f| {
                data(f)
                    .new_dataset_builder()
                    .with_data(&ndarray::Array3::<i32>::from_elem((2, 3, 4), -1))
                    .create("data")
                    .unwrap();
            }),
            false,
        ),
        (
            "too big",
            mk("u64.h5", &|f| {
                data(f)
                    .new_dataset_builder()
                    .with_data(&ndarray::Array3::<u64>::from_elem((2, 3, 4), 1 << 40))
                    .create("data")
                    .unwrap();
            }),
            false,
        ),
        (
            "i64 ok",
            mk("i64.h5", &|f| {
                data(f)
                    .new_dataset_builder()
                    .with_data(&ndarray::Array3::<i64>::from_elem((2, 3, 4), 7))
                    .create("data")
                    .unwrap();
            }),
            true,
        ),
        (
            "absurd shape, no chunks",
            mk("absurd.h5", &|f| {
                data(f)
                    .new_dataset::<u32>()
                    .chunk((1, 64, 64))
                    .shape((1usize << 30, 1 << 12, 1 << 12))
                    .create("data")
                    .unwrap();
            }),
            false,
        ),
        (
            "no data",
            mk("nodata.h5", &|f| {
                data(f);
            }),
            false,
        ),
        (
            "frame time negative",
            mk("ftneg.h5", &|f| {
                data(f)
                    .new_dataset_builder()
                    .with_data(&good)
                    .create("data")
                    .unwrap();
                ft(f, ndarray::arr0(-0.1).into_dyn());
            }),
            false,
        ),
        (
            "frame time NaN",
            mk("ftnan.h5", &|f| {
                data(f)
                    .new_dataset_builder()
                    .with_data(&good)
                    .create("data")
                    .unwrap();
                ft(f, ndarray::arr0(f64::NAN).into_dyn());
            }),
            false,
        ),
        (
            "frame time vector",
            mk("ftvec.h5", &|f| {
                data(f)
                    .new_dataset_builder()
                    .with_data(&good)
                    .create("data")
                    .unwrap();
                ft(f, ndarray::arr1(&[0.1, 0.2]).into_dyn());
            }),
            false,
        ),
        (
            "frame time (1,) ok",
            mk("ft1.h5", &|f| {
                data(f)
                    .new_dataset_builder()
                    .with_data(&good)
                    .create("data")
                    .unwrap();
                ft(f, ndarray::arr1(&[0.1]).into_dyn());
            }),
            true,
        ),
        (
            "parts of different shapes",
            mk("parts.h5", &|f| {
                let g = data(f);
                g.new_dataset_builder()
                    .with_data(&good)
                    .create("data_000001")
                    .unwrap();
                g.new_dataset_builder()
                    .with_data(&ndarray::Array3::<u16>::ones((2, 4, 3)))
                    .create("data_000002")
                    .unwrap();
            }),
            false,
        ),
        (
            "dangling external link",
            mk("dangling.h5", &|f| {
                data(f)
                    .link_external("nowhere.h5", "/entry/data/data", "data_000001")
                    .unwrap();
            }),
            false,
        ),
        (
            "pixel mask of another shape",
            mk("pm.h5", &|f| {
                data(f)
                    .new_dataset_builder()
                    .with_data(&good)
                    .create("data")
                    .unwrap();
                f.create_group("entry/instrument/detector/detectorSpecific")
                    .unwrap()
                    .new_dataset_builder()
                    .with_data(&ndarray::Array2::<u32>::zeros((4, 3)))
                    .create("pixel_mask")
                    .unwrap();
            }),
            false,
        ),
        (
            "not hdf5",
            {
                let p = dir.path().join("text.h5");
                std::fs::write(&p, b"hello").unwrap();
                p
            },
            false,
        ),
        (
            "empty file",
            {
                let p = dir.path().join("empty.h5");
                std::fs::write(&p, b"").unwrap();
                p
            },
            false,
        ),
        ("directory", dir.path().to_path_buf(), false),
    ];
    for (what, p, ok) in &cases {
        check(what, 1 << 20, || read_all_frames(p));
        let r = read_all_frames(p);
        assert_eq!(r.is_ok(), *ok, "{what}: {r:?}");
        if let Err(e) = r {
            eprintln!("  {what:32} → {e}");
        }
    }
    report("eiger_semantic_defects", before);
}

// ------------------------------------------------------------ HDF5: events and results

proptest! {
    #![proptest_config(ProptestConfig { cases: scaled(100), failure_persistence: None, ..ProptestConfig::default() })]

    /// Event files with corrupted chunks or truncated.
    #[test]
    fn events_corrupt_chunks_and_truncation(which in 0usize..3, at in any::<u32>(), xor in 1u8..=255, trunc in any::<bool>()) {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("ev.h5");
        let ev = EventList::from_stack(&sparse_stack(20, 10, 12, at), 0.01).unwrap();
        let mut w = EventWriter::create(&p, 10, 12, 20, 0.01, CountDtype::U8, false).unwrap();
        w.push_events(&ev).unwrap();
        w.finish().unwrap();
        let mut bytes = std::fs::read(&p).unwrap();
        if trunc {
            bytes.truncate(at as usize % bytes.len());
        } else {
            let name = ["/events/offsets", "/events/frames", "/events/counts"][which];
            let ch = chunk_ranges(&p, name);
            let (addr, size) = ch[0];
            bytes[addr as usize + at as usize % size as usize] ^= xor;
        }
        std::fs::write(&p, &bytes).unwrap();
        check("events corrupt", 4 << 20, || read_events(&p));
        check("events block", 4 << 20, || EventReader::open(&p)?.read_block(5, 50));
    }

    /// Results files truncated or with a corrupted deflated map.
    #[test]
    fn results_truncation_and_corruption(at in any::<u32>(), xor in 1u8..=255, trunc in any::<bool>()) {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("r_results.hdf");
        let mut res = example_results();
        // Big enough maps to be chunked + deflated (≥ 4096 elements).
        let t = res.twotime.as_mut().unwrap();
        t.c2 = t.c2.iter().map(|_| ndarray::Array2::from_shape_fn((70, 70), |(i, j)| 1.0 + 0.01 * (i as f32 - j as f32).abs())).collect();
        t.g2 = ndarray::Array2::ones((70, 2));
        write_results(&p, &res, false).unwrap();
        let mut bytes = std::fs::read(&p).unwrap();
        if trunc {
            bytes.truncate(at as usize % bytes.len());
        } else {
            let ch = chunk_ranges(&p, "/xpcs/twotime/correlation_map/c2_00001");
            let (addr, size) = ch[0];
            bytes[addr as usize + at as usize % size as usize] ^= xor;
        }
        let q = dir.path().join("q_results.hdf");
        std::fs::write(&q, &bytes).unwrap();
        check("results corrupt", 8 << 20, || read_results(&q));
    }
}

#[test]
fn events_and_results_semantic_defects() {
    let before = CASES.load(Ordering::Relaxed);
    let dir = tempfile::tempdir().unwrap();
    // Event files with bad metadata or CSR content, written field by field.
    let ev_file =
        |name: &str, shape: &[u64], n_frames: u64, ft: f64, off: &[u64], fr: &[u32], ct: &[u32]| {
            let p = dir.path().join(name);
            let f = hdf5::File::create(&p).unwrap();
            let g = f.create_group("events").unwrap();
            g.new_dataset_builder()
                .with_data(&ndarray::arr1(shape))
                .create("shape")
                .unwrap();
            g.new_dataset_builder()
                .with_data(&ndarray::arr0(n_frames))
                .create("n_frames")
                .unwrap();
            g.new_dataset_builder()
                .with_data(&ndarray::arr0(ft))
                .create("frame_time_s")
                .unwrap();
            g.new_dataset_builder()
                .with_data(&ndarray::arr1(off))
                .create("offsets")
                .unwrap();
            g.new_dataset_builder()
                .with_data(&ndarray::arr1(fr))
                .create("frames")
                .unwrap();
            g.new_dataset_builder()
                .with_data(&ndarray::arr1(ct))
                .create("counts")
                .unwrap();
            p
        };
    let cases = [
        (
            "valid",
            ev_file("ok.h5", &[1, 2], 5, 0.1, &[0, 1, 2], &[0, 4], &[1, 2]),
            true,
        ),
        (
            "frame time NaN",
            ev_file("nan.h5", &[1, 2], 5, f64::NAN, &[0, 1, 2], &[0, 4], &[1, 2]),
            false,
        ),
        (
            "frame time negative",
            ev_file("neg.h5", &[1, 2], 5, -1.0, &[0, 1, 2], &[0, 4], &[1, 2]),
            false,
        ),
        (
            "offsets decrease",
            ev_file("dec.h5", &[1, 2], 5, 0.1, &[0, 2, 1], &[0, 4], &[1, 2]),
            false,
        ),
        (
            "offsets past end",
            ev_file("past.h5", &[1, 2], 5, 0.1, &[0, 1, 9], &[0, 4], &[1, 2]),
            false,
        ),
        (
            "frame out of range",
            ev_file("fr.h5", &[1, 2], 4, 0.1, &[0, 1, 2], &[0, 4], &[1, 2]),
            false,
        ),
        (
            "zero count",
            ev_file("zc.h5", &[1, 2], 5, 0.1, &[0, 1, 2], &[0, 4], &[1, 0]),
            false,
        ),
        (
            "frames not increasing",
            ev_file("ni.h5", &[1, 1], 5, 0.1, &[0, 2], &[3, 1], &[1, 1]),
            false,
        ),
        (
            "shape vs offsets",
            ev_file("sh.h5", &[3, 2], 5, 0.1, &[0, 1, 2], &[0, 4], &[1, 2]),
            false,
        ),
        (
            "absurd shape",
            ev_file(
                "abs.h5",
                &[1 << 31, 1 << 31],
                5,
                0.1,
                &[0, 1, 2],
                &[0, 4],
                &[1, 2],
            ),
            false,
        ),
        (
            "rank-3 shape",
            ev_file("r3.h5", &[1, 2, 1], 5, 0.1, &[0, 1, 2], &[0, 4], &[1, 2]),
            false,
        ),
        (
            "frames vs counts",
            ev_file("fc.h5", &[1, 2], 5, 0.1, &[0, 1, 2], &[0, 4], &[1]),
            false,
        ),
    ];
    for (what, p, ok) in &cases {
        check(what, 1 << 20, || read_events(p));
        let r = read_events(p);
        assert_eq!(r.is_ok(), *ok, "{what}: {r:?}");
        if let Err(e) = r {
            eprintln!("  events {what:24} → {e}");
        }
    }
    // Results files edited after writing: each defect must be named.
    type Edit = fn(&hdf5::File);
    let edits: [(&str, Edit); 6] = [
        ("label map of another shape", |f| {
            f.unlink("/xpcs/qmap/dynamic_roi_map").unwrap();
            f.group("/xpcs/qmap")
                .unwrap()
                .new_dataset_builder()
                .with_data(&ndarray::Array2::<u32>::ones((10, 8)))
                .create("dynamic_roi_map")
                .unwrap();
        }),
        ("delays in seconds", |f| {
            f.unlink("/xpcs/multitau/delay_list").unwrap();
            f.group("/xpcs/multitau")
                .unwrap()
                .new_dataset_builder()
                .with_data(&ndarray::Array1::<f64>::from_elem(16, 0.1))
                .create("delay_list")
                .unwrap();
        }),
        ("transposed g2", |f| {
            f.unlink("/xpcs/multitau/normalized_g2").unwrap();
            f.group("/xpcs/multitau")
                .unwrap()
                .new_dataset_builder()
                .with_data(&ndarray::Array2::<f32>::ones((3, 16)))
                .create("normalized_g2")
                .unwrap();
        }),
        // [1] and [1, 1] are read as scalars (the 8-ID-I metadata's [1, 1]); two values are not.
        ("frame time shape (2,)", |f| {
            f.unlink("/entry/instrument/detector_1/frame_time").unwrap();
            f.group("/entry/instrument/detector_1")
                .unwrap()
                .new_dataset_builder()
                .with_data(&ndarray::arr1(&[0.1f64, 0.2]))
                .create("frame_time")
                .unwrap();
        }),
        ("frame time NaN", |f| {
            f.dataset("/entry/instrument/detector_1/frame_time")
                .unwrap()
                .write_scalar(&f64::NAN)
                .unwrap();
        }),
        ("negative label", |f| {
            f.unlink("/xpcs/qmap/static_roi_map").unwrap();
            f.group("/xpcs/qmap")
                .unwrap()
                .new_dataset_builder()
                .with_data(&ndarray::Array2::<i32>::from_elem((8, 10), -1))
                .create("static_roi_map")
                .unwrap();
        }),
    ];
    for (i, (what, edit)) in edits.iter().enumerate() {
        let p = dir.path().join(format!("e{i}_results.hdf"));
        write_results(&p, &example_results(), false).unwrap();
        {
            let f = hdf5::File::open_rw(&p).unwrap();
            edit(&f);
        }
        check(what, 1 << 20, || read_results(&p));
        let e = read_results(&p).unwrap_err();
        eprintln!("  results {what:28} → {e}");
    }
    report("events_and_results_semantic_defects", before);
}

// ------------------------------------------------------------ streaming in bounded memory

/// A 48 MB NPY stack (u32, 192 frames of 256 × 256) streams with a Rust-side peak below
/// 1 MB (two frames = 512 kB + the header); an Eiger file likewise (one chunk row = one
/// frame).
#[test]
fn stacks_stream_in_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    let (t, r, c) = (192usize, 256usize, 256usize);
    let p = dir.path().join("big.npy");
    {
        let mut f = std::io::BufWriter::new(std::fs::File::create(&p).unwrap());
        let h = format!("{{'descr': '<u4', 'fortran_order': False, 'shape': ({t}, {r}, {c}), }}\n");
        f.write_all(&npy_bytes_raw(1, &h, &[])).unwrap();
        let frame: Vec<u8> = (0..r * c)
            .flat_map(|i| ((i % 3) as u32).to_le_bytes())
            .collect();
        for _ in 0..t {
            f.write_all(&frame).unwrap();
        }
    }
    let (sum, peak) = peak_of(|| {
        let mut s = npy::NpyFrames::open(&p).unwrap();
        let mut buf = vec![0u32; r * c];
        let mut sum = 0u64;
        while s.read_next(&mut buf).unwrap() {
            sum += buf.iter().map(|&x| u64::from(x)).sum::<u64>();
        }
        sum
    });
    let per_frame: u64 = (0..r * c).map(|i| (i % 3) as u64).sum();
    assert_eq!(sum, per_frame * t as u64);
    let file_len = std::fs::metadata(&p).unwrap().len();
    eprintln!("NPY stream: file {file_len} B, Rust peak {peak} B");
    assert!(
        peak < 1 << 20,
        "NPY streaming peak {peak} B for a {file_len} B file"
    );

    let e = dir.path().join("big.h5");
    let stack = FrameStack::from_u32(
        t,
        r,
        c,
        (0..t * r * c).map(|i| (i % (r * c) % 3) as u32).collect(),
    )
    .unwrap();
    write_frames(&e, &stack, Compression::BitshuffleLz4, None, false).unwrap();
    drop(stack);
    let (sum2, peak2) = peak_of(|| read_all_frames(&e).unwrap());
    assert_eq!(sum2, sum);
    eprintln!(
        "Eiger stream: Rust peak {peak2} B (frames total {} B)",
        t * r * c * 4
    );
    // The direct-chunk path holds 2 × threads decoded chunks (one frame each here) and their
    // compressed bytes, plus the caller's u32 frame.
    let frame_bytes = r * c * 4;
    let bound = (2 * rayon::current_num_threads() + 2) * frame_bytes + (256 << 10);
    assert!(
        peak2 < bound,
        "Eiger streaming peak {peak2} B, bound {bound} B"
    );

    // The same 48 MiB stack as a deflated NPZ member, through `correlate`'s input path with a
    // frame selection and the detector-mask scan: one frame (+ the inflater) at a time.
    let z = dir.path().join("big.npz");
    {
        let f = std::io::BufWriter::new(std::fs::File::create(&z).unwrap());
        let mut w = zip::ZipWriter::new(f);
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated)
            .large_file(true);
        w.start_file("frames.npy", opts).unwrap();
        w.write_all(&std::fs::read(&p).unwrap()).unwrap();
        w.finish().unwrap();
    }
    let (sum3, peak3) = peak_of(|| {
        use xpcs_twin::data::{FrameSelection, SelectedFrames};
        let inp = open_input(&z, &InputOptions::default()).unwrap();
        let info = inp.detector().cloned().unwrap();
        let Input::Frames {
            source: mut src, ..
        } = inp
        else {
            panic!("frames")
        };
        let sel = FrameSelection {
            begin: 2,
            end: None,
            stride: 2,
            avg: 2,
        }
        .resolve(t, "t")
        .unwrap();
        let mut s = SelectedFrames::new(src.as_mut(), sel).unwrap();
        let m = scan_detector_mask(&mut s, &info).unwrap();
        assert_eq!(m.n_masked(), 0);
        sel.n_out * 2
    });
    assert_eq!(sum3, 94);
    eprintln!("NPZ stream (deflate, stride 2, avg 2, mask scan): Rust peak {peak3} B");
    assert!(peak3 < 2 << 20, "NPZ streaming peak {peak3} B");
}

/// The event writer keeps a few chunks, whatever the number of events pushed.
#[test]
fn event_writer_streams_in_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("many.h5");
    let (rows, cols, n_frames) = (64usize, 64usize, 4000usize);
    let mut w =
        EventWriter::create(&p, rows, cols, n_frames, 0.001, CountDtype::U8, false).unwrap();
    // One pixel per block, 400 events each: 1.6 M events (8 MB of frames + counts) in total.
    let frames: Vec<u32> = (0..400u32).map(|k| k * 10).collect();
    let counts = vec![1u32; 400];
    let ((), peak) = peak_of(|| {
        for px in 0..rows * cols {
            w.push_block(px, &[0, 400], &frames, &counts).unwrap();
        }
    });
    w.finish().unwrap();
    eprintln!("event writer: 1.6e6 events, Rust peak {peak} B");
    // Buffers hold < 1 chunk of each dataset between flushes, plus one chunk being written.
    assert!(
        peak < 8 * xpcs_twin::io::events::CHUNK_ELEMS * 4,
        "peak {peak} B"
    );
    let rd = EventReader::open(&p).unwrap();
    assert_eq!(rd.n_events(), rows * cols * 400);
    let b = rd.read_block(4095, 1).unwrap();
    assert_eq!(b.frames, frames);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: scaled(150), failure_persistence: None, ..ProptestConfig::default() })]

    /// Byte flips anywhere in files we write, metadata included (superblock, object headers,
    /// chunk indexes). Our writers use the HDF5 1.10 format, whose metadata carries checksums,
    /// and fixed-length strings (no global heap): the C library then detects the corruption.
    /// (Files in the 1.8 format without checksums, as many beamline writers produce, can still
    /// crash libhdf5 itself on corrupted *metadata*; corrupted chunk data is always caught.)
    #[test]
    fn hdf5_anywhere_flips(kind in 0usize..3, at in any::<u32>(), xor in 1u8..=255, n in 1usize..4) {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f_results.hdf");
        match kind {
            0 => { write_frames(&p, &sparse_stack(3, 8, 8, at), Compression::BitshuffleLz4, Some(0.1), false).unwrap(); }
            1 => { let ev = EventList::from_stack(&sparse_stack(5, 4, 4, at), 0.1).unwrap(); xpcs_twin::io::events::write_events(&p, &ev, false).unwrap(); }
            _ => { write_results(&p, &example_results(), false).unwrap(); }
        }
        let mut bytes = std::fs::read(&p).unwrap();
        for k in 0..n {
            let i = (at as usize).wrapping_add(7919 * k) % bytes.len();
            bytes[i] ^= xor;
        }
        let q = dir.path().join("g_results.hdf");
        std::fs::write(&q, &bytes).unwrap();
        // What the file can justify: compressed datasets expand up to 1100× (deflate's
        // limit, with slack), each read value is held twice at most (raw + converted).
        let budget = 2 * 1100 * bytes.len() + (2 << 20);
        match kind {
            0 => check("flip eiger", budget, || read_all_frames(&q)),
            1 => check("flip events", budget, || read_events(&q)),
            _ => check("flip results", budget, || read_results(&q)),
        }
    }
}

// ------------------------------------------------------------ sparse beamline formats and real layouts

use xpcs_twin::io::input::{open_input, scan_detector_mask, Input, InputOptions};
use xpcs_twin::io::records::BATCH_RECORDS;

fn real_fixture(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/real")
        .join(name)
}

/// Everything a photon file holds, through the one dispatch `correlate` takes: frames or event
/// blocks (small blocks, 1000 events, so that every block path runs), then the detector-mask
/// scan of a frame input on a second open, with the file's pixel mask.
fn read_any(
    p: &Path,
    shape: Option<(usize, usize)>,
    dataset: Option<&str>,
) -> xpcs_twin::Result<u64> {
    let opts = InputOptions {
        detector_shape: shape,
        max_block_events: 1000,
        dataset: dataset.map(String::from),
        ..InputOptions::default()
    };
    let mut sum = 0u64;
    let input = open_input(p, &opts)?;
    let det = input.detector().cloned();
    match input {
        Input::Frames { mut source, .. } => {
            let (r, c) = source.frame_shape();
            let mut buf = vec![0u32; r * c];
            while source.read_next(&mut buf)? {
                sum += buf.iter().map(|&x| u64::from(x)).sum::<u64>();
            }
        }
        Input::Events(mut e) => {
            while let Some(b) = e.next_block()? {
                sum += b.counts.iter().map(|&x| u64::from(x)).sum::<u64>();
            }
        }
    }
    if let Some(info) = det {
        if let Input::Frames { mut source, .. } = open_input(p, &opts)? {
            scan_detector_mask(source.as_mut(), &info)?;
        }
    }
    Ok(sum)
}

/// What a sparse file justifies: the transposition's per-pixel state (≤ 24 bytes per pixel of
/// the detector: counts, cursor, offsets), each record held at most 4× (batch, block, merge),
/// a frame buffer of a full-frame format (4 bytes per 2 stored), the read batches.
fn sparse_budget(len: usize, pixels: usize) -> usize {
    24 * pixels + 8 * len + 64 * BATCH_RECORDS + (2 << 20)
}

/// Rigaku words of a small scan (frame-major, pixel ascending), with one 2^20-offset variant.
fn rigaku_words(seed: u32, offset: bool) -> Vec<u8> {
    let mut v = Vec::new();
    for f in 0..12u64 {
        for k in 0..40u64 {
            let h = ((f * 40 + k) as u32)
                .wrapping_mul(2654435761)
                .wrapping_add(seed);
            let idx = u64::from(h >> 13) + if offset { 1 << 20 } else { 0 };
            let count = u64::from(h % 7 + 1);
            v.push((f << 40) | (idx << 16) | count);
        }
    }
    // Pixel order within a frame, as the detector writes.
    v.sort_unstable_by_key(|w| (w >> 40, (w >> 16) & 0x1F_FFFF));
    v.iter().flat_map(|w| w.to_le_bytes()).collect()
}

fn mutate(bytes: &mut Vec<u8>, op: u8, at: u32, xor: u8, ins: &[u8]) {
    if bytes.is_empty() {
        bytes.extend_from_slice(ins);
        return;
    }
    let i = at as usize % bytes.len();
    match op {
        0 => bytes.truncate(i),
        1 => bytes[i] ^= xor,
        2 => {
            let tail = bytes.split_off(i);
            bytes.extend_from_slice(ins);
            bytes.extend(tail);
        }
        _ => {
            // Several flips spread over the file.
            for k in 0..4 {
                let j = (i + 977 * k) % bytes.len();
                bytes[j] ^= xor.rotate_left(k as u32);
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: scaled(150), failure_persistence: None, ..ProptestConfig::default() })]

    /// Rigaku `.bin` (one module, and a module of a 3M set): truncated, flipped (frames past
    /// the last, indices in the hole between 2^19 and 2^20, files mixing the 2^20 offset,
    /// unsorted records), spliced.
    #[test]
    fn rigaku_mutations(seed in any::<u32>(), op in 0u8..4, at in any::<u32>(), xor in 1u8..=255,
                        ins in prop::collection::vec(any::<u8>(), 1..20), offset in any::<bool>(),
                        three_m in prop::bool::weighted(0.15)) {
        let dir = tempfile::tempdir().unwrap();
        let mut bytes = rigaku_words(seed, offset);
        mutate(&mut bytes, op, at, xor, &ins);
        if three_m {
            for s in 0..6 {
                let b = if s == 3 { bytes.clone() } else { rigaku_words(seed ^ s, s % 2 == 0) };
                std::fs::write(dir.path().join(format!("m.bin.{s:03}")), b).unwrap();
            }
            let p = dir.path().join("m.bin.000");
            check("rigaku 3M", sparse_budget(7 * bytes.len(), 1676 * 2100), || read_any(&p, None, None));
        } else {
            let p = dir.path().join("r.bin");
            std::fs::write(&p, &bytes).unwrap();
            check("rigaku", sparse_budget(bytes.len(), 512 * 1024), || read_any(&p, None, None));
            check("rigaku + shape", sparse_budget(bytes.len(), 512 * 1024), || read_any(&p, Some((512, 1024)), None));
        }
    }
}

/// An IMM file of `t` frames of 12 × 17 pixels, sparse or full frames.
fn imm_file(p: &Path, seed: u32, sparse: bool) {
    let ev = EventList::from_stack(&sparse_stack(6, 12, 17, seed), 0.01).unwrap();
    xpcs_twin::io::imm::write_imm(p, &ev, sparse, &[], false).unwrap();
}

proptest! {
    #![proptest_config(ProptestConfig { cases: scaled(200), failure_persistence: None, ..ProptestConfig::default() })]

    /// IMM, sparse and full frames: truncated, flipped, spliced, and header fields set to
    /// absurd values (rows, cols, bytes, dlen, compression). With the detector's shape (as
    /// `correlate` gives it from the q-map) a mutated shape is refused before any per-pixel
    /// allocation; the header walk alone never allocates for the declared sizes.
    #[test]
    fn imm_mutations(seed in any::<u32>(), sparse in any::<bool>(), op in 0u8..5, at in any::<u32>(),
                     xor in 1u8..=255, ins in prop::collection::vec(any::<u8>(), 1..20),
                     field in prop::sample::select(vec![4usize, 108, 112, 116, 152, 1024 + 152, 2048]),
                     value in prop_oneof![Just(u32::MAX), Just(i32::MAX as u32), Just(0u32), Just(6u32), Just(1u32 << 20), 0u32..300]) {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.imm");
        imm_file(&p, seed, sparse);
        let mut bytes = std::fs::read(&p).unwrap();
        if op == 4 {
            let f = field % bytes.len().saturating_sub(4).max(1);
            bytes[f..f + 4].copy_from_slice(&value.to_le_bytes());
        } else {
            mutate(&mut bytes, op, at, xor, &ins);
        }
        std::fs::write(&p, &bytes).unwrap();
        let budget = sparse_budget(bytes.len(), 12 * 17);
        check("imm + shape", budget, || read_any(&p, Some((12, 17)), None));
        check("imm header walk", 1 << 20, || xpcs_twin::io::imm::ImmFile::open(&p).map(|_| ()));
    }
}

/// An ESRF sparse series of two files (frame_ptr / index / intensity; the second file's
/// index and intensity chunked with bitshuffle + LZ4), HDF5 1.10 format (checksummed
/// metadata, as every file we write for fuzzing).
fn esrf_files(dir: &Path, seed: u32) -> Vec<std::path::PathBuf> {
    xpcs_twin::io::h5filters::register().unwrap();
    let st = sparse_stack(7, 9, 11, seed);
    let mut out = vec![];
    for (k, frames) in [(0usize, 0..4usize), (1, 4..7)] {
        let p = dir.join(format!("s_sparse_frame_0_{k:05}.h5"));
        let f = hdf5::File::with_options()
            .with_fapl(|a| a.libver_v110())
            .create(&p)
            .unwrap();
        let g = f.create_group("entry_0000/measurement/data").unwrap();
        let (mut ptr, mut ix, mut it) = (vec![0u32], vec![], vec![]);
        for t in frames {
            for q in 0..99 {
                let c = st.get(t, q);
                if c > 0 {
                    ix.push(q as i32);
                    it.push(c as u16);
                }
            }
            ptr.push(ix.len() as u32);
        }
        g.new_dataset_builder()
            .with_data(&ndarray::arr1(&ptr))
            .create("frame_ptr")
            .unwrap();
        let filt = |es: u32| {
            if k == 1 {
                vec![hdf5::filters::Filter::user(32008, &[0, 4, es, 0, 2])]
            } else {
                vec![]
            }
        };
        let n = ix.len().max(1);
        g.new_dataset_builder()
            .chunk(n)
            .set_filters(&filt(4))
            .with_data(&ndarray::arr1(&ix))
            .create("index")
            .unwrap();
        g.new_dataset_builder()
            .chunk(n)
            .set_filters(&filt(2))
            .with_data(&ndarray::arr1(&it))
            .create("intensity")
            .unwrap();
        out.push(p);
    }
    out
}

/// Triplets as HDF5 (1.10 format) and as a (3, N) NPY.
fn triplet_files(dir: &Path, seed: u32) -> (std::path::PathBuf, std::path::PathBuf) {
    let st = sparse_stack(5, 6, 7, seed);
    let (mut i, mut f, mut c) = (vec![], vec![], vec![]);
    for t in 0..5 {
        for q in 0..42 {
            if st.get(t, q) > 0 {
                i.push(q as u32);
                f.push(t as u32);
                c.push(st.get(t, q));
            }
        }
    }
    let h = dir.join("t.h5");
    let file = hdf5::File::with_options()
        .with_fapl(|a| a.libver_v110())
        .create(&h)
        .unwrap();
    let g = file.create_group("sparse").unwrap();
    for (n, v) in [("index", &i), ("frame", &f), ("count", &c)] {
        g.new_dataset_builder()
            .with_data(&ndarray::arr1(v))
            .create(n)
            .unwrap();
    }
    drop(file);
    let npy = dir.join("t.npy");
    let all: Vec<u32> = i.iter().chain(&f).chain(&c).copied().collect();
    npy::write_npy(&npy, &[3, i.len()], &all, &[], false).unwrap();
    (h, npy)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: scaled(120), failure_persistence: None, ..ProptestConfig::default() })]

    /// ESRF sparse series and triplets (HDF5, NPY): byte flips anywhere (metadata included:
    /// 1.10 format), truncation, splices; NPY headers with absurd shapes.
    #[test]
    fn esrf_and_triplet_mutations(seed in any::<u32>(), which in 0usize..3, op in 0u8..4, at in any::<u32>(),
                                  xor in 1u8..=255, ins in prop::collection::vec(any::<u8>(), 1..20),
                                  absurd in prop::sample::select(vec!["", "(3, 1099511627776)", "(3, 18446744073709551615)", "(4, 5)", "(3,)"])) {
        let dir = tempfile::tempdir().unwrap();
        let (p, shape) = match which {
            0 => (esrf_files(dir.path(), seed).swap_remove(at as usize % 2), (9, 11)),
            1 => (triplet_files(dir.path(), seed).0, (6, 7)),
            _ => (triplet_files(dir.path(), seed).1, (6, 7)),
        };
        let mut bytes = std::fs::read(&p).unwrap();
        if which == 2 && !absurd.is_empty() {
            let h = String::from_utf8_lossy(&bytes[10..]).into_owned();
            if let (Some(a), Some(b)) = (h.find("'shape': ("), h.find("), }")) {
                let new = format!("{}'shape': {absurd}{}", &h[..a], &h[b + 1..]);
                let mut nb = bytes[..10].to_vec();
                nb.extend_from_slice(new.as_bytes());
                nb[8..10].copy_from_slice(&((new.find('\n').unwrap_or(new.len()) + 1) as u16).to_le_bytes());
                bytes = nb;
            }
        } else {
            mutate(&mut bytes, op, at, xor, &ins);
        }
        std::fs::write(&p, &bytes).unwrap();
        // HDF5: compressed data expands ≤ 1100×; the per-pixel state of the given shape.
        let budget = sparse_budget(2 * 1100 * bytes.len(), shape.0 * shape.1);
        check("esrf / triplets", budget, || read_any(&p, Some(shape), None));
    }
}

/// The Rigaku reader's peak memory does not grow with the number of frames: 10× the frames
/// (and records) of a scan, same pixel blocks bound, same peak within the read batches.
#[test]
fn rigaku_streams_in_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, frames: u64| {
        let p = dir.path().join(name);
        let mut f = std::io::BufWriter::new(std::fs::File::create(&p).unwrap());
        for t in 0..frames {
            for k in 0..2000u64 {
                let idx = (k * 262) % (512 * 1024);
                f.write_all(&((t << 40) | (idx << 16) | 1).to_le_bytes())
                    .unwrap();
            }
        }
        drop(f);
        p
    };
    let small = write("small.bin", 100);
    let large = write("large.bin", 1000);
    let peak = |p: &Path| {
        let opts = InputOptions {
            max_block_events: 50_000,
            ..InputOptions::default()
        };
        let (r, peak) = peak_of(|| -> xpcs_twin::Result<u64> {
            let Input::Events(mut e) = open_input(p, &opts)? else {
                panic!("events expected")
            };
            let mut n = 0;
            while let Some(b) = e.next_block()? {
                n += b.frames.len() as u64;
            }
            Ok(n)
        });
        (r.unwrap(), peak)
    };
    let (n_small, p_small) = peak(&small);
    let (n_large, p_large) = peak(&large);
    assert_eq!((n_small, n_large), (200_000, 2_000_000));
    let file = std::fs::metadata(&large).unwrap().len() as usize;
    eprintln!(
        "rigaku peak: {p_small} B for 100 frames, {p_large} B for 1000 frames ({file} B file)"
    );
    // Per-pixel state (≈ 12 B × 2^19) + one block (≤ 50 000 events) + batches, both times.
    assert!(p_large <= p_small + (1 << 20), "{p_large} vs {p_small}");
    assert!(p_large < file / 2, "{p_large} B for a {file} B file");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: scaled(60), failure_persistence: None, ..ProptestConfig::default() })]

    /// The APS 8-ID-I results file written by h5py (LZF q-maps, uint8 roi map): its LZF
    /// chunks corrupted or the file truncated. `read_results`, the q-map reader and the LZF
    /// decoder end in Ok or one line. (Only chunk data are flipped: this file is in HDF5's 1.8
    /// format, whose unchecksummed metadata can crash libhdf5 itself, a known limit.)
    #[test]
    fn aps_results_lzf_corruption(which in 0usize..3, at in any::<u32>(), xor in 1u8..=255, nflip in 1usize..6, trunc in any::<bool>()) {
        let dir = tempfile::tempdir().unwrap();
        let src = real_fixture("aps8idi_rigaku500k_results.hdf");
        let p = dir.path().join("aps_results.hdf");
        let mut bytes = std::fs::read(&src).unwrap();
        if trunc {
            bytes.truncate(at as usize % bytes.len());
        } else {
            let name = ["/xpcs/qmap/dynamic_roi_map", "/xpcs/qmap/static_roi_map", "/xpcs/temporal_mean/scattering_2d"][which];
            let ch = chunk_ranges(&src, name);
            let (addr, size) = ch[at as usize % ch.len()];
            for k in 0..nflip {
                bytes[addr as usize + (at as usize / 7 + 131 * k) % size as usize] ^= xor;
            }
        }
        std::fs::write(&p, &bytes).unwrap();
        // The file's arrays: 2 u32 maps + f32 scattering + mask of 512 × 1024, decoded once.
        check("aps results", 48 << 20, || read_results(&p));
        check("aps qmap", 48 << 20, || xpcs_twin::io::maps::read_qmap_h5(&p, (512, 1024)));
    }

    /// Eiger master + linked data files as Dectris writes them (bitshuffle-LZ4, LZ4, deflate):
    /// a data file's chunks corrupted, or a data file truncated or missing. Opening, reading,
    /// the pixel mask and the detector-mask scan end in Ok or one line.
    #[test]
    fn eiger_master_corrupt_data_files(stem in 0usize..3, part in 1usize..3, at in any::<u32>(), xor in 1u8..=255,
                                       nflip in 1usize..6, mode in 0usize..3) {
        let stem = ["eiger_bslz4_u32", "eiger_lz4_u16", "eiger_deflate_u32"][stem];
        let dir = tempfile::tempdir().unwrap();
        for f in [format!("{stem}_master.h5"), format!("{stem}_data_000001.h5"), format!("{stem}_data_000002.h5")] {
            std::fs::copy(real_fixture(&f), dir.path().join(&f)).unwrap();
        }
        let data = dir.path().join(format!("{stem}_data_{part:06}.h5"));
        let mut bytes = std::fs::read(&data).unwrap();
        match mode {
            0 => {
                let ch = chunk_ranges(&data, "/entry/data/data");
                let (addr, size) = ch[at as usize % ch.len()];
                for k in 0..nflip {
                    bytes[addr as usize + (at as usize / 5 + 61 * k) % size as usize] ^= xor;
                }
                std::fs::write(&data, &bytes).unwrap();
            }
            1 => {
                bytes.truncate(at as usize % bytes.len());
                std::fs::write(&data, &bytes).unwrap();
            }
            _ => std::fs::remove_file(&data).unwrap(),
        }
        let master = dir.path().join(format!("{stem}_master.h5"));
        check("eiger master", 4 << 20, || read_any(&master, None, None));
    }

    /// NPZ stacks (deflated members, streamed) and event NPZ files, bytes flipped or truncated.
    #[test]
    fn npz_frames_and_events_mutations(events in any::<bool>(), at in any::<u32>(), xor in 1u8..=255, trunc in any::<bool>()) {
        use std::io::Write as _;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.npz");
        let s = sparse_stack(6, 9, 11, at);
        {
            let f = std::fs::File::create(&p).unwrap();
            let mut w = zip::ZipWriter::new(f);
            let opts = zip::write::SimpleFileOptions::default()
                .compression_method(zip::CompressionMethod::Deflated);
            let mut add = |name: &str, bytes: Vec<u8>| {
                w.start_file(name, opts).unwrap();
                w.write_all(&bytes).unwrap();
            };
            if events {
                let ev = EventList::from_stack(&s, 0.01).unwrap();
                add("offsets.npy", npy::npy_bytes(&[ev.offsets().len()], ev.offsets()).unwrap());
                add("frames.npy", npy::npy_bytes(&[ev.frames().len()], ev.frames()).unwrap());
                add("counts.npy", npy::npy_bytes(&[ev.counts().len()], ev.counts()).unwrap());
                add("shape.npy", npy::npy_bytes(&[3], &[9u64, 11, 6]).unwrap());
                add("frame_time_s.npy", npy::npy_bytes(&[1], &[0.01f64]).unwrap());
            } else {
                let v: Vec<u16> = s.as_u16().unwrap().to_vec();
                add("frames.npy", npy::npy_bytes(&[6, 9, 11], &v).unwrap());
            }
            w.finish().unwrap();
        }
        let mut bytes = std::fs::read(&p).unwrap();
        if trunc {
            bytes.truncate(at as usize % bytes.len());
        } else {
            let i = at as usize % bytes.len();
            bytes[i] ^= xor;
        }
        std::fs::write(&p, &bytes).unwrap();
        check("npz input", 4 << 20, || read_any(&p, None, None));
    }
}

/// Semantic defects of the new metadata: a count cutoff or bit depth that is negative, NaN or
/// a vector; a pixel mask of another shape; frames at a --dataset that is missing or not 3-D;
/// q values that are not numbers or not > 0; an index mapping out of range.
#[test]
fn real_layout_semantic_defects() {
    let before = CASES.load(Ordering::Relaxed);
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let s = sparse_stack(4, 6, 7, 3);
    let base = d.join("base.h5");
    write_frames(&base, &s, Compression::None, Some(0.01), false).unwrap();
    let det = "entry/instrument/detector";
    type Edit = Box<dyn Fn(&hdf5::File)>;
    let variants: Vec<(&str, Edit)> = vec![
        (
            "cutoff_negative",
            Box::new(move |f: &hdf5::File| {
                f.new_dataset_builder()
                    .with_data(&ndarray::arr0(-1.0f64))
                    .create(
                        format!("{det}/detectorSpecific/countrate_correction_count_cutoff")
                            .as_str(),
                    )
                    .unwrap();
            }),
        ),
        (
            "cutoff_nan",
            Box::new(move |f: &hdf5::File| {
                f.create_group(&format!("{det}/detectorSpecific")).unwrap();
                f.new_dataset_builder()
                    .with_data(&ndarray::arr0(f64::NAN))
                    .create(
                        format!("{det}/detectorSpecific/countrate_correction_count_cutoff")
                            .as_str(),
                    )
                    .unwrap();
            }),
        ),
        (
            "bit_depth_vector",
            Box::new(move |f: &hdf5::File| {
                f.new_dataset_builder()
                    .with_data(&ndarray::arr1(&[16u32, 32]))
                    .create(format!("{det}/bit_depth_image").as_str())
                    .unwrap();
            }),
        ),
        (
            "pixel_mask_shape",
            Box::new(move |f: &hdf5::File| {
                f.new_dataset_builder()
                    .with_data(&ndarray::Array2::<u32>::zeros((3, 3)))
                    .create(format!("{det}/pixel_mask").as_str())
                    .unwrap();
            }),
        ),
    ];
    for (name, edit) in variants {
        let p = d.join(format!("{name}.h5"));
        std::fs::copy(&base, &p).unwrap();
        {
            let f = hdf5::File::open_rw(&p).unwrap();
            edit(&f);
        }
        let what = format!("eiger metadata {name}");
        check(&what, 1 << 20, || read_any(&p, None, None));
        assert!(read_any(&p, None, None).is_err(), "{name}: accepted");
    }
    for ds in ["/nope", "/entry/instrument/detector/frame_time"] {
        check("--dataset", 1 << 20, || read_any(&base, None, Some(ds)));
        assert!(read_any(&base, None, Some(ds)).is_err(), "{ds}");
    }
    for (name, content) in [
        ("q_text.csv", "0.1, abc"),
        ("q_neg.csv", "0.1\n-2"),
        ("q_nan.csv", "nan"),
    ] {
        let p = d.join(name);
        std::fs::write(&p, content).unwrap();
        check("q values", 1 << 20, || {
            xpcs_twin::io::maps::read_q_values(&p)
        });
        assert!(xpcs_twin::io::maps::read_q_values(&p).is_err(), "{name}");
    }
    // An APS q-map whose index mapping points outside its q × φ grid.
    let q = d.join("qmap.h5");
    {
        let f = hdf5::File::create(&q).unwrap();
        let g = f.create_group("qmap").unwrap();
        let roi = ndarray::Array2::from_shape_fn((6, 7), |(r, _)| (r % 3) as u8);
        g.new_dataset_builder()
            .with_data(&roi)
            .create("dynamic_roi_map")
            .unwrap();
        g.new_dataset_builder()
            .with_data(&ndarray::arr1(&[0.01f64, 0.02]))
            .create("dynamic_v_list_dim0")
            .unwrap();
        g.new_dataset_builder()
            .with_data(&ndarray::arr1(&[0.0f64]))
            .create("dynamic_v_list_dim1")
            .unwrap();
        g.new_dataset_builder()
            .with_data(&ndarray::arr1(&[0u8, 7]))
            .create("dynamic_index_mapping")
            .unwrap();
    }
    check("qmap index", 1 << 20, || {
        xpcs_twin::io::maps::read_qmap_h5(&q, (6, 7))
    });
    assert!(xpcs_twin::io::maps::read_qmap_h5(&q, (6, 7)).is_err());
    report("real_layout_semantic_defects", before);
}
