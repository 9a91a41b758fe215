//! Pulling private images from a real registry (scripts/registry: Debian's docker-registry with
//! htpasswd auth on loopback) with the credentials Docker users have: config.json `auths`, a
//! credential helper, and `providers.docker.registries`; and pull failures that say why and are
//! retried by the next apply. Needs `CONVERGE_TEST_REGISTRY` (scripts/test sets it) and the
//! images made by `scripts/make-image`.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use common::{docker, text, Project};

/// scripts/registry's default login.
const USER: &str = "converge";
const PASSWORD: &str = "converge-registry-test";

fn registry() -> String {
    std::env::var("CONVERGE_TEST_REGISTRY").expect(
        "CONVERGE_TEST_REGISTRY: run scripts/test (it starts the registry), or `export CONVERGE_TEST_REGISTRY=$(scripts/registry start)`",
    )
}

/// An image pushed to the test registry; dropping it removes what converge pulled of it (drop
/// it after the `Project`, whose containers use it: declare it first).
struct Pushed {
    image: String,
    digest: String,
}

impl Drop for Pushed {
    fn drop(&mut self) {
        let pinned = format!("{}@{}", self.image.rsplit_once(':').unwrap().0, self.digest);
        let _ = docker(&["image", "rm", &self.image, &pinned]);
    }
}

/// Pushes `source` as `<registry>/cvt/<test>-<pid>:1` (logging in with a client configuration
/// of its own, so the user's is untouched), then removes the local tag: converge must pull it.
fn push_private(test: &str, source: &str) -> Pushed {
    let image = format!("{}/cvt/{test}-{}:1", registry(), std::process::id());
    let config = tempfile::tempdir().unwrap();
    let cli = |args: &[&str]| {
        let o = std::process::Command::new("docker")
            .arg("--config")
            .arg(config.path())
            .args(args)
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        assert!(o.status.success(), "docker {args:?}: {}", text(&o));
    };
    cli(&["login", "-u", USER, "-p", PASSWORD, &registry()]);
    cli(&["tag", source, &image]);
    cli(&["push", "-q", &image]);
    let name = image.rsplit_once(':').unwrap().0;
    let digests = docker(&["image", "inspect", "-f", "{{json .RepoDigests}}", &image]);
    let digests: Vec<String> = serde_json::from_str(digests.trim()).unwrap();
    let digest = digests
        .iter()
        .find_map(|d| d.strip_prefix(&format!("{name}@")))
        .unwrap_or_else(|| panic!("no digest for {name} in {digests:?}"))
        .to_string();
    cli(&["logout", &registry()]);
    cli(&["image", "rm", &image]);
    Pushed { image, digest }
}

/// The image digest converge recorded on a container.
fn recorded_digest(container: &str) -> String {
    let format = "{{index .Config.Labels \"converge.image-digest\"}}";
    docker(&["inspect", "-f", format, container])
        .trim()
        .to_string()
}

fn web(image: &str, port: u16) -> String {
    format!(
        "kind: Service\nname: web\nimage: {image}\nports: [{{container: 8000, host: {port}}}]\nhealth: {{http: {{path: /health, port: 8000}}, interval: 200ms, retries: 25}}\n"
    )
}

/// A Project document with `providers.docker.registries` logging in to the test registry with
/// the password in `CVT_REGISTRY_PASSWORD`, then `body`.
fn write_with_registries(p: &Project, body: &str) {
    let project = format!(
        "kind: Project\nname: {}\nhosts: [{{name: local}}]\nsync: {{prune: true}}\nproviders:\n  docker:\n    registries:\n      - host: \"{}\"\n        username: {USER}\n        password: \"${{env:CVT_REGISTRY_PASSWORD}}\"\n---\n",
        p.name,
        registry()
    );
    std::fs::write(p.path().join("converge.yaml"), project + body).unwrap();
}

/// `apply` with only the project's `registries:` to log in (an empty client configuration).
fn apply_with_registries(p: &Project) -> std::process::Output {
    let empty = tempfile::tempdir().unwrap();
    apply_env(
        p,
        &[
            ("DOCKER_CONFIG", empty.path().to_str().unwrap()),
            ("CVT_REGISTRY_PASSWORD", PASSWORD),
        ],
    )
}

fn write_config(dir: &Path, json: &str) {
    std::fs::write(dir.join("config.json"), json).unwrap();
}

fn apply_env(p: &Project, env: &[(&str, &str)]) -> std::process::Output {
    p.converge_env(&["apply", "DIR", "--auto-approve"], env)
}

fn running(p: &Project) -> Vec<String> {
    vec![format!("{}-web-1 running", p.name)]
}

#[test]
fn a_private_image_is_pulled_with_config_json_auths() {
    let pushed = push_private("auths", "converge-test/httpd:v1");
    let image = &pushed.image;
    let p = Project::new("reg-auths", &web(image, 18771));
    let config = tempfile::tempdir().unwrap();
    let auth = base64_of(&format!("{USER}:{PASSWORD}"));
    write_config(
        config.path(),
        &format!(r#"{{"auths": {{"{}": {{"auth": "{auth}"}}}}}}"#, registry()),
    );
    let o = apply_env(&p, &[("DOCKER_CONFIG", config.path().to_str().unwrap())]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(p.containers(), running(&p));
    assert_eq!(common::http_body(18771), "v1");
}

#[test]
fn a_private_image_is_pulled_with_a_credential_helper() {
    let config = format!(r#"{{"credHelpers": {{"{}": "cvtest"}}}}"#, registry());
    pull_with_helper("helper", &config, 18772);
}

#[test]
fn a_private_image_is_pulled_with_the_credentials_store() {
    pull_with_helper("store", r#"{"credsStore": "cvtest"}"#, 18778);
}

/// Applies a private image with `config_json` naming the helper `docker-credential-cvtest`.
fn pull_with_helper(test: &str, config_json: &str, port: u16) {
    let pushed = push_private(test, "converge-test/httpd:v1");
    let image = &pushed.image;
    let p = Project::new(&format!("reg-{test}"), &web(image, port));
    let config = tempfile::tempdir().unwrap();
    write_config(config.path(), config_json);
    // The helper answers only for the host it is asked about, as real helpers do.
    let bin = tempfile::tempdir().unwrap();
    let helper = bin.path().join("docker-credential-cvtest");
    std::fs::write(
        &helper,
        format!(
            "#!/bin/sh\n[ \"$1\" = get ] || exit 1\nread host\n[ \"$host\" = \"{}\" ] || {{ echo 'credentials not found in native keychain'; exit 1; }}\necho '{{\"ServerURL\":\"'$host'\",\"Username\":\"{USER}\",\"Secret\":\"{PASSWORD}\"}}'\n",
            registry()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!(
        "{}:{}",
        bin.path().display(),
        std::env::var("PATH").unwrap()
    );
    let o = apply_env(
        &p,
        &[
            ("DOCKER_CONFIG", config.path().to_str().unwrap()),
            ("PATH", &path),
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(p.containers(), running(&p));
}

#[test]
fn a_private_image_is_pulled_with_registries_from_the_project_and_its_digest_recorded() {
    let pushed = push_private("project", "converge-test/httpd:v1");
    let (image, digest) = (&pushed.image, &pushed.digest);
    let p = Project::new("reg-project", "");
    write_with_registries(&p, &web(image, 18773));
    let o = apply_with_registries(&p);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(p.containers(), running(&p));
    assert_eq!(&recorded_digest(&format!("{}-web-1", p.name)), digest);
}

#[test]
fn a_tag_pushed_again_with_new_content_shows_by_digest_and_is_rolled_out_with_pull_always() {
    let first = push_private("moved", "converge-test/httpd:v1");
    let p = Project::new("reg-moved", "");
    write_with_registries(&p, &format!("{}pull: always\n", web(&first.image, 18779)));
    let empty = tempfile::tempdir().unwrap();
    let env = [
        ("DOCKER_CONFIG", empty.path().to_str().unwrap()),
        ("CVT_REGISTRY_PASSWORD", PASSWORD),
    ];
    let o = apply_env(&p, &env);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(common::http_body(18779), "v1");
    let container = format!("{}-web-1", p.name);
    assert_eq!(recorded_digest(&container), first.digest);

    // The same tag, pushed again with other content: the plan sees it by digest.
    let second = push_private("moved", "converge-test/httpd:v2");
    assert_ne!(first.digest, second.digest);
    let short = |d: &str| format!("{}…", &d[..19]);
    let o = p.converge_env(&["plan", "DIR", "--detailed-exitcode"], &env);
    let out = text(&o);
    assert_eq!(o.status.code(), Some(2), "{out}");
    assert!(
        out.contains(&format!("{} ({})", first.image, short(&first.digest)))
            && out.contains(&format!("{} ({})", first.image, short(&second.digest)))
            && out.contains("image tag moved to new content"),
        "{out}"
    );
    let o = apply_env(&p, &env);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(common::http_body(18779), "v2");
    assert_eq!(recorded_digest(&container), second.digest);
    let o = p.converge_env(&["plan", "DIR", "--detailed-exitcode"], &env);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
}

#[test]
fn an_image_pinned_by_digest_is_pulled_and_runs() {
    let pushed = push_private("pinned", "converge-test/httpd:v2");
    let (image, digest) = (&pushed.image, &pushed.digest);
    let pinned = format!("{}@{digest}", image.rsplit_once(':').unwrap().0);
    let p = Project::new("reg-pinned", "");
    write_with_registries(&p, &web(&pinned, 18777));
    let o = apply_with_registries(&p);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(common::http_body(18777), "v2");
    assert_eq!(&recorded_digest(&format!("{}-web-1", p.name)), digest);
}

#[test]
fn registry_logins_are_validated_with_their_line() {
    let p = Project::new("reg-invalid", "");
    let project = format!(
        "kind: Project\nname: {}\nhosts: [{{name: local}}]\nproviders:\n  docker:\n    registries:\n      - {{host: \"https://ghcr.io\", username: bot, password: \"${{env:T}}\"}}\n      - {{host: ghcr.io, username: bot, password: literal-secret}}\n",
        p.name
    );
    std::fs::write(p.path().join("converge.yaml"), project).unwrap();
    let o = p.converge(&["validate", "DIR"]);
    let out = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(
        out.contains("converge.yaml:7") && out.contains("invalid registry host `https://ghcr.io`"),
        "{out}"
    );
    assert!(
        out.contains("converge.yaml:8")
            && out.contains("the password for registry `ghcr.io` is written literally"),
        "{out}"
    );
    assert!(!out.contains("literal-secret"), "{out}");
}

#[test]
fn a_wrong_password_fails_clearly_changes_nothing_and_the_next_apply_pulls() {
    let pushed = push_private("wrong", "converge-test/httpd:v1");
    let image = &pushed.image;
    let p = Project::new("reg-wrong", "");
    write_with_registries(&p, &web(image, 18774));
    let empty = tempfile::tempdir().unwrap();
    let config = ("DOCKER_CONFIG", empty.path().to_str().unwrap());
    let wrong = "not-the-Passw0rd";
    let o = apply_env(&p, &[config, ("CVT_REGISTRY_PASSWORD", wrong)]);
    let out = text(&o);
    assert_ne!(o.status.code(), Some(0), "{out}");
    assert!(
        out.contains(&format!(
            "from {}: the registry refused the login",
            registry()
        )),
        "{out}"
    );
    assert!(
        out.contains("from providers.docker.registries were refused"),
        "{out}"
    );
    assert!(!out.contains(wrong), "the password is never printed: {out}");
    assert!(p.containers().is_empty(), "{:?}", p.containers());
    let o = apply_env(&p, &[config, ("CVT_REGISTRY_PASSWORD", PASSWORD)]);
    assert_eq!(o.status.code(), Some(0), "not held back: {}", text(&o));
    assert_eq!(p.containers(), running(&p));
}

#[test]
fn an_anonymous_pull_is_refused_with_the_way_to_log_in() {
    let pushed = push_private("anonymous", "converge-test/httpd:v1");
    let image = &pushed.image;
    let p = Project::new("reg-anon", &web(image, 18775));
    let empty = tempfile::tempdir().unwrap();
    let o = apply_env(&p, &[("DOCKER_CONFIG", empty.path().to_str().unwrap())]);
    let out = text(&o);
    assert_ne!(o.status.code(), Some(0), "{out}");
    assert!(
        out.contains(&format!("`docker login {}`", registry())),
        "{out}"
    );
    assert!(p.containers().is_empty());
}

#[test]
fn an_image_the_registry_lacks_is_reported_as_not_found() {
    let image = format!("{}/cvt/missing-{}:1", registry(), std::process::id());
    let p = Project::new("reg-missing", "");
    write_with_registries(&p, &web(&image, 18776));
    let o = apply_with_registries(&p);
    let out = text(&o);
    assert_ne!(o.status.code(), Some(0), "{out}");
    assert!(out.contains("the registry has no such image"), "{out}");
    let _ = docker(&["image", "rm", &image]);
}

fn base64_of(s: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(s)
}
