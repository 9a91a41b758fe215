//! Health probes (HTTP, TCP, a command in the container) and the gate that passes after N
//! consecutive successes or fails after M attempts or when the container exits.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::model::service::Health;
use crate::model::types::Duration as Timeout;
use crate::providers::runtime::{ContainerRuntime, RuntimeError};

/// Why a gate failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum GateError {
    #[error("container {name} exited (code {code:?}) before passing its health check")]
    Exited { name: String, code: Option<i64> },
    #[error("container {name} failed its health check {attempts} times (last: {last})")]
    Unhealthy {
        name: String,
        attempts: u32,
        last: String,
    },
}

/// Why one probe failed; the gate keeps the last one for its message.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// An HTTP or TCP probe needs the container's address, and it has none.
    #[error("the container has no address on the project network")]
    NoAddress,
    /// The HTTP probe got no answer within the health check's `timeout`.
    #[error("GET {path} timed out after {timeout}")]
    HttpTimeout { path: String, timeout: Timeout },
    /// The TCP probe could not connect to the container port.
    #[error("connect to port {port}: {error}")]
    TcpConnect { port: u16, error: std::io::Error },
    /// The TCP probe did not connect within the health check's `timeout`.
    #[error("connect to port {port} timed out")]
    TcpTimeout { port: u16 },
    /// The command probe ran and exited non-zero.
    #[error("command exited with {code}")]
    CommandExit { code: i64 },
    /// The command probe could not be run in the container.
    #[error(transparent)]
    Exec(#[from] RuntimeError),
    /// The command probe did not finish within the health check's `timeout`.
    #[error("command timed out")]
    CommandTimeout,
    /// The HTTP probe answered, with neither a 2xx nor a 3xx status.
    #[error("GET {path} answered {status}")]
    HttpStatus { path: String, status: u16 },
    /// No connection to `host:port` for an HTTP request.
    #[error("connect to {host}:{port}: {error}")]
    Connect {
        host: String,
        port: u16,
        error: std::io::Error,
    },
    /// The connection broke while sending the request.
    #[error("{error}")]
    Send {
        host: String,
        port: u16,
        error: std::io::Error,
    },
    /// The connection broke while reading the answer.
    #[error("{error}")]
    Receive {
        host: String,
        port: u16,
        error: std::io::Error,
    },
    /// What came back does not start with an HTTP status line.
    #[error("not an HTTP answer from {host}:{port}")]
    NotHttp { host: String, port: u16 },
}

/// One probe; `Err` carries what went wrong, for the gate's message.
pub async fn probe(
    docker: &dyn ContainerRuntime,
    container: &str,
    ip: Option<&str>,
    h: &Health,
) -> Result<(), ProbeError> {
    let timeout = h.timeout.to_std();
    if let Some(http) = &h.http {
        let ip = ip.ok_or(ProbeError::NoAddress)?;
        return tokio::time::timeout(timeout, http_get(ip, http.port.get(), &http.path))
            .await
            .map_err(|_| ProbeError::HttpTimeout {
                path: http.path.clone(),
                timeout: h.timeout,
            })?;
    }
    if let Some(tcp) = &h.tcp {
        let ip = ip.ok_or(ProbeError::NoAddress)?;
        let port = tcp.port.get();
        return match tokio::time::timeout(timeout, TcpStream::connect((ip, port))).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(error)) => Err(ProbeError::TcpConnect { port, error }),
            Err(_) => Err(ProbeError::TcpTimeout { port }),
        };
    }
    if let Some(cmd) = &h.command {
        return match tokio::time::timeout(timeout, docker.exec(container, cmd)).await {
            Ok(Ok(0)) => Ok(()),
            Ok(Ok(code)) => Err(ProbeError::CommandExit { code }),
            Ok(Err(e)) => Err(ProbeError::Exec(e)),
            Err(_) => Err(ProbeError::CommandTimeout),
        };
    }
    Ok(())
}

/// `GET path` over HTTP/1.0; any 2xx or 3xx status is healthy.
pub async fn http_get(ip: &str, port: u16, path: &str) -> Result<(), ProbeError> {
    let status = http_request(ip, port, "GET", path).await?;
    if (200..400).contains(&status) {
        Ok(())
    } else {
        Err(ProbeError::HttpStatus {
            path: path.to_string(),
            status,
        })
    }
}

/// Sends a bodiless HTTP/1.0 request and returns the status code. It has no timeout of its own:
/// every caller bounds it (a probe by its health check's `timeout`, a check or reload by its
/// resource's `action_timeout`).
pub async fn http_request(
    host: &str,
    port: u16,
    method: &str,
    path: &str,
) -> Result<u16, ProbeError> {
    let mut stream =
        TcpStream::connect((host, port))
            .await
            .map_err(|error| ProbeError::Connect {
                host: host.to_string(),
                port,
                error,
            })?;
    let req = format!("{method} {path} HTTP/1.0\r\nHost: {host}:{port}\r\nUser-Agent: converge\r\nContent-Length: 0\r\n\r\n");
    stream
        .write_all(req.as_bytes())
        .await
        .map_err(|error| ProbeError::Send {
            host: host.to_string(),
            port,
            error,
        })?;
    let mut buf = vec![0u8; 256];
    let mut read = 0;
    while read < 12 {
        let n = stream
            .read(&mut buf[read..])
            .await
            .map_err(|error| ProbeError::Receive {
                host: host.to_string(),
                port,
                error,
            })?;
        if n == 0 {
            break;
        }
        read += n;
    }
    let head = String::from_utf8_lossy(&buf[..read]);
    head.split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| ProbeError::NotHttp {
            host: host.to_string(),
            port,
        })
}

/// Probes `container` until `healthy_after` consecutive successes; fails after `retries`
/// attempts or as soon as the container stops running.
pub async fn gate(
    docker: &dyn ContainerRuntime,
    container: &str,
    h: &Health,
) -> Result<(), GateError> {
    let mut streak = 0;
    let mut last = String::new();
    let started = tokio::time::Instant::now();
    let start_period = h.start_period.map(|p| p.to_std()).unwrap_or_default();
    // A process needs a moment to listen: a first probe at once would cost a whole interval.
    tokio::time::sleep(h.interval.to_std().min(Duration::from_millis(250))).await;
    let mut attempt = 0;
    while attempt < h.retries {
        let status = docker.status(container).await.ok().flatten();
        match &status {
            Some(s) if s.running => {}
            other => {
                return Err(GateError::Exited {
                    name: container.into(),
                    code: other.as_ref().and_then(|s| s.exit_code),
                })
            }
        }
        let ip = status.as_ref().and_then(|s| s.ip.as_deref());
        match probe(docker, container, ip, h).await {
            Ok(()) => {
                streak += 1;
                if streak >= h.healthy_after {
                    return Ok(());
                }
            }
            Err(e) => {
                streak = 0;
                last = e.to_string();
                // Failures within the start period do not count, as with Docker's own check.
                if started.elapsed() < start_period {
                    tokio::time::sleep(h.interval.to_std().min(Duration::from_secs(3600))).await;
                    continue;
                }
            }
        }
        attempt += 1;
        if attempt < h.retries {
            tokio::time::sleep(h.interval.to_std().min(Duration::from_secs(3600))).await;
        }
    }
    Err(GateError::Unhealthy {
        name: container.into(),
        attempts: h.retries,
        last,
    })
}
