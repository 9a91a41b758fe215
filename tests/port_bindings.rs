//! Where published ports are bound (issue 14, part 4): blue/green color ports on `127.0.0.1`
//! unless `host_ip` says otherwise, `ports[].host_ip` optional (every interface by default, as
//! before). A change of binding is a named attribute in the plan and needs new containers; a
//! blue-green service deployed before `host_ip` existed is redeployed, saying why. Pure: the live
//! state is plain data (`tests/bluegreen.rs` checks the bindings on the real Docker engine).

use converge::diff::synthetic::after_apply;
use converge::diff::{diff, Change, ChangeAction, DiffOptions, ServiceChange};
use converge::load::{load, SourceTree};
use converge::model::attributes::{AttrValue, ReferenceDigest};
use converge::model::live::LiveState;
use converge::model::{Attributes, DesiredState, Kind, Resource, ResourceId};
use converge::plan::{self, PlanContext};

const OPTS: DiffOptions = DiffOptions {
    host: None,
    secrets: &ReferenceDigest,
    kinds: None,
    retry_failed: false,
};

const PROJECT: &str = "kind: Project\nname: shop\nhosts: [{name: web-1}]\n";

fn api(colors: &str) -> String {
    format!(
        "kind: Service\nname: api\nimage: shop/api:1\nports: [{{container: 8000}}]\n\
         health: {{http: {{path: /health, port: 8000}}}}\n\
         deploy: {{strategy: blue-green, {colors}}}\n"
    )
}

fn worker(port: &str) -> String {
    format!("kind: Service\nname: worker\nimage: shop/worker:1\nports: [{port}]\n")
}

const ROUTER: &str = "kind: Router\nname: public\npath: /etc/nginx/conf.d/shop.conf\nroutes: [{host: shop.example.com, service: api}]\n";

fn state(api_colors: &str, worker_port: &str) -> DesiredState {
    let tree = SourceTree::new("mem")
        .with_file("converge.yaml", PROJECT)
        .with_file(
            "services.yaml",
            format!("{}---\n{}", api(api_colors), worker(worker_port)),
        )
        .with_file("routing.yaml", ROUTER);
    load(&tree, None).unwrap_or_else(|d| panic!("{d}"))
}

const COLORS: &str = "blue: {port: 8000}, green: {port: 8001}";
const MAPPING: &str = "{container: 9000, host: 9000}";

fn service_changes<'a>(changes: &'a [Change], name: &str) -> Vec<&'a Change> {
    changes
        .iter()
        .filter(|c| c.id == ResourceId::new(Kind::Service, name))
        .collect()
}

fn text(v: &Option<AttrValue>) -> Option<&str> {
    v.as_ref().map(|v| v.display())
}

/// The live state converge left before `host_ip` existed: the same containers, whose spec
/// labels lack the colors' bindings (they were published on every interface).
fn deployed_before_host_ip(desired: &DesiredState) -> LiveState {
    let mut live = after_apply(desired, &LiveState::default(), &OPTS);
    let api = live
        .resources
        .get_mut(&ResourceId::new(Kind::Service, "api"))
        .unwrap();
    api.attributes
        .0
        .retain(|k, _| !k.starts_with("deploy.") || !k.ends_with(".host_ip"));
    let old_hash = Attributes(api.attributes.0.clone()).spec_hash();
    for c in &mut api.service.as_mut().unwrap().containers {
        c.spec_hash = old_hash.clone();
    }
    live
}

#[test]
fn colors_bind_to_loopback_by_default_and_mappings_keep_their_spec() {
    let desired = state(COLORS, MAPPING);
    let Some(Resource::Service(api)) = desired.get(&ResourceId::new(Kind::Service, "api")) else {
        panic!("service/api")
    };
    let attrs = Resource::Service(api.clone()).attributes(&ReferenceDigest);
    for key in ["deploy.blue.host_ip", "deploy.green.host_ip"] {
        let a = attrs.get(key).unwrap_or_else(|| panic!("{key}"));
        assert_eq!(a.value.display(), "127.0.0.1", "{key}");
        assert!(a.replaces, "{key} needs new containers");
    }
    // A mapping without `host_ip` reads as it did before it existed: same spec, no redeploy.
    let Some(Resource::Service(worker)) = desired.get(&ResourceId::new(Kind::Service, "worker"))
    else {
        panic!("service/worker")
    };
    assert_eq!(worker.ports[0].host_ip, None);
    let attrs = Resource::Service(worker.clone()).attributes(&ReferenceDigest);
    assert_eq!(
        attrs.get("ports[0]").unwrap().value.display(),
        "9000/tcp -> 9000"
    );
}

#[test]
fn a_blue_green_service_deployed_before_host_ip_is_redeployed_and_the_plan_says_why() {
    let desired = state(COLORS, MAPPING);
    let live = deployed_before_host_ip(&desired);
    let d = diff(&desired, &live, &OPTS);
    let api = service_changes(&d.changes, "api");
    assert_eq!(api.len(), 1, "{api:#?}");
    assert_eq!(api[0].action, ChangeAction::Update);
    assert!(matches!(api[0].service, Some(ServiceChange::Deploy { .. })));
    assert_eq!(
        api[0].reason,
        "blue-green: green takes over from blue (deploy.blue.host_ip, deploy.green.host_ip changed)"
    );
    let added: Vec<(&str, Option<&str>, Option<&str>)> = api[0]
        .attributes
        .iter()
        .map(|a| (a.key.as_str(), text(&a.before), text(&a.after)))
        .collect();
    assert_eq!(
        added,
        [
            ("deploy.blue.host_ip", None, Some("127.0.0.1")),
            ("deploy.green.host_ip", None, Some("127.0.0.1")),
        ]
    );
    assert!(
        service_changes(&d.changes, "worker").is_empty(),
        "a mapping without host_ip is untouched: {:#?}",
        d.changes
    );
    // The switch renders the router to the new color, still at 127.0.0.1.
    assert_eq!(d.colors["api"].color, "green");
    assert_eq!(d.colors["api"].port, 8001);
    let p = plan::plan(
        &desired,
        d,
        PlanContext {
            revision: None,
            host: None,
            fingerprint: live.fingerprint(),
            pending: vec![],
        },
    );
    let text = plan::text::render(&p);
    assert!(
        text.contains("+ deploy.blue.host_ip  = \"127.0.0.1\"")
            && text.contains("+ deploy.green.host_ip = \"127.0.0.1\""),
        "{text}"
    );
}

#[test]
fn a_changed_binding_is_a_named_attribute_that_needs_new_containers() {
    let before = state(COLORS, MAPPING);
    let live = after_apply(&before, &LiveState::default(), &OPTS);
    assert!(diff(&before, &live, &OPTS).changes.is_empty());

    let after = state(
        "blue: {port: 8000}, green: {port: 8001, host_ip: 0.0.0.0}",
        "{container: 9000, host: 9000, host_ip: 127.0.0.1}",
    );
    let d = diff(&after, &live, &OPTS);
    let api = service_changes(&d.changes, "api");
    assert_eq!(api.len(), 1, "{api:#?}");
    assert_eq!(
        api[0].reason,
        "blue-green: green takes over from blue (deploy.green.host_ip changed)"
    );
    assert_eq!(api[0].attributes.len(), 1);
    assert_eq!(text(&api[0].attributes[0].before), Some("127.0.0.1"));
    assert_eq!(text(&api[0].attributes[0].after), Some("0.0.0.0"));

    let worker = service_changes(&d.changes, "worker");
    assert_eq!(worker.len(), 1, "{worker:#?}");
    assert_eq!(worker[0].action, ChangeAction::Replace);
    assert_eq!(worker[0].reason, "ports[0] changed");
    let a = &worker[0].attributes[0];
    assert_eq!(
        (a.key.as_str(), text(&a.before), text(&a.after), a.replaces),
        (
            "ports[0]",
            Some("9000/tcp -> 9000"),
            Some("9000/tcp -> 127.0.0.1:9000"),
            true
        )
    );

    // Once applied, nothing is left to do.
    let applied = after_apply(&after, &live, &OPTS);
    assert!(diff(&after, &applied, &OPTS).changes.is_empty());
}

#[test]
fn an_ipv6_binding_is_written_in_brackets() {
    let desired = state(COLORS, "{container: 9000, host: 9000, host_ip: \"::1\"}");
    let Some(Resource::Service(worker)) = desired.get(&ResourceId::new(Kind::Service, "worker"))
    else {
        panic!("service/worker")
    };
    let attrs = Resource::Service(worker.clone()).attributes(&ReferenceDigest);
    assert_eq!(
        attrs.get("ports[0]").unwrap().value.display(),
        "9000/tcp -> [::1]:9000"
    );
}
