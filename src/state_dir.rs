//! The state directory (journal, locks, the digest key, undo copies, the agent's checkout) is
//! private to the user converge runs as: directories 0700, every file converge writes there 0600.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// Creates `dir` (and its parents) 0700, and takes group and other access away from an existing
/// one that converge's user owns. A directory anyone may write to (`/tmp` itself) is refused.
pub fn ensure(dir: &Path) -> io::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    let meta = std::fs::metadata(dir)?;
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o002 != 0 {
        return Err(io::Error::other(format!(
            "{} is writable by every user (mode {mode:o}); the state directory must be private: pass --state-dir with a directory of its own",
            dir.display()
        )));
    }
    if meta.uid() == euid() && mode & 0o077 != 0 {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode & 0o700))?;
    }
    Ok(())
}

/// Opens `path` for appending, created 0600 (an existing file is made 0600).
pub fn open_append(path: &Path) -> io::Result<File> {
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)?;
    private(&file)?;
    Ok(file)
}

/// Opens `path` for writing without truncating it, created 0600 (for lock files).
pub fn open_lock(path: &Path) -> io::Result<File> {
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(path)?;
    private(&file)?;
    Ok(file)
}

/// Replaces `path` with `bytes` through a 0600 temporary file and a rename.
pub fn write(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = std::path::PathBuf::from(tmp);
    let _ = std::fs::remove_file(&tmp);
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

fn private(file: &File) -> io::Result<()> {
    let meta = file.metadata()?;
    if meta.uid() == euid() && meta.permissions().mode() & 0o077 != 0 {
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(())
}

/// The user converge runs as (the owner of its own `/proc` entry).
fn euid() -> u32 {
    std::fs::metadata("/proc/self").map_or(u32::MAX, |m| m.uid())
}

/// Bytes an unprivileged writer may still use on the filesystem holding `dir`.
pub fn free_bytes(dir: &Path) -> std::io::Result<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(dir.as_os_str().as_bytes())
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    let mut st = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `c` is a NUL-terminated path and `st` points to writable memory of the right type;
    // statvfs only writes into it and reports failure through its return value.
    let rc = unsafe { libc::statvfs(c.as_ptr(), st.as_mut_ptr()) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: statvfs returned 0, so it filled `st`.
    let st = unsafe { st.assume_init() };
    Ok(st.f_bavail * st.f_frsize)
}

/// Where converge keeps something for this user: `system` as root, else
/// `$<xdg_var>/converge` (or `~/<home_default>/converge`).
pub fn per_user(system: &str, xdg_var: &str, home_default: &str) -> std::path::PathBuf {
    use std::path::PathBuf;
    if euid() == 0 {
        return PathBuf::from(system);
    }
    std::env::var_os(xdg_var)
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(home_default)))
        .unwrap_or_else(|| PathBuf::from("."))
        .join("converge")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn the_state_directory_and_its_files_are_private() {
        let base = tempfile::tempdir().unwrap();
        let dir = base.path().join("state/journal");
        ensure(&dir).unwrap();
        assert_eq!(mode(&dir), 0o700);
        let loose = base.path().join("loose");
        std::fs::create_dir(&loose).unwrap();
        std::fs::set_permissions(&loose, std::fs::Permissions::from_mode(0o755)).unwrap();
        ensure(&loose).unwrap();
        assert_eq!(mode(&loose), 0o700, "an existing directory is tightened");
        let journal = dir.join("p.jsonl");
        std::fs::write(&journal, "").unwrap();
        std::fs::set_permissions(&journal, std::fs::Permissions::from_mode(0o644)).unwrap();
        open_append(&journal).unwrap();
        assert_eq!(mode(&journal), 0o600, "an existing file is tightened");
        let status = dir.join("status.json");
        write(&status, b"{}").unwrap();
        assert_eq!(mode(&status), 0o600);
    }

    #[test]
    fn a_directory_everyone_can_write_is_refused() {
        let e = ensure(Path::new("/tmp")).unwrap_err().to_string();
        assert!(e.contains("writable by every user"), "{e}");
    }
}
