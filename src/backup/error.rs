//! `BackupError`: what a backup, a verification or a restore reports — what failed, where (the
//! backup, the destination, the copy's id, the chunk) and, where there is one, what to do. The
//! text of each message is the one converge has always printed. Never a key, a password or a
//! connection string: sources are described (`database app`), keys by their id.

use std::ffi::OsString;
use std::io;
use std::path::PathBuf;
use std::process::ExitStatus;

use thiserror::Error;

use crate::engine::journal::JournalError;
use crate::providers::postgres::PgError;
use crate::providers::s3::S3Error;
use crate::secrets::SecretError;

#[derive(Debug, Error)]
pub enum BackupError {
    // ---- The Backup's configuration.
    /// An `s3://` destination without an S3 provider in the Project.
    #[error("{url} needs the S3 provider (providers.s3 in the Project)")]
    S3ProviderMissing { url: String },
    /// A destination URL that is neither `file://` nor `s3://`.
    #[error("unsupported destination {url}")]
    UnsupportedDestination { url: String },
    /// A database backup or restore without a PostgreSQL provider in the Project.
    #[error("a database backup needs the PostgreSQL provider (providers.postgres)")]
    PostgresProviderMissing,
    /// A Backup with none of `database`, `files` or `command`.
    #[error("the backup has no source")]
    NoSource { backup: String },
    /// The secret holding the encryption key resolves to nothing but whitespace.
    #[error("the encryption key of backup/{backup} is empty\n  = hint: set it to 64 hex digits, base64 of 32 bytes, or a passphrase")]
    EmptyKey { backup: String },
    /// The secret holding the encryption key cannot be resolved (unset, unreadable).
    #[error("{source}")]
    KeySecret {
        backup: String,
        #[source]
        source: SecretError,
    },

    // ---- Taking a copy: the source (pg_dump, tar, a command) and the pipeline.
    /// The source command (pg_dump, tar, the configured command) cannot be started.
    #[error("cannot start the backup source: {source}")]
    SourceStart {
        backup: String,
        #[source]
        source: io::Error,
    },
    /// The source's output cannot be read.
    #[error("reading the backup source: {source}")]
    SourceRead {
        backup: String,
        #[source]
        source: io::Error,
    },
    /// The source exited unsuccessfully (pg_dump cannot connect, a missing directory…).
    #[error("the backup source exited with {status}: {stderr}")]
    SourceFailed {
        backup: String,
        status: ExitStatus,
        /// Its standard error, trimmed.
        stderr: String,
    },
    /// Waiting for the source to exit failed.
    #[error("{source}")]
    SourceWait {
        backup: String,
        #[source]
        source: io::Error,
    },
    /// The encryption header cannot be written to the destinations.
    #[error("{source}")]
    Encrypt {
        backup: String,
        #[source]
        source: io::Error,
    },
    /// The compressor cannot be set up.
    #[error("{source}")]
    Compress {
        backup: String,
        #[source]
        source: io::Error,
    },
    /// Compressing, encrypting or writing the stream to a destination failed.
    #[error("writing the backup: {source}")]
    Write {
        backup: String,
        #[source]
        source: io::Error,
    },
    /// The last compressed and encrypted bytes cannot be written.
    #[error("finishing the backup: {source}")]
    Finish {
        backup: String,
        #[source]
        source: io::Error,
    },

    // ---- Destinations.
    /// What failed at one destination (`file:///…` or `s3://bucket/prefix/`).
    #[error("{destination}: {source}")]
    Destination {
        destination: String,
        #[source]
        source: Box<BackupError>,
    },
    /// A destination directory cannot be created.
    #[error("create {}: {source}", .path.display())]
    CreateDir {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// A copy's file cannot be created at a destination.
    #[error("create {}: {source}", .path.display())]
    CreateFile {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// A copy's file cannot be flushed to disk.
    #[error("{source}")]
    Flush {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// A copy's file cannot be synced to disk.
    #[error("{source}")]
    Sync {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// A finished copy (`<id>.cvbak.partial`) cannot be renamed to its final name.
    #[error("rename {}: {source}", .path.display())]
    Rename {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The directory for safety copies cannot be made private.
    #[error("cannot prepare {} for a safety copy: {error}\n  = hint: nothing was dropped; make the directory writable by converge and private (0700)", .dir.display())]
    SafetyDir { dir: PathBuf, error: io::Error },
    /// A manifest cannot be written at a file destination.
    #[error("write {}: {source}", .path.display())]
    ManifestWrite {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// A copy's file cannot be opened at a file destination.
    #[error("open {}: {source}", .path.display())]
    Open {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// An S3 destination refused or failed a call.
    #[error(transparent)]
    S3(#[from] S3Error),

    // ---- Finding, reading and checking a copy.
    /// No manifest for the copy at any destination.
    #[error("no copy `{id}` of backup/{backup} at any destination")]
    NotFound { backup: String, id: String },
    /// The stored bytes of a copy cannot be read through.
    #[error("{source}")]
    Download {
        id: String,
        destination: String,
        #[source]
        source: io::Error,
    },
    /// A manifest whose id is not one converge makes, or not its file's name (never opened,
    /// never deleted).
    #[error("{file} is not a manifest converge made: {reason}; it is skipped")]
    InvalidManifest { file: String, reason: String },
    /// A copy id that could name a path or key outside its destination (a last guard).
    #[error("refusing copy id {id:?}: it could name a path outside the destination")]
    UnsafeId { id: String },
    /// The stored bytes matched the manifest when checked, and no longer did when read again.
    #[error("{id} at {destination} changed while it was read: its stored bytes no longer match the manifest's sha256 (they did when checked first), so what was read from it is suspect")]
    ChangedWhileRead { id: String, destination: String },
    /// The stored bytes do not match the manifest's sha256 (or size).
    #[error("{id} at {destination} fails its checksum: the stored bytes changed (sha256 {} expected, {} found)", short(.expected), short(.found))]
    ChecksumMismatch {
        id: String,
        destination: String,
        /// The manifest's sha256 (the message shows its first 16 digits).
        expected: String,
        found: String,
    },
    /// The copy cannot be decrypted or decompressed all the way through.
    #[error("{id}: {source}")]
    Unreadable {
        id: String,
        #[source]
        source: Box<BackupError>,
    },
    /// Reading a copy failed (an I/O error that says no more).
    #[error("{source}")]
    Read {
        #[source]
        source: io::Error,
    },
    /// The copy's compression stream cannot be opened.
    #[error("{source}")]
    Decompress {
        id: String,
        #[source]
        source: io::Error,
    },

    // ---- Keys and encryption.
    /// The copy is encrypted and the Backup has no `encryption.key`.
    #[error("{id} is encrypted and backup/{backup} declares no key")]
    KeyMissing { id: String, backup: String },
    /// The configured key is not the one the copy was made with (key ids, never keys).
    #[error("{id} was encrypted with key {}, and the configured key is {configured}: restore needs the key it was made with", .made_with.as_deref().unwrap_or("?"))]
    WrongKey {
        id: String,
        made_with: Option<String>,
        configured: String,
    },
    /// The copy was made with a passphrase and the configured key is raw, or the reverse.
    #[error("{id} was made with {made_with}, and the configured key is {configured}: restore needs the key it was made with\n  = hint: the key was changed since this copy was made; declare the key it was made with to restore it")]
    KeyKind {
        id: String,
        made_with: &'static str,
        configured: &'static str,
    },
    /// Argon2id failed on a passphrase.
    #[error("cannot derive the key from the passphrase: {reason}")]
    KeyDerivation { reason: String },
    /// A manifest's Argon2id parameters or salt are refused (read before it can be authenticated).
    #[error("{id}: the manifest's key derivation is refused: {reason}")]
    BadKdf { id: String, reason: String },
    /// Under a declared key: a copy whose manifest says it is not encrypted.
    #[error("{id} is not an authenticated copy: its manifest says `encryption: {encryption}`, and backup/{backup} declares a key, so every copy must be encrypted and carry a manifest MAC\n  = hint: converge never makes such a copy under a key: the manifest was planted, or the copy predates the key; delete it, and run `converge backup run {backup}` for an authenticated copy")]
    Unencrypted {
        id: String,
        backup: String,
        encryption: String,
    },
    /// Under a declared key: a manifest written by converge before manifests carried a MAC.
    #[error("{id} was made by an earlier converge without a manifest MAC, so it cannot be authenticated and is refused\n  = hint: run `converge backup run {backup}` to make a new authenticated copy")]
    LegacyManifest { id: String, backup: String },
    /// Under a declared key: a current manifest without a MAC.
    #[error("{id}: the manifest has no MAC, so it cannot be authenticated and is refused\n  = hint: converge always writes one under a key: the manifest was altered or planted; run `converge backup run {backup}` for an authenticated copy")]
    ManifestMacMissing { id: String, backup: String },
    /// Under a declared key: the manifest's MAC does not check.
    #[error("{id}: the manifest fails authentication (its MAC does not match under the configured key): it was altered or planted, and is refused\n  = hint: restore another copy (`converge backup list {backup}`), or run `converge backup run {backup}` for a new one")]
    ManifestMac { id: String, backup: String },
    /// A manifest format this converge does not know.
    #[error("{id} was made by a newer converge (manifest format {version}); this one reads formats 1 to 3\n  = hint: use a newer converge to restore it")]
    NewerFormat { id: String, version: u32 },
    /// The stored bytes do not start like an encrypted converge backup.
    #[error("not an encrypted converge backup")]
    NotEncrypted,
    /// The data key does not unwrap under the configured key.
    #[error("the backup was not encrypted with this key (the data key does not unwrap)")]
    DataKeyUnwrap,
    /// The unwrapped data key is not 32 bytes long.
    #[error("bad data key")]
    DataKeyLength { len: usize },
    /// The data key cannot be wrapped under the configured key.
    #[error("cannot wrap the data key")]
    DataKeyWrap,
    /// A chunk cannot be sealed.
    #[error("encryption failed")]
    SealChunk { chunk: u64 },
    /// The stream ends before its final chunk.
    #[error("the backup is truncated (no final chunk)")]
    Truncated { chunk: u64 },
    /// A chunk's length prefix is larger than any chunk.
    #[error("corrupt chunk length")]
    ChunkLength { chunk: u64, len: usize },
    /// A chunk does not authenticate: altered, reordered or from another copy.
    #[error("chunk {chunk} fails authentication: the backup was altered")]
    ChunkAuthentication { chunk: u64 },

    // ---- Restores and restore drills.
    /// The target database holds tables and `--force` was not given.
    #[error("database {database} already holds {contents}; restore refuses to overwrite it\n  = hint: restore into a new database, or pass --force")]
    TargetNotEmpty {
        database: String,
        contents: crate::providers::postgres::Contents,
    },
    /// The target directory holds files and `--force` was not given.
    #[error("{} is not empty; restore refuses to write over what is there\n  = hint: restore into an empty or new directory, or pass --force", .path.display())]
    TargetDirNotEmpty { path: std::path::PathBuf },
    /// pg_restore or tar cannot be started.
    #[error("cannot start {program:?}: {source}")]
    ToolStart {
        program: OsString,
        #[source]
        source: io::Error,
    },
    /// Waiting for pg_restore or tar failed.
    #[error("{source}")]
    ToolWait {
        program: OsString,
        #[source]
        source: io::Error,
    },
    /// The copy could not be fed to pg_restore or tar.
    #[error("reading the backup: {source}")]
    ReadCopy {
        #[source]
        source: Box<BackupError>,
    },
    /// pg_restore or tar exited unsuccessfully.
    #[error("{program:?} failed: {stderr}")]
    ToolFailed {
        program: OsString,
        /// Its standard error, trimmed.
        stderr: String,
    },
    /// The scratch directory of a files restore drill cannot be created.
    #[error("{source}")]
    ScratchDir {
        #[source]
        source: io::Error,
    },
    /// A restore drill restored a database without a single table.
    #[error("{id} restored no table")]
    RestoredNothing { id: String },
    /// A database restored from a copy does not hold the rows its manifest records.
    #[error("database {database}, restored from {id}, does not hold the rows the copy's manifest records: {detail}")]
    RowCounts {
        id: String,
        database: String,
        /// Each table: expected and found.
        detail: String,
    },
    /// A PostgreSQL call failed.
    #[error(transparent)]
    Postgres(#[from] PgError),
    /// A PostgreSQL call that reports its failure as text failed (on `database`).
    #[error("{message}")]
    PostgresCall { database: String, message: String },

    // ---- The job.
    /// The journal cannot be opened to record the outcome.
    #[error(transparent)]
    Journal(#[from] JournalError),
}

/// The first 16 digits of a checksum.
fn short(sha256: &str) -> &str {
    sha256.get(..16).unwrap_or(sha256)
}

/// What a PostgreSQL call fails with: `PgError`, or the text some calls still return.
pub(crate) trait PgFailure {
    fn into_backup_error(self, database: String) -> BackupError;
}

impl PgFailure for PgError {
    fn into_backup_error(self, _database: String) -> BackupError {
        BackupError::Postgres(self)
    }
}

impl PgFailure for String {
    fn into_backup_error(self, database: String) -> BackupError {
        BackupError::PostgresCall {
            database,
            message: self,
        }
    }
}

impl BackupError {
    /// Whether the copy could not be read for a reason outside it (an S3 endpoint that does not
    /// answer or refuses our credentials, a server error, a broken connection, a local read
    /// error), rather than a copy that is missing, corrupt, tampered with or under another key.
    /// A recovery stops on the first kind instead of falling back to older copies.
    pub fn is_unreachable(&self) -> bool {
        match self {
            BackupError::Destination { source, .. } | BackupError::Unreadable { source, .. } => {
                source.is_unreachable()
            }
            BackupError::S3(e) => match e {
                S3Error::Unreachable { .. }
                | S3Error::Credentials { .. }
                | S3Error::Body { .. }
                | S3Error::Unreadable { .. } => true,
                S3Error::Status { status, .. } => status.is_none_or(|s| s >= 500 || s == 403),
                S3Error::Service { code, .. } => {
                    matches!(
                        code.as_str(),
                        "AccessDenied"
                            | "InvalidAccessKeyId"
                            | "SignatureDoesNotMatch"
                            | "InternalError"
                            | "ServiceUnavailable"
                            | "SlowDown"
                            | "RequestTimeout"
                    )
                }
                _ => false,
            },
            BackupError::Download { source, .. }
            | BackupError::Read { source }
            | BackupError::Open { source, .. } => source.kind() != io::ErrorKind::NotFound,
            _ => false,
        }
    }

    /// `Destination`: `e` happened at `destination`.
    pub(crate) fn at(destination: String, e: BackupError) -> BackupError {
        BackupError::Destination {
            destination,
            source: Box::new(e),
        }
    }

    /// Maps the error of a PostgreSQL call on `database`.
    pub(crate) fn postgres<E: PgFailure>(database: &str) -> impl FnOnce(E) -> BackupError {
        let database = database.to_string();
        move |e| e.into_backup_error(database)
    }

    /// As an `io::Error` for a `Read` or `Write` implementation; `from_io` gets it back.
    pub(crate) fn into_io(self, kind: io::ErrorKind) -> io::Error {
        io::Error::new(kind, self)
    }

    /// The error inside an `io::Error` from the read pipeline: a `BackupError` (a chunk that
    /// fails authentication, a truncation) or an `S3Error` as it is, anything else as `Read`.
    /// The message is the `io::Error`'s.
    pub(crate) fn from_io(e: io::Error) -> BackupError {
        let typed = e
            .get_ref()
            .is_some_and(|i| i.is::<BackupError>() || i.is::<S3Error>());
        if !typed {
            return BackupError::Read { source: e };
        }
        let kind = e.kind();
        match e.into_inner() {
            Some(inner) => match inner.downcast::<BackupError>() {
                Ok(b) => *b,
                Err(inner) => match inner.downcast::<S3Error>() {
                    Ok(s) => BackupError::S3(*s),
                    Err(inner) => BackupError::Read {
                        source: io::Error::new(kind, inner),
                    },
                },
            },
            None => BackupError::Read {
                source: io::Error::from(kind),
            },
        }
    }

    /// The chunk a decryption failure is about, when it is about one.
    pub fn chunk(&self) -> Option<u64> {
        match self {
            BackupError::SealChunk { chunk }
            | BackupError::Truncated { chunk }
            | BackupError::ChunkLength { chunk, .. }
            | BackupError::ChunkAuthentication { chunk } => Some(*chunk),
            BackupError::Destination { source, .. }
            | BackupError::Unreadable { source, .. }
            | BackupError::ReadCopy { source } => source.chunk(),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_inside_an_io_error_comes_back_with_the_same_message() {
        let e = BackupError::ChunkAuthentication { chunk: 3 }.into_io(io::ErrorKind::InvalidData);
        let text = e.to_string();
        let back = BackupError::from_io(e);
        assert_eq!(back.to_string(), text);
        assert_eq!(back.chunk(), Some(3));
        let plain = BackupError::from_io(io::Error::other("disk on fire"));
        assert!(matches!(plain, BackupError::Read { .. }));
        assert_eq!(plain.to_string(), "disk on fire");
    }

    #[test]
    fn messages_keep_their_wording() {
        let e = BackupError::ChecksumMismatch {
            id: "db-20261128T143800Z".into(),
            destination: "file:///b".into(),
            expected: "0123456789abcdef0123".into(),
            found: "ff".into(),
        };
        assert_eq!(e.to_string(), "db-20261128T143800Z at file:///b fails its checksum: the stored bytes changed (sha256 0123456789abcdef expected, ff found)");
        let e = BackupError::WrongKey {
            id: "x".into(),
            made_with: None,
            configured: "abcd".into(),
        };
        assert_eq!(e.to_string(), "x was encrypted with key ?, and the configured key is abcd: restore needs the key it was made with");
        let e = BackupError::ToolStart {
            program: "pg_restore".into(),
            source: io::Error::other("nope"),
        };
        assert_eq!(e.to_string(), "cannot start \"pg_restore\": nope");
        let e = BackupError::at(
            "s3://b/p/".into(),
            BackupError::TargetNotEmpty {
                database: "app".into(),
                contents: crate::providers::postgres::Contents {
                    tables: 2,
                    views: 1,
                    ..Default::default()
                },
            },
        );
        assert!(e.to_string().starts_with(
            "s3://b/p/: database app already holds 2 table(s), 1 view(s); restore refuses to overwrite it\n  = hint:"
        ));
    }
}
