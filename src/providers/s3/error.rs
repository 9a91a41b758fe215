//! `S3Error`: what an S3 call reports — the operation, the bucket or key, what the server said
//! (its error code and message, or the HTTP status) and what to do. Never an SDK debug dump, never
//! a credential.

use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use thiserror::Error;

/// The hint for a call that never got a readable answer.
const ENDPOINT_HINT: &str = "\n  = hint: check providers.s3.endpoint and that the server is up; credentials come from AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY";
/// The hint for a call the server refused for its credentials.
const CREDENTIALS_HINT: &str = "\n  = hint: check the credentials in AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY and that they may do this on the bucket";
/// The longest server message or cause kept in a message.
const MAX_DETAIL: usize = 300;

#[derive(Debug, Error)]
pub enum S3Error {
    /// The server refused the call with an S3 error code.
    #[error("s3: {op} {at}: {code}: {message}{hint}")]
    Service {
        op: &'static str,
        at: String,
        code: String,
        message: String,
        hint: &'static str,
    },
    /// The server refused the call with an HTTP status and no S3 error code.
    #[error("s3: {op} {at}: {answer} without an S3 error code{hint}")]
    Status {
        op: &'static str,
        at: String,
        status: Option<u16>,
        /// `HTTP 403 (access denied)`, or `the server refused the request`.
        answer: String,
        hint: &'static str,
    },
    /// No answer: connection refused, name not resolved, timed out.
    #[error("s3: {op} {at}: cannot reach the S3 endpoint{}: {cause}{ENDPOINT_HINT}", named(.endpoint))]
    Unreachable {
        op: &'static str,
        at: String,
        /// The endpoint's URL (empty when not known).
        endpoint: String,
        cause: String,
    },
    /// No credentials to sign the request with.
    #[error("s3: {op} {at}: no credentials to sign the request: {cause}\n  = hint: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or an AWS profile or instance role) where converge runs")]
    Credentials {
        op: &'static str,
        at: String,
        cause: String,
    },
    /// An answer that is not an S3 answer (not XML, the wrong XML, cut short).
    #[error("s3: {op} {at}: cannot understand the S3 endpoint's answer{}{}: {cause}{ENDPOINT_HINT}", status_suffix(*.status), from(.endpoint))]
    Unreadable {
        op: &'static str,
        at: String,
        /// The endpoint's URL (empty when not known).
        endpoint: String,
        status: Option<u16>,
        cause: String,
    },
    /// converge could not build the request (an invalid name, tag or rule).
    #[error("s3: {op} {at}: cannot build the request: {cause}")]
    Request {
        op: &'static str,
        at: String,
        cause: String,
    },
    /// The connection broke while the object's bytes were read.
    #[error("s3: {op} {at}: the connection to the S3 endpoint{} broke while reading the object: {cause}\n  = hint: try again; check that the server is up", named(.endpoint))]
    Body {
        op: &'static str,
        at: String,
        /// The endpoint's URL (empty when not known).
        endpoint: String,
        cause: String,
    },
    /// The server accepted a multipart upload without naming it.
    #[error("s3: start upload {at}: the server returned no upload id\n  = hint: is providers.s3.endpoint an S3-compatible server with multipart uploads?")]
    NoUploadId { at: String },
    /// `delete_bucket` refuses a bucket that holds anything.
    #[error("bucket {bucket} is not empty; converge never deletes objects to delete a bucket")]
    BucketNotEmpty { bucket: String },
}

/// ` <endpoint>` when it is known.
fn named(endpoint: &str) -> String {
    if endpoint.is_empty() {
        String::new()
    } else {
        format!(" {endpoint}")
    }
}

/// ` from <endpoint>` when it is known.
fn from(endpoint: &str) -> String {
    if endpoint.is_empty() {
        String::new()
    } else {
        format!(" from {endpoint}")
    }
}

fn status_suffix(status: Option<u16>) -> String {
    status.map(|s| format!(" (HTTP {s})")).unwrap_or_default()
}

impl S3Error {
    /// The error of `op` on `at` (a bucket, `bucket/key` or `bucket/prefix`) from the SDK's.
    pub fn from_sdk<E>(
        op: &'static str,
        at: impl Into<String>,
        e: &SdkError<E, HttpResponse>,
    ) -> S3Error
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        let at = at.into();
        let status = e.raw_response().map(|r| r.status().as_u16());
        match e {
            SdkError::ServiceError(s) => {
                let cause = deepest(s.err());
                answered(
                    op,
                    at,
                    s.err().code(),
                    s.err().message(),
                    status,
                    cause.as_deref(),
                )
            }
            SdkError::ResponseError(_) => S3Error::Unreadable {
                op,
                at,
                endpoint: String::new(),
                status,
                cause: deepest(e).unwrap_or_else(|| "the answer was cut short".into()),
            },
            SdkError::TimeoutError(_) => S3Error::Unreachable {
                op,
                at,
                endpoint: String::new(),
                cause: "no answer in time (timed out)".into(),
            },
            SdkError::DispatchFailure(_) | SdkError::ConstructionFailure(_)
                if mentions_credentials(e) =>
            {
                S3Error::Credentials {
                    op,
                    at,
                    // The chain lists every provider it tried; its first sentence says it all.
                    cause: deepest(e)
                        .map(|c| c.split(". ").next().unwrap_or_default().to_string())
                        .unwrap_or_else(|| "no credentials".into()),
                }
            }
            SdkError::DispatchFailure(d) => S3Error::Unreachable {
                op,
                at,
                endpoint: String::new(),
                cause: if d.is_timeout() {
                    "no answer in time (timed out)".into()
                } else {
                    deepest(e).unwrap_or_else(|| "the connection failed".into())
                },
            },
            SdkError::ConstructionFailure(_) => S3Error::Request {
                op,
                at,
                cause: deepest(e).unwrap_or_else(|| "invalid request".into()),
            },
            _ => S3Error::Unreachable {
                op,
                at,
                endpoint: String::new(),
                cause: deepest(e).unwrap_or_else(|| "the request failed".into()),
            },
        }
    }

    /// A request converge could not build (an invalid name, tag or rule).
    pub fn request(
        op: &'static str,
        at: impl Into<String>,
        cause: impl std::fmt::Display,
    ) -> S3Error {
        S3Error::Request {
            op,
            at: at.into(),
            cause: clean(&cause.to_string()),
        }
    }

    /// The same error, naming `endpoint` when no answer came from it (the only case where
    /// which server was asked matters to the reader).
    pub fn with_endpoint(mut self, url: &str) -> S3Error {
        if let S3Error::Unreachable { endpoint, .. }
        | S3Error::Unreadable { endpoint, .. }
        | S3Error::Body { endpoint, .. } = &mut self
        {
            *endpoint = url.to_string();
        }
        self
    }

    /// Reading the body of `at` failed midway.
    pub fn body(op: &'static str, at: impl Into<String>, cause: impl std::fmt::Display) -> S3Error {
        S3Error::Body {
            op,
            at: at.into(),
            endpoint: String::new(),
            cause: clean(&cause.to_string()),
        }
    }
}

/// Maps an SDK error of `op` on `at` (for `map_err`).
pub(super) fn fail<E>(
    op: &'static str,
    at: impl Into<String>,
) -> impl FnOnce(SdkError<E, HttpResponse>) -> S3Error
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let at = at.into();
    move |e| S3Error::from_sdk(op, at, &e)
}

/// What the server answered: its code and message when it sent a code; its HTTP status when not;
/// a 2xx answer that still failed could not be read (`cause` says why).
pub fn answered(
    op: &'static str,
    at: String,
    code: Option<&str>,
    message: Option<&str>,
    status: Option<u16>,
    cause: Option<&str>,
) -> S3Error {
    match code.map(str::trim).filter(|c| !c.is_empty()) {
        Some(code) => S3Error::Service {
            op,
            at,
            code: clean(code),
            message: message
                .map(clean)
                .filter(|m| !m.is_empty())
                .or_else(|| status.map(|s| format!("HTTP {s} ({})", reason(s))))
                .unwrap_or_else(|| "no message".into()),
            hint: code_hint(code),
        },
        None if status.is_some_and(|s| (200..300).contains(&s)) => S3Error::Unreadable {
            op,
            at,
            endpoint: String::new(),
            status,
            cause: cause
                .map(clean)
                .unwrap_or_else(|| "not an S3 answer".into()),
        },
        None => S3Error::Status {
            op,
            at,
            status,
            answer: match status {
                Some(s) => format!("HTTP {s} ({})", reason(s)),
                None => "the server refused the request".into(),
            },
            hint: status_hint(status),
        },
    }
}

/// What to do about an S3 error code.
fn code_hint(code: &str) -> &'static str {
    match code {
        "AccessDenied" | "AllAccessDisabled" | "InvalidAccessKeyId" | "SignatureDoesNotMatch"
        | "ExpiredToken" | "InvalidToken" | "TokenRefreshRequired" | "AccountProblem" => {
            CREDENTIALS_HINT
        }
        "NoSuchBucket" => "\n  = hint: the bucket does not exist: declare it (kind: Bucket) and apply, or fix the bucket name",
        "BucketAlreadyExists" => "\n  = hint: bucket names are shared by every account of the service: choose another name",
        "PermanentRedirect" | "AuthorizationHeaderMalformed" | "IllegalLocationConstraintException" => {
            "\n  = hint: the bucket is in another region: check providers.s3.region"
        }
        "NoSuchKey" => "\n  = hint: the object is gone: deleted, or expired by a lifecycle rule",
        "NoSuchUpload" => "\n  = hint: the multipart upload was aborted or expired; run the backup again",
        "NotImplemented" | "MethodNotAllowed" => {
            "\n  = hint: this S3-compatible server does not support the call"
        }
        "SlowDown" | "InternalError" | "ServiceUnavailable" | "RequestTimeout" => {
            "\n  = hint: the server is busy or failed; try again"
        }
        _ => "",
    }
}

/// What to do about an HTTP status without an S3 error code. S3 servers send a code with every
/// refusal but those of HEAD requests, so most of these come from something else at the endpoint.
fn status_hint(status: Option<u16>) -> &'static str {
    match status {
        Some(403) => CREDENTIALS_HINT,
        Some(301 | 307) => "\n  = hint: the bucket is in another region: check providers.s3.region",
        Some(500 | 502 | 503 | 504) => "\n  = hint: the server (or a proxy in front of it) failed; try again, and check providers.s3.endpoint if it persists",
        _ => "\n  = hint: check that providers.s3.endpoint is an S3-compatible server and that the bucket exists",
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200..=299 => "success",
        301 => "moved permanently",
        307 => "temporary redirect",
        400 => "bad request",
        401 => "unauthorized",
        403 => "access denied",
        404 => "not found",
        405 => "method not allowed",
        409 => "conflict",
        411 => "length required",
        412 => "precondition failed",
        416 => "range not satisfiable",
        429 => "too many requests",
        500 => "internal server error",
        501 => "not implemented",
        502 => "bad gateway",
        503 => "service unavailable",
        504 => "gateway timeout",
        _ => match status / 100 {
            3 => "redirect",
            4 => "client error",
            _ => "server error",
        },
    }
}

/// Whether any cause of `e` is about credentials (none found, or none loadable): the SDK reports
/// those as dispatch failures, but no connection was even tried.
fn mentions_credentials(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = e.source();
    while let Some(c) = cur {
        if c.to_string().to_lowercase().contains("credential") {
            return true;
        }
        cur = c.source();
    }
    false
}

/// The innermost cause of `e`: the one that says what happened (`Connection refused (os error
/// 111)`), not the wrappers around it.
fn deepest(e: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut last = None;
    let mut cur = e.source();
    while let Some(c) = cur {
        last = Some(c);
        cur = c.source();
    }
    last.map(|c| clean(&readable(&c.to_string())))
        .filter(|s| !s.is_empty())
}

/// A cause without the SDK's internals: the XML element a parser got instead of the one it
/// expected (`... expected ListBucketResult but got Html`), not its debug dump.
fn readable(cause: &str) -> String {
    let cause = cause.replace("This is likely a bug in the SDK.", "");
    let Some(dump) = cause.find(" {") else {
        return cause.trim().to_string();
    };
    let mut head = cause[..dump].trim_end().to_string();
    if head.ends_with("StartEl") {
        let got = cause
            .split_once("local: \"")
            .and_then(|(_, rest)| rest.split_once('"'))
            .map(|(name, _)| name.to_string());
        head.truncate(head.len() - "StartEl".len());
        head.push_str(got.as_deref().unwrap_or("another element"));
    }
    head
}

/// One line, at most `MAX_DETAIL` characters, with any credential of the environment masked.
fn clean(text: &str) -> String {
    let secrets: Vec<String> = [
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_ACCESS_KEY_ID",
    ]
    .iter()
    .filter_map(|k| std::env::var(k).ok())
    .collect();
    clean_with(text, &secrets)
}

fn clean_with(text: &str, secrets: &[String]) -> String {
    let mut text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    for s in secrets {
        // Too short to be a credential, and masking it would garble the message.
        if s.len() >= 8 {
            text = text.replace(s.as_str(), "***");
        }
    }
    if text.chars().count() > MAX_DETAIL {
        text = text.chars().take(MAX_DETAIL).collect::<String>() + "…";
    }
    text
}

#[cfg(test)]
#[path = "error_tests.rs"]
mod tests;
