//! The stored bytes of a copy against its manifest's sha256 and size: checked in full before a
//! restore changes anything (and before a verification opens the copy), and again while they are
//! read for real, so bytes swapped in between are caught too.

use std::io::{self, Read};
use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};

use super::store::Store;
use super::{BackupError, Manifest, Tools};
use crate::model::attributes::hex;

/// Hashes and counts what is read through it.
struct Hashing<R> {
    inner: R,
    sha: Sha256,
    n: u64,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.sha.update(&buf[..n]);
        self.n += n as u64;
        Ok(n)
    }
}

impl<R: Read> Hashing<R> {
    fn new(inner: R) -> Self {
        Hashing {
            inner,
            sha: Sha256::new(),
            n: 0,
        }
    }

    /// Reads the rest; the sha256 (hex) and size of everything read.
    fn finish(&mut self) -> io::Result<(String, u64)> {
        io::copy(self, &mut io::sink())?;
        let sha = std::mem::take(&mut self.sha);
        Ok((hex(&sha.finalize()), self.n))
    }
}

/// Reads copy `m` at `store` through and compares its sha256 and size with the manifest.
pub fn check(t: &Tools, store: &Store, m: &Manifest) -> Result<(), BackupError> {
    let mut h = Hashing::new(store.reader(&m.id, m.stored_bytes, &t.rt)?);
    let (found, n) = h.finish().map_err(|source| BackupError::Download {
        id: m.id.clone(),
        destination: store.describe(),
        source,
    })?;
    if found != m.sha256 || n != m.stored_bytes {
        return Err(BackupError::ChecksumMismatch {
            id: m.id.clone(),
            destination: store.describe(),
            expected: m.sha256.clone(),
            found,
        });
    }
    Ok(())
}

/// The stored bytes as the restore pipeline reads them, hashed on the way; `Tally::finish`
/// reads what the decoders left and compares.
pub struct Tally {
    shared: Arc<Mutex<Hashing<Box<dyn Read + Send>>>>,
    id: String,
    destination: String,
    sha256: String,
    size: u64,
}

/// The reading end of a `Tally`, for the decoders.
struct TallyReader(Arc<Mutex<Hashing<Box<dyn Read + Send>>>>);

impl Read for TallyReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).read(buf)
    }
}

impl Tally {
    /// Wraps the raw reader of copy `m` at `store`; returns the tally and the reader to decode.
    pub fn new(
        raw: Box<dyn Read + Send>,
        store: &Store,
        m: &Manifest,
    ) -> (Tally, Box<dyn Read + Send>) {
        let shared = Arc::new(Mutex::new(Hashing::new(raw)));
        let tally = Tally {
            shared: shared.clone(),
            id: m.id.clone(),
            destination: store.describe(),
            sha256: m.sha256.clone(),
            size: m.stored_bytes,
        };
        (tally, Box::new(TallyReader(shared)))
    }

    /// Reads the rest of the stored bytes (past the final chunk too) and compares.
    pub fn finish(self) -> Result<(), BackupError> {
        let changed = || BackupError::ChangedWhileRead {
            id: self.id.clone(),
            destination: self.destination.clone(),
        };
        let mut h = self.shared.lock().unwrap_or_else(|p| p.into_inner());
        let (found, n) = h.finish().map_err(|_| changed())?;
        if found != self.sha256 || n != self.size {
            return Err(changed());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tally(stored: &'static [u8], manifest_of: &[u8]) -> (Tally, Box<dyn Read + Send>) {
        let shared = Arc::new(Mutex::new(Hashing::new(
            Box::new(stored) as Box<dyn Read + Send>
        )));
        let t = Tally {
            shared: shared.clone(),
            id: "db-x".into(),
            destination: "file:///b".into(),
            sha256: hex(&Sha256::digest(manifest_of)),
            size: manifest_of.len() as u64,
        };
        (t, Box::new(TallyReader(shared)))
    }

    #[test]
    fn what_the_decoders_leave_unread_is_still_checked() {
        let (t, mut r) = tally(b"hello world", b"hello world");
        let mut first = [0u8; 5];
        r.read_exact(&mut first).unwrap();
        assert!(t.finish().is_ok());
        let (t, mut r) = tally(b"hello world, and more", b"hello world");
        r.read_exact(&mut first).unwrap();
        let e = t.finish().unwrap_err();
        assert!(e.to_string().contains("changed while it was read"), "{e}");
        let (t, _) = tally(b"hellO world", b"hello world");
        assert!(t.finish().is_err());
    }
}
