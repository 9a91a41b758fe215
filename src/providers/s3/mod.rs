//! The S3 provider (aws-sdk-s3): observes and reconciles buckets (existence, versioning,
//! default encryption, lifecycle rules, public access block) and moves backup objects
//! (multipart uploads that are aborted on failure). SDK types stay in this folder: the client
//! here, buckets in `buckets.rs`, objects in `objects.rs`, errors (`S3Error`) in `error.rs`.

use aws_sdk_s3::Client;

mod buckets;
mod error;
mod objects;
mod provider;

pub use error::S3Error;
pub use objects::{Object, Upload};
pub use provider::S3Provider;

const PROJECT_TAG: &str = "converge-project";
const PRUNE_TAG: &str = "converge-prune";

/// S3 is set up when the Project declares it (buckets and backup destinations).
pub const FACTORY: crate::providers::registry::Factory = crate::providers::registry::Factory {
    name: "s3",
    kinds: provider::KINDS,
    wanted: |d| d.project.providers.s3.is_some(),
    secret_free: false,
    connect: |d, secrets| {
        Box::pin(async move {
            let p = d.project.providers.s3.as_ref().expect("wanted");
            let endpoint = match &p.endpoint {
                Some(e) => Some(secrets.resolve(e)?),
                None => None,
            };
            let s3 = S3::connect(endpoint.as_deref(), &p.region).await;
            Ok(std::sync::Arc::new(S3Provider::new(s3))
                as std::sync::Arc<dyn crate::providers::Provider>)
        })
    },
};

/// How long connecting to the endpoint may take.
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
/// How long the endpoint may stay silent while converge waits for its answer.
const READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(120);
/// How long one attempt of a call may take in all (an 8 MiB part on a slow link included).
const ATTEMPT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(600);
/// Tries of one call in all when the endpoint does not answer, cuts the connection, throttles or
/// answers 5xx (the SDK's standard retry mode; a 4xx refusal is never retried).
const MAX_ATTEMPTS: u32 = 4;
/// The base of the waits between tries: the n-th retry waits a random time up to
/// `INITIAL_BACKOFF * 2^(n-1)` (≤ 0.5, 1, 2 s), never more than `MAX_BACKOFF`.
const INITIAL_BACKOFF: std::time::Duration = std::time::Duration::from_millis(500);
const MAX_BACKOFF: std::time::Duration = std::time::Duration::from_secs(5);

#[derive(Clone)]
pub struct S3 {
    client: Client,
    /// The endpoint's URL, for messages.
    endpoint: String,
}

impl S3 {
    /// Credentials come from the usual chain (`AWS_ACCESS_KEY_ID`, profiles, instance roles).
    /// Calls are retried (`MAX_ATTEMPTS`, backoff from `INITIAL_BACKOFF`): an endpoint that stays
    /// down fails a call after about 3.5 s of waiting plus the attempts themselves.
    pub async fn connect(endpoint: Option<&str>, region: &str) -> S3 {
        let shared = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new(region.to_string()))
            .load()
            .await;
        let timeouts = aws_config::timeout::TimeoutConfig::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .read_timeout(READ_TIMEOUT)
            .operation_attempt_timeout(ATTEMPT_TIMEOUT)
            .build();
        let retries = aws_sdk_s3::config::retry::RetryConfig::standard()
            .with_max_attempts(MAX_ATTEMPTS)
            .with_initial_backoff(INITIAL_BACKOFF)
            .with_max_backoff(MAX_BACKOFF);
        let mut conf = aws_sdk_s3::config::Builder::from(&shared)
            .timeout_config(timeouts)
            .retry_config(retries);
        if let Some(e) = endpoint {
            conf = conf.endpoint_url(e).force_path_style(true);
        }
        S3 {
            client: Client::from_conf(conf.build()),
            endpoint: endpoint
                .map(str::to_string)
                .unwrap_or_else(|| format!("https://s3.{region}.amazonaws.com")),
        }
    }

    /// Maps an SDK error of `op` on `at` (for `map_err`), naming this endpoint when it did not
    /// answer.
    pub(super) fn fail<E>(
        &self,
        op: &'static str,
        at: impl Into<String>,
    ) -> impl FnOnce(aws_sdk_s3::error::SdkError<E, aws_sdk_s3::config::http::HttpResponse>) -> S3Error
    where
        E: aws_sdk_s3::error::ProvideErrorMetadata + std::error::Error + 'static,
    {
        let f = error::fail(op, at);
        let endpoint = self.endpoint.clone();
        move |e| f(e).with_endpoint(&endpoint)
    }

    pub async fn exists(&self, bucket: &str) -> bool {
        self.client
            .head_bucket()
            .bucket(bucket)
            .send()
            .await
            .is_ok()
    }
}
