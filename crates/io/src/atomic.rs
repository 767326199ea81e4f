//! Atomic outputs: every file the project writes goes through [`AtomicOutput`].
//!
//! Input: a target path, the paths read by this run, and the `force` flag. Output: the finished
//! file at the target path, or nothing. The content is written to a hidden temp file in the
//! target's own directory (same file system, so the final `rename` is atomic), and renamed over
//! the target only on [`AtomicOutput::commit`]; a dropped, uncommitted output removes its temp
//! file, so a crash or an error never leaves a partial file behind.
//!
//! Two refusals protect the user's data:
//! - the target is one of the inputs (compared after canonicalisation and, when it exists, by
//!   device + inode, so symlinks, `..` and hard links are caught), whatever `force` says;
//! - the target exists and `force` is false.
//!
//! Inputs are the paths given by the caller plus every path a reader of this crate opened in
//! this process (readers call [`note_input`]), so a writer cannot clobber a file the run is
//! still reading even when the caller forgot to list it.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use xpcs_core::error::{Error, Result};

static INPUTS: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

/// Records `path` as an input of this process: no [`AtomicOutput`] will replace it.
///
/// Every reader in this crate calls this; call it yourself for inputs read by other means.
pub fn note_input(path: &Path) {
    let p = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let mut g = INPUTS.lock().unwrap_or_else(|e| e.into_inner());
    if !g.contains(&p) {
        g.push(p);
    }
}

/// The inputs recorded so far by [`note_input`] (canonical paths).
pub fn noted_inputs() -> Vec<PathBuf> {
    INPUTS.lock().unwrap_or_else(|e| e.into_inner()).clone()
}

/// Canonical form of a path that may not exist yet: canonical parent + file name.
fn canonical_target(path: &Path) -> Result<PathBuf> {
    if let Ok(p) = std::fs::canonicalize(path) {
        return Ok(p);
    }
    let name = path.file_name().ok_or_else(|| {
        Error::invalid(path.display().to_string(), "output path has no file name")
    })?;
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let parent = std::fs::canonicalize(parent).map_err(|e| Error::io(parent, e))?;
    Ok(parent.join(name))
}

#[cfg(unix)]
fn same_file(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(x), Ok(y)) => x.dev() == y.dev() && x.ino() == y.ino(),
        _ => false,
    }
}

#[cfg(not(unix))]
fn same_file(_a: &Path, _b: &Path) -> bool {
    false
}

/// Checks that `path` may be written: not an input (explicit or noted), and absent unless
/// `force`. Returns the canonical target.
pub fn check_output(path: &Path, inputs: &[&Path], force: bool) -> Result<PathBuf> {
    let target = canonical_target(path)?;
    let mut all: Vec<PathBuf> = inputs
        .iter()
        .map(|p| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf()))
        .collect();
    all.extend(noted_inputs());
    for inp in &all {
        if *inp == target || same_file(inp, &target) {
            return Err(Error::Overwrite {
                path: path.to_path_buf(),
                reason: format!(
                    "is an input of this run ({}); refusing to overwrite it",
                    inp.display()
                ),
            });
        }
    }
    if target.exists() && !force {
        return Err(Error::Overwrite {
            path: path.to_path_buf(),
            reason: "exists; pass --force to replace it".into(),
        });
    }
    if target.is_dir() {
        return Err(Error::Overwrite {
            path: path.to_path_buf(),
            reason: "is a directory".into(),
        });
    }
    Ok(target)
}

/// A file being written: content goes to [`AtomicOutput::tmp_path`], then
/// [`AtomicOutput::commit`] renames it onto the target. Dropping without commit deletes it.
#[derive(Debug)]
pub struct AtomicOutput {
    target: PathBuf,
    tmp: Option<tempfile::TempPath>,
}

impl AtomicOutput {
    /// Checks the target (see [`check_output`]) and creates an empty temp file beside it.
    pub fn begin(path: &Path, inputs: &[&Path], force: bool) -> Result<Self> {
        let target = check_output(path, inputs, force)?;
        let dir = target.parent().unwrap_or(Path::new("."));
        let stem = target
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let tmp = tempfile::Builder::new()
            .prefix(&format!(".{stem}."))
            .suffix(".tmp")
            .tempfile_in(dir)
            .map_err(|e| Error::io(dir, e))?
            .into_temp_path();
        Ok(AtomicOutput {
            target,
            tmp: Some(tmp),
        })
    }

    /// The temp file to write (exists, empty; may be truncated or re-created by the writer).
    pub fn tmp_path(&self) -> &Path {
        self.tmp.as_deref().expect("temp path present until commit")
    }

    /// The final (canonical) target path.
    pub fn target(&self) -> &Path {
        &self.target
    }

    /// Renames the temp file onto the target.
    pub fn commit(mut self) -> Result<PathBuf> {
        let tmp = self.tmp.take().expect("commit once");
        // Temp files are created 0600; an output is an ordinary file (0644).
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o644))
                .map_err(|e| Error::io(&self.target, e))?;
        }
        tmp.persist(&self.target)
            .map_err(|e| Error::io(&self.target, e.error))?;
        Ok(self.target.clone())
    }
}

/// Writes a file atomically through a buffered writer: `fill` writes the content; on success
/// the file appears at `path` complete, on error nothing appears.
pub fn write_atomic(
    path: &Path,
    inputs: &[&Path],
    force: bool,
    fill: impl FnOnce(&mut BufWriter<File>) -> Result<()>,
) -> Result<PathBuf> {
    write_staged(path, inputs, force, fill)?.commit()
}

/// [`write_atomic`] without the final rename: the complete content waits in the temp file
/// until [`AtomicOutput::commit`]. Multi-file outputs (a Rigaku module set, an Eiger master
/// and its data files) stage every file, then commit them together, so an error in any file
/// leaves none of them.
pub fn write_staged(
    path: &Path,
    inputs: &[&Path],
    force: bool,
    fill: impl FnOnce(&mut BufWriter<File>) -> Result<()>,
) -> Result<AtomicOutput> {
    let out = AtomicOutput::begin(path, inputs, force)?;
    let f = File::create(out.tmp_path()).map_err(|e| Error::io(out.tmp_path(), e))?;
    let mut w = BufWriter::new(f);
    fill(&mut w)?;
    let f = w
        .into_inner()
        .map_err(|e| Error::io(path, e.into_error()))?;
    f.sync_all().map_err(|e| Error::io(path, e))?;
    drop(f);
    Ok(out)
}

/// [`write_atomic`] for a byte string (JSON summaries, small text files).
pub fn write_bytes_atomic(
    path: &Path,
    inputs: &[&Path],
    force: bool,
    bytes: &[u8],
) -> Result<PathBuf> {
    write_atomic(path, inputs, force, |w| {
        w.write_all(bytes).map_err(|e| Error::io(path, e))
    })
}

/// Writes `value` as pretty JSON (a run summary), atomically.
pub fn write_json<T: serde::Serialize>(
    path: &Path,
    value: &T,
    inputs: &[&Path],
    force: bool,
) -> Result<PathBuf> {
    let mut bytes = serde_json::to_vec_pretty(value)
        .map_err(|e| Error::invalid(path.display().to_string(), format!("JSON encoding: {e}")))?;
    bytes.push(b'\n');
    write_bytes_atomic(path, inputs, force, &bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    #[test]
    fn outputs_are_ordinary_0644_files() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("out.json");
        write_bytes_atomic(&p, &[], false, b"{}").unwrap();
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o644);
    }

    #[test]
    fn refuses_inputs_and_existing() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.txt");
        std::fs::write(&a, b"input").unwrap();
        // Explicit input, reached through `..`: refused even with force.
        let sub = dir.path().join("sub");
        std::fs::create_dir(&sub).unwrap();
        let via = sub.join("..").join("a.txt");
        let e = write_bytes_atomic(&via, &[&a], true, b"x").unwrap_err();
        assert!(matches!(e, Error::Overwrite { .. }), "{e}");
        assert_eq!(std::fs::read(&a).unwrap(), b"input");
        // Hard link to an input: refused.
        let h = dir.path().join("h.txt");
        std::fs::hard_link(&a, &h).unwrap();
        assert!(write_bytes_atomic(&h, &[&a], true, b"x").is_err());
        // Existing non-input: refused without force, replaced with force.
        let b = dir.path().join("b.txt");
        std::fs::write(&b, b"old").unwrap();
        assert!(write_bytes_atomic(&b, &[&a], false, b"new").is_err());
        write_bytes_atomic(&b, &[&a], true, b"new").unwrap();
        assert_eq!(std::fs::read(&b).unwrap(), b"new");
        // A noted input is protected without being listed.
        let n = dir.path().join("noted.txt");
        std::fs::write(&n, b"keep").unwrap();
        note_input(&n);
        assert!(write_bytes_atomic(&n, &[], true, b"x").is_err());
    }

    #[test]
    fn json_summary() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("summary.json");
        write_json(
            &p,
            &serde_json::json!({"tau_s": 1.5, "bins": [1, 2]}),
            &[],
            false,
        )
        .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
        assert_eq!(v["tau_s"], 1.5);
        assert!(write_json(&p, &1, &[], false).is_err());
    }

    #[test]
    fn failed_write_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let c = dir.path().join("c.bin");
        let r = write_atomic(&c, &[], false, |w| {
            w.write_all(b"partial").unwrap();
            Err(Error::invalid("test", "fail midway"))
        });
        assert!(r.is_err());
        assert!(!c.exists());
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert!(left.is_empty(), "temp file left behind: {left:?}");
    }
}
