//! HDF5 compression filters used by Eiger/Dectris files, implemented in-process.
//!
//! - **LZ4, filter 32004** (the HDF Group's `H5Zlz4` framing): header = original size (u64,
//!   big endian) + block size (u32 BE); then per block a u32 BE compressed length and an LZ4
//!   block; a block whose compressed length equals its raw length is stored raw.
//! - **bitshuffle + LZ4, filter 32008** (`bshuf_h5filter`): cd_values = [major, minor,
//!   element size, block size in elements (0 = default), compression (2 = LZ4, 0 = none)].
//!   With LZ4: header = original size (u64 BE) + block size in bytes (u32 BE); per block of
//!   `block` elements (a multiple of 8) a u32 BE compressed length and the LZ4 block of the
//!   bit-transposed elements; the last partial block is rounded down to a multiple of 8
//!   elements, and the final `n mod 8` elements are copied raw at the end.
//!
//! - **LZF, filter 32000** (h5py's `lzf_filter.c`, liblzf's format): no header; cd_values =
//!   [filter version, LZF version, chunk size in bytes]. The stream is a sequence of control
//!   bytes: `c < 32` copies the next `c + 1` literal bytes; otherwise `len = c >> 5` (`7` adds the
//!   next byte) and the match copies `len + 2` bytes from `((c & 31) << 8) + next byte + 1` bytes
//!   back in the output (overlap allowed). The APS 8-ID-I pipeline writes its q-maps with it.
//!   Decode only (we never write LZF).
//!
//! Input: compressed chunk bytes. Output: the chunk's raw bytes (element order unchanged).
//! [`register`] installs both as HDF5 filters (encode and decode) with `H5Zregister`, so the
//! HDF5 C library reads and writes such datasets without any plugin installed; the pure
//! functions ([`lz4_h5_decode`], [`bshuf_lz4_decode`], ...) are also usable on raw chunks.
//!
//! Every decoder bounds the output it will allocate by what the input can justify (LZ4 expands
//! at most 255:1), so a corrupted header cannot trigger a huge allocation.
//!
//! Reference: K. Masui et al., "A compression scheme for radio data in high performance
//! computing", Astronomy and Computing 12, 181 (2015) (bitshuffle); the LZ4 block format
//! (Y. Collet, lz4 `doc/lz4_Block_format.md`); HDF5 registered filters 32004 and 32008.

use std::cell::RefCell;
use std::ffi::c_void;
use std::sync::OnceLock;

use hdf5_sys::h5::{H5allocate_memory, H5free_memory};
use hdf5_sys::h5z::{H5Z_class2_t, H5Z_filter_t, H5Zregister, H5Z_CLASS_T_VERS, H5Z_FLAG_REVERSE};

/// HDF5 filter id of LZ4 (H5Zlz4 framing).
pub const LZ4_FILTER_ID: H5Z_filter_t = 32004;
/// HDF5 filter id of LZF (h5py).
pub const LZF_FILTER_ID: H5Z_filter_t = 32000;
/// Largest expansion an LZF stream can encode: a 3-byte back-reference yields 264 bytes.
const LZF_MAX_RATIO: usize = 88;
/// HDF5 filter id of bitshuffle.
pub const BSHUF_FILTER_ID: H5Z_filter_t = 32008;
/// bitshuffle `cd_values[4]` for LZ4 compression.
pub const BSHUF_COMPRESS_LZ4: u32 = 2;
/// bitshuffle's default block size target (bytes).
const BSHUF_TARGET_BLOCK_BYTES: usize = 8192;
/// Largest expansion an LZ4 block can encode.
const LZ4_MAX_RATIO: usize = 255;

/// A decode failure, in words.
pub type CodecError = String;

fn be_u64(b: &[u8]) -> u64 {
    u64::from_be_bytes(b[..8].try_into().expect("8 bytes"))
}
fn be_u32(b: &[u8]) -> u32 {
    u32::from_be_bytes(b[..4].try_into().expect("4 bytes"))
}

/// Upper bound on the decoded size a compressed input of `len` bytes can justify.
fn max_decoded(len: usize) -> usize {
    len.saturating_mul(LZ4_MAX_RATIO).saturating_add(64)
}

/// Decodes one LZ4 block into `out` (whose length is the expected decoded size); returns the
/// bytes written. Safe and bounds-checked; overlapping matches (runs, e.g. the zero bit-planes
/// of sparse photon frames) are copied by doubling spans instead of byte by byte, which is
/// what makes this several times faster than a generic decoder on detector data.
///
/// Reference: the LZ4 block format (Y. Collet, lz4 `doc/lz4_Block_format.md`).
pub fn lz4_block_decode(src: &[u8], out: &mut [u8]) -> Result<usize, CodecError> {
    let bad = |what: &str, at: usize| format!("corrupt LZ4 block: {what} at input offset {at}");
    let (mut ip, mut op) = (0usize, 0usize);
    let read_len = |ip: &mut usize, mut len: usize| -> Result<usize, CodecError> {
        loop {
            let b = *src
                .get(*ip)
                .ok_or_else(|| bad("length runs past the end", *ip))?;
            *ip += 1;
            len = len
                .checked_add(b as usize)
                .ok_or_else(|| bad("length overflows", *ip))?;
            if b != 255 {
                return Ok(len);
            }
        }
    };
    while ip < src.len() {
        let token = src[ip];
        ip += 1;
        let mut lit = (token >> 4) as usize;
        if lit == 15 {
            lit = read_len(&mut ip, lit)?;
        }
        if lit > src.len() - ip || lit > out.len() - op {
            return Err(bad("literals overflow", ip));
        }
        out[op..op + lit].copy_from_slice(&src[ip..ip + lit]);
        ip += lit;
        op += lit;
        if ip == src.len() {
            break; // the last sequence has literals only
        }
        if src.len() - ip < 2 {
            return Err(bad("truncated match offset", ip));
        }
        let offset = u16::from_le_bytes([src[ip], src[ip + 1]]) as usize;
        ip += 2;
        let mut mlen = (token & 15) as usize;
        if mlen == 15 {
            mlen = read_len(&mut ip, mlen)?;
        }
        mlen += 4;
        if offset == 0 || offset > op {
            return Err(bad("match offset outside the output", ip));
        }
        if mlen > out.len() - op {
            return Err(bad("match overflows the output", ip));
        }
        let start = op - offset;
        if offset == 1 {
            let b = out[start];
            out[op..op + mlen].fill(b);
        } else if offset >= mlen {
            out.copy_within(start..start + mlen, op);
        } else {
            // Overlapping: the pattern of length `offset` repeats; copy growing spans.
            let mut done = 0;
            while done < mlen {
                let span = (offset + done).min(mlen - done);
                out.copy_within(start..start + span, op + done);
                done += span;
            }
        }
        op += mlen;
    }
    Ok(op)
}

/// Encodes `data` in the H5Zlz4 framing with blocks of `block_size` bytes (0 = one block).
pub fn lz4_h5_encode(data: &[u8], block_size: usize) -> Vec<u8> {
    let bs = if block_size == 0 || block_size > data.len() {
        data.len().max(1)
    } else {
        block_size
    };
    let mut out = Vec::with_capacity(12 + data.len() / 2);
    out.extend_from_slice(&(data.len() as u64).to_be_bytes());
    out.extend_from_slice(&(bs as u32).to_be_bytes());
    for block in data.chunks(bs) {
        let c = lz4_flex::block::compress(block);
        if c.len() >= block.len() {
            out.extend_from_slice(&(block.len() as u32).to_be_bytes());
            out.extend_from_slice(block);
        } else {
            out.extend_from_slice(&(c.len() as u32).to_be_bytes());
            out.extend_from_slice(&c);
        }
    }
    out
}

/// Decodes an H5Zlz4-framed chunk into `out` (cleared and resized to the original size).
pub fn lz4_h5_decode_into(src: &[u8], out: &mut Vec<u8>) -> Result<(), CodecError> {
    let orig = lz4_h5_declared(src)?;
    out.clear();
    out.resize(orig, 0);
    lz4_h5_decode_slice(src, out)
}

/// The decoded size an H5Zlz4 chunk declares, checked against what its length can hold.
fn lz4_h5_declared(src: &[u8]) -> Result<usize, CodecError> {
    if src.len() < 12 {
        return Err(format!(
            "LZ4 chunk of {} bytes is shorter than its 12-byte header",
            src.len()
        ));
    }
    let orig = be_u64(src);
    if orig > max_decoded(src.len()) as u64 {
        return Err(format!(
            "LZ4 chunk declares {orig} bytes, more than {} compressed bytes can hold",
            src.len()
        ));
    }
    Ok(orig as usize)
}

/// Decodes an H5Zlz4-framed chunk into `out`, whose length must be the declared size.
pub fn lz4_h5_decode_slice(src: &[u8], out: &mut [u8]) -> Result<(), CodecError> {
    let orig = lz4_h5_declared(src)?;
    if orig != out.len() {
        return Err(format!(
            "LZ4 chunk declares {orig} bytes, expected {}",
            out.len()
        ));
    }
    let mut bs = be_u32(&src[8..]) as u64;
    if bs == 0 && orig > 0 {
        return Err("LZ4 chunk declares block size 0".into());
    }
    bs = bs.min(orig as u64);
    let mut pos = 12usize;
    let mut done = 0usize;
    while done < orig {
        let this = (bs as usize).min(orig - done);
        if pos + 4 > src.len() {
            return Err(format!(
                "LZ4 chunk truncated at block header (offset {pos})"
            ));
        }
        let clen = be_u32(&src[pos..]) as usize;
        pos += 4;
        if clen > src.len() - pos {
            return Err(format!("LZ4 block of {clen} bytes runs past the chunk end"));
        }
        let block = &src[pos..pos + clen];
        if clen == this {
            out[done..done + this].copy_from_slice(block);
        } else {
            let n = lz4_block_decode(block, &mut out[done..done + this])?;
            if n != this {
                return Err(format!("LZ4 block decoded to {n} bytes, expected {this}"));
            }
        }
        pos += clen;
        done += this;
    }
    Ok(())
}

/// Decodes an H5Zlz4-framed chunk.
pub fn lz4_h5_decode(src: &[u8]) -> Result<Vec<u8>, CodecError> {
    let mut v = Vec::new();
    lz4_h5_decode_into(src, &mut v)?;
    Ok(v)
}

/// Decodes an LZF stream (liblzf format, as h5py's filter 32000 writes it) of at most
/// `max_len` output bytes. Safe and bounds-checked: a corrupt stream (a back-reference before
/// the output's start, a run past the input's end, more output than `max_len`) is an error.
///
/// Reference: M. Lehmann, liblzf 3.6 (`lzf_d.c`, the format); h5py `lzf/lzf_filter.c` (framing).
pub fn lzf_decode(src: &[u8], max_len: usize) -> Result<Vec<u8>, CodecError> {
    let bad = |what: &str, at: usize| format!("corrupt LZF stream: {what} at input offset {at}");
    let mut out: Vec<u8> = Vec::with_capacity(max_len.min(src.len().saturating_mul(LZF_MAX_RATIO)));
    let mut ip = 0usize;
    while ip < src.len() {
        let ctrl = src[ip] as usize;
        ip += 1;
        if ctrl < 32 {
            let n = ctrl + 1;
            if n > src.len() - ip {
                return Err(bad("literal run past the end", ip));
            }
            if n > max_len - out.len() {
                return Err(bad("output longer than the chunk", ip));
            }
            out.extend_from_slice(&src[ip..ip + n]);
            ip += n;
            continue;
        }
        let mut len = ctrl >> 5;
        if len == 7 {
            len += *src
                .get(ip)
                .ok_or_else(|| bad("truncated match length", ip))? as usize;
            ip += 1;
        }
        let lo = *src
            .get(ip)
            .ok_or_else(|| bad("truncated match offset", ip))? as usize;
        ip += 1;
        let back = ((ctrl & 31) << 8) + lo + 1;
        let len = len + 2;
        if back > out.len() {
            return Err(bad("match before the output's start", ip));
        }
        if len > max_len - out.len() {
            return Err(bad("output longer than the chunk", ip));
        }
        let start = out.len() - back;
        if back >= len {
            out.extend_from_within(start..start + len);
        } else {
            // Overlapping: the last `back` bytes repeat.
            for i in 0..len {
                let b = out[start + i];
                out.push(b);
            }
        }
    }
    Ok(out)
}

/// 8×8 bit-matrix transpose: bit m of byte k ↔ bit k of byte m.
#[inline(always)]
fn trans_bit_8x8(mut x: u64) -> u64 {
    let mut t = (x ^ (x >> 7)) & 0x00AA_00AA_00AA_00AA;
    x = x ^ t ^ (t << 7);
    t = (x ^ (x >> 14)) & 0x0000_CCCC_0000_CCCC;
    x = x ^ t ^ (t << 14);
    t = (x ^ (x >> 28)) & 0x0000_0000_F0F0_F0F0;
    x ^ t ^ (t << 28)
}

/// Bit-transposes a block of `n` elements (n a multiple of 8) of `es` bytes: output row
/// `8 j + k` (n/8 bytes) holds bit k of byte j of every element, element i at bit i mod 8
/// of byte i / 8.
pub fn bitshuffle_block(src: &[u8], dst: &mut [u8], es: usize) {
    let n = src.len() / es;
    debug_assert!(n % 8 == 0 && dst.len() == src.len());
    let row = n / 8;
    for g in 0..row {
        for j in 0..es {
            let mut x = 0u64;
            for m in 0..8 {
                x |= u64::from(src[(8 * g + m) * es + j]) << (8 * m);
            }
            let y = trans_bit_8x8(x);
            for k in 0..8 {
                dst[(8 * j + k) * row + g] = (y >> (8 * k)) as u8;
            }
        }
    }
}

/// Inverse of [`bitshuffle_block`].
pub fn bitunshuffle_block(src: &[u8], dst: &mut [u8], es: usize) {
    let n = src.len() / es;
    debug_assert!(n % 8 == 0 && dst.len() == src.len());
    let row = n / 8;
    match es {
        // The detector's common widths get a specialised loop (constant stride, unrolled).
        2 => unshuffle_fixed::<2>(src, dst, row),
        4 => unshuffle_fixed::<4>(src, dst, row),
        1 => unshuffle_fixed::<1>(src, dst, row),
        _ => {
            for g in 0..row {
                for j in 0..es {
                    let mut x = 0u64;
                    for k in 0..8 {
                        x |= u64::from(src[(8 * j + k) * row + g]) << (8 * k);
                    }
                    let y = trans_bit_8x8(x);
                    for m in 0..8 {
                        dst[(8 * g + m) * es + j] = (y >> (8 * m)) as u8;
                    }
                }
            }
        }
    }
}

#[inline(always)]
fn unshuffle_fixed<const ES: usize>(src: &[u8], dst: &mut [u8], row: usize) {
    // Bit-row r = 8 j + k holds bit k of byte j of every element. For each group g of 8
    // elements gather byte g of the 8 rows of plane j, transpose the 8×8 bit matrix, and write
    // the 8 elements' byte j. Sparse photon data leave most planes and most gathers zero:
    // those need no transpose and no write (the output is zeroed first).
    let rows: [&[u8]; 64] = std::array::from_fn(|r| {
        if r < 8 * ES {
            &src[r * row..(r + 1) * row]
        } else {
            &[][..]
        }
    });
    dst.fill(0);
    for j in 0..ES {
        // A plane whose 8 bit-rows are all zero leaves byte j of every element zero.
        let any = rows[8 * j..8 * j + 8]
            .iter()
            .fold(0u8, |a, r| a | r.iter().fold(0u8, |x, &b| x | b));
        if any == 0 {
            continue;
        }
        for (g, out) in dst.chunks_exact_mut(8 * ES).enumerate().take(row) {
            let x = u64::from_le_bytes(std::array::from_fn(|k| rows[8 * j + k][g]));
            if x != 0 {
                let y = trans_bit_8x8(x).to_le_bytes();
                for (m, &b) in y.iter().enumerate() {
                    out[m * ES + j] = b;
                }
            }
        }
    }
}

/// bitshuffle's default block size (elements) for elements of `es` bytes.
pub fn bshuf_default_block(es: usize) -> usize {
    let b = BSHUF_TARGET_BLOCK_BYTES / es.max(1);
    (b - b % 8).max(128)
}

/// Block plan of a bitshuffle buffer: (list of block element counts, trailing raw elements).
fn bshuf_blocks(n: usize, block: usize) -> (Vec<usize>, usize) {
    let mut v = vec![block; n / block];
    let rest = n % block;
    let last = rest - rest % 8;
    if last > 0 {
        v.push(last);
    }
    (v, rest % 8)
}

/// Encodes `data` (elements of `es` bytes) with bitshuffle + LZ4 in the HDF5 filter framing;
/// `block` elements per block (0 = default; else a multiple of 8).
pub fn bshuf_lz4_encode(data: &[u8], es: usize, block: usize) -> Vec<u8> {
    let block = if block == 0 {
        bshuf_default_block(es)
    } else {
        block
    };
    let n = data.len() / es;
    let mut out = Vec::with_capacity(16 + data.len() / 2);
    out.extend_from_slice(&(data.len() as u64).to_be_bytes());
    out.extend_from_slice(&((block * es) as u32).to_be_bytes());
    let (blocks, tail) = bshuf_blocks(n, block);
    let mut tmp = vec![0u8; block * es];
    let mut at = 0usize;
    for b in blocks {
        let src = &data[at..at + b * es];
        bitshuffle_block(src, &mut tmp[..b * es], es);
        let c = lz4_flex::block::compress(&tmp[..b * es]);
        out.extend_from_slice(&(c.len() as u32).to_be_bytes());
        out.extend_from_slice(&c);
        at += b * es;
    }
    out.extend_from_slice(&data[at..at + tail * es]);
    out
}

/// Decodes a bitshuffle + LZ4 chunk (HDF5 filter framing) of elements of `es` bytes into
/// `out` (resized to the original size).
pub fn bshuf_lz4_decode_into(src: &[u8], es: usize, out: &mut Vec<u8>) -> Result<(), CodecError> {
    let orig = bshuf_declared(src, es)?;
    out.clear();
    out.resize(orig, 0);
    bshuf_lz4_decode_slice(src, es, out)
}

/// The decoded size a bitshuffle + LZ4 chunk declares, checked against what its length can
/// hold and against the element size.
fn bshuf_declared(src: &[u8], es: usize) -> Result<usize, CodecError> {
    if es == 0 || es > 64 {
        return Err(format!("bitshuffle element size {es} out of range 1..=64"));
    }
    if src.len() < 12 {
        return Err(format!(
            "bitshuffle chunk of {} bytes is shorter than its header",
            src.len()
        ));
    }
    let orig = be_u64(src);
    if orig > max_decoded(src.len()) as u64 {
        return Err(format!(
            "bitshuffle chunk declares {orig} bytes, more than {} compressed bytes can hold",
            src.len()
        ));
    }
    Ok(orig as usize)
}

/// Decodes a bitshuffle + LZ4 chunk into `out`, whose length must be the declared size.
pub fn bshuf_lz4_decode_slice(src: &[u8], es: usize, out: &mut [u8]) -> Result<(), CodecError> {
    let orig = bshuf_declared(src, es)?;
    if orig != out.len() {
        return Err(format!(
            "bitshuffle chunk declares {orig} bytes, expected {}",
            out.len()
        ));
    }
    let block_bytes = be_u32(&src[8..]) as usize;
    let block = block_bytes / es;
    if orig % es != 0 || block == 0 || block % 8 != 0 || block_bytes % es != 0 {
        return Err(format!(
            "bitshuffle header inconsistent: {orig} bytes, block {block_bytes} bytes, element {es} bytes"
        ));
    }
    let n = orig / es;
    let (blocks, tail) = bshuf_blocks(n, block);
    let mut tmp = vec![0u8; block.min(n) * es];
    let mut pos = 12usize;
    let mut at = 0usize;
    for b in blocks {
        let nb = b * es;
        if pos + 4 > src.len() {
            return Err(format!(
                "bitshuffle chunk truncated at block header (offset {pos})"
            ));
        }
        let clen = be_u32(&src[pos..]) as usize;
        pos += 4;
        if clen > src.len() - pos {
            return Err(format!(
                "bitshuffle block of {clen} bytes runs past the chunk end"
            ));
        }
        let got = lz4_block_decode(&src[pos..pos + clen], &mut tmp[..nb])?;
        if got != nb {
            return Err(format!(
                "bitshuffle block decoded to {got} bytes, expected {nb}"
            ));
        }
        bitunshuffle_block(&tmp[..nb], &mut out[at..at + nb], es);
        pos += clen;
        at += nb;
    }
    let tb = tail * es;
    if src.len() - pos != tb {
        return Err(format!(
            "bitshuffle chunk has {} trailing bytes, expected {tb}",
            src.len() - pos
        ));
    }
    out[at..at + tb].copy_from_slice(&src[pos..]);
    Ok(())
}

/// Decodes a chunk of a direct-read dataset into `out`, whose length is the chunk's exact
/// decoded size (a different declared size is a corrupt chunk).
pub fn decode_chunk_exact(codec: ChunkCodec, src: &[u8], out: &mut [u8]) -> Result<(), CodecError> {
    match codec {
        ChunkCodec::Raw => {
            if src.len() != out.len() {
                return Err(format!(
                    "raw chunk of {} bytes, the dataset needs {}",
                    src.len(),
                    out.len()
                ));
            }
            out.copy_from_slice(src);
            Ok(())
        }
        ChunkCodec::Lz4 => lz4_h5_decode_slice(src, out),
        ChunkCodec::BitshuffleLz4 { elem_size } => bshuf_lz4_decode_slice(src, elem_size, out),
    }
}

/// The codec of a dataset read chunk by chunk without the HDF5 filter pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChunkCodec {
    /// No filter: the chunk bytes are the data.
    Raw,
    /// LZ4, filter 32004.
    Lz4,
    /// bitshuffle + LZ4, filter 32008.
    BitshuffleLz4 {
        /// Element size (bytes).
        elem_size: usize,
    },
}

/// Decodes a bitshuffle + LZ4 chunk.
pub fn bshuf_lz4_decode(src: &[u8], es: usize) -> Result<Vec<u8>, CodecError> {
    let mut v = Vec::new();
    bshuf_lz4_decode_into(src, es, &mut v)?;
    Ok(v)
}

/// Plain bitshuffle (no compression, no header): blocks of `block` elements.
fn bshuf_plain(src: &[u8], es: usize, block: usize, reverse: bool) -> Result<Vec<u8>, CodecError> {
    if es == 0 || src.len() % es != 0 {
        return Err(format!(
            "bitshuffle: {} bytes is not a whole number of {es}-byte elements",
            src.len()
        ));
    }
    let block = if block == 0 {
        bshuf_default_block(es)
    } else {
        block
    };
    if block % 8 != 0 {
        return Err(format!(
            "bitshuffle block size {block} is not a multiple of 8"
        ));
    }
    let (blocks, tail) = bshuf_blocks(src.len() / es, block);
    let mut out = vec![0u8; src.len()];
    let mut at = 0;
    for b in blocks {
        let r = at..at + b * es;
        if reverse {
            bitunshuffle_block(&src[r.clone()], &mut out[r], es);
        } else {
            bitshuffle_block(&src[r.clone()], &mut out[r], es);
        }
        at += b * es;
    }
    out[at..at + tail * es].copy_from_slice(&src[at..at + tail * es]);
    Ok(out)
}

thread_local! {
    static LAST_ERROR: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// The last decode error raised inside an HDF5 filter callback on this thread (taken).
pub fn take_last_filter_error() -> Option<String> {
    LAST_ERROR.with(|e| e.borrow_mut().take())
}

fn set_error(msg: String) {
    LAST_ERROR.with(|e| *e.borrow_mut() = Some(msg));
}

/// Hands `data` to HDF5 as the filter's output buffer. Returns the output size, 0 on failure.
unsafe fn emit(data: &[u8], buf_size: *mut usize, buf: *mut *mut c_void) -> usize {
    let p = H5allocate_memory(data.len().max(1), 0) as *mut u8;
    if p.is_null() {
        set_error(format!("cannot allocate {} bytes", data.len()));
        return 0;
    }
    std::ptr::copy_nonoverlapping(data.as_ptr(), p, data.len());
    H5free_memory(*buf);
    *buf = p as *mut c_void;
    *buf_size = data.len().max(1);
    data.len()
}

type FilterFn = fn(bool, &[u32], &[u8]) -> Result<Vec<u8>, CodecError>;

unsafe fn run_filter(
    f: FilterFn,
    flags: u32,
    cd_nelmts: usize,
    cd_values: *const u32,
    nbytes: usize,
    buf_size: *mut usize,
    buf: *mut *mut c_void,
) -> usize {
    let reverse = flags & H5Z_FLAG_REVERSE != 0;
    let cd: &[u32] = if cd_values.is_null() || cd_nelmts == 0 {
        &[]
    } else {
        std::slice::from_raw_parts(cd_values, cd_nelmts)
    };
    let input = std::slice::from_raw_parts(*buf as *const u8, nbytes);
    // A panic must not unwind into C.
    match std::panic::catch_unwind(|| f(reverse, cd, input)) {
        Ok(Ok(v)) => emit(&v, buf_size, buf),
        Ok(Err(e)) => {
            set_error(e);
            0
        }
        Err(_) => {
            set_error("filter panicked".into());
            0
        }
    }
}

fn lz4_filter(reverse: bool, cd: &[u32], input: &[u8]) -> Result<Vec<u8>, CodecError> {
    if reverse {
        lz4_h5_decode(input)
    } else {
        let bs = cd.first().copied().unwrap_or(0) as usize;
        Ok(lz4_h5_encode(input, if bs == 0 { 1 << 30 } else { bs }))
    }
}

fn lzf_filter(reverse: bool, cd: &[u32], input: &[u8]) -> Result<Vec<u8>, CodecError> {
    if !reverse {
        return Err("LZF (filter 32000) is decode-only in xpcs-twin".into());
    }
    // h5py stores the chunk's size in bytes as cd_values[2]; without it, LZF's own limit.
    match cd.get(2) {
        Some(&n) if n > 0 => {
            // HDF5 copies a whole chunk out of the filter's buffer: a stream that decodes to
            // fewer bytes (corrupt) must be an error, never a short buffer.
            let out = lzf_decode(input, n as usize)?;
            if out.len() != n as usize {
                return Err(format!(
                    "LZF chunk decoded to {} bytes, the chunk holds {n}",
                    out.len()
                ));
            }
            Ok(out)
        }
        _ => lzf_decode(input, input.len().saturating_mul(LZF_MAX_RATIO)),
    }
}

fn bshuf_filter(reverse: bool, cd: &[u32], input: &[u8]) -> Result<Vec<u8>, CodecError> {
    let es = *cd
        .get(2)
        .ok_or("bitshuffle filter lacks the element size (cd_values[2])")? as usize;
    let block = cd.get(3).copied().unwrap_or(0) as usize;
    match cd.get(4).copied().unwrap_or(0) {
        BSHUF_COMPRESS_LZ4 => {
            if reverse {
                bshuf_lz4_decode(input, es)
            } else {
                if block % 8 != 0 {
                    return Err(format!(
                        "bitshuffle block size {block} is not a multiple of 8"
                    ));
                }
                Ok(bshuf_lz4_encode(input, es, block))
            }
        }
        0 => bshuf_plain(input, es, block, reverse),
        c => Err(format!(
            "bitshuffle compression {c} not supported (2 = LZ4, 0 = none)"
        )),
    }
}

unsafe extern "C" fn lz4_cb(
    flags: u32,
    cd_nelmts: usize,
    cd_values: *const u32,
    nbytes: usize,
    buf_size: *mut usize,
    buf: *mut *mut c_void,
) -> usize {
    run_filter(
        lz4_filter, flags, cd_nelmts, cd_values, nbytes, buf_size, buf,
    )
}

unsafe extern "C" fn lzf_cb(
    flags: u32,
    cd_nelmts: usize,
    cd_values: *const u32,
    nbytes: usize,
    buf_size: *mut usize,
    buf: *mut *mut c_void,
) -> usize {
    run_filter(
        lzf_filter, flags, cd_nelmts, cd_values, nbytes, buf_size, buf,
    )
}

unsafe extern "C" fn bshuf_cb(
    flags: u32,
    cd_nelmts: usize,
    cd_values: *const u32,
    nbytes: usize,
    buf_size: *mut usize,
    buf: *mut *mut c_void,
) -> usize {
    run_filter(
        bshuf_filter,
        flags,
        cd_nelmts,
        cd_values,
        nbytes,
        buf_size,
        buf,
    )
}

static REGISTERED: OnceLock<Result<(), String>> = OnceLock::new();

/// Registers the LZ4 (32004) and bitshuffle (32008) filters (encode and decode) and LZF
/// (32000, decode only) with the HDF5 library of this process (idempotent). Every reader and writer in this crate calls it first.
pub fn register() -> xpcs_core::Result<()> {
    let r = REGISTERED.get_or_init(|| {
        let classes = [
            (
                LZ4_FILTER_ID,
                c"lz4 (xpcs-twin, H5Zlz4 framing)",
                lz4_cb as H5ZFunc,
                1,
            ),
            (
                BSHUF_FILTER_ID,
                c"bitshuffle+lz4 (xpcs-twin)",
                bshuf_cb as H5ZFunc,
                1,
            ),
            (
                LZF_FILTER_ID,
                c"lzf (xpcs-twin, decode only)",
                lzf_cb as H5ZFunc,
                0,
            ),
        ];
        for (id, name, cb, encoder_present) in classes {
            let class = Box::leak(Box::new(H5Z_class2_t {
                version: H5Z_CLASS_T_VERS as _,
                id,
                encoder_present,
                decoder_present: 1,
                name: name.as_ptr(),
                can_apply: None,
                set_local: None,
                filter: Some(cb),
            }));
            let ret =
                hdf5::sync::sync(|| unsafe { H5Zregister((class as *const H5Z_class2_t).cast()) });
            if ret < 0 {
                return Err(format!("H5Zregister failed for filter {id}"));
            }
        }
        Ok(())
    });
    r.clone().map_err(|m| xpcs_core::Error::Hdf5 {
        path: "<hdf5 library>".into(),
        message: m,
    })
}

type H5ZFunc =
    unsafe extern "C" fn(u32, usize, *const u32, usize, *mut usize, *mut *mut c_void) -> usize;

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Reference bit transpose, one bit at a time, straight from the definition.
    fn shuffle_ref(src: &[u8], es: usize) -> Vec<u8> {
        let n = src.len() / es;
        let mut out = vec![0u8; src.len()];
        for i in 0..n {
            for j in 0..es {
                for k in 0..8 {
                    let bit = (src[i * es + j] >> k) & 1;
                    let r = 8 * j + k;
                    out[r * (n / 8) + i / 8] |= bit << (i % 8);
                }
            }
        }
        out
    }

    proptest! {
        #[test]
        fn bitshuffle_matches_reference(es in prop::sample::select(vec![1usize, 2, 4, 8]),
                                        groups in 1usize..40, seed in any::<u64>()) {
            let n = groups * 8;
            let src: Vec<u8> = (0..n * es).map(|i| (seed.wrapping_mul(i as u64 + 1) >> 13) as u8).collect();
            let mut a = vec![0u8; src.len()];
            bitshuffle_block(&src, &mut a, es);
            prop_assert_eq!(&a, &shuffle_ref(&src, es));
            let mut b = vec![0u8; src.len()];
            bitunshuffle_block(&a, &mut b, es);
            prop_assert_eq!(b, src);
        }

        #[test]
        fn codecs_roundtrip(es in prop::sample::select(vec![1usize, 2, 4]), n in 0usize..5000,
                            block in prop::sample::select(vec![0usize, 8, 64, 1024]),
                            sparsity in 1u32..50, seed in any::<u32>()) {
            let data: Vec<u8> = (0..n * es).map(|i| {
                let h = (i as u32).wrapping_mul(2654435761).wrapping_add(seed);
                if h % sparsity == 0 { (h >> 24) as u8 } else { 0 }
            }).collect();
            let c = bshuf_lz4_encode(&data, es, block);
            prop_assert_eq!(bshuf_lz4_decode(&c, es).unwrap(), data.clone());
            let l = lz4_h5_encode(&data, block * 16);
            prop_assert_eq!(lz4_h5_decode(&l).unwrap(), data.clone());
            let p = bshuf_plain(&data, es, block, false).unwrap();
            prop_assert_eq!(bshuf_plain(&p, es, block, true).unwrap(), data);
        }

        /// Our block decoder equals lz4_flex (the reference) on valid blocks, including
        /// long overlapping runs, and never panics on mutated ones.
        #[test]
        fn lz4_block_decoder_matches_reference(runs in prop::collection::vec((0u8..4, 1usize..300), 1..40),
                                               flip in any::<(u16, u8)>()) {
            let mut data = Vec::new();
            for (v, n) in runs {
                for i in 0..n { data.push(if v == 3 { (i % 7) as u8 } else { v }); }
            }
            let c = lz4_flex::block::compress(&data);
            let mut out = vec![0u8; data.len()];
            prop_assert_eq!(lz4_block_decode(&c, &mut out).unwrap(), data.len());
            prop_assert_eq!(&out, &data);
            let mut m = c.clone();
            let i = flip.0 as usize % m.len();
            m[i] ^= flip.1;
            let _ = lz4_block_decode(&m, &mut out);
            let _ = lz4_block_decode(&m[..i], &mut out);
        }

        #[test]
        fn corrupt_chunks_error_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..300),
                                            es in 1usize..9) {
            let _ = lz4_h5_decode(&bytes);
            let _ = bshuf_lz4_decode(&bytes, es);
        }
    }

    /// A simple greedy LZF compressor (test reference): literal runs of ≤ 32 bytes and
    /// back-references of 3..=264 bytes up to 8192 bytes back, the longest match found among
    /// the previous positions with the same 3-byte prefix (brute force over a window).
    fn lzf_reference_encode(data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut lit: Vec<u8> = Vec::new();
        let flush = |lit: &mut Vec<u8>, out: &mut Vec<u8>| {
            for run in lit.chunks(32) {
                out.push((run.len() - 1) as u8);
                out.extend_from_slice(run);
            }
            lit.clear();
        };
        let mut i = 0;
        while i < data.len() {
            let (mut best_len, mut best_back) = (0usize, 0usize);
            for back in 1..=i.min(8192) {
                let s = i - back;
                let mut l = 0;
                while l < 264 && i + l < data.len() && data[s + l] == data[i + l] {
                    l += 1;
                }
                if l > best_len {
                    (best_len, best_back) = (l, back);
                }
            }
            if best_len >= 3 {
                flush(&mut lit, &mut out);
                let l = best_len - 2;
                let off = best_back - 1;
                if l < 7 {
                    out.push(((l << 5) | (off >> 8)) as u8);
                } else {
                    out.push(((7 << 5) | (off >> 8)) as u8);
                    out.push((l - 7) as u8);
                }
                out.push((off & 255) as u8);
                i += best_len;
            } else {
                lit.push(data[i]);
                i += 1;
            }
        }
        flush(&mut lit, &mut out);
        out
    }

    proptest! {
        /// LZF: what the reference compressor writes decodes back exactly (runs, long
        /// overlapping matches, literals), and mutated or truncated streams give an error or
        /// some output within the bound, never a panic.
        #[test]
        fn lzf_decoder_matches_reference(runs in prop::collection::vec((0u8..5, 1usize..400), 1..30),
                                         flip in any::<(u16, u8)>()) {
            let mut data = Vec::new();
            for (k, (v, n)) in runs.into_iter().enumerate() {
                for i in 0..n {
                    data.push(match v { 3 => (i % 7) as u8, 4 => (i * 31 + k) as u8, _ => v });
                }
            }
            let c = lzf_reference_encode(&data);
            prop_assert_eq!(lzf_decode(&c, data.len()).unwrap(), data.clone());
            // One byte short of the output: refused.
            prop_assert!(lzf_decode(&c, data.len() - 1).is_err());
            let mut m = c.clone();
            let i = flip.0 as usize % m.len();
            m[i] ^= flip.1;
            if let Ok(v) = lzf_decode(&m, data.len()) { prop_assert!(v.len() <= data.len()); }
            let _ = lzf_decode(&m[..i], data.len());
        }

        #[test]
        fn lzf_random_input_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
            let _ = lzf_decode(&bytes, 4096);
        }
    }

    #[test]
    fn lzf_known_stream() {
        // "abcabcabcX": 3 literals, a match of 6 bytes 3 back (overlapping), 1 literal. The
        // match byte holds length − 2 = 4 in its top 3 bits and offset bits 8–12 (0).
        let c = [2, b'a', b'b', b'c', 4 << 5, 2, 0, b'X'];
        assert_eq!(lzf_decode(&c, 100).unwrap(), b"abcabcabcX");
        assert!(
            lzf_decode(&[(1 << 5), 0], 100).is_err(),
            "match before the start"
        );
    }

    #[test]
    fn absurd_declared_size_is_refused_before_allocating() {
        let mut c = lz4_h5_encode(&[0u8; 100], 0);
        c[..8].copy_from_slice(&(1u64 << 50).to_be_bytes());
        let e = lz4_h5_decode(&c).unwrap_err();
        assert!(e.contains("declares"), "{e}");
        let mut c = bshuf_lz4_encode(&[0u8; 64], 2, 0);
        c[..8].copy_from_slice(&(u64::MAX - 1).to_be_bytes());
        assert!(bshuf_lz4_decode(&c, 2).is_err());
    }
}
