//! Image references and registries: which registry an image comes from (the way Docker reads a
//! reference), how a reference is split for a pull, and why a pull failed (auth refused, not
//! found, unreachable), with a hint for each.

use thiserror::Error;

use super::credentials::CredentialError;

/// Docker Hub, the registry of references whose first component names no host.
pub const DOCKER_HUB: &str = "docker.io";

/// An image reference split the way Docker reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRef<'a> {
    /// `ghcr.io`, `127.0.0.1:5055`, `docker.io`.
    pub host: &'a str,
    /// Everything before the tag or digest: `ghcr.io/x/y`, `busybox`.
    pub name: &'a str,
    /// `1.4.2`; `latest` when the reference has neither tag nor digest.
    pub tag: Option<&'a str>,
    /// `sha256:…` for a reference pinned by digest.
    pub digest: Option<&'a str>,
}

impl<'a> ImageRef<'a> {
    pub fn parse(image: &'a str) -> ImageRef<'a> {
        let (rest, digest) = match image.split_once('@') {
            Some((rest, digest)) => (rest, Some(digest)),
            None => (image, None),
        };
        let (name, tag) = match rest.rsplit_once(':') {
            Some((name, tag)) if !tag.contains('/') => (name, Some(tag)),
            _ => (rest, None),
        };
        let tag = tag.or(if digest.is_none() {
            Some("latest")
        } else {
            None
        });
        ImageRef {
            host: host_of(name),
            name,
            tag,
            digest,
        }
    }

    /// What the engine's pull takes: the name, and the digest when pinned (else the tag).
    pub fn pull_args(&self) -> (&'a str, &'a str) {
        (self.name, self.digest.or(self.tag).unwrap_or("latest"))
    }
}

/// The registry an image comes from: the first component when it has a dot or a port or is
/// `localhost` (`ghcr.io/x/y:1`, `127.0.0.1:5055/x:1`), else Docker Hub.
pub fn host_of(name: &str) -> &str {
    match name.split_once('/') {
        Some((first, _)) if first.contains(['.', ':']) || first == "localhost" => first,
        _ => DOCKER_HUB,
    }
}

/// Why a registry did not give the image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// The registry refused the credentials, or asked for some.
    Refused,
    NotFound,
    /// The registry could not be reached (DNS, connection, TLS).
    Unreachable,
    Other,
}

impl Reason {
    /// Classifies the engine's message about a failed pull.
    pub fn of(message: &str) -> Reason {
        let m = message.to_ascii_lowercase();
        let any = |words: &[&str]| words.iter().any(|w| m.contains(w));
        if any(&[
            "unauthorized",
            "no basic auth credentials",
            "authentication required",
            "denied",
            "401",
            "403",
        ]) {
            Reason::Refused
        } else if any(&["manifest unknown", "not found", "name unknown", "404"]) {
            Reason::NotFound
        } else if any(&[
            "connection refused",
            "no such host",
            "i/o timeout",
            "dial tcp",
            "timeout exceeded",
            "tls:",
            "x509",
            "http response to https client",
            "network is unreachable",
        ]) {
            Reason::Unreachable
        } else {
            Reason::Other
        }
    }

    fn says(self) -> &'static str {
        match self {
            Reason::Refused => "the registry refused the login",
            Reason::NotFound => "the registry has no such image",
            Reason::Unreachable => "the registry cannot be reached",
            Reason::Other => "the pull failed",
        }
    }
}

/// Why `image` could not be pulled. Messages name the registry and where the credentials came
/// from, never a password or token.
#[derive(Debug, Error)]
pub enum PullError {
    #[error("cannot pull `{image}` from {registry}: {}: {message}\n  = hint: {hint}", reason.says())]
    Failed {
        image: String,
        registry: String,
        reason: Reason,
        message: String,
        hint: String,
    },
    #[error("cannot pull `{image}`: {error}")]
    Credentials {
        image: String,
        error: CredentialError,
    },
}

impl PullError {
    /// A failed pull of `image`, with the engine's `message`; `login` names where the
    /// credentials sent came from (`None`: the pull was anonymous).
    pub fn failed(image: &str, message: &str, login: Option<&str>) -> PullError {
        let registry = host_of(ImageRef::parse(image).name).to_string();
        let reason = Reason::of(message);
        PullError::Failed {
            image: image.to_string(),
            hint: hint(reason, &registry, image, login, message),
            registry,
            reason,
            message: message.to_string(),
        }
    }

    /// Whether the pull may succeed later by itself (the registry was unreachable).
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            PullError::Failed {
                reason: Reason::Unreachable,
                ..
            }
        )
    }
}

fn hint(reason: Reason, registry: &str, image: &str, login: Option<&str>, message: &str) -> String {
    let log_in = format!(
        "log in on this host (`docker login {registry}`), or add {{host: {registry}, username, password: \"${{env:…}}\"}} to providers.docker.registries"
    );
    match (reason, login) {
        // Docker Hub answers "pull access denied … does not exist or may require 'docker login'".
        (Reason::Refused, None) if message.contains("does not exist") => format!(
            "no such image on {registry}, or it is private: check the name, build or load it on this host (`docker build`, `docker load`), or {log_in}"
        ),
        (Reason::Refused, None) => format!("no credentials for {registry} were found: {log_in}"),
        (Reason::Refused, Some(from)) => format!(
            "the credentials for {registry} from {from} were refused: check the username and the password or token, and that it may read this image"
        ),
        (Reason::NotFound, None) => format!(
            "check the name and tag (`docker pull {image}`); a private image also looks missing without credentials: {log_in}"
        ),
        (Reason::NotFound, Some(_)) => {
            format!("check the name and tag: `docker pull {image}` shows what {registry} has")
        }
        (Reason::Unreachable, _) => format!(
            "check that {registry} is reachable from the Docker engine (DNS, firewall, proxy); a registry served over plain HTTP must be in the engine's `insecure-registries`"
        ),
        (Reason::Other, _) => {
            "build or load it on this host (`docker build`, `docker load`), or check the registry"
                .to_string()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_registry_host_is_read_the_way_docker_reads_it() {
        assert_eq!(ImageRef::parse("ghcr.io/x/y:1").host, "ghcr.io");
        assert_eq!(ImageRef::parse("127.0.0.1:5055/x:1").host, "127.0.0.1:5055");
        assert_eq!(ImageRef::parse("localhost/x").host, "localhost");
        assert_eq!(ImageRef::parse("ytempire/api:1.4.2").host, DOCKER_HUB);
        assert_eq!(ImageRef::parse("busybox").host, DOCKER_HUB);
    }

    #[test]
    fn tags_and_digests_are_split_off_the_name() {
        let r = ImageRef::parse("localhost:5000/api");
        assert_eq!(
            (r.name, r.tag, r.digest),
            ("localhost:5000/api", Some("latest"), None)
        );
        let r = ImageRef::parse("ytempire/api:1.4.2");
        assert_eq!(r.pull_args(), ("ytempire/api", "1.4.2"));
        let pinned = "127.0.0.1:5055/api@sha256:0123abcd";
        let r = ImageRef::parse(pinned);
        assert_eq!(
            (r.host, r.name, r.tag),
            ("127.0.0.1:5055", "127.0.0.1:5055/api", None)
        );
        assert_eq!(r.pull_args(), ("127.0.0.1:5055/api", "sha256:0123abcd"));
        let r = ImageRef::parse("api:1@sha256:ff");
        assert_eq!(
            (r.name, r.tag, r.digest),
            ("api", Some("1"), Some("sha256:ff"))
        );
    }

    #[test]
    fn a_failed_pull_says_why() {
        let cases = [
            (
                "Head \"https://ghcr.io/v2/x/manifests/1\": unauthorized",
                Reason::Refused,
            ),
            (
                "Get http://127.0.0.1:5055/v2/: no basic auth credentials",
                Reason::Refused,
            ),
            (
                "manifest for 127.0.0.1:5055/x:9 not found: manifest unknown",
                Reason::NotFound,
            ),
            (
                "dial tcp 127.0.0.1:5099: connect: connection refused",
                Reason::Unreachable,
            ),
            ("lookup nope.example: no such host", Reason::Unreachable),
            ("something else", Reason::Other),
        ];
        for (message, reason) in cases {
            assert_eq!(Reason::of(message), reason, "{message}");
        }
    }

    #[test]
    fn a_refused_pull_names_the_registry_and_the_way_to_log_in() {
        let e = PullError::failed("ghcr.io/shop/api:1", "unauthorized", None).to_string();
        assert!(
            e.contains("from ghcr.io: the registry refused the login"),
            "{e}"
        );
        assert!(e.contains("docker login ghcr.io"), "{e}");
        assert!(e.contains("providers.docker.registries"), "{e}");
        let e = PullError::failed("ghcr.io/shop/api:1", "unauthorized", Some("x")).to_string();
        assert!(
            e.contains("credentials for ghcr.io from x were refused"),
            "{e}"
        );
    }

    #[test]
    fn an_image_docker_hub_does_not_know_suggests_building_it_here() {
        let said = "pull access denied for shop/api, repository does not exist or may require 'docker login': denied";
        let e = PullError::failed("shop/api:1", said, None).to_string();
        assert!(e.contains("from docker.io"), "{e}");
        assert!(
            e.contains("no such image on docker.io, or it is private"),
            "{e}"
        );
        assert!(e.contains("docker build"), "{e}");
    }
}
