//! Plans of the example stack against synthetic live states, snapshot-tested (insta) in text and
//! JSON. No server is involved: the live state is plain data.

use std::path::Path;

use converge::diff::synthetic::after_apply;
use converge::diff::{diff, DiffOptions};
use converge::load::{load, SourceTree};
use converge::model::attributes::ReferenceDigest;
use converge::model::live::{LiveResource, LiveState, PendingStep};
use converge::model::{DesiredState, Kind, ResourceId};
use converge::plan::text::Content;
use converge::plan::{self, Plan, PlanContext};

fn example() -> SourceTree {
    SourceTree::read_dir(&Path::new(env!("CARGO_MANIFEST_DIR")).join("desired-state"))
        .map(|mut t| {
            t.root = "desired-state".into();
            t
        })
        .unwrap()
}

fn edit(tree: &SourceTree, file: &str, from: &str, to: &str) -> SourceTree {
    let mut t = tree.clone();
    let text = String::from_utf8(t.files[file].clone()).unwrap();
    assert!(text.contains(from), "{file} does not contain {from:?}");
    t.files
        .insert(file.into(), text.replacen(from, to, 1).into_bytes());
    t
}

fn state(tree: &SourceTree, env: &str) -> DesiredState {
    load(tree, Some(env)).unwrap_or_else(|d| panic!("{d}"))
}

const OPTS: DiffOptions = DiffOptions {
    host: None,
    secrets: &ReferenceDigest,
    kinds: None,
    retry_failed: false,
};

fn plan_of(desired: &DesiredState, live: &LiveState) -> Plan {
    plan::plan(
        desired,
        diff(desired, live, &OPTS),
        PlanContext {
            revision: Some("abc1234"),
            host: None,
            fingerprint: live.fingerprint(),
            pending: live.pending.clone(),
        },
    )
}

/// The api's DATABASE_URL now embeds a password reference.
fn secret_change_plan() -> Plan {
    let tree = example();
    let live = applied(&tree, "dev");
    let next = edit(
        &tree,
        "services/api.yaml",
        "${env:DATABASE_URL}",
        "postgres://app:${env:PG_APP_PASSWORD}@db/ytempire",
    );
    plan_of(&state(&next, "dev"), &live)
}

fn applied(tree: &SourceTree, env: &str) -> LiveState {
    after_apply(&state(tree, env), &LiveState::default(), &OPTS)
}

#[test]
fn first_plan_creates_everything_in_dependency_and_phase_order() {
    let p = plan_of(&state(&example(), "dev"), &LiveState::default());
    insta::assert_snapshot!("first_plan_text", plan::text::render(&p));
    insta::assert_snapshot!("first_plan_json", plan::json::render(&p));
}

#[test]
fn a_second_plan_after_apply_has_no_changes_in_every_environment() {
    let tree = example();
    for env in ["dev", "staging", "prod"] {
        let p = plan_of(&state(&tree, env), &applied(&tree, env));
        assert!(p.is_empty(), "{env}: {}", plan::text::render(&p));
        assert!(
            plan::text::render(&p).ends_with("No changes. Live state matches the desired state.\n")
        );
    }
}

#[test]
fn a_new_api_image_is_a_blue_green_deploy_with_switch_and_deferred_drain() {
    let tree = example();
    let live = applied(&tree, "dev");
    let next = edit(
        &tree,
        "services/api.yaml",
        "ytempire/api:1.4.2",
        "ytempire/api:1.5.0",
    );
    let p = plan_of(&state(&next, "dev"), &live);
    insta::assert_snapshot!("blue_green_deploy", plan::text::render(&p));
}

#[test]
fn after_the_switch_green_is_active_and_the_next_deploy_goes_back_to_blue() {
    let tree = example();
    let next = edit(
        &tree,
        "services/api.yaml",
        "ytempire/api:1.4.2",
        "ytempire/api:1.5.0",
    );
    let live = after_apply(&state(&next, "dev"), &applied(&tree, "dev"), &OPTS);
    let api = live
        .service(&ResourceId::new(Kind::Service, "api"))
        .unwrap();
    assert_eq!(api.active_color.map(|c| c.as_str()), Some("green"));
    let third = edit(
        &next,
        "services/api.yaml",
        "ytempire/api:1.5.0",
        "ytempire/api:1.6.0",
    );
    let p = plan_of(&state(&third, "dev"), &live);
    assert!(plan::text::render(&p).contains("blue-green: blue takes over from green"));
}

#[test]
fn a_new_worker_image_replaces_it_rolling() {
    let tree = example();
    let live = applied(&tree, "prod");
    let next = edit(
        &tree,
        "services/workers.yaml",
        "ytempire/worker:1.4.2",
        "ytempire/worker:1.5.0",
    );
    let p = plan_of(&state(&next, "prod"), &live);
    insta::assert_snapshot!("rolling_replace", plan::text::render(&p));
}

#[test]
fn drift_stopped_and_missing_containers_are_repaired() {
    let tree = example();
    let mut live = applied(&tree, "prod");
    let worker = live
        .resources
        .get_mut(&ResourceId::new(Kind::Service, "worker"))
        .and_then(|r| r.service.as_mut())
        .unwrap();
    worker.containers[1].running = false;
    let renderer = live
        .resources
        .get_mut(&ResourceId::new(Kind::Service, "renderer"))
        .and_then(|r| r.service.as_mut())
        .unwrap();
    renderer.containers.clear();
    let p = plan_of(&state(&tree, "prod"), &live);
    insta::assert_snapshot!("drift_repair", plan::text::render(&p));
}

#[test]
fn a_secret_change_shows_as_sensitive_and_never_in_clear() {
    let p = secret_change_plan();
    let text = plan::text::render(&p);
    let json = plan::json::render(&p);
    assert!(text.contains("~ env.DATABASE_URL = (sensitive)"), "{text}");
    for out in [&text, &json] {
        assert!(!out.contains("PG_APP_PASSWORD"), "{out}");
        assert!(!out.contains("postgres://app"), "{out}");
    }
    insta::assert_snapshot!("secret_change", text);
}

#[test]
fn removed_resources_are_kept_unless_pruning_allows_and_data_opted_in() {
    let tree = example();
    let mut live = applied(&tree, "dev");
    let orphan = live.resources[&ResourceId::new(Kind::Service, "worker")].clone();
    live.resources
        .insert(ResourceId::new(Kind::Service, "old-worker"), orphan);
    let bucket = live.resources[&ResourceId::new(Kind::Bucket, "ytempire-backups")].clone();
    live.resources
        .insert(ResourceId::new(Kind::Bucket, "old-bucket"), bucket.clone());
    let mut opted_in: LiveResource = bucket;
    opted_in.attributes.text("prune", true);
    live.resources
        .insert(ResourceId::new(Kind::Bucket, "scratch-bucket"), opted_in);

    let pruning = plan_of(&state(&tree, "dev"), &live);
    insta::assert_snapshot!("prune_on", plan::text::render(&pruning));

    let no_prune = edit(&tree, "converge.yaml", "prune: true", "prune: false");
    let kept = plan_of(&state(&no_prune, "dev"), &live);
    assert!(kept.is_empty());
    insta::assert_snapshot!("prune_off", plan::text::render(&kept));
}

#[test]
fn a_hand_edited_router_file_is_rendered_back_with_a_unified_diff() {
    let tree = example();
    let mut live = applied(&tree, "dev");
    let conf = live
        .files
        .get_mut("/opt/ytempire/nginx/conf.d/ytempire.conf")
        .unwrap();
    *conf = conf.replace("127.0.0.1:8000", "127.0.0.1:9999");
    let p = plan_of(&state(&tree, "dev"), &live);
    insta::assert_snapshot!("router_file_drift", plan::text::render(&p));
}

#[test]
fn new_rendered_files_are_one_line_each_and_full_shows_every_line() {
    let p = plan_of(&state(&example(), "dev"), &LiveState::default());
    let short = plan::text::render(&p);
    let full = plan::text::render_with(&p, Content::Full);
    let files: Vec<_> = p.changes.iter().filter_map(|c| c.file.as_ref()).collect();
    assert_eq!(files.len(), 5, "{short}");
    for f in files {
        let n = f.after.lines().count();
        assert!(
            short.contains(&format!("({n} lines, rendered from ")),
            "{short}"
        );
        assert!(full.contains(&format!("+++ {}\n        @@ -0,0 +1,{n} @@", f.path)));
        for line in f.after.lines() {
            assert!(full.contains(&format!("        +{line}\n")), "{line}");
        }
    }
    assert!(short.contains("New rendered files are summarised; --full shows their text."));
    assert!(
        !full.contains("+ content") && !full.contains("--full"),
        "{full}"
    );
}

#[test]
fn a_changed_file_is_shown_as_its_full_diff_without_the_flag() {
    let tree = example();
    let mut live = applied(&tree, "dev");
    let conf = live
        .files
        .get_mut("/opt/ytempire/nginx/conf.d/ytempire.conf")
        .unwrap();
    *conf = conf.replace("127.0.0.1:8000", "127.0.0.1:9999");
    let p = plan_of(&state(&tree, "dev"), &live);
    let short = plan::text::render(&p);
    assert_eq!(short, plan::text::render_with(&p, Content::Full));
    assert!(short.contains("-    server 127.0.0.1:9999;"), "{short}");
}

#[test]
fn a_new_migration_file_is_planned_by_name_with_its_rollback_status() {
    let tree = example();
    let live = applied(&tree, "dev");
    let next = tree.clone().with_file(
        "migrations/ytempire/0004_add_video_views.up.sql",
        "ALTER TABLE videos ADD COLUMN views bigint;\n",
    );
    let p = plan_of(&state(&next, "dev"), &live);
    insta::assert_snapshot!("new_migration", plan::text::render(&p));
}

#[test]
fn pending_drains_from_earlier_applies_are_shown() {
    let tree = example();
    let mut live = applied(&tree, "dev");
    live.pending.push(PendingStep {
        resource: "service/api".into(),
        action: "drain".into(),
        detail: "stop blue".into(),
        due: 1_790_000_000,
    });
    let p = plan_of(&state(&tree, "dev"), &live);
    insta::assert_snapshot!("pending_drain", plan::text::render(&p));
}

#[test]
fn markdown_has_summary_first_and_folds_long_diffs() {
    let p = plan_of(&state(&example(), "dev"), &LiveState::default());
    let md = plan::markdown::render(&p);
    assert!(
        md.starts_with("<!-- converge-plan -->\n**Plan: 16 to add, 0 to change, 0 to destroy.**")
    );
    assert!(md.contains("<details><summary><code>router/public</code>"));
    insta::assert_snapshot!("first_plan_markdown", md);
}

#[test]
fn markdown_of_no_changes_is_one_line_with_the_marker() {
    let tree = example();
    let p = plan_of(&state(&tree, "dev"), &applied(&tree, "dev"));
    let md = plan::markdown::render(&p);
    assert!(md.starts_with(plan::markdown::MARKER), "{md}");
    insta::assert_snapshot!("markdown_no_changes", md);
}

#[test]
fn markdown_of_a_small_change_carries_the_cost_delta() {
    let tree = example();
    let live = applied(&tree, "dev");
    let next = edit(
        &tree,
        "environments.yaml",
        "service/worker: {resources: {cpus: 0.5, memory: 256Mi}}",
        "service/worker: {replicas: 3, resources: {cpus: 0.5, memory: 256Mi}}",
    );
    let p = plan_of(&state(&next, "dev"), &live);
    let md = plan::markdown::render(&p);
    // Two more replicas of 0.5 core and 256Mi: 2 × (0.5 × 0.0685 + 0.25 × 0.0137) × 730.
    assert!(
        md.contains("| `service/worker` | $27.50 | $82.51 | +$55.01 |"),
        "{md}"
    );
    assert!(
        md.contains("**Plan: 0 to add, 2 to change, 0 to destroy.**"),
        "{md}"
    );
    insta::assert_snapshot!("markdown_small_change", md);
}

#[test]
fn markdown_of_a_huge_change_splits_without_breaking_fences_or_details() {
    let p = plan_of(&state(&example(), "dev"), &LiveState::default());
    let parts = plan::markdown::render_parts(&p, 6_000);
    assert!(parts.len() > 1, "{}", parts.len());
    for (i, part) in parts.iter().enumerate() {
        assert!(part.len() <= 6_000, "part {i} has {} chars", part.len());
        assert_eq!(part.matches("```").count() % 2, 0, "part {i}: {part}");
        assert_eq!(
            part.matches("<details>").count(),
            part.matches("</details>").count(),
            "part {i}: {part}"
        );
    }
    insta::assert_snapshot!("markdown_huge_change_split", parts.join("\n"));
}

#[test]
fn markdown_of_a_secret_change_never_shows_the_secret() {
    let p = secret_change_plan();
    let md = plan::markdown::render(&p);
    assert!(md.contains("~ env.DATABASE_URL = (sensitive)"), "{md}");
    assert!(!md.contains("PG_APP_PASSWORD"), "{md}");
    insta::assert_snapshot!("markdown_secret_change", md);
}

#[test]
fn compose_style_settings_show_in_the_plan_and_force_replacement() {
    let tree = example();
    let live = applied(&tree, "prod");
    let next = edit(
        &tree,
        "services/workers.yaml",
        "image: ytempire/worker:1.4.2\n",
        "image: ytempire/worker:1.4.2\nuser: \"1000:1000\"\nread_only: true\nstop_signal: SIGQUIT\nstop_grace_period: 1m\nulimits: {nofile: {soft: 1024, hard: 2048}, nproc: 512}\ncap_drop: [ALL]\nextra_hosts: {db.local: 10.0.0.5}\nlogging: {driver: json-file, options: {max-size: 10m}}\n",
    );
    let p = plan_of(&state(&next, "prod"), &live);
    insta::assert_snapshot!("compose_fields_replace", plan::text::render(&p));
}
