//! Proxies for fault tests. `CuttingProxy` (TCP) forwards connections to an upstream server and
//! cuts any connection once the client has sent more than a given number of bytes on it (a link
//! that drops in the middle of a large upload, while small calls still get through).
//! `SocketProxy` (Unix socket) forwards to the Docker engine's socket until it is stopped (an
//! engine that becomes unreachable in the middle of an apply).

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

pub struct CuttingProxy {
    pub port: u16,
    stop: Arc<AtomicBool>,
    cuts: Arc<AtomicUsize>,
}

impl CuttingProxy {
    /// Listens on a free port of 127.0.0.1 and forwards to `upstream` (`host:port`).
    pub fn start(upstream: &str, cut_after: u64) -> CuttingProxy {
        Self::start_on(0, upstream, cut_after)
    }

    /// Like `start`, on `port` of 127.0.0.1 (0: a free one).
    pub fn start_on(port: u16, upstream: &str, cut_after: u64) -> CuttingProxy {
        let listener = TcpListener::bind(("127.0.0.1", port)).unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let cuts = Arc::new(AtomicUsize::new(0));
        let (stop2, cuts2, upstream) = (stop.clone(), cuts.clone(), upstream.to_string());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                if stop2.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(client) = client else { continue };
                let Ok(server) = TcpStream::connect(&upstream) else {
                    continue;
                };
                let cuts = cuts2.clone();
                let (c2, s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
                std::thread::spawn(move || pipe(s2, c2, u64::MAX, None));
                std::thread::spawn(move || pipe(client, server, cut_after, Some(cuts)));
            }
        });
        CuttingProxy { port, stop, cuts }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// How many connections were cut.
    pub fn cuts(&self) -> usize {
        self.cuts.load(Ordering::SeqCst)
    }
}

/// Copies `from` → `to`; past `limit` bytes both connections are shut down.
fn pipe(mut from: TcpStream, mut to: TcpStream, limit: u64, cuts: Option<Arc<AtomicUsize>>) {
    let mut buf = [0u8; 16 * 1024];
    let mut sent = 0u64;
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if sent + n as u64 > limit {
            if let Some(c) = &cuts {
                c.fetch_add(1, Ordering::SeqCst);
            }
            break;
        }
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
        sent += n as u64;
    }
    let _ = from.shutdown(Shutdown::Both);
    let _ = to.shutdown(Shutdown::Both);
}

impl Drop for CuttingProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

/// A Unix-socket proxy for fault tests: listens on a socket path and forwards each connection to
/// an upstream socket (the Docker engine's). `stop` cuts every open connection and removes the
/// socket, so later connections fail as if the engine were gone; `stop_at_second` does so by
/// itself when a client sends a request line containing a given text for the second time (the
/// request is not forwarded).
pub struct SocketProxy {
    pub path: std::path::PathBuf,
    stopped: Arc<AtomicBool>,
    open: Arc<std::sync::Mutex<Vec<std::os::unix::net::UnixStream>>>,
}

impl SocketProxy {
    /// Listens on `path` (which must not exist) and forwards to the socket `upstream` until
    /// `stop`, or until the second request whose first line holds `marker` arrives.
    pub fn stop_at_second(path: &std::path::Path, upstream: &str, marker: &str) -> SocketProxy {
        use std::os::unix::net::{UnixListener, UnixStream};
        let marker = marker.to_string();
        let listener = UnixListener::bind(path).unwrap();
        let proxy = SocketProxy {
            path: path.to_path_buf(),
            stopped: Arc::new(AtomicBool::new(false)),
            open: Arc::new(std::sync::Mutex::new(Vec::new())),
        };
        let (stopped, open, upstream, path) = (
            proxy.stopped.clone(),
            proxy.open.clone(),
            upstream.to_string(),
            proxy.path.clone(),
        );
        let seen = Arc::new(AtomicUsize::new(0));
        std::thread::spawn(move || {
            for client in listener.incoming() {
                if stopped.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(client) = client else { continue };
                let Ok(server) = UnixStream::connect(&upstream) else {
                    continue;
                };
                {
                    let mut open = open.lock().unwrap();
                    open.push(client.try_clone().unwrap());
                    open.push(server.try_clone().unwrap());
                }
                let (c2, s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
                std::thread::spawn(move || unix_pipe(s2, c2, None));
                let watch = Some(Watch {
                    marker: marker.clone(),
                    seen: seen.clone(),
                    stopped: stopped.clone(),
                    open: open.clone(),
                    path: path.clone(),
                });
                std::thread::spawn(move || unix_pipe(client, server, watch));
            }
        });
        proxy
    }

    /// `unix://<path>`, for `DOCKER_HOST`.
    pub fn host(&self) -> String {
        format!("unix://{}", self.path.display())
    }

    pub fn is_stopped(&self) -> bool {
        self.stopped.load(Ordering::SeqCst)
    }

    /// Cuts every connection and removes the socket: nothing reaches the upstream any more.
    pub fn stop(&self) {
        shut(&self.stopped, &self.open, &self.path);
    }
}

fn shut(
    stopped: &AtomicBool,
    open: &std::sync::Mutex<Vec<std::os::unix::net::UnixStream>>,
    path: &std::path::Path,
) {
    if stopped.swap(true, Ordering::SeqCst) {
        return;
    }
    for s in open.lock().unwrap().drain(..) {
        let _ = s.shutdown(Shutdown::Both);
    }
    // Wakes the accept loop so it sees the flag and drops the listener.
    let _ = std::os::unix::net::UnixStream::connect(path);
    let _ = std::fs::remove_file(path);
}

/// What `unix_pipe` looks for in the client's requests.
struct Watch {
    marker: String,
    seen: Arc<AtomicUsize>,
    stopped: Arc<AtomicBool>,
    open: Arc<std::sync::Mutex<Vec<std::os::unix::net::UnixStream>>>,
    path: std::path::PathBuf,
}

/// Copies `from` → `to`; with a `watch`, the second request carrying its marker stops the proxy
/// instead of being forwarded.
fn unix_pipe(
    mut from: std::os::unix::net::UnixStream,
    mut to: std::os::unix::net::UnixStream,
    watch: Option<Watch>,
) {
    let mut buf = [0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if let Some(w) = &watch {
            let chunk = String::from_utf8_lossy(&buf[..n]);
            let first_line = chunk.lines().next().unwrap_or("");
            if first_line.contains(&w.marker) && w.seen.fetch_add(1, Ordering::SeqCst) >= 1 {
                shut(&w.stopped, &w.open, &w.path);
                break;
            }
        }
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = from.shutdown(Shutdown::Both);
    let _ = to.shutdown(Shutdown::Both);
}

impl Drop for SocketProxy {
    fn drop(&mut self) {
        self.stop();
    }
}
