//! The digest an image reference resolved to on this host: the registry's digest for the
//! image's repository (`RepoDigests`) when it came from a registry, else the local image id.
//! Recorded on each container at create time (`converge.image-digest`), so what a service
//! really runs can be told apart from what its tag names today.

use super::credentials::Login;
use super::registry::ImageRef;
use super::Docker;

/// The label holding the digest a container's image resolved to when it was created.
pub const IMAGE_DIGEST: &str = "converge.image-digest";

impl Docker {
    /// The digest `image` resolves to now: with `ask_registry`, its registry's manifest digest
    /// (through the engine, logged in as a pull would be), else (or when the registry does not
    /// answer) the host's image.
    pub async fn image_digest(
        &self,
        image: &str,
        login: Option<Login>,
        ask_registry: bool,
    ) -> Option<String> {
        if ask_registry && ImageRef::parse(image).digest.is_none() {
            if let Some(d) = self.registry_digest(image, login).await {
                return Some(d);
            }
        }
        self.resolved_digest(image).await
    }

    /// The manifest digest the registry gives for `image` now (`docker buildx imagetools`'s
    /// answer, through the engine's distribution endpoint: nothing is pulled).
    async fn registry_digest(&self, image: &str, login: Option<Login>) -> Option<String> {
        let r = ImageRef::parse(image);
        let login = match login {
            Some(l) => Some(l),
            None => super::credentials::from_docker_config(r.host)
                .await
                .ok()
                .flatten(),
        };
        let creds = login.map(|l| super::pull::docker_credentials(l, r.host));
        let info = self
            .client
            .inspect_registry_image(image, creds)
            .await
            .ok()?;
        info.descriptor.digest.filter(|d| !d.is_empty())
    }

    /// The digest `image` resolves to on this host (`None`: no such image).
    pub(super) async fn resolved_digest(&self, image: &str) -> Option<String> {
        let inspected = self.client.inspect_image(image).await.ok()?;
        pick(
            image,
            inspected.repo_digests.as_deref().unwrap_or_default(),
            inspected.id.as_deref(),
        )
    }
}

/// A reference pinned by digest is its digest; else the `RepoDigests` entry of the image's
/// repository (`name@sha256:…`); else the local image id.
fn pick(image: &str, repo_digests: &[String], id: Option<&str>) -> Option<String> {
    let r = ImageRef::parse(image);
    if let Some(d) = r.digest {
        return Some(d.to_string());
    }
    repo_digests
        .iter()
        .filter_map(|e| e.split_once('@'))
        .find(|(name, _)| *name == r.name || familiar(name) == familiar(r.name))
        .map(|(_, d)| d.to_string())
        .or_else(|| id.map(str::to_string))
}

/// Docker Hub names as written: `docker.io/library/busybox` → `busybox`.
fn familiar(name: &str) -> &str {
    let name = name.strip_prefix("docker.io/").unwrap_or(name);
    name.strip_prefix("library/").unwrap_or(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pulled_image_resolves_to_its_repositorys_digest() {
        let digests = [
            "other/x@sha256:111".to_string(),
            "127.0.0.1:5055/api@sha256:222".to_string(),
        ];
        let d = pick("127.0.0.1:5055/api:1.4.2", &digests, Some("sha256:id"));
        assert_eq!(d.as_deref(), Some("sha256:222"));
        let hub = ["busybox@sha256:333".to_string()];
        let d = pick("docker.io/library/busybox:1", &hub, Some("sha256:id"));
        assert_eq!(d.as_deref(), Some("sha256:333"));
    }

    #[test]
    fn a_local_image_resolves_to_its_id_and_a_pinned_one_to_its_digest() {
        let d = pick("converge-test/httpd:v1", &[], Some("sha256:id"));
        assert_eq!(d.as_deref(), Some("sha256:id"));
        let d = pick("api@sha256:444", &[], Some("sha256:id"));
        assert_eq!(d.as_deref(), Some("sha256:444"));
    }
}
