//! Tests of `S3Error`: messages from SDK errors built by hand, and from real HTTP answers of
//! small local servers (`wire`).

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
        t.starts_with("s3: get versioning b: HTTP 502 (bad gateway) without an S3 error code\n"),
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
            endpoint: endpoint.to_string(),
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
        let endpoint = closed_port();
        let e = s3(&endpoint, true)
            .list("backups", "db/")
            .await
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with(&format!(
                "s3: list objects backups/db/: cannot reach the S3 endpoint {endpoint}: "
            )),
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
            e.starts_with(&format!("s3: list objects backups/: cannot understand the S3 endpoint's answer (HTTP 200) from {endpoint}: ")),
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
