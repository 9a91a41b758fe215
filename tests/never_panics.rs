//! Whatever the input, loading never panics: arbitrary bytes, arbitrary YAML-shaped text made
//! of the format's own keys and values, and mutations of the real example.

use converge::load::{load, SourceTree};
use proptest::prelude::*;

const PROJECT: &str = "kind: Project\nname: p\nhosts: [{name: h}]\n";

fn load_text(text: &str) {
    let tree = SourceTree::new("t")
        .with_file("converge.yaml", PROJECT)
        .with_file("x.yaml", text.as_bytes().to_vec());
    let _ = load(&tree, None);
    let _ = load(&tree, Some("dev"));
}

fn scalar() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("api".to_string()),
        Just("-1".to_string()),
        Just("0".to_string()),
        Just("99999999999999999999".to_string()),
        Just("30s".to_string()),
        Just("2Gi".to_string()),
        Just("blue-green".to_string()),
        Just("\"${env:X}\"".to_string()),
        Just("\"${bad\"".to_string()),
        Just("null".to_string()),
        Just("~".to_string()),
        Just("[]".to_string()),
        Just("{}".to_string()),
        Just("*a".to_string()),
        Just("&a x".to_string()),
        "[a-z0-9 ./:-]{0,12}",
    ]
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("kind"),
        Just("name"),
        Just("image"),
        Just("replicas"),
        Just("ports"),
        Just("container"),
        Just("host"),
        Just("deploy"),
        Just("strategy"),
        Just("blue"),
        Just("green"),
        Just("port"),
        Just("health"),
        Just("http"),
        Just("path"),
        Just("scale"),
        Just("min"),
        Just("max"),
        Just("depends_on"),
        Just("routes"),
        Just("service"),
        Just("source"),
        Just("database"),
        Just("schedule"),
        Just("destinations"),
        Just("url"),
        Just("keep"),
        Just("overrides"),
        Just("<<"),
        Just("template"),
        Just("migrations"),
        Just("dir"),
        Just("env"),
        Just("roles"),
    ]
    .prop_map(str::to_string)
}

fn yamlish() -> impl Strategy<Value = String> {
    let kind = prop_oneof![
        Just("Service"),
        Just("Router"),
        Just("Database"),
        Just("Bucket"),
        Just("Backup"),
        Just("Budget"),
        Just("Notifier"),
        Just("Environment"),
        Just("ConfigFile"),
        Just("Project"),
        Just("Nope"),
    ];
    let line = (0usize..3, key(), scalar())
        .prop_map(|(indent, k, v)| format!("{}{k}: {v}", "  ".repeat(indent)));
    let doc = (kind, prop::collection::vec(line, 0..12))
        .prop_map(|(k, lines)| format!("kind: {k}\nname: n\n{}\n", lines.join("\n")));
    prop::collection::vec(doc, 1..4).prop_map(|docs| docs.join("---\n"))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, .. ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        let tree = SourceTree::new("t").with_file("converge.yaml", PROJECT).with_file("x.yaml", bytes);
        let _ = load(&tree, None);
    }

    #[test]
    fn arbitrary_yaml_of_our_own_keys_never_panics(text in yamlish()) {
        load_text(&text);
    }

    #[test]
    fn any_single_line_deleted_from_the_example_never_panics(seed in 0usize..10_000) {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("desired-state");
        let mut tree = SourceTree::read_dir(&root).unwrap();
        let names: Vec<String> = tree.files.keys().filter(|k| k.ends_with(".yaml")).cloned().collect();
        let name = &names[seed % names.len()];
        let text = String::from_utf8(tree.files[name].clone()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        let cut = (seed / names.len()) % lines.len();
        let edited: Vec<&str> = lines.iter().enumerate().filter(|(i, _)| *i != cut).map(|(_, l)| *l).collect();
        tree.files.insert(name.clone(), edited.join("\n").into_bytes());
        for env in [None, Some("prod")] {
            if let Ok(state) = load(&tree, env) {
                // Whatever still loads must also plan.
                let opts = converge::diff::DiffOptions { host: None, secrets: &converge::model::attributes::ReferenceDigest, kinds: None, retry_failed: false };
                let d = converge::diff::diff(&state, &converge::model::live::LiveState::default(), &opts);
                let _ = converge::plan::plan(&state, d, converge::plan::PlanContext { revision: None, host: None, fingerprint: String::new(), pending: vec![] });
            }
        }
    }
}
