//! Atomic outputs: every file the project writes goes through [`AtomicOutput`].
//!
//! Input: a target path, the paths read by this run, and the `force` flag. Output: the finished
//! file at the target path, or nothing. The content is written to a hidden temp file in the
//! target's own directory (same file system, so the final `rename` is atomic), and renamed over
//! the target only on [`AtomicOutput::commit`]; a dropped, uncommitted output removes its temp
//! file, so an error never leaves a partial file behind.
//!
//! Refusals that protect the user's data and the system:
//! - the target is one of the inputs (compared after canonicalisation and, when it exists, by
//!   device + inode, so symlinks, `..` and hard links are caught), whatever `force` says;
//! - the target exists and is not a regular file (a directory, a device such as `/dev/null`,
//!   a FIFO or a socket): renaming over it would replace it, whatever `force` says;
//! - the target exists and `force` is false;
//! - with [`check_outputs`], two outputs of one run are the same file (the second would
//!   silently replace the first).
//!
//! Inputs are the paths given by the caller plus every path a reader of this crate opened in
//! this process (readers call [`note_input`]), so a writer cannot clobber a file the run is
//! still reading even when the caller forgot to list it.
//!
//! Temp files are named `.xpcs-twin-<pid>.<start>-<random>.<file name>`: recognisable, owned
//! by a process (its pid and its start time in clock ticks after boot, so a recycled pid does
//! not keep a dead run's file alive), and ending in the target's own name (writers that infer the format from the
//! extension, such as the PNG encoder, see the right one). Two mechanisms remove the temp
//! files of a run that did not finish:
//! - a process-wide registry holds the temp paths being written; [`remove_temp_files_on_signals`]
//!   (installed once by the command line) deletes them on SIGINT, SIGTERM or SIGHUP and exits
//!   with 128 + the signal number (130, 143, 129);
//! - [`AtomicOutput::begin`] removes, once per directory and process, the temp files of
//!   processes that no longer run (a `kill -9`, a power cut).

use std::ffi::CString;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicPtr, Ordering};
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

/// Canonical form of a path that may not exist yet: the canonical form of its deepest
/// existing ancestor, then the remaining components (`..` applied lexically). A missing
/// parent directory is therefore no error here (the caller may create it later).
/// A dangling symlink counts as the path it points to (a writer renaming over the link's
/// target once it exists would write there).
pub fn canonical_target(path: &Path) -> Result<PathBuf> {
    if let Ok(p) = std::fs::canonicalize(path) {
        return Ok(p);
    }
    let mut path = path.to_path_buf();
    for _ in 0..40 {
        match std::fs::read_link(&path) {
            Ok(to) => {
                let base = path.parent().unwrap_or(Path::new("."));
                path = base.join(to);
            }
            Err(_) => break,
        }
    }
    let path = path.as_path();
    if path.file_name().is_none() {
        return Err(Error::invalid(
            path.display().to_string(),
            "output path has no file name",
        ));
    }
    let abs = std::path::absolute(path).map_err(|e| Error::io(path, e))?;
    let mut base = abs.as_path();
    let mut rest: Vec<Component> = Vec::new();
    let canon = loop {
        if let Ok(c) = std::fs::canonicalize(base) {
            break c;
        }
        match (base.parent(), base.components().next_back()) {
            (Some(parent), Some(last)) => {
                rest.push(last);
                base = parent;
            }
            _ => break base.to_path_buf(),
        }
    };
    let mut out = canon;
    for c in rest.into_iter().rev() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    Ok(out)
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

/// What an existing target is when it is not a regular file (None: absent or regular).
fn special_kind(target: &Path) -> Option<&'static str> {
    let m = std::fs::metadata(target).ok()?;
    let t = m.file_type();
    if t.is_file() {
        return None;
    }
    if t.is_dir() {
        return Some("a directory");
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if t.is_char_device() || t.is_block_device() {
            return Some("a device");
        }
        if t.is_fifo() {
            return Some("a FIFO (named pipe)");
        }
        if t.is_socket() {
            return Some("a socket");
        }
    }
    Some("not a regular file")
}

/// Checks that `path` may be written: not an input (explicit or noted), not an existing
/// directory, device, FIFO or socket, and absent unless `force`. Returns the canonical target.
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
    if let Some(kind) = special_kind(&target) {
        return Err(Error::Overwrite {
            path: path.to_path_buf(),
            reason: format!(
                "is {kind}; an output must be a regular file or not exist (refused even with \
                 --force)"
            ),
        });
    }
    if target.exists() && !force {
        return Err(Error::Overwrite {
            path: path.to_path_buf(),
            reason: "exists; pass --force to replace it".into(),
        });
    }
    Ok(target)
}

/// Checks every output of a run at once, before any work: each passes [`check_output`], and
/// no two are the same file (same canonical path, or same device + inode through a hard
/// link). Returns the canonical targets in order.
pub fn check_outputs(outputs: &[&Path], inputs: &[&Path], force: bool) -> Result<Vec<PathBuf>> {
    let mut targets: Vec<PathBuf> = Vec::with_capacity(outputs.len());
    for (i, o) in outputs.iter().enumerate() {
        let t = check_output(o, inputs, force)?;
        if let Some(j) = targets
            .iter()
            .position(|prev| *prev == t || same_file(prev, &t))
        {
            return Err(Error::Overwrite {
                path: o.to_path_buf(),
                reason: format!(
                    "is also another output of this run ({}); every output must be a different \
                     file",
                    outputs[j].display()
                ),
            });
        }
        debug_assert_eq!(i, targets.len());
        targets.push(t);
    }
    Ok(targets)
}

// ---------------------------------------------------------------------------------------------
// Temp files: naming, the in-flight registry, signal clean-up, stale clean-up.

/// Start of every temp file name; the owner (`<pid>.<start>`, or `<pid>` where the start time
/// is unknown) follows, then `-`.
const TMP_PREFIX: &str = ".xpcs-twin-";

/// Slots of the in-flight registry (more concurrent outputs are still written; they are only
/// not removed on a signal, and a later run removes them as stale).
const SLOTS: usize = 256;

/// Temp paths being written, as leaked C strings: the signal handler reads them without
/// locking or allocating (async-signal-safe), and whoever swaps a pointer out owns it.
static IN_FLIGHT: [AtomicPtr<libc::c_char>; SLOTS] =
    [const { AtomicPtr::new(std::ptr::null_mut()) }; SLOTS];

/// Directories already swept for stale temp files by this process.
static SWEPT: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

/// Records a temp path as in flight; returns its slot (None when the registry is full or the
/// path holds a NUL byte).
fn register_in_flight(path: &Path) -> Option<usize> {
    use std::os::unix::ffi::OsStrExt;
    let c = CString::new(path.as_os_str().as_bytes()).ok()?.into_raw();
    for (i, slot) in IN_FLIGHT.iter().enumerate() {
        if slot
            .compare_exchange(std::ptr::null_mut(), c, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
        {
            return Some(i);
        }
    }
    // SAFETY: `c` came from `CString::into_raw` above and was not shared.
    drop(unsafe { CString::from_raw(c) });
    None
}

/// Removes a slot's entry (the temp file was renamed or deleted).
fn unregister_in_flight(slot: usize) {
    let p = IN_FLIGHT[slot].swap(std::ptr::null_mut(), Ordering::SeqCst);
    if !p.is_null() {
        // SAFETY: the registry only holds pointers from `CString::into_raw`, and the swap
        // made this thread their only owner (the signal handler swaps too, and never frees).
        drop(unsafe { CString::from_raw(p) });
    }
}

/// The temp paths in flight now (for tests and diagnostics).
pub fn in_flight_temp_files() -> Vec<PathBuf> {
    use std::os::unix::ffi::OsStrExt;
    IN_FLIGHT
        .iter()
        .filter_map(|s| {
            let p = s.load(Ordering::SeqCst);
            // SAFETY: a non-null entry is a live C string until swapped out; this read races
            // only with unregistering, which the tests that call this do not do concurrently.
            (!p.is_null()).then(|| {
                let b = unsafe { std::ffi::CStr::from_ptr(p) }.to_bytes();
                PathBuf::from(std::ffi::OsStr::from_bytes(b))
            })
        })
        .collect()
}

extern "C" fn on_termination_signal(sig: libc::c_int) {
    for slot in &IN_FLIGHT {
        // Swap, never free: the pointer stays valid for the unlink (the process ends here).
        let p = slot.swap(std::ptr::null_mut(), Ordering::SeqCst);
        if !p.is_null() {
            // SAFETY: `p` is a NUL-terminated path; unlink is async-signal-safe.
            unsafe { libc::unlink(p) };
        }
    }
    // SAFETY: _exit is async-signal-safe and skips atexit handlers (which could flush an
    // HDF5 file another thread is writing).
    unsafe { libc::_exit(128 + sig) };
}

/// Installs, once per process, handlers for SIGINT, SIGTERM and SIGHUP that delete every temp
/// file in flight and exit with status 128 + the signal (130, 143, 129). For programs (the
/// command line); a library embedded elsewhere (e.g. in Python) keeps its host's handlers.
pub fn remove_temp_files_on_signals() -> Result<()> {
    static ONCE: std::sync::Once = std::sync::Once::new();
    let mut err = None;
    ONCE.call_once(|| {
        for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
            // SAFETY: a zeroed sigaction with a valid handler and an empty mask is a valid
            // argument; the handler only calls async-signal-safe functions.
            let rc = unsafe {
                let mut sa: libc::sigaction = std::mem::zeroed();
                sa.sa_sigaction = on_termination_signal as extern "C" fn(libc::c_int) as usize;
                libc::sigemptyset(&mut sa.sa_mask);
                libc::sigaction(sig, &sa, std::ptr::null_mut())
            };
            if rc != 0 {
                err = Some(Error::io(
                    Path::new("signal handler"),
                    std::io::Error::last_os_error(),
                ));
            }
        }
    });
    err.map_or(Ok(()), Err)
}

/// The owner (pid and, when recorded, start time) a temp file name of ours carries, if it is
/// one.
fn temp_owner(name: &str) -> Option<(u32, Option<u64>)> {
    let rest = name.strip_prefix(TMP_PREFIX)?;
    let (owner, _) = rest.split_once('-')?;
    match owner.split_once('.') {
        Some((pid, start)) => Some((pid.parse().ok()?, Some(start.parse().ok()?))),
        None => Some((owner.parse().ok()?, None)),
    }
}

/// Start time of process `pid` in clock ticks after boot (field 22 of `/proc/<pid>/stat`);
/// None where there is no such file (another OS, or the process is gone).
fn process_start_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces: count after it.
    let after = &stat[stat.rfind(')')? + 1..];
    after.split_whitespace().nth(19)?.parse().ok()
}

/// This process's owner tag for temp file names.
fn owner_tag() -> String {
    let me = std::process::id();
    match process_start_ticks(me) {
        Some(t) => format!("{me}.{t}"),
        None => me.to_string(),
    }
}

/// Whether the owner of a temp file still runs: its pid exists (or belongs to another user)
/// and, when the name records a start time, the process with that pid started then (else the
/// pid was recycled and the owner is gone).
fn owner_alive(pid: u32, start: Option<u64>) -> bool {
    if !pid_alive(pid) {
        return false;
    }
    match (start, process_start_ticks(pid)) {
        (Some(want), Some(now)) => want == now,
        _ => true,
    }
}

/// Whether process `pid` runs (or exists but belongs to another user).
fn pid_alive(pid: u32) -> bool {
    let Ok(p) = libc::pid_t::try_from(pid) else {
        return false;
    };
    if p <= 0 {
        return false;
    }
    // SAFETY: signal 0 only checks existence and permission.
    let rc = unsafe { libc::kill(p, 0) };
    rc == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// Removes the temp files in `dir` left by processes of ours that no longer run; returns how
/// many were removed. Files of running processes (this one included) are left alone.
pub fn remove_stale_temp_files(dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    let me = std::process::id();
    let mut removed = 0;
    for e in entries.flatten() {
        let name = e.file_name();
        let Some((pid, start)) = name.to_str().and_then(temp_owner) else {
            continue;
        };
        if pid == me || owner_alive(pid, start) {
            continue;
        }
        if e.file_type().is_ok_and(|t| t.is_file()) && std::fs::remove_file(e.path()).is_ok() {
            removed += 1;
        }
    }
    removed
}

/// [`remove_stale_temp_files`] once per directory and process.
fn sweep_once(dir: &Path) {
    let mut g = SWEPT.lock().unwrap_or_else(|e| e.into_inner());
    if g.iter().any(|d| d == dir) {
        return;
    }
    g.push(dir.to_path_buf());
    drop(g);
    remove_stale_temp_files(dir);
}

/// A file being written: content goes to [`AtomicOutput::tmp_path`], then
/// [`AtomicOutput::commit`] renames it onto the target. Dropping without commit deletes it.
#[derive(Debug)]
pub struct AtomicOutput {
    target: PathBuf,
    tmp: Option<tempfile::TempPath>,
    slot: Option<usize>,
}

impl AtomicOutput {
    /// Checks the target (see [`check_output`]) and creates an empty temp file beside it.
    pub fn begin(path: &Path, inputs: &[&Path], force: bool) -> Result<Self> {
        let target = check_output(path, inputs, force)?;
        Self::beside(target)
    }

    /// For replacing an existing regular file that this run read and updates (e.g. a results
    /// file gaining its fits): no input or `force` check, but the file must exist and be a
    /// regular file.
    pub fn replace(path: &Path) -> Result<Self> {
        let target = canonical_target(path)?;
        if !target.is_file() {
            return Err(Error::invalid(
                path.display().to_string(),
                "no regular file to update",
            ));
        }
        Self::beside(target)
    }

    fn beside(target: PathBuf) -> Result<Self> {
        let dir = target.parent().unwrap_or(Path::new(".")).to_path_buf();
        sweep_once(&dir);
        let name = target
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let tmp = tempfile::Builder::new()
            .prefix(&format!("{TMP_PREFIX}{}-", owner_tag()))
            .suffix(&format!(".{name}"))
            .tempfile_in(&dir)
            .map_err(|e| Error::io(&dir, e))?
            .into_temp_path();
        let slot = register_in_flight(&tmp);
        Ok(AtomicOutput {
            target,
            tmp: Some(tmp),
            slot,
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

impl Drop for AtomicOutput {
    fn drop(&mut self) {
        // Before the TempPath field deletes the file (if not committed).
        if let Some(s) = self.slot.take() {
            unregister_in_flight(s);
        }
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

    #[cfg(unix)]
    #[test]
    fn refuses_devices_fifos_and_directories_even_with_force() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("pipe");
        let c = CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let sub = dir.path().join("sub");
        std::fs::create_dir(&sub).unwrap();
        for (p, kind) in [
            (Path::new("/dev/null"), "device"),
            (fifo.as_path(), "FIFO"),
            (sub.as_path(), "directory"),
        ] {
            let e = write_bytes_atomic(p, &[], true, b"x").unwrap_err();
            assert!(
                matches!(e, Error::Overwrite { .. }) && e.to_string().contains(kind),
                "{}: {e}",
                p.display()
            );
        }
        // Nothing replaced: /dev/null is still a character device, the FIFO a FIFO.
        use std::os::unix::fs::FileTypeExt;
        assert!(std::fs::metadata("/dev/null")
            .unwrap()
            .file_type()
            .is_char_device());
        assert!(std::fs::metadata(&fifo).unwrap().file_type().is_fifo());
        // A symlink to a device is the device.
        let link = dir.path().join("null_link");
        std::os::unix::fs::symlink("/dev/null", &link).unwrap();
        assert!(write_bytes_atomic(&link, &[], true, b"x").is_err());
        let left: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left.len(), 3, "{left:?}");
    }

    #[cfg(unix)]
    #[test]
    fn outputs_of_one_run_must_differ() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a_results.hdf");
        let sub = dir.path().join("sub");
        std::fs::create_dir(&sub).unwrap();
        // Same name, through `..`, before either exists.
        let via = sub.join("..").join("a_results.hdf");
        let e = check_outputs(&[&a, &via], &[], false).unwrap_err();
        assert!(e.to_string().contains("another output"), "{e}");
        // Through a missing directory that `..` leaves again.
        let via_missing = dir.path().join("new").join("..").join("a_results.hdf");
        assert!(check_outputs(&[&a, &via_missing], &[], false).is_err());
        // An existing file and a symlink or hard link to it (with force).
        std::fs::write(&a, b"r").unwrap();
        let sym = dir.path().join("sym.json");
        std::os::unix::fs::symlink(&a, &sym).unwrap();
        assert!(check_outputs(&[&a, &sym], &[], true).is_err());
        let hard = dir.path().join("hard.json");
        std::fs::hard_link(&a, &hard).unwrap();
        assert!(check_outputs(&[&a, &hard], &[], true).is_err());
        // Different files pass, in a directory that does not exist yet too.
        let b = dir.path().join("npy").join("g2.npy");
        let t = check_outputs(&[&a, &b], &[], true).unwrap();
        assert_eq!(
            t[1],
            std::fs::canonicalize(dir.path())
                .unwrap()
                .join("npy/g2.npy")
        );
    }

    #[test]
    fn temp_files_are_registered_while_in_flight() {
        let dir = tempfile::tempdir().unwrap();
        let out = AtomicOutput::begin(&dir.path().join("x.bin"), &[], false).unwrap();
        let tmp = out.tmp_path().to_path_buf();
        let name = tmp.file_name().unwrap().to_str().unwrap().to_string();
        assert_eq!(
            temp_owner(&name),
            Some((std::process::id(), process_start_ticks(std::process::id()))),
            "{name}"
        );
        assert!(name.ends_with(".x.bin"), "{name}");
        assert!(in_flight_temp_files().contains(&tmp));
        drop(out);
        assert!(!tmp.exists());
        assert!(!in_flight_temp_files().contains(&tmp));
        let out = AtomicOutput::begin(&dir.path().join("y.bin"), &[], false).unwrap();
        let tmp = out.tmp_path().to_path_buf();
        out.commit().unwrap();
        assert!(!in_flight_temp_files().contains(&tmp));
        assert!(dir.path().join("y.bin").exists());
    }

    #[test]
    fn stale_temp_files_of_dead_processes_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        // A pid that no longer runs: a child that has exited and been reaped.
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead = child.id();
        child.wait().unwrap();
        let stale = dir.path().join(format!(".xpcs-twin-{dead}-Ab12Cd.big.h5"));
        let mine = dir
            .path()
            .join(format!(".xpcs-twin-{}-Zz99Yy.other.h5", std::process::id()));
        let foreign = dir.path().join(".big.h5.Ab12Cd.tmp");
        for p in [&stale, &mine, &foreign] {
            std::fs::write(p, b"partial").unwrap();
        }
        assert!(!pid_alive(dead));
        assert!(pid_alive(std::process::id()));
        // Writing any output into the directory sweeps it once.
        write_bytes_atomic(&dir.path().join("out.json"), &[], false, b"{}").unwrap();
        assert!(!stale.exists(), "stale temp file left");
        assert!(mine.exists(), "a running process's temp file was removed");
        assert!(foreign.exists(), "a file not named by us was removed");
        assert_eq!(remove_stale_temp_files(dir.path()), 0);
    }

    #[test]
    fn a_recycled_pid_does_not_keep_a_dead_runs_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let me = std::process::id();
        let Some(start) = process_start_ticks(me) else {
            // No /proc: owners are pids alone, which the test above covers.
            return;
        };
        // The name of this process's own temp files carries its start time.
        let out = AtomicOutput::begin(&dir.path().join("z.bin"), &[], false).unwrap();
        let tmp_name = out
            .tmp_path()
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .to_string();
        assert_eq!(temp_owner(&tmp_name), Some((me, Some(start))), "{tmp_name}");
        drop(out);
        // A file owned by "this pid, started at another time": a dead run whose pid was
        // reused (here by this very process). It goes; this run's and a pid-only one stay.
        let recycled = dir
            .path()
            .join(format!(".xpcs-twin-{me}.{}-Qq11.old.h5", start + 1));
        let current = dir
            .path()
            .join(format!(".xpcs-twin-{me}.{start}-Rr22.new.h5"));
        let parent = std::os::unix::process::parent_id();
        let pid_only = dir.path().join(format!(".xpcs-twin-{parent}-Ss33.x.h5"));
        for p in [&recycled, &current, &pid_only] {
            std::fs::write(p, b"partial").unwrap();
        }
        // Its own pid is never swept (this run may be writing it): ask for another owner's view.
        assert!(!owner_alive(me, Some(start + 1)));
        assert!(owner_alive(me, Some(start)));
        assert!(owner_alive(parent, None));
        // A foreign-looking owner with the parent's pid and a wrong start time is dead too.
        let fake = dir.path().join(format!(
            ".xpcs-twin-{parent}.{}-Tt44.y.h5",
            process_start_ticks(parent).unwrap_or(0) + 1
        ));
        std::fs::write(&fake, b"partial").unwrap();
        assert_eq!(remove_stale_temp_files(dir.path()), 1);
        assert!(!fake.exists(), "a recycled pid kept a dead run's temp file");
        assert!(current.exists() && pid_only.exists());
        for p in [&recycled, &current, &pid_only] {
            let _ = std::fs::remove_file(p);
        }
    }
}
