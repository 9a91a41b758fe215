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
    #[error("s3: {op} {at}: cannot reach the S3 endpoint: {cause}{ENDPOINT_HINT}")]
    Unreachable {
        op: &'static str,
        at: String,
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
    #[error("s3: {op} {at}: cannot understand the S3 endpoint's answer{}: {cause}{ENDPOINT_HINT}", status_suffix(*.status))]
    Unreadable {
        op: &'static str,
        at: String,
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
    #[error("s3: {op} {at}: the connection broke while reading the object: {cause}\n  = hint: try again; check that the server is up")]
    Body {
        op: &'static str,
        at: String,
        cause: String,
    },
    /// The server accepted a multipart upload without naming it.
    #[error("s3: start upload {at}: the server returned no upload id\n  = hint: is providers.s3.endpoint an S3-compatible server with multipart uploads?")]
    NoUploadId { at: String },
    /// `delete_bucket` refuses a bucket that holds anything.
    #[error("bucket {bucket} is not empty; converge never deletes objects to delete a bucket")]
    BucketNotEmpty { bucket: String },
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
                status,
                cause: deepest(e).unwrap_or_else(|| "the answer was cut short".into()),
            },
            SdkError::TimeoutError(_) => S3Error::Unreachable {
                op,
                at,
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

    /// Reading the body of `at` failed midway.
    pub fn body(op: &'static str, at: impl Into<String>, cause: impl std::fmt::Display) -> S3Error {
        S3Error::Body {
            op,
            at: at.into(),
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
mod tests {
    use super::*;
    use aws_sdk_s3::error::{ConnectorError, ErrorMetadata};
    use aws_sdk_s3::operation::create_bucket::CreateBucketError;
    use aws_sdk_s3::operation::get_bucket_versioning::GetBucketVersioningError;
    use aws_sdk_s3::primitives::SdkBody;

    fn text(e: S3Error) -> String {
        e.to_string()
    }

    fn response(status: u16) -> HttpResponse {
        HttpResponse::new(status.try_into().unwrap(), SdkBody::empty())
    }

    #[test]
    fn a_service_error_names_the_operation_the_bucket_the_code_and_the_message() {
        let e = answered(
            "create bucket",
            "ytempire-backups".into(),
            Some("BucketAlreadyOwnedByYou"),
            Some("Your previous request to create the named bucket succeeded and you already own it."),
            Some(409),
            None,
        );
        assert_eq!(
            text(e),
            "s3: create bucket ytempire-backups: BucketAlreadyOwnedByYou: Your previous request to create the named bucket succeeded and you already own it."
        );
    }

    #[test]
    fn known_codes_carry_a_hint() {
        let e = answered(
            "put object",
            "b/k".into(),
            Some("AccessDenied"),
            Some("Access Denied"),
            Some(403),
            None,
        );
        assert_eq!(
            text(e),
            "s3: put object b/k: AccessDenied: Access Denied\n  = hint: check the credentials in AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY and that they may do this on the bucket"
        );
        let e = answered(
            "list objects",
            "nope/db/".into(),
            Some("NoSuchBucket"),
            Some("The specified bucket does not exist"),
            Some(404),
            None,
        );
        assert!(text(e).ends_with("= hint: the bucket does not exist: declare it (kind: Bucket) and apply, or fix the bucket name"));
    }

    #[test]
    fn a_code_without_a_message_shows_the_status() {
        let e = answered(
            "get object",
            "b/k".into(),
            Some("NoSuchKey"),
            None,
            Some(404),
            None,
        );
        assert!(text(e).starts_with("s3: get object b/k: NoSuchKey: HTTP 404 (not found)\n"));
    }

    #[test]
    fn no_code_shows_the_http_status_never_a_dump() {
        let e = answered("get versioning", "b".into(), None, None, Some(403), None);
        assert_eq!(
            text(e),
            "s3: get versioning b: HTTP 403 (access denied) without an S3 error code\n  = hint: check the credentials in AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY and that they may do this on the bucket"
        );
        let e = answered("get versioning", "b".into(), None, None, Some(404), None);
        assert_eq!(
            text(e),
            "s3: get versioning b: HTTP 404 (not found) without an S3 error code\n  = hint: check that providers.s3.endpoint is an S3-compatible server and that the bucket exists"
        );
        let e = answered("create bucket", "b".into(), None, None, Some(501), None);
        assert_eq!(
            text(e),
            "s3: create bucket b: HTTP 501 (not implemented) without an S3 error code\n  = hint: check that providers.s3.endpoint is an S3-compatible server and that the bucket exists"
        );
        let e = answered("get versioning", "b".into(), Some(""), None, None, None);
        assert!(text(e).starts_with(
            "s3: get versioning b: the server refused the request without an S3 error code\n"
        ));
    }

    #[test]
    fn a_successful_status_that_failed_could_not_be_read() {
        let e = answered(
            "get versioning",
            "b".into(),
            None,
            None,
            Some(200),
            Some("invalid root, expected VersioningConfiguration got Foo"),
        );
        assert_eq!(
            text(e),
            format!("s3: get versioning b: cannot understand the S3 endpoint's answer (HTTP 200): invalid root, expected VersioningConfiguration got Foo{ENDPOINT_HINT}")
        );
    }

    #[test]
    fn sdk_service_errors_use_the_error_metadata() {
        let meta = ErrorMetadata::builder()
            .code("BucketAlreadyExists")
            .message("The requested bucket name is not available.")
            .build();
        let e = SdkError::service_error(CreateBucketError::generic(meta), response(409));
        let t = text(S3Error::from_sdk("create bucket", "taken", &e));
        assert!(
            t.starts_with("s3: create bucket taken: BucketAlreadyExists: The requested bucket name is not available.\n  = hint: bucket names"),
            "{t}"
        );
        let unhandled = SdkError::service_error(
            GetBucketVersioningError::generic(ErrorMetadata::builder().build()),
            response(502),
        );
        let t = text(S3Error::from_sdk("get versioning", "b", &unhandled));
        assert!(t.ends_with("= hint: the server (or a proxy in front of it) failed; try again, and check providers.s3.endpoint if it persists"), "{t}");
        assert!(
            t.starts_with(
                "s3: get versioning b: HTTP 502 (bad gateway) without an S3 error code\n"
            ),
            "{t}"
        );
        assert!(
            !t.contains("Unhandled") && !t.contains("ErrorMetadata"),
            "{t}"
        );
    }

    #[test]
    fn a_dispatch_failure_says_the_endpoint_cannot_be_reached() {
        let io = std::io::Error::new(
            std::io::ErrorKind::ConnectionRefused,
            "Connection refused (os error 111)",
        );
        let e: SdkError<GetBucketVersioningError, HttpResponse> =
            SdkError::dispatch_failure(ConnectorError::io(Box::new(io)));
        assert_eq!(
            text(S3Error::from_sdk("list objects", "backups/db/", &e)),
            "s3: list objects backups/db/: cannot reach the S3 endpoint: Connection refused (os error 111)\n  = hint: check providers.s3.endpoint and that the server is up; credentials come from AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY"
        );
        let e: SdkError<GetBucketVersioningError, HttpResponse> = SdkError::timeout_error("slow");
        assert!(text(S3Error::from_sdk("get object", "b/k", &e))
            .starts_with("s3: get object b/k: cannot reach the S3 endpoint: no answer in time (timed out)\n  = hint: check providers.s3.endpoint"));
    }

    #[test]
    fn a_response_error_says_the_answer_cannot_be_understood() {
        let e: SdkError<GetBucketVersioningError, HttpResponse> =
            SdkError::response_error("unexpected end of body", response(200));
        assert_eq!(
            text(S3Error::from_sdk("get object", "b/k", &e)),
            format!("s3: get object b/k: cannot understand the S3 endpoint's answer (HTTP 200): unexpected end of body{ENDPOINT_HINT}")
        );
    }

    #[test]
    fn causes_carry_no_sdk_debug_dump() {
        assert_eq!(
            readable("error parsing XML: encountered invalid XML root: expected ListBucketResult but got StartEl { name: Name { prefix: \"\", local: \"Html\" }, attributes: [], closed: false, depth: 0 }. This is likely a bug in the SDK."),
            "error parsing XML: encountered invalid XML root: expected ListBucketResult but got Html"
        );
        assert_eq!(
            readable("Connection refused (os error 111)"),
            "Connection refused (os error 111)"
        );
        assert_eq!(readable("bad thing Foo { x: 1 }"), "bad thing Foo");
    }

    #[test]
    fn credentials_never_appear_and_details_stay_short() {
        let secrets = vec![
            "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY".to_string(),
            "short".to_string(),
        ];
        let t = clean_with(
            "signature for wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\n  is short",
            &secrets,
        );
        assert_eq!(t, "signature for *** is short");
        assert_eq!(
            clean_with(&"x".repeat(1000), &[]).chars().count(),
            MAX_DETAIL + 1
        );
    }

    #[test]
    fn the_refusal_to_delete_a_bucket_keeps_its_words() {
        let e = S3Error::BucketNotEmpty {
            bucket: "media".into(),
        };
        assert_eq!(
            text(e),
            "bucket media is not empty; converge never deletes objects to delete a bucket"
        );
    }

    /// Real SDK calls against endpoints that are not healthy S3 servers: no S3 server needed.
    mod wire {
        use std::io::{Read, Write};

        use aws_sdk_s3::config::retry::RetryConfig;
        use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};

        use crate::providers::s3::S3;

        const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";

        fn s3(endpoint: &str, credentials: bool) -> S3 {
            let mut conf = aws_sdk_s3::Config::builder()
                .behavior_version(BehaviorVersion::latest())
                .region(Region::new("us-east-1"))
                .endpoint_url(endpoint)
                .force_path_style(true)
                .retry_config(RetryConfig::disabled());
            if credentials {
                conf = conf.credentials_provider(Credentials::new(
                    "AKIDCONVERGETEST",
                    SECRET,
                    None,
                    None,
                    "test",
                ));
            }
            S3 {
                client: aws_sdk_s3::Client::from_conf(conf.build()),
            }
        }

        /// An HTTP server on a free port that answers every request with `response`.
        fn server(response: &'static str) -> String {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap();
            std::thread::spawn(move || {
                for conn in listener.incoming() {
                    let Ok(mut conn) = conn else { return };
                    let mut seen = Vec::new();
                    let mut buf = [0u8; 4096];
                    while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                        match conn.read(&mut buf) {
                            Ok(0) | Err(_) => break,
                            Ok(n) => seen.extend_from_slice(&buf[..n]),
                        }
                    }
                    let _ = conn.write_all(response.as_bytes());
                }
            });
            format!("http://{addr}")
        }

        fn closed_port() -> String {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap();
            drop(listener);
            format!("http://{addr}")
        }

        #[tokio::test]
        async fn a_closed_port_cannot_be_reached() {
            let e = s3(&closed_port(), true)
                .list("backups", "db/")
                .await
                .unwrap_err()
                .to_string();
            assert!(
                e.starts_with("s3: list objects backups/db/: cannot reach the S3 endpoint: "),
                "{e}"
            );
            assert!(e.ends_with("\n  = hint: check providers.s3.endpoint and that the server is up; credentials come from AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY"), "{e}");
            assert!(
                !e.contains("dispatch failure") && !e.contains(SECRET),
                "{e}"
            );
        }

        #[tokio::test]
        async fn a_web_server_that_is_not_s3_answers_with_its_status() {
            let endpoint = server("HTTP/1.1 404 Not Found\r\nContent-Type: text/html\r\nContent-Length: 22\r\nConnection: close\r\n\r\n<html>not here</html>\n");
            let e = s3(&endpoint, true)
                .get("backups", "db/x.manifest.json")
                .await
                .unwrap_err()
                .to_string();
            assert!(
                e.starts_with("s3: get object backups/db/x.manifest.json: "),
                "{e}"
            );
            assert!(e.contains("404"), "{e}");
            assert!(
                !e.contains("Unhandled") && !e.contains("{ ") && !e.contains(SECRET),
                "{e}"
            );
        }

        #[tokio::test]
        async fn an_s3_error_answer_shows_its_code_and_message() {
            let body = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>NoSuchBucket</Code><Message>The specified bucket does not exist</Message><BucketName>backups</BucketName></Error>";
            let response: &'static str = Box::leak(
                format!("HTTP/1.1 404 Not Found\r\nContent-Type: application/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len())
                    .into_boxed_str(),
            );
            let e = s3(&server(response), true)
                .put("backups", "db/x.cvbak", b"x".to_vec())
                .await
                .unwrap_err()
                .to_string();
            assert_eq!(e, "s3: put object backups/db/x.cvbak: NoSuchBucket: The specified bucket does not exist\n  = hint: the bucket does not exist: declare it (kind: Bucket) and apply, or fix the bucket name");
        }

        #[tokio::test]
        async fn a_garbled_success_cannot_be_understood() {
            let endpoint = server("HTTP/1.1 200 OK\r\nContent-Type: application/xml\r\nContent-Length: 19\r\nConnection: close\r\n\r\n<Nonsense></Nonsense");
            let e = s3(&endpoint, true)
                .list("backups", "")
                .await
                .unwrap_err()
                .to_string();
            assert!(
                e.starts_with("s3: list objects backups/: cannot understand the S3 endpoint's answer (HTTP 200): "),
                "{e}"
            );
            assert!(
                e.contains("expected ListBucketResult but got Nonsense\n"),
                "{e}"
            );
            assert!(!e.contains("Unhandled") && !e.contains("StartEl"), "{e}");
        }

        #[test]
        fn missing_credentials_are_not_an_unreachable_endpoint() {
            use aws_sdk_s3::error::{ConnectorError, SdkError};
            use aws_sdk_s3::operation::list_objects_v2::ListObjectsV2Error;

            use crate::providers::s3::S3Error;

            #[derive(Debug)]
            struct NotLoaded;
            impl std::fmt::Display for NotLoaded {
                fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                    f.write_str("no credentials found in chain. Attempted: Environment: the credential provider was not enabled: environment variable not set Profile: the credential provider was not enabled")
                }
            }
            impl std::error::Error for NotLoaded {}
            let e: SdkError<ListObjectsV2Error, _> =
                SdkError::dispatch_failure(ConnectorError::other(Box::new(NotLoaded), None));
            assert_eq!(
                S3Error::from_sdk("list objects", "backups/", &e).to_string(),
                "s3: list objects backups/: no credentials to sign the request: no credentials found in chain\n  = hint: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or an AWS profile or instance role) where converge runs"
            );
        }
    }
}
