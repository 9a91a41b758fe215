//! `converge import compose`: Docker Compose files in, a desired-state directory out.
//!
//! [`compose`] reads the files (merged, interpolated, `extends` resolved, profiles applied) into
//! position-carrying YAML trees; [`convert`] turns each service into converge's `Service` as
//! typed data, listing what converge cannot express as [`Note`]s with file:line and a
//! suggestion; [`write`] serialises it deterministically and writes only what changed.

pub mod compose;
pub mod convert;
pub mod interpolate;
pub mod write;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use crate::load::yaml::Span;

pub use interpolate::InterpolationError;

/// Bad compose input, or a file that could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{at}: {message}")]
    Syntax { at: Span, message: String },
    #[error("{at}: unknown top-level key `{key}` (expected {expected})")]
    UnknownKey {
        at: Span,
        key: String,
        expected: String,
    },
    #[error("{at}: {error}")]
    Interpolation { at: Span, error: InterpolationError },
    #[error("{at}: {message}")]
    Invalid { at: Span, message: String },
    #[error("cannot write {}: {source}", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Usage(String),
}

/// How far converge falls short of a compose field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Gap {
    /// converge has no equivalent.
    Unsupported,
    /// A field issue 18 adds to converge's Service, not in this build's model yet.
    NotYet,
    /// Imported, but converge behaves differently from compose here.
    Differs,
}

/// Something of the compose files the import could not carry over as it was.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Note {
    pub at: Span,
    pub gap: Gap,
    /// The compose field, e.g. `network_mode: host` or `secrets`.
    pub field: String,
    pub suggestion: String,
}

impl std::fmt::Display for Note {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let what = match self.gap {
            Gap::Unsupported => "not supported by converge",
            Gap::NotYet => "not yet expressible in converge",
            Gap::Differs => "imported, but converge differs",
        };
        write!(
            f,
            "{}:{}: {}: {what}\n  = hint: {}",
            self.at.file, self.at.line, self.field, self.suggestion
        )
    }
}

/// What `converge import compose` was asked to do.
#[derive(Debug, Clone)]
pub struct Options {
    pub files: Vec<PathBuf>,
    pub project: Option<String>,
    pub out: PathBuf,
    pub profiles: BTreeSet<String>,
}

/// What an import did: each file written or left unchanged, and every note.
#[derive(Debug)]
pub struct Report {
    pub files: Vec<(PathBuf, write::Written)>,
    pub notes: Vec<Note>,
    /// Environment variables the imported secrets reference: set them where converge applies.
    pub secret_vars: BTreeSet<String>,
    /// Services left out because none of their profiles is active: (name, profiles).
    pub skipped: Vec<(String, Vec<String>)>,
}

/// Reads the compose files and writes the desired state.
pub fn run(opts: &Options) -> Result<Report, ImportError> {
    let first = opts
        .files
        .first()
        .ok_or_else(|| ImportError::Usage("give at least one compose file".into()))?;
    let project_dir = first.parent().unwrap_or(Path::new("."));
    let vars = variables(project_dir)?;
    let mut profiles = opts.profiles.clone();
    if let Some(p) = vars.get("COMPOSE_PROFILES") {
        profiles.extend(p.split(',').filter(|s| !s.is_empty()).map(str::to_string));
    }
    let compose = compose::load(&opts.files, &vars, &profiles)?;
    let name = project_name(opts, &compose, first)?;
    let out_dir = std::path::absolute(&opts.out).unwrap_or_else(|_| opts.out.clone());
    let converted = convert::convert(&compose, &name, &out_dir)?;
    let sources: Vec<String> = opts
        .files
        .iter()
        .map(|f| {
            f.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        })
        .collect();
    let files = write::write_all(&opts.out, &converted, &sources)?;
    let mut notes = converted.notes;
    notes.sort();
    notes.dedup();
    Ok(Report {
        files,
        notes,
        secret_vars: converted.secret_vars,
        skipped: compose.skipped.clone(),
    })
}

/// The environment over the `.env` file next to the first compose file.
fn variables(project_dir: &Path) -> Result<interpolate::Vars, ImportError> {
    let path = project_dir.join(".env");
    let dotenv = match std::fs::read_to_string(&path) {
        Ok(text) => interpolate::parse_dotenv(&text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Default::default(),
        Err(source) => return Err(ImportError::Read { path, source }),
    };
    Ok(interpolate::Vars::new(dotenv, std::env::vars()))
}

/// `--project`, else compose's `name:`, else the first file's directory name (as compose
/// normalises it: lowercase, letters, digits, `-` and `_`).
fn project_name(
    opts: &Options,
    compose: &compose::Compose,
    first: &Path,
) -> Result<String, ImportError> {
    if let Some(p) = &opts.project {
        return Ok(p.clone());
    }
    if let Some(n) = compose.root.get("name").and_then(|n| n.as_str()) {
        return Ok(n.to_string());
    }
    let dir = std::path::absolute(first)
        .ok()
        .and_then(|p| {
            p.parent()
                .and_then(|d| d.file_name())
                .map(|n| n.to_string_lossy().into_owned())
        })
        .unwrap_or_default();
    let name: String = dir
        .to_lowercase()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect();
    if name.is_empty() {
        return Err(ImportError::Usage(
            "cannot name the project from the directory: give --project NAME".into(),
        ));
    }
    Ok(name)
}
