//! What a service really runs, by digest (issue 18): an image re-tagged on the host with new
//! content (a local build under the same tag) shows in `plan` as a moved tag with both digests
//! and is rolled out by `apply`; `pull: never` refuses an image the host lacks, clearly and
//! without changing anything. Local images only (scripts/make-image), no registry.

mod common;

use std::path::Path;
use std::process::Command;

use common::{docker, text, Project};

/// Builds `converge-test/<name>:v1` serving `body` (always anew).
fn image(name: &str, body: &str) -> String {
    let image = format!("converge-test/{name}:v1");
    let o = Command::new(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/make-image"))
        .args([&image, "http", "8000", body])
        .env("FORCE", "1")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    image
}

fn image_id(image: &str) -> String {
    docker(&["image", "inspect", "-f", "{{.Id}}", image])
        .trim()
        .to_string()
}

fn web(image: &str, port: u16, pull: &str) -> String {
    format!(
        "kind: Service\nname: web\nimage: {image}\npull: {pull}\nports: [{{container: 8000, host: {port}}}]\nhealth: {{http: {{path: /health, port: 8000}}, interval: 200ms, retries: 25}}\n"
    )
}

#[test]
fn an_image_retagged_on_the_host_shows_as_a_moved_tag_and_is_rolled_out() {
    let name = format!("moving-{}", std::process::id());
    let img = image(&name, "one");
    let first = image_id(&img);
    let p = Project::new("digest-local", &web(&img, 18791, "missing"));
    let o = p.apply();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(common::http_body(18791), "one");

    image(&name, "two");
    let second = image_id(&img);
    assert_ne!(first, second);
    let o = p.converge(&["plan", "DIR", "--detailed-exitcode"]);
    let out = text(&o);
    assert_eq!(o.status.code(), Some(2), "{out}");
    let short = |d: &str| format!("{img} ({}…)", &d[..19]);
    assert!(
        out.contains(&short(&first))
            && out.contains(&short(&second))
            && out.contains("image tag moved to new content"),
        "{out}"
    );
    let o = p.apply();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(common::http_body(18791), "two");
    assert_eq!(p.plan_exit(), 0, "the moved tag is rolled out");
    drop(p);
    let _ = docker(&["image", "rm", &img]);
}

#[test]
fn pull_never_refuses_an_image_the_host_lacks_and_changes_nothing() {
    let missing = format!("converge-test/absent-{}:v1", std::process::id());
    let p = Project::new("digest-never", &web(&missing, 18792, "never"));
    let o = p.apply();
    let out = text(&o);
    assert_ne!(o.status.code(), Some(0), "{out}");
    assert!(
        out.contains(&format!(
            "image `{missing}` is not on this host, and the service says `pull: never`"
        )),
        "{out}"
    );
    assert!(p.containers().is_empty(), "{out}");
}
