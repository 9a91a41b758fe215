//! Retrying a PostgreSQL connection that failed transiently: which failures are worth another
//! attempt (a refused or reset connection, a server starting up or shutting down, too many
//! connections — never a refused password or a missing database) and the backoff between them.

use std::future::Future;
use std::time::{Duration, Instant};

/// How often, and for how long, connecting is tried.
#[derive(Debug, Clone, Copy)]
pub(super) struct Schedule {
    /// Attempts in all, the first included.
    pub attempts: u32,
    /// The wait after the first failure; it doubles after each further one.
    pub first_wait: Duration,
    /// The longest connecting may take, attempts and waits together.
    pub budget: Duration,
}

/// 5 attempts, 200 ms doubling between them (200, 400, 800, 1600 ms: 3 s of waiting), at most
/// 10 s in all (the time one attempt was allowed before retries existed).
pub(super) const SCHEDULE: Schedule = Schedule {
    attempts: 5,
    first_wait: Duration::from_millis(200),
    budget: Duration::from_secs(10),
};

/// SQLSTATEs of a server that may well accept the same connection a moment later:
/// admin_shutdown, crash_shutdown, cannot_connect_now (starting up), too_many_connections.
const TRANSIENT_SQLSTATES: [&str; 4] = ["57P01", "57P02", "57P03", "53300"];

/// How a socket failed to connect, when it may be up a moment later (a Unix socket is missing
/// while its server restarts).
const TRANSIENT_IO: [std::io::ErrorKind; 7] = [
    std::io::ErrorKind::ConnectionRefused,
    std::io::ErrorKind::ConnectionReset,
    std::io::ErrorKind::ConnectionAborted,
    std::io::ErrorKind::NotConnected,
    std::io::ErrorKind::BrokenPipe,
    std::io::ErrorKind::UnexpectedEof,
    std::io::ErrorKind::NotFound,
];

/// Whether a failed connection is tried again. A server's answer decides by its SQLSTATE alone
/// (28P01/28000 authentication, 3D000 no such database and every other one are final); without
/// one, a socket error of a transient kind or a connection the server closed is retried.
pub(super) fn transient(
    sqlstate: Option<&str>,
    io: Option<std::io::ErrorKind>,
    closed: bool,
) -> bool {
    match sqlstate {
        Some(code) => TRANSIENT_SQLSTATES.contains(&code),
        None => closed || io.is_some_and(|k| TRANSIENT_IO.contains(&k)),
    }
}

/// `transient` for a driver error: its SQLSTATE, the I/O error in its sources, whether closed.
pub(super) fn is_transient(e: &tokio_postgres::Error) -> bool {
    let sqlstate = e.as_db_error().map(|d| d.code().code());
    let mut io = None;
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        if let Some(i) = s.downcast_ref::<std::io::Error>() {
            io = Some(i.kind());
            break;
        }
        source = s.source();
    }
    transient(sqlstate, io, e.is_closed())
}

/// Why connecting was given up.
#[derive(Debug)]
pub(super) enum GaveUp<E> {
    /// The last attempt failed with `error` (final, or the attempts or the budget ran out).
    Failed {
        error: E,
        attempts: u32,
        elapsed: Duration,
    },
    /// An attempt was still pending when the budget ran out.
    TimedOut { attempts: u32, elapsed: Duration },
}

/// Runs `connect` until it succeeds, fails for good, or `schedule` runs out; `retry_note` is
/// called before each wait with the error and the wait.
pub(super) async fn retry<T, E, F, Fut>(
    schedule: Schedule,
    is_transient: impl Fn(&E) -> bool,
    mut retry_note: impl FnMut(&E, Duration),
    mut connect: F,
) -> Result<T, GaveUp<E>>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let start = Instant::now();
    let mut wait = schedule.first_wait;
    let mut attempts = 0;
    loop {
        attempts += 1;
        let left = schedule.budget.saturating_sub(start.elapsed());
        let error = match tokio::time::timeout(left, connect()).await {
            Ok(Ok(t)) => return Ok(t),
            Ok(Err(e)) => e,
            Err(_) => {
                return Err(GaveUp::TimedOut {
                    attempts,
                    elapsed: start.elapsed(),
                })
            }
        };
        if attempts >= schedule.attempts
            || !is_transient(&error)
            || start.elapsed() + wait >= schedule.budget
        {
            return Err(GaveUp::Failed {
                error,
                attempts,
                elapsed: start.elapsed(),
            });
        }
        retry_note(&error, wait);
        tokio::time::sleep(wait).await;
        wait *= 2;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::ErrorKind;

    #[test]
    fn a_server_that_is_starting_stopping_or_full_is_retried() {
        for code in ["57P03", "57P01", "57P02", "53300"] {
            assert!(transient(Some(code), None, false), "{code}");
        }
    }

    #[test]
    fn refused_passwords_missing_databases_and_other_answers_are_final() {
        for code in ["28P01", "28000", "3D000", "42501", "0A000", "XX000"] {
            assert!(!transient(Some(code), None, false), "{code}");
            // The server's answer decides, even on a connection it then closed.
            assert!(!transient(Some(code), None, true), "{code}");
        }
    }

    #[test]
    fn refused_reset_and_closed_connections_are_retried_other_socket_errors_are_not() {
        for kind in [
            ErrorKind::ConnectionRefused,
            ErrorKind::ConnectionReset,
            ErrorKind::ConnectionAborted,
            ErrorKind::BrokenPipe,
            ErrorKind::UnexpectedEof,
            ErrorKind::NotFound,
        ] {
            assert!(transient(None, Some(kind), false), "{kind:?}");
        }
        assert!(transient(None, None, true));
        for kind in [
            ErrorKind::PermissionDenied,
            ErrorKind::InvalidInput,
            ErrorKind::Other,
        ] {
            assert!(!transient(None, Some(kind), false), "{kind:?}");
        }
        assert!(!transient(None, None, false));
    }

    fn fast(attempts: u32) -> Schedule {
        Schedule {
            attempts,
            first_wait: Duration::from_millis(1),
            budget: Duration::from_secs(5),
        }
    }

    #[tokio::test]
    async fn a_transient_failure_is_retried_with_doubling_waits_until_it_passes() {
        let mut tries = 0;
        let mut waits = Vec::new();
        let r: Result<u32, GaveUp<&str>> = retry(
            fast(5),
            |e| *e == "refused",
            |_, w| waits.push(w),
            || {
                tries += 1;
                let n = tries;
                async move {
                    if n < 4 {
                        Err("refused")
                    } else {
                        Ok(n)
                    }
                }
            },
        )
        .await;
        assert_eq!(r.unwrap(), 4);
        assert_eq!(
            waits,
            [1, 2, 4].map(Duration::from_millis).to_vec(),
            "waits double"
        );
    }

    #[tokio::test]
    async fn a_final_failure_is_not_retried_and_attempts_are_bounded() {
        let mut tries = 0;
        let r: Result<(), _> = retry(
            fast(5),
            |e| *e == "refused",
            |_, _| {},
            || {
                tries += 1;
                async { Err("password authentication failed") }
            },
        )
        .await;
        assert!(matches!(r, Err(GaveUp::Failed { attempts: 1, .. })));
        assert_eq!(tries, 1);

        let r: Result<(), _> =
            retry(fast(5), |_| true, |_, _| {}, || async { Err("refused") }).await;
        assert!(matches!(r, Err(GaveUp::Failed { attempts: 5, .. })));
    }

    #[tokio::test]
    async fn the_budget_bounds_a_hanging_attempt_and_the_waits() {
        let s = Schedule {
            attempts: 5,
            first_wait: Duration::from_millis(1),
            budget: Duration::from_millis(100),
        };
        let start = Instant::now();
        let r: Result<(), GaveUp<&str>> = retry(
            s,
            |_| true,
            |_, _| {},
            std::future::pending::<Result<(), &str>>,
        )
        .await;
        assert!(matches!(r, Err(GaveUp::TimedOut { attempts: 1, .. })));
        assert!(start.elapsed() < Duration::from_secs(2));

        let s = Schedule {
            attempts: 50,
            first_wait: Duration::from_millis(40),
            budget: Duration::from_millis(200),
        };
        let start = Instant::now();
        let r: Result<(), _> = retry(s, |_| true, |_, _| {}, || async { Err("refused") }).await;
        assert!(
            matches!(r, Err(GaveUp::Failed { attempts: 3, .. })),
            "{r:?}"
        );
        assert!(start.elapsed() < Duration::from_millis(200));
    }

    #[test]
    fn the_default_schedule_waits_three_seconds_within_ten() {
        let waits: Duration = (0..SCHEDULE.attempts - 1)
            .map(|i| SCHEDULE.first_wait * 2u32.pow(i))
            .sum();
        assert_eq!(waits, Duration::from_millis(3000));
        assert!(waits < SCHEDULE.budget);
    }
}
