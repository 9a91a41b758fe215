//! The contents a write replaced, kept for its undo in a private file under the state directory
//! (`undo/`, 0700; each copy 0600) rather than in the journal, and removed once the run that made
//! it is complete.

use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Where a project's copies go.
pub fn dir(state_dir: &Path, project: &str) -> PathBuf {
    state_dir.join("undo").join(project)
}

/// Keeps `text` in a new private file; returns its path (what the journal records).
pub fn save(state_dir: &Path, project: &str, text: &str) -> io::Result<String> {
    let dir = dir(state_dir, project);
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)?;
    for d in [dir.as_path(), dir.parent().unwrap_or(&dir)] {
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o700))?;
    }
    let mut r = [0u8; 12];
    getrandom::fill(&mut r).map_err(|e| io::Error::other(e.to_string()))?;
    let path = dir.join(format!("{}.previous", crate::model::attributes::hex(&r)));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&path)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    Ok(path.to_string_lossy().into_owned())
}

/// The kept contents.
pub fn load(path: &str) -> io::Result<String> {
    std::fs::read_to_string(path)
}

/// Removes every copy of `project`: once no run is left unfinished, none is needed (a copy made
/// by a step that never reached the journal included).
pub fn sweep(state_dir: &Path, project: &str) {
    let _ = std::fs::remove_dir_all(dir(state_dir, project));
}

/// Removes a kept copy (already gone is fine).
pub fn discard(path: &str) {
    let _ = std::fs::remove_file(path);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kept_copy_is_private_and_goes_away() {
        let state = tempfile::tempdir().unwrap();
        let path = save(state.path(), "p", "server { listen 80; }").unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let dmode = std::fs::metadata(dir(state.path(), "p"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(dmode, 0o700);
        assert_eq!(load(&path).unwrap(), "server { listen 80; }");
        discard(&path);
        assert!(!Path::new(&path).exists());
        save(state.path(), "p", "x").unwrap();
        sweep(state.path(), "p");
        assert!(!dir(state.path(), "p").exists());
    }
}
