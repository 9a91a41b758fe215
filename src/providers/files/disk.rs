//! Reading and replacing a rendered file without following links: the live contents are read
//! only from a regular file (never through a symbolic link, never more than a limit), and a new
//! file is written to an exclusively created temporary file with the previous file's mode and
//! owner, then renamed over it.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Larger live files are not read (a rendered config is far smaller).
pub const MAX_LIVE_BYTES: u64 = 16 << 20;

/// Mode of a file converge creates (config files are read by other users: nginx, prometheus).
const NEW_FILE_MODE: u32 = 0o644;

/// A file's previous state: its contents and mode, or nothing when there was no file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Previous {
    pub text: String,
    pub mode: u32,
}

fn not_plain(path: &Path, what: &str) -> io::Error {
    io::Error::other(format!(
        "{} is {what}; converge only reads and replaces regular files it can name directly",
        path.display()
    ))
}

/// The current contents of `path` (`None` when it does not exist). A link, a directory, a
/// device or a file over [`MAX_LIVE_BYTES`] is an error, so a plan never shows another file.
pub fn read_live(path: &Path) -> io::Result<Option<Previous>> {
    let file = match OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
            return Err(not_plain(path, "a symbolic link"))
        }
        Err(e) => return Err(e),
    };
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(not_plain(path, "not a regular file"));
    }
    if meta.len() > MAX_LIVE_BYTES {
        return Err(io::Error::other(format!(
            "{} is {} bytes, over the {} MiB a rendered file may have",
            path.display(),
            meta.len(),
            MAX_LIVE_BYTES >> 20
        )));
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.take(MAX_LIVE_BYTES + 1).read_to_end(&mut bytes)?;
    let text = String::from_utf8(bytes)
        .map_err(|_| io::Error::other(format!("{} is not UTF-8 text", path.display())))?;
    Ok(Some(Previous {
        text,
        mode: meta.permissions().mode() & 0o7777,
    }))
}

/// Writes `content` to `path` atomically, keeping the mode (and, as root, the owner) of the
/// file it replaces: a crash leaves the old file or the new one, never half, and a link planted
/// at the temporary name or at `path` is never followed.
pub fn write_atomic(path: &Path, content: &str) -> io::Result<()> {
    let parent = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .ok_or_else(|| io::Error::other(format!("{} has no directory", path.display())))?;
    std::fs::create_dir_all(parent)?;
    let existing = match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => return Err(not_plain(path, "a symbolic link")),
        Ok(m) if !m.is_file() => return Err(not_plain(path, "not a regular file")),
        Ok(m) => Some(m),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => return Err(e),
    };
    let mode = existing
        .as_ref()
        .map_or(NEW_FILE_MODE, |m| m.permissions().mode() & 0o7777);
    let (tmp, mut file) = create_temp(parent, path, mode)?;
    let written = (|| {
        file.set_permissions(std::fs::Permissions::from_mode(mode))?;
        if let Some(m) = &existing {
            // Only root can give a file away; elsewhere the owner is already ours.
            let _ = std::os::unix::fs::fchown(&file, Some(m.uid()), Some(m.gid()));
        }
        file.write_all(content.as_bytes())?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)?;
        File::open(parent)?.sync_all()
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

/// A new file next to `path` with an unpredictable name, created exclusively (`O_EXCL`, and
/// `O_NOFOLLOW`): an existing file or link at that name is an error, never opened.
fn create_temp(dir: &Path, path: &Path, mode: u32) -> io::Result<(PathBuf, File)> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    let mut last = None;
    for _ in 0..8 {
        let mut r = [0u8; 8];
        getrandom::fill(&mut r).map_err(|e| io::Error::other(e.to_string()))?;
        let tmp = dir.join(format!(
            ".{name}.converge-{}",
            crate::model::attributes::hex(&r)
        ));
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode & 0o700)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&tmp)
        {
            Ok(f) => return Ok((tmp, f)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(|| io::Error::other("no free temporary name")))
}

/// Puts `previous` back (or removes the file when there was none).
pub fn restore(path: &Path, previous: Option<&str>) -> io::Result<()> {
    match previous {
        Some(text) => write_atomic(path, text),
        None => match std::fs::symlink_metadata(path) {
            Ok(m) if m.file_type().is_symlink() => Err(not_plain(path, "a symbolic link")),
            Ok(_) => std::fs::remove_file(path),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replaced_file_keeps_its_mode() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("site.conf");
        std::fs::write(&path, "old").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        write_atomic(&path, "new").unwrap();
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!(meta.permissions().mode() & 0o7777, 0o600);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "new");
        let fresh = dir.path().join("fresh.conf");
        write_atomic(&fresh, "x").unwrap();
        let mode = std::fs::metadata(&fresh).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, NEW_FILE_MODE);
    }

    #[test]
    fn links_are_never_read_or_written_through() {
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("secret");
        std::fs::write(&secret, "root:x:0:0").unwrap();
        let link = dir.path().join("site.conf");
        std::os::unix::fs::symlink(&secret, &link).unwrap();
        let e = read_live(&link).unwrap_err().to_string();
        assert!(e.ends_with("is a symbolic link; converge only reads and replaces regular files it can name directly"), "{e}");
        assert!(write_atomic(&link, "pwned").is_err());
        assert!(restore(&link, None).is_err());
        assert_eq!(std::fs::read_to_string(&secret).unwrap(), "root:x:0:0");
    }

    #[test]
    fn no_file_leaves_only_the_new_contents_and_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.conf");
        write_atomic(&path, "one").unwrap();
        write_atomic(&path, "two").unwrap();
        let names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
            .collect();
        assert_eq!(names, vec!["a.conf".to_string()]);
        assert_eq!(read_live(&path).unwrap().unwrap().text, "two");
        assert_eq!(read_live(&dir.path().join("none")).unwrap(), None);
    }

    #[test]
    fn devices_and_directories_are_not_read() {
        assert!(read_live(Path::new("/dev/zero")).is_err());
        assert!(read_live(Path::new("/tmp")).is_err());
    }
}
