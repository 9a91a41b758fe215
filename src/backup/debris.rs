//! The debris of interrupted backups in a `file://` destination: `<id>.cvbak.partial` (a copy
//! being written) and `<id>.manifest.partial` (a manifest being written). A failed run removes
//! its own; a run that was killed cannot, so retention removes those of the Backup that are
//! older than `STALE` (a running backup's file is younger: it is being written to).

use std::path::Path;
use std::time::{Duration, SystemTime};

/// How old an unfinished file must be before retention removes it (a running backup's file is
/// younger: its writes keep its modification time fresh).
pub const STALE: Duration = Duration::from_secs(3600);

/// How long ago an S3 multipart upload must have started before retention aborts it: its start
/// time never moves, so this must outlast the longest backup (the implied bucket rule's day).
pub const STALE_UPLOAD: Duration = Duration::from_secs(24 * 3600);

/// The suffixes of converge's unfinished files.
const PARTIAL_SUFFIXES: [&str; 2] = [".cvbak.partial", ".manifest.partial"];

/// Whether `file` is an unfinished file of backup `name`: `<name>-<YYYYMMDDTHHMMSSZ><suffix>`.
pub fn is_partial_of(name: &str, file: &str) -> bool {
    PARTIAL_SUFFIXES
        .iter()
        .find_map(|s| file.strip_suffix(s))
        .is_some_and(|stem| is_copy_id_of(name, stem))
}

/// Whether `key` (below a store's prefix) is a copy of backup `name`: `<name>-<stamp>.cvbak`,
/// as an S3 multipart upload of an interrupted backup is named.
pub fn is_copy_key_of(name: &str, key: &str) -> bool {
    key.strip_suffix(".cvbak")
        .is_some_and(|stem| is_copy_id_of(name, stem))
}

/// `<name>-<YYYYMMDDTHHMMSSZ>`.
fn is_copy_id_of(name: &str, stem: &str) -> bool {
    let Some(stamp) = stem.strip_prefix(name).and_then(|r| r.strip_prefix('-')) else {
        return false;
    };
    let b = stamp.as_bytes();
    b.len() == 16
        && b[8] == b'T'
        && b[15] == b'Z'
        && b[..8].iter().chain(&b[9..15]).all(u8::is_ascii_digit)
}

/// Removes backup `name`'s unfinished files in `dir` last modified more than `older_than` ago;
/// returns the names removed. A file that cannot be read or removed is left (and logged).
pub fn sweep(dir: &Path, name: &str, older_than: Duration) -> Vec<String> {
    let mut removed = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return removed;
    };
    let now = SystemTime::now();
    for e in entries.flatten() {
        let file = e.file_name().to_string_lossy().to_string();
        if !is_partial_of(name, &file) {
            continue;
        }
        let age = e
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| now.duration_since(t).ok());
        if age.is_some_and(|a| a > older_than) && e.file_type().is_ok_and(|t| t.is_file()) {
            match std::fs::remove_file(e.path()) {
                Ok(()) => removed.push(file),
                Err(error) => {
                    tracing::warn!(file = %e.path().display(), %error, "cannot remove an unfinished backup file")
                }
            }
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_this_backups_unfinished_files_match() {
        assert!(is_partial_of("db", "db-20261128T143800Z.cvbak.partial"));
        assert!(is_partial_of("db", "db-20261128T143800Z.manifest.partial"));
        assert!(!is_partial_of("db", "db-20261128T143800Z.cvbak"));
        assert!(!is_partial_of(
            "db",
            "db-hourly-20261128T143800Z.cvbak.partial"
        ));
        assert!(!is_partial_of("db", "db-2026112xT143800Z.cvbak.partial"));
        assert!(!is_partial_of("db", "notes.partial"));
        assert!(is_copy_key_of("db", "db-20261128T143800Z.cvbak"));
        assert!(!is_copy_key_of("db", "db-20261128T143800Z.manifest.json"));
        assert!(!is_copy_key_of("db", "db-hourly-20261128T143800Z.cvbak"));
    }

    #[test]
    fn stale_unfinished_files_are_removed_and_fresh_ones_kept() {
        let tmp = tempfile::tempdir().unwrap();
        let old = "db-20261128T143800Z.cvbak.partial";
        let other = "mine.cvbak.partial";
        for f in [old, other] {
            std::fs::write(tmp.path().join(f), b"x").unwrap();
        }
        assert!(sweep(tmp.path(), "db", STALE).is_empty());
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(
            sweep(tmp.path(), "db", Duration::from_millis(10)),
            vec![old]
        );
        assert!(tmp.path().join(other).exists());
    }
}
