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
pub use objects::Object;
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

#[derive(Clone)]
pub struct S3 {
    client: Client,
}

impl S3 {
    /// Credentials come from the usual chain (`AWS_ACCESS_KEY_ID`, profiles, instance roles).
    pub async fn connect(endpoint: Option<&str>, region: &str) -> S3 {
        let shared = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new(region.to_string()))
            .load()
            .await;
        let mut conf = aws_sdk_s3::config::Builder::from(&shared);
        if let Some(e) = endpoint {
            conf = conf.endpoint_url(e).force_path_style(true);
        }
        S3 {
            client: Client::from_conf(conf.build()),
        }
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
