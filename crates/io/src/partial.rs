//! Partial files: the additive correlation sums of one detector shard, to be merged later.
//!
//! Input/output: a JSON header (the scan identity, written and compared by the caller) and
//! named [`CorrelatorSums`] (the state of an [`xpcs_core::correlate::EventCorrelator`] that
//! saw some of the detector's pixels). Every number is an exact integer (the two-time
//! numerators are integers held in f64), so adding the partials of disjoint shards gives the
//! sums of the whole detector bit for bit.
//!
//! Layout (all integers little-endian; documented in `docs/formats.md`):
//! ```text
//! 0   8 bytes  magic "XPCSPART"
//! 8   u32      format version (1)
//! 12  u64      body length (bytes, uncompressed)
//! 20  u64      compressed length (bytes)
//! 28  32 bytes SHA-256 of the uncompressed body
//! 60  ...      the body, one LZ4 block
//! body:
//!   u64 + UTF-8  header JSON
//!   u32          number of correlators, then per correlator:
//!     u64 + UTF-8  name
//!     u64 ×3       cells C, lag entries L, frames T
//!     u128 × C·L·9 moments (per cell, per lag: g, p, f, gg, pp, ff, gp, gf, pf)
//!     u64 × C·T    photons per cell per frame
//!     u64 ×2       first pixel, number of pixels P; then u64 × P photons per pixel
//!     u64 ×2       two-time bins B (0 = none) and side n; then f64 × B·n·n numerators
//! ```

use crate::atomic::{note_input, write_bytes_atomic};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use xpcs_core::correlate::{EventCorrelator, Moments};
use xpcs_core::error::{Error, Result};

const MAGIC: &[u8; 8] = b"XPCSPART";
const VERSION: u32 = 1;
const PREAMBLE: usize = 60;

/// The additive state of one correlator over a set of pixels (see the module docs).
#[derive(Debug, Clone, PartialEq)]
pub struct CorrelatorSums {
    /// Name (e.g. "bins", "region").
    pub name: String,
    /// Moments per cell per lag entry.
    pub moments: Vec<Vec<Moments>>,
    /// Photons per cell per raw frame.
    pub series: Vec<Vec<u64>>,
    /// First pixel (row-major) of `pixel_totals`.
    pub first_pixel: usize,
    /// Photons per pixel from `first_pixel` on.
    pub pixel_totals: Vec<u64>,
    /// Upper-triangle two-time numerators (n × n row-major per bin), when requested.
    pub two_time: Option<Vec<Vec<f64>>>,
}

impl CorrelatorSums {
    /// The state of `c` with the photon totals of the pixels `pixels` only (the shard's).
    pub fn of(name: &str, c: &EventCorrelator, pixels: std::ops::Range<usize>) -> Self {
        let s = c.sums();
        CorrelatorSums {
            name: name.into(),
            moments: s.moments.clone(),
            series: s.series.clone(),
            first_pixel: pixels.start,
            pixel_totals: c.pixel_totals()[pixels].to_vec(),
            two_time: c.two_time_numerators().map(<[Vec<f64>]>::to_vec),
        }
    }

    /// Adds these sums into `c` (a correlator of the same partition, schedule and request).
    pub fn add_into(&self, c: &mut EventCorrelator) -> Result<()> {
        c.add_sums(
            &self.moments,
            &self.series,
            self.first_pixel,
            &self.pixel_totals,
            self.two_time.as_deref(),
        )
    }
}

fn put_u64(b: &mut Vec<u8>, x: u64) {
    b.extend_from_slice(&x.to_le_bytes());
}

fn put_str(b: &mut Vec<u8>, s: &str) {
    put_u64(b, s.len() as u64);
    b.extend_from_slice(s.as_bytes());
}

/// Writes a partial file atomically (temp file + rename; refuses to overwrite an input of
/// this process or an existing file without `force`).
pub fn write_partial(
    path: &Path,
    header_json: &str,
    correlators: &[CorrelatorSums],
    force: bool,
) -> Result<PathBuf> {
    let mut b = Vec::new();
    put_str(&mut b, header_json);
    b.extend_from_slice(&(correlators.len() as u32).to_le_bytes());
    for c in correlators {
        put_str(&mut b, &c.name);
        let nc = c.moments.len();
        let nl = c.moments.first().map_or(0, Vec::len);
        let nt = c.series.first().map_or(0, Vec::len);
        if c.series.len() != nc
            || c.moments.iter().any(|m| m.len() != nl)
            || c.series.iter().any(|s| s.len() != nt)
        {
            return Err(Error::invalid(
                path.display().to_string(),
                format!("correlator {}: ragged moments or series", c.name),
            ));
        }
        for x in [nc, nl, nt] {
            put_u64(&mut b, x as u64);
        }
        for m in c.moments.iter().flatten() {
            for v in [m.g, m.p, m.f, m.gg, m.pp, m.ff, m.gp, m.gf, m.pf] {
                b.extend_from_slice(&v.to_le_bytes());
            }
        }
        for x in c.series.iter().flatten() {
            put_u64(&mut b, *x);
        }
        put_u64(&mut b, c.first_pixel as u64);
        put_u64(&mut b, c.pixel_totals.len() as u64);
        for &x in &c.pixel_totals {
            put_u64(&mut b, x);
        }
        match &c.two_time {
            None => {
                put_u64(&mut b, 0);
                put_u64(&mut b, 0);
            }
            Some(num) => {
                let nn = num.first().map_or(0, Vec::len);
                let side = (nn as f64).sqrt().round() as usize;
                if side * side != nn || num.iter().any(|m| m.len() != nn) {
                    return Err(Error::invalid(
                        path.display().to_string(),
                        format!("correlator {}: two-time numerators not n × n", c.name),
                    ));
                }
                put_u64(&mut b, num.len() as u64);
                put_u64(&mut b, side as u64);
                for x in num.iter().flatten() {
                    b.extend_from_slice(&x.to_le_bytes());
                }
            }
        }
    }
    let packed = lz4_flex::block::compress(&b);
    let mut out = Vec::with_capacity(PREAMBLE + packed.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    put_u64(&mut out, b.len() as u64);
    put_u64(&mut out, packed.len() as u64);
    out.extend_from_slice(&Sha256::digest(&b));
    out.extend_from_slice(&packed);
    write_bytes_atomic(path, &[], force, &out)
}

/// SHA-256 of `bytes` as lowercase hex (the label-map hash of a partial file's header).
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A cursor over the body that names the file in every error.
struct Reader<'a> {
    b: &'a [u8],
    at: usize,
    origin: String,
}

impl Reader<'_> {
    fn take(&mut self, n: usize, what: &str) -> Result<&[u8]> {
        if self.b.len() - self.at < n {
            return Err(Error::invalid(
                self.origin.clone(),
                format!("truncated at {what} (byte {})", self.at),
            ));
        }
        let s = &self.b[self.at..self.at + n];
        self.at += n;
        Ok(s)
    }
    fn u64(&mut self, what: &str) -> Result<u64> {
        Ok(u64::from_le_bytes(
            self.take(8, what)?.try_into().expect("8 bytes"),
        ))
    }
    /// A count whose `elem`-byte elements must fit in the rest of the body.
    fn count(&mut self, what: &str, elem: usize) -> Result<usize> {
        let n = self.u64(what)?;
        let left = (self.b.len() - self.at) as u64;
        if n.checked_mul(elem.max(1) as u64).is_none_or(|x| x > left) {
            return Err(Error::out_of_range(
                self.origin.clone(),
                what,
                n,
                format!("≤ {} (the bytes left)", left / elem.max(1) as u64),
            ));
        }
        Ok(n as usize)
    }
    fn string(&mut self, what: &str) -> Result<String> {
        let n = self.count(what, 1)?;
        let s = self.take(n, what)?;
        String::from_utf8(s.to_vec())
            .map_err(|_| Error::invalid(self.origin.clone(), format!("{what}: not UTF-8")))
    }
}

/// Reads a partial file: its header JSON and correlator sums. Refuses (one error naming the
/// file) a wrong magic or version, a truncated or corrupted file (checksum) and sizes that do
/// not fit the file.
pub fn read_partial(path: &Path) -> Result<(String, Vec<CorrelatorSums>)> {
    let origin = path.display().to_string();
    let raw = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    note_input(path);
    if raw.len() < PREAMBLE || &raw[..8] != MAGIC {
        return Err(Error::invalid(
            origin,
            "not an xpcs-twin partial file (magic)",
        ));
    }
    let version = u32::from_le_bytes(raw[8..12].try_into().expect("4 bytes"));
    if version != VERSION {
        return Err(Error::out_of_range(
            origin,
            "format version",
            version,
            VERSION.to_string(),
        ));
    }
    let len = u64::from_le_bytes(raw[12..20].try_into().expect("8 bytes"));
    let packed_len = u64::from_le_bytes(raw[20..28].try_into().expect("8 bytes"));
    if packed_len != (raw.len() - PREAMBLE) as u64 || len > 255 * packed_len + 16 {
        return Err(Error::invalid(
            origin,
            "truncated or damaged (lengths do not match the file size)",
        ));
    }
    let body = lz4_flex::block::decompress(&raw[PREAMBLE..], len as usize)
        .map_err(|e| Error::invalid(origin.clone(), format!("damaged body: {e}")))?;
    if Sha256::digest(&body).as_slice() != &raw[28..60] {
        return Err(Error::invalid(origin, "damaged body (checksum mismatch)"));
    }
    let mut r = Reader {
        b: &body,
        at: 0,
        origin,
    };
    let header = r.string("header")?;
    let n = u32::from_le_bytes(r.take(4, "correlator count")?.try_into().expect("4"));
    let mut out = Vec::new();
    for _ in 0..n {
        let name = r.string("correlator name")?;
        let nc = r.count("cells", 0)?;
        let nl = r.count("lag entries", 0)?;
        let nt = r.count("frames", 0)?;
        let need = nc.checked_mul(nl).and_then(|x| x.checked_mul(144));
        if need.is_none_or(|x| x > body.len()) {
            return Err(Error::invalid(r.origin, "moments larger than the file"));
        }
        let mut moments = Vec::with_capacity(nc);
        for _ in 0..nc {
            let mut row = Vec::with_capacity(nl);
            for _ in 0..nl {
                let s = r.take(144, "moments")?;
                let v =
                    |i: usize| u128::from_le_bytes(s[16 * i..16 * i + 16].try_into().expect("16"));
                row.push(Moments {
                    g: v(0),
                    p: v(1),
                    f: v(2),
                    gg: v(3),
                    pp: v(4),
                    ff: v(5),
                    gp: v(6),
                    gf: v(7),
                    pf: v(8),
                });
            }
            moments.push(row);
        }
        if nc
            .checked_mul(nt)
            .and_then(|x| x.checked_mul(8))
            .is_none_or(|x| x > body.len())
        {
            return Err(Error::invalid(r.origin, "series larger than the file"));
        }
        let mut series = Vec::with_capacity(nc);
        for _ in 0..nc {
            let s = r.take(8 * nt, "series")?;
            series.push(
                s.chunks_exact(8)
                    .map(|c| u64::from_le_bytes(c.try_into().expect("8")))
                    .collect(),
            );
        }
        let first_pixel = r.u64("first pixel")? as usize;
        let np = r.count("pixels", 8)?;
        let pixel_totals = r
            .take(8 * np, "pixel totals")?
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().expect("8")))
            .collect();
        let nb = r.count("two-time bins", 0)?;
        let side = r.count("two-time side", 0)?;
        let two_time = if nb == 0 {
            None
        } else {
            let nn = side
                .checked_mul(side)
                .filter(|x| x.checked_mul(8 * nb).is_some_and(|y| y <= body.len()));
            let Some(nn) = nn else {
                return Err(Error::invalid(
                    r.origin,
                    "two-time maps larger than the file",
                ));
            };
            let mut v = Vec::with_capacity(nb);
            for _ in 0..nb {
                v.push(
                    r.take(8 * nn, "two-time numerators")?
                        .chunks_exact(8)
                        .map(|c| f64::from_le_bytes(c.try_into().expect("8")))
                        .collect(),
                );
            }
            Some(v)
        };
        out.push(CorrelatorSums {
            name,
            moments,
            series,
            first_pixel,
            pixel_totals,
            two_time,
        });
    }
    if r.at != body.len() {
        return Err(Error::invalid(
            r.origin,
            "trailing bytes after the last correlator",
        ));
    }
    Ok((header, out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use xpcs_core::correlate::LagSchedule;
    use xpcs_core::data::{EventList, FrameStack, QPartition};

    /// Write → read gives the same sums; adding them into an empty correlator gives the
    /// original state; a damaged or truncated file is refused with an error naming it.
    #[test]
    fn round_trip_and_damage() {
        let data: Vec<u16> = (0..20 * 2 * 3)
            .map(|i| ((i * 7 + i / 5) % 4) as u16)
            .collect();
        let stack = FrameStack::from_u16(20, 2, 3, data).unwrap();
        let part = QPartition::from_labels(2, 3, vec![1, 1, 2, 0, 2, 1], "t").unwrap();
        let sched = LagSchedule::multi_tau(20, 4).unwrap();
        let ev = EventList::from_stack(&stack, 0.1).unwrap();
        let new = || {
            EventCorrelator::new(&part, &sched, 20)
                .with_two_time(&part, &[], 2)
                .unwrap()
        };
        let mut c = new();
        c.push_events(&ev).unwrap();
        let sums = CorrelatorSums::of("bins", &c, 0..6);
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("part.bin");
        write_partial(&p, "{\"scan\": 1}", std::slice::from_ref(&sums), false).unwrap();
        let (h, back) = read_partial(&p).unwrap();
        assert_eq!(h, "{\"scan\": 1}");
        assert_eq!(back, vec![sums]);
        let mut d = new();
        back[0].add_into(&mut d).unwrap();
        assert_eq!(d.sums(), c.sums());
        assert_eq!(d.two_time(), c.two_time());
        // Damage: a flipped byte in the body, and a truncated file.
        let mut raw = std::fs::read(&p).unwrap();
        let last = raw.len() - 1;
        raw[last] ^= 0x55;
        let q = dir.path().join("bad.bin");
        std::fs::write(&q, &raw).unwrap();
        let e = read_partial(&q).unwrap_err().to_string();
        assert!(e.contains("bad.bin"), "{e}");
        std::fs::write(&q, &raw[..raw.len() / 2]).unwrap();
        let e = read_partial(&q).unwrap_err().to_string();
        assert!(e.contains("bad.bin") && e.contains("truncated"), "{e}");
        std::fs::write(&q, b"not a partial").unwrap();
        assert!(read_partial(&q).unwrap_err().to_string().contains("magic"));
    }
}
