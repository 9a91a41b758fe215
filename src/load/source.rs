//! The files of a desired state, read once into memory (from a directory now, a git tree later),
//! so that everything after reading is pure.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use thiserror::Error;

#[derive(Debug, Error)]
pub enum SourceError {
    #[error("cannot read desired state at {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not a directory\n  = hint: pass the desired-state directory (default: ./desired-state)")]
    NotADirectory { path: PathBuf },
    #[error("{path} is a symbolic link to {target}, outside the desired-state directory; nothing was read\n  = hint: copy the file into the desired-state directory (converge never reads outside it)")]
    LinkOutside { path: PathBuf, target: PathBuf },
    #[error("{path} is a symbolic link to a directory that contains it (a loop); nothing was read\n  = hint: remove the link")]
    LinkLoop { path: PathBuf },
}

/// Files by path relative to the root, with `/` separators.
#[derive(Debug, Clone, Default)]
pub struct SourceTree {
    /// How the root is shown in messages (the path as the user gave it).
    pub root: String,
    pub files: BTreeMap<String, Vec<u8>>,
}

impl SourceTree {
    pub fn new(root: impl Into<String>) -> Self {
        SourceTree {
            root: root.into(),
            files: BTreeMap::new(),
        }
    }

    pub fn with_file(mut self, path: &str, content: impl Into<Vec<u8>>) -> Self {
        self.files.insert(path.to_string(), content.into());
        self
    }

    /// Reads every file below `dir`, skipping hidden files and directories (`.git`) but for
    /// env files (`.env`, `.env.prod`), which a service's `env_file` may name.
    pub fn read_dir(dir: &Path) -> Result<SourceTree, SourceError> {
        let meta = std::fs::metadata(dir).map_err(|source| SourceError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        if !meta.is_dir() {
            return Err(SourceError::NotADirectory {
                path: dir.to_path_buf(),
            });
        }
        let root = dir.to_string_lossy().trim_end_matches('/').to_string();
        let mut tree = SourceTree::new(if root.is_empty() { "/".into() } else { root });
        let canonical = dir.canonicalize().map_err(|source| SourceError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        let mut walk = Walk {
            root: canonical.clone(),
            reading: vec![canonical],
            files: &mut tree.files,
        };
        walk.read_into(dir, "")?;
        Ok(tree)
    }

    /// The path as shown in messages: `desired-state/services/api.yaml`.
    pub fn display(&self, rel: &str) -> String {
        if self.root.is_empty() || self.root == "." {
            rel.to_string()
        } else {
            format!("{}/{rel}", self.root)
        }
    }

    pub fn yaml_files(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.files
            .iter()
            .filter(|(p, _)| p.ends_with(".yaml") || p.ends_with(".yml"))
            .map(|(p, c)| (p.as_str(), c.as_slice()))
    }

    pub fn text(&self, rel: &str) -> Option<&str> {
        self.files
            .get(normalize(rel).as_str())
            .and_then(|c| std::str::from_utf8(c).ok())
    }

    pub fn contains(&self, rel: &str) -> bool {
        self.files.contains_key(normalize(rel).as_str())
    }

    /// Files directly inside `dir` (relative paths).
    pub fn list_dir(&self, dir: &str) -> Vec<&str> {
        let prefix = format!("{}/", normalize(dir).trim_end_matches('/'));
        self.files
            .keys()
            .filter(|p| p.starts_with(&prefix) && !p[prefix.len()..].contains('/'))
            .map(String::as_str)
            .collect()
    }

    /// A digest of every file (paths and contents): a saved plan refuses another desired state.
    pub fn digest(&self) -> String {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        for (path, content) in &self.files {
            h.update(path.as_bytes());
            h.update([0]);
            h.update((content.len() as u64).to_le_bytes());
            h.update(content);
        }
        crate::model::attributes::hex(&h.finalize()[..16])
    }

    pub fn has_dir(&self, dir: &str) -> bool {
        let prefix = format!("{}/", normalize(dir).trim_end_matches('/'));
        self.files.keys().any(|p| p.starts_with(&prefix))
    }
}

fn normalize(rel: &str) -> String {
    rel.trim_start_matches("./").to_string()
}

/// A walk of the desired-state directory that follows symbolic links only within it.
struct Walk<'a> {
    /// The directory, resolved through links.
    root: PathBuf,
    /// The resolved directories being read, outermost first (a link to one of them is a loop).
    reading: Vec<PathBuf>,
    files: &'a mut BTreeMap<String, Vec<u8>>,
}

/// `.env` and `.env.<suffix>`: the hidden files a desired state keeps (for `env_file`).
pub fn is_env_file_name(name: &str) -> bool {
    name == ".env" || name.starts_with(".env.")
}

impl Walk<'_> {
    fn read_into(&mut self, dir: &Path, prefix: &str) -> Result<(), SourceError> {
        let io = |source| SourceError::Io {
            path: dir.to_path_buf(),
            source,
        };
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .map_err(io)?
            .collect::<Result<_, _>>()
            .map_err(io)?;
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            let name = entry.file_name().to_string_lossy().to_string();
            if name.starts_with('.') && !is_env_file_name(&name) {
                continue;
            }
            let rel = format!("{prefix}{name}");
            let path = entry.path();
            let io = |source| SourceError::Io {
                path: path.clone(),
                source,
            };
            let link = entry.file_type().map_err(io)?.is_symlink();
            let target = if link {
                self.inside(&path)?
            } else {
                self.reading
                    .last()
                    .expect("the root is read first")
                    .join(&name)
            };
            let kind = std::fs::metadata(&target).map_err(io)?;
            if kind.is_dir() {
                if link && self.reading.contains(&target) {
                    return Err(SourceError::LinkLoop { path });
                }
                self.reading.push(target.clone());
                self.read_into(&path, &format!("{rel}/"))?;
                self.reading.pop();
            } else if kind.is_file() {
                let content = read_file(&target, &name).map_err(io)?;
                self.files.insert(rel, content);
            }
        }
        Ok(())
    }

    /// Where the link at `path` leads, when that is inside the root.
    fn inside(&self, path: &Path) -> Result<PathBuf, SourceError> {
        let target = path.canonicalize().map_err(|source| SourceError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        if target.starts_with(&self.root) {
            Ok(target)
        } else {
            Err(SourceError::LinkOutside {
                path: path.to_path_buf(),
                target,
            })
        }
    }
}

/// Reads a file; of a YAML file, no more than one byte over the loader's limit (enough for the
/// loader to report it as too large without holding all of it).
fn read_file(path: &Path, name: &str) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    if !(name.ends_with(".yaml") || name.ends_with(".yml")) {
        return std::fs::read(path);
    }
    let mut content = Vec::new();
    std::fs::File::open(path)?
        .take(super::limits::MAX_FILE_BYTES as u64 + 1)
        .read_to_end(&mut content)?;
    Ok(content)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn a_link_that_leaves_the_directory_is_refused() {
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("passwd"), "root:x:0:0").unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("templates")).unwrap();
        let link = dir.path().join("templates/site.hbs");
        symlink(outside.path().join("passwd"), &link).unwrap();
        let e = SourceTree::read_dir(dir.path()).unwrap_err();
        assert!(matches!(e, SourceError::LinkOutside { .. }), "{e}");
        assert!(e
            .to_string()
            .contains("outside the desired-state directory; nothing was read"));
        std::fs::remove_file(&link).unwrap();
        symlink(outside.path(), dir.path().join("shared")).unwrap();
        assert!(matches!(
            SourceTree::read_dir(dir.path()),
            Err(SourceError::LinkOutside { .. })
        ));
    }

    #[test]
    fn a_link_within_the_directory_is_read_and_a_loop_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("t")).unwrap();
        std::fs::write(dir.path().join("t/a.hbs"), "A").unwrap();
        symlink(dir.path().join("t/a.hbs"), dir.path().join("b.hbs")).unwrap();
        let tree = SourceTree::read_dir(dir.path()).unwrap();
        assert_eq!(tree.text("b.hbs"), Some("A"));
        symlink(dir.path(), dir.path().join("t/up")).unwrap();
        assert!(matches!(
            SourceTree::read_dir(dir.path()),
            Err(SourceError::LinkLoop { .. })
        ));
    }
}
