//! Decompressed read throughput of Eiger-style HDF5 files and of the raw chunk decoders.
//!
//! Setup (outside the timed closures): 100 frames of 512 × 512 u32 counts with the sparse
//! occupancy of an XPCS series (mean 0.1 photon/pixel/frame), written one frame per chunk with
//! each compression. Timed: streaming every frame through `EigerFrames` (`frames`: the default,
//! raw chunks read under the HDF5 lock and decoded in parallel with rayon; `hdf5_pipeline`: the
//! in-process filters inside HDF5's single-threaded pipeline), and decoding one chunk with the
//! pure decoders. Throughput is in
//! bytes of decompressed u32 frames. Target (issue 8): ≥ 1 GB/s on 2 cores.
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

criterion_group!(benches, bench);
criterion_main!(benches);
