//! Whatever the input, loading never panics: arbitrary bytes, arbitrary YAML-shaped text made
//! of the format's own keys and values, mutations of the real example, and hostile input (deep
//! nesting, alias chains, bytes that are not UTF-8, odd Unicode in strings and secret references).

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

/// Lists and mappings nested up to well past the loader's limit of 64, in flow style (`[`, `{a: `)
/// or block style (`- `, indented keys), closed or left open.
fn deep_nesting() -> impl Strategy<Value = String> {
    let flow = (
        0usize..400,
        prop::collection::vec(any::<bool>(), 1..6),
        any::<bool>(),
    )
        .prop_map(|(depth, kinds, closed)| {
            let (mut open, mut close) = (String::new(), String::new());
            for i in 0..depth {
                let (o, c) = if kinds[i % kinds.len()] {
                    ("[", "]")
                } else {
                    ("{a: ", "}")
                };
                open.push_str(o);
                close.insert_str(0, c);
            }
            let close = if closed { close } else { String::new() };
            format!("kind: Service\nname: api\nimage: x\ncommand: {open}x{close}\n")
        });
    let block =
        (0usize..200, prop::collection::vec(any::<bool>(), 1..6)).prop_map(|(depth, kinds)| {
            let mut text = String::from("kind: Service\nname: api\nimage: x\nenv:\n");
            for i in 0..depth {
                let indent = " ".repeat(2 + 2 * i);
                if kinds[i % kinds.len()] {
                    text.push_str(&format!("{indent}-\n"));
                } else {
                    text.push_str(&format!("{indent}k{i}:\n"));
                }
            }
            text
        });
    // `- - - - x` on one line: 50,000 deep overflowed the stack before the limit.
    let dashes = (0usize..60_000).prop_map(|depth| {
        format!(
            "kind: Service\nname: api\nimage: x\ncommand:\n{}x\n",
            "- ".repeat(depth)
        )
    });
    prop_oneof![flow, block, dashes]
}

/// Chains of anchors and aliases: each level copies the one before `fanout` times, as values,
/// list items or merge keys; long enough chains are "billion laughs".
fn alias_chain() -> impl Strategy<Value = String> {
    (1usize..14, 1usize..12, 0u8..3).prop_map(|(levels, fanout, style)| {
        let mut text =
            String::from("kind: Service\nname: api\nimage: x\nenv:\n  l0: &l0 {a: x, b: y}\n");
        for l in 1..levels {
            let p = l - 1;
            let line = match style {
                0 => format!(
                    "  l{l}: &l{l} [{}]\n",
                    vec![format!("*l{p}"); fanout].join(", ")
                ),
                1 => format!(
                    "  l{l}: &l{l} {{{}}}\n",
                    (0..fanout)
                        .map(|i| format!("k{i}: *l{p}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                _ => format!(
                    "  l{l}: &l{l} {{<<: [{}], z{l}: w}}\n",
                    vec![format!("*l{p}"); fanout].join(", ")
                ),
            };
            text.push_str(&line);
        }
        text.push_str(&format!("command: [*l{}]\n", levels - 1));
        text
    })
}

/// Characters that trip up code assuming ASCII: combining marks, right-to-left controls, NUL,
/// zero-width and byte-order marks, emoji, multi-byte letters.
fn odd_text() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("\u{301}"),
        Just("e\u{301}\u{308}"),
        Just("\u{202E}"),
        Just("\u{200F}"),
        Just("\0"),
        Just("\u{200B}"),
        Just("\u{FEFF}"),
        Just("🔑"),
        Just("👩‍👩‍👧"),
        Just("é"),
        Just("ключ"),
        Just("漢字"),
        Just("${env:"),
        Just("${file:"),
        Just("}"),
        Just("A"),
        Just(":"),
    ];
    prop::collection::vec(piece, 0..10).prop_map(|p| p.concat())
}

/// A service whose string positions (name, image, env values, command, secret references) hold
/// odd Unicode, quoted or not.
fn odd_unicode_document() -> impl Strategy<Value = String> {
    (odd_text(), odd_text(), odd_text(), any::<bool>()).prop_map(|(a, b, c, quoted)| {
        let q = |s: &str| if quoted { format!("{s:?}") } else { s.to_string() };
        format!(
            "kind: Service\nname: {}\nimage: {}\nenv:\n  A: {}\n  B: \"${{env:{b}\"\n  C: \"${{file:{c}}}\"\ncommand: [{}]\n---\nkind: Notifier\nname: n\nwebhook: \"${{env:{a}}}\"\n",
            q(&a),
            q(&b),
            q(&c),
            q(&a)
        )
    })
}

/// A valid document with arbitrary bytes (often not UTF-8) spliced in.
fn spliced_bytes() -> impl Strategy<Value = Vec<u8>> {
    let base =
        b"kind: Service\nname: api\nimage: nginx:1.27\nenv: {A: \"${env:TOKEN}\"}\n".to_vec();
    (prop::collection::vec(
        (
            any::<prop::sample::Index>(),
            prop::collection::vec(any::<u8>(), 1..4),
        ),
        1..6,
    ))
    .prop_map(move |splices| {
        let mut bytes = base.clone();
        for (at, insert) in splices {
            let i = at.index(bytes.len() + 1);
            bytes.splice(i..i, insert);
        }
        bytes
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, .. ProptestConfig::default() })]

    #[test]
    fn deep_nesting_never_panics(text in deep_nesting()) {
        load_text(&text);
    }

    #[test]
    fn alias_chains_never_panic_or_blow_up(text in alias_chain()) {
        let start = std::time::Instant::now();
        load_text(&text);
        prop_assert!(start.elapsed() < std::time::Duration::from_secs(5), "took {:?}", start.elapsed());
    }

    #[test]
    fn odd_unicode_in_strings_and_secret_references_never_panics(text in odd_unicode_document()) {
        load_text(&text);
    }

    #[test]
    fn bytes_spliced_into_a_valid_document_never_panic(bytes in spliced_bytes()) {
        let tree = SourceTree::new("t").with_file("converge.yaml", PROJECT).with_file("x.yaml", bytes);
        let _ = load(&tree, None);
    }

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
