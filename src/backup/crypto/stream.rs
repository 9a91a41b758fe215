//! The encrypted stream: AES-256-GCM in 1 MiB chunks under a fresh data key per copy, the data
//! key wrapped (AES-256-GCM) under a key derived by HKDF from the backup key. Each chunk's nonce
//! is random and its position and finality are bound in as associated data, so reordering,
//! truncation and tampering all fail to decrypt.

use std::io::{self, Read, Write};

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};

use super::{random, Key};
use crate::backup::BackupError;

/// Version 2: the data key is wrapped under an HKDF subkey, not the backup key itself.
const MAGIC: &[u8; 8] = b"CVGBAK02";
pub const CHUNK: usize = 1 << 20;

fn aad(index: u64, last: bool) -> [u8; 9] {
    let mut a = [0u8; 9];
    a[..8].copy_from_slice(&index.to_be_bytes());
    a[8] = u8::from(last);
    a
}

/// Encrypts what is written to it into `inner`; call `finish` to seal the last chunk.
pub struct Encryptor<W: Write> {
    inner: W,
    cipher: Aes256Gcm,
    buf: Vec<u8>,
    index: u64,
}

impl<W: Write> Encryptor<W> {
    pub fn new(mut inner: W, key: &Key) -> io::Result<Self> {
        let data_key: [u8; 32] = random();
        let wrap = Aes256Gcm::new((&key.wrapping_key()).into());
        let nonce: [u8; 12] = random();
        let wrapped = wrap
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: &data_key,
                    aad: MAGIC,
                },
            )
            .map_err(|_| BackupError::DataKeyWrap.into_io(io::ErrorKind::Other))?;
        inner.write_all(MAGIC)?;
        inner.write_all(&nonce)?;
        inner.write_all(&wrapped)?;
        Ok(Encryptor {
            inner,
            cipher: Aes256Gcm::new((&data_key).into()),
            buf: Vec::with_capacity(CHUNK),
            index: 0,
        })
    }

    fn seal(&mut self, last: bool) -> io::Result<()> {
        let nonce: [u8; 12] = random();
        let sealed = self
            .cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: &self.buf,
                    aad: &aad(self.index, last),
                },
            )
            .map_err(|_| {
                BackupError::SealChunk { chunk: self.index }.into_io(io::ErrorKind::Other)
            })?;
        self.inner.write_all(&(sealed.len() as u32).to_be_bytes())?;
        self.inner.write_all(&nonce)?;
        self.inner.write_all(&sealed)?;
        self.buf.clear();
        self.index += 1;
        Ok(())
    }

    pub fn finish(mut self) -> io::Result<W> {
        self.seal(true)?;
        self.inner.flush()?;
        Ok(self.inner)
    }
}

impl<W: Write> Write for Encryptor<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let room = CHUNK - self.buf.len();
        let n = room.min(data.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() == CHUNK {
            self.seal(false)?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Decrypts a stream written by `Encryptor`; errors on a wrong key, tampering or truncation.
pub struct Decryptor<R: Read> {
    inner: R,
    cipher: Aes256Gcm,
    out: Vec<u8>,
    pos: usize,
    index: u64,
    done: bool,
}

impl<R: Read> Decryptor<R> {
    pub fn new(mut inner: R, key: &Key) -> io::Result<Self> {
        let mut magic = [0u8; 8];
        inner.read_exact(&mut magic)?;
        if &magic != MAGIC {
            return Err(BackupError::NotEncrypted.into_io(io::ErrorKind::InvalidData));
        }
        let mut nonce = [0u8; 12];
        inner.read_exact(&mut nonce)?;
        let mut wrapped = [0u8; 48];
        inner.read_exact(&mut wrapped)?;
        let data_key = Aes256Gcm::new((&key.wrapping_key()).into())
            .decrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: &wrapped,
                    aad: MAGIC,
                },
            )
            .map_err(|_| BackupError::DataKeyUnwrap.into_io(io::ErrorKind::InvalidData))?;
        let data_key: [u8; 32] = data_key.try_into().map_err(|k: Vec<u8>| {
            BackupError::DataKeyLength { len: k.len() }.into_io(io::ErrorKind::Other)
        })?;
        Ok(Decryptor {
            inner,
            cipher: Aes256Gcm::new((&data_key).into()),
            out: Vec::new(),
            pos: 0,
            index: 0,
            done: false,
        })
    }

    fn next_chunk(&mut self) -> io::Result<bool> {
        self.read_chunk().map_err(|e| {
            if e.kind() == io::ErrorKind::UnexpectedEof {
                BackupError::Truncated { chunk: self.index }.into_io(io::ErrorKind::InvalidData)
            } else {
                e
            }
        })
    }

    fn read_chunk(&mut self) -> io::Result<bool> {
        let mut len = [0u8; 4];
        self.inner.read_exact(&mut len)?;
        let len = u32::from_be_bytes(len) as usize;
        if len > CHUNK + 16 {
            return Err(BackupError::ChunkLength {
                chunk: self.index,
                len,
            }
            .into_io(io::ErrorKind::InvalidData));
        }
        let mut nonce = [0u8; 12];
        self.inner.read_exact(&mut nonce)?;
        let mut sealed = vec![0u8; len];
        self.inner.read_exact(&mut sealed)?;
        for last in [false, true] {
            if let Ok(plain) = self.cipher.decrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: &sealed,
                    aad: &aad(self.index, last),
                },
            ) {
                self.out = plain;
                self.pos = 0;
                self.index += 1;
                return Ok(last);
            }
        }
        Err(BackupError::ChunkAuthentication { chunk: self.index }
            .into_io(io::ErrorKind::InvalidData))
    }
}

impl<R: Read> Read for Decryptor<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.out.len() {
            if self.done {
                return Ok(0);
            }
            self.done = self.next_chunk()?;
        }
        let n = buf.len().min(self.out.len() - self.pos);
        buf[..n].copy_from_slice(&self.out[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(data: &[u8]) -> Vec<u8> {
        let key = Key::from_bytes([7u8; 32]);
        let mut enc = Encryptor::new(Vec::new(), &key).unwrap();
        enc.write_all(data).unwrap();
        enc.finish().unwrap()
    }

    #[test]
    fn what_is_encrypted_decrypts_to_the_same_bytes() {
        let data: Vec<u8> = (0..(CHUNK * 2 + 1234)).map(|i| (i % 251) as u8).collect();
        let sealed = roundtrip(&data);
        let key = Key::from_bytes([7u8; 32]);
        let mut out = Vec::new();
        Decryptor::new(sealed.as_slice(), &key)
            .unwrap()
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, data);
    }

    #[test]
    fn a_wrong_key_a_flipped_bit_and_a_truncation_all_fail() {
        let data = vec![7u8; CHUNK + 10];
        let sealed = roundtrip(&data);
        let wrong = Key::from_bytes([8u8; 32]);
        let e = Decryptor::new(sealed.as_slice(), &wrong).err().unwrap();
        assert!(e.to_string().contains("not encrypted with this key"), "{e}");
        let key = Key::from_bytes([7u8; 32]);
        let mut tampered = sealed.clone();
        let at = tampered.len() - 5;
        tampered[at] ^= 1;
        let e = Decryptor::new(tampered.as_slice(), &key)
            .unwrap()
            .read_to_end(&mut Vec::new())
            .unwrap_err();
        assert!(e.to_string().contains("fails authentication"), "{e}");
        let e = BackupError::from_io(e);
        assert!(
            matches!(e, BackupError::ChunkAuthentication { chunk: 1 }),
            "{e:?}"
        );
        let first_chunk_end = 8 + 12 + 48 + 4 + 12 + CHUNK + 16;
        let e = Decryptor::new(&sealed[..first_chunk_end], &key)
            .unwrap()
            .read_to_end(&mut Vec::new())
            .unwrap_err();
        assert!(e.to_string().contains("truncated"), "{e}");
    }

    #[test]
    fn the_data_key_is_wrapped_under_a_subkey_not_the_backup_key_itself() {
        let key = Key::from_bytes([7u8; 32]);
        let sealed = roundtrip(b"x");
        assert_eq!(&sealed[..8], MAGIC);
        let (nonce, wrapped) = (&sealed[8..20], &sealed[20..68]);
        let unwrap = |k: &[u8; 32]| {
            Aes256Gcm::new(k.into())
                .decrypt(
                    Nonce::from_slice(nonce),
                    Payload {
                        msg: wrapped,
                        aad: MAGIC,
                    },
                )
                .is_ok()
        };
        assert!(unwrap(&key.wrapping_key()));
        assert!(!unwrap(&[7u8; 32]), "the backup key itself must not unwrap");
    }
}
