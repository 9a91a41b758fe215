//! Health probes (HTTP, TCP, a command in the container) and the gate that passes after N
//! consecutive successes or fails after M attempts or when the container exits.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::model::service::Health;
use crate::providers::runtime::ContainerRuntime;

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

/// One probe; `Err` carries what went wrong, for the gate's message.
pub async fn probe(
    docker: &dyn ContainerRuntime,
    container: &str,
    ip: Option<&str>,
    h: &Health,
) -> Result<(), String> {
    let timeout = h.timeout.to_std();
    if let Some(http) = &h.http {
        let ip = ip.ok_or("the container has no address on the project network")?;
        return tokio::time::timeout(timeout, http_get(ip, http.port.get(), &http.path))
            .await
            .map_err(|_| format!("GET {} timed out after {}", http.path, h.timeout))?;
    }
    if let Some(tcp) = &h.tcp {
        let ip = ip.ok_or("the container has no address on the project network")?;
        return match tokio::time::timeout(timeout, TcpStream::connect((ip, tcp.port.get()))).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(format!("connect to port {}: {e}", tcp.port)),
            Err(_) => Err(format!("connect to port {} timed out", tcp.port)),
        };
    }
    if let Some(cmd) = &h.command {
        return match tokio::time::timeout(timeout, docker.exec(container, cmd)).await {
            Ok(Ok(0)) => Ok(()),
            Ok(Ok(code)) => Err(format!("command exited with {code}")),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err("command timed out".into()),
        };
    }
    Ok(())
}

/// `GET path` over HTTP/1.0; any 2xx or 3xx status is healthy.
pub async fn http_get(ip: &str, port: u16, path: &str) -> Result<(), String> {
    let status = http_request(ip, port, "GET", path).await?;
    if (200..400).contains(&status) {
        Ok(())
    } else {
        Err(format!("GET {path} answered {status}"))
    }
}

/// Sends a bodiless HTTP/1.0 request and returns the status code.
pub async fn http_request(host: &str, port: u16, method: &str, path: &str) -> Result<u16, String> {
    let mut stream = TcpStream::connect((host, port))
        .await
        .map_err(|e| format!("connect to {host}:{port}: {e}"))?;
    let req = format!("{method} {path} HTTP/1.0\r\nHost: {host}:{port}\r\nUser-Agent: converge\r\nContent-Length: 0\r\n\r\n");
    stream
        .write_all(req.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let mut buf = vec![0u8; 256];
    let mut read = 0;
    while read < 12 {
        let n = stream
            .read(&mut buf[read..])
            .await
            .map_err(|e| e.to_string())?;
        if n == 0 {
            break;
        }
        read += n;
    }
    let head = String::from_utf8_lossy(&buf[..read]);
    head.split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("not an HTTP answer from {host}:{port}"))
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
    // A process needs a moment to listen: a first probe at once would cost a whole interval.
    tokio::time::sleep(h.interval.to_std().min(Duration::from_millis(250))).await;
    for attempt in 1..=h.retries {
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
                last = e;
            }
        }
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
