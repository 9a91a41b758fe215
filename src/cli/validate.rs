//! `converge validate`: load every environment (or one) and list every problem.

use std::path::Path;

use super::Outcome;
use crate::load::{self, SourceTree};

pub fn run(dir: &Path, env: Option<&str>) -> anyhow::Result<Outcome> {
    let tree = SourceTree::read_dir(dir)?;
    let result = match env {
        Some(e) => load::load(&tree, Some(e)).map(|s| vec![s]),
        None => load::load_every_environment(&tree),
    };
    match result {
        Ok(states) => {
            let first = &states[0];
            let envs: Vec<String> = states
                .iter()
                .filter_map(|s| s.environment.clone())
                .collect();
            println!(
                "{} is valid: project {}, {} resource(s){}.",
                tree.root,
                first.project.name,
                first.resources.len(),
                if envs.is_empty() {
                    String::new()
                } else {
                    format!(", environments {}", envs.join(", "))
                }
            );
            Ok(Outcome::Success)
        }
        Err(d) => {
            eprintln!("{d}");
            Ok(Outcome::Failure)
        }
    }
}
