//! `converge schema`: the JSON Schema of every kind, printed or written one file per kind.

use std::path::Path;

use anyhow::Context;

use super::Outcome;

pub fn run(out: Option<&Path>) -> anyhow::Result<Outcome> {
    match out {
        None => print!("{}", crate::schema::files()[0].1),
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            for (name, text) in crate::schema::files() {
                let path = dir.join(&name);
                std::fs::write(&path, text)
                    .with_context(|| format!("cannot write {}", path.display()))?;
                println!("wrote {}", path.display());
            }
        }
    }
    Ok(Outcome::Success)
}
