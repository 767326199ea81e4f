//! Decompressed read throughput of Eiger-style HDF5 files and of the raw chunk decoders.
//!
//! Setup (outside the timed closures): 100 frames of 512 × 512 u32 counts with the sparse
//! occupancy of an XPCS series (mean 0.1 photon/pixel/frame), written one frame per chunk with
//! each compression. Timed: streaming every frame through `EigerFrames` (`frames`: the default,
//! raw chunks read under the HDF5 lock and decoded in parallel with rayon; `hdf5_pipeline`: the
//! in-process filters inside HDF5's single-threaded pipeline), and decoding one chunk with the
//! pure decoders. Throughput is in
//! bytes of decompressed u32 frames. Target: ≥ 1 GB/s on 2 cores.
//!
//!
//! `rigaku`: a generated Rigaku 500k `.bin` of 10.24 M photon records (1000 frames × 10 240
//! records, frame-major, pixel-ascending within a frame: 0.02 photon per pixel and frame, 1–3
//! photons each, as the detector writes) read from the page cache. Timed: the reader into
//! pixel blocks (`records`: open + pass 1 + pass 2, one block), and the reader into the event
//! correlator to g2 (`into_event_correlator`: 4 q-bins, multi-tau, 8 buffers). Throughput in
//! photon records. Target: ≥ 50 M records/s into the event correlator. Measured
//! (2 cores, idle, 2026-12-07): 97 M records/s into pixel blocks, 51–55 M/s through to g2 (the
//! event correlator's per-pixel work is about half of the second; docs/formats.md).
//!
//! Run: cargo bench --bench io -- --warm-up-time 1 --measurement-time 3

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use xpcs_twin::data::{FrameSource, FrameStack};
use xpcs_twin::io::eiger::{write_frames, Compression, EigerFrames};
use xpcs_twin::io::h5filters::{
    bshuf_lz4_decode_into, bshuf_lz4_encode, lz4_h5_decode_into, lz4_h5_encode,
};

const T: usize = 100;
const R: usize = 512;
const C: usize = 512;

fn sparse_frames(seed: u64) -> Vec<u32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    // ~0.1 photons per pixel per frame: a pixel counts with p = 0.095, mostly 1 photon.
    (0..T * R * C)
        .map(|_| {
            let u: f64 = rng.random();
            if u < 0.005 {
                2
            } else if u < 0.095 {
                1
            } else {
                0
            }
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let data = sparse_frames(1);
    let stack = FrameStack::from_u32(T, R, C, data.clone()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let bytes = (T * R * C * 4) as u64;

    let mut g = c.benchmark_group("eiger_read");
    g.throughput(Throughput::Bytes(bytes));
    g.sample_size(10);
    for (name, comp) in [
        ("bitshuffle_lz4", Compression::BitshuffleLz4),
        ("lz4", Compression::Lz4),
        ("deflate1", Compression::Deflate(1)),
        ("none", Compression::None),
    ] {
        let p = dir.path().join(format!("{name}.h5"));
        write_frames(&p, &stack, comp, Some(0.01), false).unwrap();
        g.bench_function(BenchmarkId::new("hdf5_pipeline", name), |b| {
            let mut buf = vec![0u32; R * C];
            b.iter(|| {
                let mut src = EigerFrames::open(&p).unwrap().through_hdf5_pipeline();
                let mut sum = 0u64;
                while src.read_next(&mut buf).unwrap() {
                    sum += u64::from(buf[7]);
                }
                sum
            })
        });
        g.bench_function(BenchmarkId::new("frames", name), |b| {
            let mut buf = vec![0u32; R * C];
            b.iter(|| {
                let mut src = EigerFrames::open(&p).unwrap();
                let mut sum = 0u64;
                while src.read_next(&mut buf).unwrap() {
                    sum += u64::from(buf[7]);
                }
                sum
            })
        });
    }
    g.finish();

    let frame: Vec<u8> = data[..R * C].iter().flat_map(|x| x.to_le_bytes()).collect();
    let bs = bshuf_lz4_encode(&frame, 4, 0);
    let lz = lz4_h5_encode(&frame, 0);
    let mut g = c.benchmark_group("chunk_decode");
    g.throughput(Throughput::Bytes(frame.len() as u64));
    let mut out = Vec::new();
    g.bench_function("bitshuffle_lz4_u32_frame", |b| {
        b.iter(|| bshuf_lz4_decode_into(&bs, 4, &mut out).unwrap())
    });
    g.bench_function("lz4_u32_frame", |b| {
        b.iter(|| lz4_h5_decode_into(&lz, &mut out).unwrap())
    });
    g.finish();
}

/// A Rigaku 500k file of `frames` × `per_frame` records (see the module docs).
fn rigaku_file(path: &std::path::Path, frames: u64, per_frame: u64, seed: u64) {
    use std::io::Write;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut w = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let n_pix = 512 * 1024u64;
    let mut idx: Vec<u64> = Vec::with_capacity(per_frame as usize);
    for t in 0..frames {
        idx.clear();
        // Distinct pixels, ascending: stride through the module from a random start.
        let step = n_pix / per_frame;
        let start: u64 = rng.random_range(0..step);
        idx.extend((0..per_frame).map(|k| start + k * step + rng.random_range(0..step / 2)));
        for &i in &idx {
            let c: u64 = 1
                + u64::from(rng.random::<u8>() % 8 == 0)
                + u64::from(rng.random::<u8>() % 64 == 0);
            w.write_all(&((t << 40) | (i << 16) | c).to_le_bytes())
                .unwrap();
        }
    }
    w.flush().unwrap();
}

fn bench_rigaku(c: &mut Criterion) {
    use xpcs_twin::correlate::{Estimator, EventCorrelator, LagSchedule};
    use xpcs_twin::data::QPartition;
    use xpcs_twin::io::input::{open_input, Input, InputOptions};
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("bench.bin");
    let (frames, per_frame) = (1000u64, 10_240u64);
    rigaku_file(&p, frames, per_frame, 5);
    let n = frames * per_frame;
    let labels: Vec<u32> = (0..512 * 1024)
        .map(|q| (q / 1024 / 128 + 1) as u32)
        .collect();
    let part = QPartition::from_labels(512, 1024, labels, "bench").unwrap();
    let sched = LagSchedule::multi_tau(frames as usize, 8).unwrap();
    let opts = InputOptions::default();
    let mut g = c.benchmark_group("rigaku");
    g.throughput(Throughput::Elements(n));
    g.sample_size(10);
    g.bench_function("records_10M", |b| {
        b.iter(|| {
            let Input::Events(mut e) = open_input(&p, &opts).unwrap() else {
                unreachable!()
            };
            let mut k = 0usize;
            while let Some(blk) = e.next_block().unwrap() {
                k += blk.frames.len();
            }
            assert_eq!(k as u64, n);
            k
        })
    });
    g.bench_function("into_event_correlator_10M", |b| {
        b.iter(|| {
            let Input::Events(mut e) = open_input(&p, &opts).unwrap() else {
                unreachable!()
            };
            let mut ev = EventCorrelator::new(&part, &sched, frames as usize);
            e.correlate_into(&mut ev).unwrap();
            ev.finish(Estimator::Symmetric).unwrap()
        })
    });
    g.bench_function("via_pixel_block_10M", |b| {
        b.iter(|| {
            let Input::Events(mut e) = open_input(&p, &opts).unwrap() else {
                unreachable!()
            };
            let mut ev = EventCorrelator::new(&part, &sched, frames as usize);
            while let Some(blk) = e.next_block().unwrap() {
                ev.push_pixel_block(blk.first_pixel, &blk.offsets, &blk.frames, &blk.counts)
                    .unwrap();
            }
            ev.finish(Estimator::Symmetric).unwrap()
        })
    });
    g.finish();
}

criterion_group!(benches, bench, bench_rigaku);
criterion_main!(benches);
