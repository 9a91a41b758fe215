//! The built-in Grafana dashboard's layout: every panel has a `gridPos` inside Grafana's 24
//! columns and no two panels' rectangles overlap, whatever the number of backups and budgets.

use std::collections::BTreeMap;
use std::path::Path;

use converge::model::{ConfigFile, Resource};

#[derive(Debug, Clone, Copy)]
struct Rect {
    x: u64,
    y: u64,
    w: u64,
    h: u64,
}

impl Rect {
    fn overlaps(&self, o: &Rect) -> bool {
        self.x < o.x + o.w && o.x < self.x + self.w && self.y < o.y + o.h && o.y < self.y + self.h
    }
}

/// The dashboard `dir` renders for `env`, as JSON.
fn dashboard(dir: &Path, env: Option<&str>) -> serde_json::Value {
    let state = converge::load::load_dir(dir, env).unwrap_or_else(|e| panic!("{e}"));
    let file: &ConfigFile = state
        .resources
        .values()
        .find_map(|r| match r {
            Resource::ConfigFile(c) if c.template == "grafana-dashboard" => Some(c),
            _ => None,
        })
        .expect("a ConfigFile with the grafana-dashboard template");
    let text = converge::render::render_configfile(file, &state, &BTreeMap::new())
        .unwrap_or_else(|e| panic!("{e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

/// Each panel's title and rectangle; fails on a panel without a whole-number `gridPos`.
fn rects(dashboard: &serde_json::Value) -> Vec<(String, Rect)> {
    let panels = dashboard["panels"].as_array().expect("panels");
    panels
        .iter()
        .map(|p| {
            let title = p["title"].as_str().unwrap_or("(untitled)").to_string();
            let g = &p["gridPos"];
            let n = |k: &str| {
                g[k].as_u64()
                    .unwrap_or_else(|| panic!("{title}: gridPos.{k} is {}", g[k]))
            };
            let r = Rect {
                x: n("x"),
                y: n("y"),
                w: n("w"),
                h: n("h"),
            };
            (title, r)
        })
        .collect()
}

/// Asserts the layout rules and returns how many panels there are.
fn assert_layout(dashboard: &serde_json::Value) -> usize {
    let rects = rects(dashboard);
    for (title, r) in &rects {
        assert!(r.w > 0 && r.h > 0, "{title}: empty panel {r:?}");
        assert!(
            r.x + r.w <= 24,
            "{title}: beyond Grafana's 24 columns: {r:?}"
        );
    }
    for (i, (a, ra)) in rects.iter().enumerate() {
        for (b, rb) in &rects[i + 1..] {
            assert!(!ra.overlaps(rb), "{a} {ra:?} overlaps {b} {rb:?}");
        }
    }
    rects.len()
}

fn write_state(dir: &Path, backups: usize, budgets: usize) {
    let mut yaml = String::from(
        "kind: Project\nname: shop\nenvironments: [prod]\n---\n\
         kind: Service\nname: web\nimage: web:1\nports: [{container: 80, host: 8080}]\n---\n\
         kind: ConfigFile\nname: dashboard\ntemplate: grafana-dashboard\n\
         path: /var/lib/grafana/dashboards/converge.json\n",
    );
    for i in 0..backups {
        // Every other backup without an RPO: its panel has no threshold line.
        let rpo = if i % 2 == 0 { "rpo: 1h\n" } else { "" };
        yaml.push_str(&format!(
            "---\nkind: Backup\nname: files-{i}\nschedule: \"0 * * * *\"\n\
             source: {{files: /srv/shop/{i}}}\ndestinations: [{{url: \"file:///var/backups/shop\", keep: 7d}}]\n{rpo}"
        ));
    }
    for i in 0..budgets {
        yaml.push_str(&format!(
            "---\nkind: Budget\nname: budget-{i}\namount: {}\nalerts: [0.5, 0.9, 1.0]\n",
            100 * (i + 1)
        ));
    }
    std::fs::write(dir.join("converge.yaml"), yaml).unwrap();
}

#[test]
fn the_example_dashboard_panels_do_not_overlap_in_any_environment() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("desired-state");
    for env in ["dev", "staging", "prod"] {
        let d = dashboard(&example, Some(env));
        // Six fixed panels, one per backup (database, media) and the monthly budget.
        assert_eq!(assert_layout(&d), 9, "{env}");
    }
}

#[test]
fn many_backups_and_budgets_each_get_their_own_place() {
    let dir = tempfile::tempdir().unwrap();
    // Past ten of each: the row numbers gain a digit.
    write_state(dir.path(), 12, 11);
    let d = dashboard(dir.path(), None);
    assert_eq!(assert_layout(&d), 6 + 12 + 11);
}

#[test]
fn a_dashboard_without_backups_or_budgets_keeps_its_fixed_grid() {
    let dir = tempfile::tempdir().unwrap();
    write_state(dir.path(), 0, 0);
    let d = dashboard(dir.path(), None);
    assert_eq!(assert_layout(&d), 6);
    let rows: Vec<u64> = rects(&d).iter().map(|(_, r)| r.y).collect();
    assert_eq!(
        rows,
        [0, 0, 8, 8, 16, 16],
        "two panels a row, top to bottom"
    );
}

#[test]
fn overlapping_rectangles_are_told_apart_from_adjacent_ones() {
    let a = Rect {
        x: 0,
        y: 0,
        w: 12,
        h: 8,
    };
    let beside = Rect {
        x: 12,
        y: 0,
        w: 12,
        h: 8,
    };
    let below = Rect {
        x: 0,
        y: 8,
        w: 12,
        h: 8,
    };
    let across = Rect {
        x: 6,
        y: 4,
        w: 12,
        h: 8,
    };
    assert!(!a.overlaps(&beside) && !a.overlaps(&below));
    assert!(a.overlaps(&across) && across.overlaps(&a));
    assert!(a.overlaps(&a));
}
