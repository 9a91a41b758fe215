//! Copies streamed to and from S3 with their requests overlapped. Reading keeps several ranged
//! GETs in flight and hands their bytes over in order; writing uploads several parts at once
//! while the pipeline keeps producing. Both hold a fixed number of parts at most, whatever the
//! copy's size, and are blocking (the pipeline runs on a thread of its own).

use std::collections::VecDeque;
use std::future::Future;
use std::io::{self, Read, Write};

use tokio::runtime::Handle;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::store::Sink;
use super::BackupError;
use crate::providers::s3::{S3Error, S3};

/// The size of an uploaded part and of a ranged GET.
pub(super) const PART: usize = 8 << 20;
/// Ranged GETs in flight while a copy is read.
const READ_AHEAD: usize = 4;
/// Part uploads in flight while a copy is written.
const UPLOADS: usize = 3;

/// An object: where a copy lives.
#[derive(Clone)]
pub(super) struct Location {
    pub s3: S3,
    pub bucket: String,
    pub key: String,
}

/// Reads the `size` bytes of `at` in ranged pieces, `READ_AHEAD` of them in flight.
pub(super) fn reader(at: Location, size: u64, rt: &Handle) -> ReadAhead {
    let fetch = move |offset: u64, len: u64| {
        let at = at.clone();
        async move {
            at.s3
                .get_range(&at.bucket, &at.key, offset, len)
                .await
                .map_err(io::Error::other)
        }
    };
    ReadAhead::spawn(rt, size, PART as u64, READ_AHEAD, fetch)
}

/// Pieces of a byte stream, read in the order they are received. The first error is read in
/// its place and ends the stream; so does an empty piece, or the sender gone.
struct Pieces {
    rx: mpsc::Receiver<io::Result<Vec<u8>>>,
    buf: Vec<u8>,
    pos: usize,
    done: bool,
}

impl Pieces {
    fn new(rx: mpsc::Receiver<io::Result<Vec<u8>>>) -> Pieces {
        Pieces {
            rx,
            buf: Vec::new(),
            pos: 0,
            done: false,
        }
    }

    /// The next piece into `buf`; false at the end.
    fn next_piece(&mut self) -> io::Result<bool> {
        if self.done {
            return Ok(false);
        }
        match self.rx.blocking_recv() {
            Some(Ok(piece)) if !piece.is_empty() => {
                self.buf = piece;
                self.pos = 0;
                Ok(true)
            }
            Some(Err(e)) => {
                self.done = true;
                Err(e)
            }
            Some(Ok(_)) | None => {
                self.done = true;
                Ok(false)
            }
        }
    }
}

impl Read for Pieces {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.pos == self.buf.len() && !self.next_piece()? {
            return Ok(0);
        }
        let n = out.len().min(self.buf.len() - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// The bytes of `0..size`, fetched `depth` pieces at a time by a task on the runtime and read
/// in order. At most `depth + 2` pieces are held: `depth` fetched or fetching, one waiting in
/// the channel, one being read. The first error is read in its place, and ends the stream.
pub(super) struct ReadAhead {
    pieces: Pieces,
    driver: JoinHandle<()>,
}

impl ReadAhead {
    fn spawn<F, Fut>(rt: &Handle, size: u64, piece: u64, depth: usize, fetch: F) -> ReadAhead
    where
        F: Fn(u64, u64) -> Fut + Send + 'static,
        Fut: Future<Output = io::Result<Vec<u8>>> + Send + 'static,
    {
        let (tx, rx) = mpsc::channel(1);
        let driver = rt.spawn(drive(size, piece, depth.max(1), fetch, tx));
        ReadAhead {
            pieces: Pieces::new(rx),
            driver,
        }
    }
}

impl Read for ReadAhead {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        self.pieces.read(out)
    }
}

impl Drop for ReadAhead {
    fn drop(&mut self) {
        // The driver's fetches in flight are aborted with it (`InFlight`).
        self.driver.abort();
    }
}

/// Fetch tasks, oldest first; those still running when it is dropped are aborted.
struct InFlight<T>(VecDeque<JoinHandle<T>>);

impl<T> Drop for InFlight<T> {
    fn drop(&mut self) {
        self.0.iter().for_each(JoinHandle::abort);
    }
}

/// Fetches the pieces of `0..size` `depth` at a time and sends them in order; stops after the
/// first error, or when the reader is gone.
async fn drive<F, Fut>(
    size: u64,
    piece: u64,
    depth: usize,
    fetch: F,
    tx: mpsc::Sender<io::Result<Vec<u8>>>,
) where
    F: Fn(u64, u64) -> Fut,
    Fut: Future<Output = io::Result<Vec<u8>>> + Send + 'static,
{
    let mut next = 0u64;
    let mut flight = InFlight(VecDeque::with_capacity(depth));
    loop {
        while flight.0.len() < depth && next < size {
            let len = piece.min(size - next);
            flight.0.push_back(tokio::spawn(fetch(next, len)));
            next += len;
        }
        let Some(oldest) = flight.0.pop_front() else {
            return;
        };
        let got = oldest
            .await
            .unwrap_or_else(|e| Err(io::Error::other(format!("a download task failed: {e}"))));
        let failed = got.is_err();
        if tx.send(got).await.is_err() || failed {
            return;
        }
    }
}

/// A multipart upload in the making, `UPLOADS` parts in flight while the next one fills:
/// completed on commit, aborted otherwise (an upload left incomplete is billed storage that no
/// listing shows). A part's failure surfaces at a later write or at commit.
pub(super) struct S3Sink {
    at: Location,
    upload: String,
    buf: Vec<u8>,
    /// Parts sent and not yet settled, oldest first.
    flight: InFlight<Result<String, S3Error>>,
    /// ETags of the settled parts, in part order.
    etags: Vec<String>,
    sent: i32,
    rt: Handle,
    done: bool,
}

impl S3Sink {
    /// Starts the multipart upload of `at`.
    pub(super) fn start(at: Location, rt: &Handle) -> Result<S3Sink, BackupError> {
        let upload = rt.block_on(at.s3.start_upload(&at.bucket, &at.key))?;
        Ok(S3Sink {
            at,
            upload,
            buf: Vec::with_capacity(PART),
            flight: InFlight(VecDeque::with_capacity(UPLOADS)),
            etags: Vec::new(),
            sent: 0,
            rt: rt.clone(),
            done: false,
        })
    }

    /// Waits for the oldest part in flight and records its ETag.
    fn settle_oldest(&mut self) -> io::Result<()> {
        let Some(oldest) = self.flight.0.pop_front() else {
            return Ok(());
        };
        let etag = self
            .rt
            .block_on(oldest)
            .map_err(|e| io::Error::other(format!("an upload task failed: {e}")))?
            .map_err(io::Error::other)?;
        self.etags.push(etag);
        Ok(())
    }

    /// Sends the buffered bytes as the next part, once fewer than `UPLOADS` are in flight.
    fn send_part(&mut self) -> io::Result<()> {
        if self.flight.0.len() >= UPLOADS {
            self.settle_oldest()?;
        }
        let body = std::mem::replace(&mut self.buf, Vec::with_capacity(PART));
        self.sent += 1;
        let (at, upload, n) = (self.at.clone(), self.upload.clone(), self.sent);
        let part = async move {
            at.s3
                .upload_part(&at.bucket, &at.key, &upload, n, body)
                .await
        };
        self.flight.0.push_back(self.rt.spawn(part));
        Ok(())
    }

    /// The last part sent, every part settled.
    fn finish_parts(&mut self) -> io::Result<()> {
        if !self.buf.is_empty() || self.sent == 0 {
            self.send_part()?;
        }
        while !self.flight.0.is_empty() {
            self.settle_oldest()?;
        }
        Ok(())
    }
}

impl Write for S3Sink {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        let n = (PART - self.buf.len()).min(b.len());
        self.buf.extend_from_slice(&b[..n]);
        if self.buf.len() == PART {
            self.send_part()?;
        }
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Sink for S3Sink {
    fn commit(mut self: Box<Self>) -> Result<(), BackupError> {
        self.finish_parts().map_err(BackupError::from_io)?;
        let (at, rt) = (self.at.clone(), self.rt.clone());
        rt.block_on(
            at.s3
                .complete_upload(&at.bucket, &at.key, &self.upload, &self.etags),
        )?;
        self.done = true;
        Ok(())
    }
    fn abort(self: Box<Self>) {}
}

impl Drop for S3Sink {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let parts: Vec<_> = self.flight.0.drain(..).collect();
        parts.iter().for_each(JoinHandle::abort);
        let (at, upload) = (self.at.clone(), self.upload.clone());
        let abort = async move {
            // Parts still arriving could outlive the abort: they are stopped first.
            for p in parts {
                let _ = p.await;
            }
            if let Err(e) = at.s3.abort_upload(&at.bucket, &at.key, &upload).await {
                tracing::warn!(upload = %upload, error = %e, "cannot abort an incomplete multipart upload; a bucket lifecycle rule (abort_incomplete_uploads_after) removes it");
            }
        };
        // Like every call of this sink: the backup pipeline runs on a thread of its own.
        self.rt.block_on(abort);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
    use std::sync::Arc;
    use std::time::Duration;

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap()
    }

    /// The object's byte at `i`: its pieces tell apart wherever they land.
    fn byte(i: u64) -> u8 {
        (i % 251) as u8
    }

    fn bytes(offset: u64, len: u64) -> Vec<u8> {
        (offset..offset + len).map(byte).collect()
    }

    #[test]
    fn pieces_finishing_out_of_order_are_read_in_order() {
        let rt = runtime();
        let size = 10 * 1000 + 123;
        // Earlier pieces take longer: they finish after the ones fetched behind them.
        let fetch = |offset: u64, len: u64| async move {
            let late = 40u64.saturating_sub(offset / 1000 * 10);
            tokio::time::sleep(Duration::from_millis(late)).await;
            Ok(bytes(offset, len))
        };
        let mut r = ReadAhead::spawn(rt.handle(), size, 1000, 4, fetch);
        let mut got = Vec::new();
        r.read_to_end(&mut got).unwrap();
        assert_eq!(got, bytes(0, size));
    }

    /// Counts fetches started and pieces read, and the most fetched ahead of the reader.
    #[derive(Default)]
    struct Counts {
        started: AtomicUsize,
        read: AtomicUsize,
        most_ahead: AtomicUsize,
    }

    #[test]
    fn the_fetches_run_together_and_never_get_further_ahead_than_the_read_ahead() {
        let rt = runtime();
        let (depth, pieces) = (4usize, 20u64);
        let counts = Arc::new(Counts::default());
        let c = counts.clone();
        let fetch = move |offset: u64, len: u64| {
            let c = c.clone();
            let started = c.started.fetch_add(1, SeqCst) + 1;
            c.most_ahead
                .fetch_max(started - c.read.load(SeqCst), SeqCst);
            async move {
                // Each of the first `depth` fetches waits for all of them to have started:
                // fetched one at a time, this would never finish.
                for _ in 0..5000 {
                    if c.started.load(SeqCst) >= depth {
                        return Ok(bytes(offset, len));
                    }
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                Err(io::Error::other("the fetches did not run together"))
            }
        };
        let mut r = ReadAhead::spawn(rt.handle(), pieces * 100, 100, depth, fetch);
        let mut piece = [0u8; 100];
        for i in 0..pieces {
            r.read_exact(&mut piece).unwrap();
            assert_eq!(piece.to_vec(), bytes(i * 100, 100));
            counts.read.fetch_add(1, SeqCst);
            std::thread::sleep(Duration::from_millis(2));
        }
        assert_eq!(r.read(&mut piece).unwrap(), 0);
        assert_eq!(counts.started.load(SeqCst), pieces as usize);
        let ahead = counts.most_ahead.load(SeqCst);
        assert!(
            ahead <= depth + 2,
            "{ahead} pieces fetched ahead of the reader"
        );
        assert!(
            ahead >= depth,
            "only {ahead} pieces fetched ahead of the reader"
        );
    }

    #[test]
    fn a_failed_piece_is_read_in_its_place_after_the_pieces_before_it() {
        let rt = runtime();
        let fetch = |offset: u64, len: u64| async move {
            if offset == 200 {
                return Err(io::Error::other(
                    "s3: get object range b/k (bytes 200-299): boom",
                ));
            }
            // The pieces before the failed one arrive after its failure.
            tokio::time::sleep(Duration::from_millis(30)).await;
            Ok(bytes(offset, len))
        };
        let mut r = ReadAhead::spawn(rt.handle(), 1000, 100, 4, fetch);
        let mut before = [0u8; 200];
        r.read_exact(&mut before).unwrap();
        assert_eq!(before.to_vec(), bytes(0, 200));
        let e = r.read(&mut before).unwrap_err();
        assert_eq!(
            e.to_string(),
            "s3: get object range b/k (bytes 200-299): boom"
        );
        assert_eq!(r.read(&mut before).unwrap(), 0, "nothing after the error");
    }

    #[test]
    fn an_empty_object_reads_as_empty_without_a_fetch() {
        let rt = runtime();
        let fetch = |_: u64, _: u64| async { Err(io::Error::other("fetched")) };
        let mut r = ReadAhead::spawn(rt.handle(), 0, 100, 4, fetch);
        let mut got = Vec::new();
        r.read_to_end(&mut got).unwrap();
        assert!(got.is_empty());
    }
}
