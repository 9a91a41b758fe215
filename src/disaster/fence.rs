//! Fencing before a forced restore: the services that use a database or directory about to be
//! replaced (`depends_on` it, or mount the directory or a path inside it) are stopped first, so
//! nothing writes into the data while it is saved and replaced. The apply phase that follows
//! starts them again (a stopped container is drift it repairs), on the restored data.

use std::path::Path;

use crate::model::service::Service;
use crate::model::{DesiredState, Kind, ResourceId};

use super::run::Recovery;
use super::targets::RestoreInto;
use super::RecoverError;

/// Seconds a fenced container is given to stop.
const GRACE_SECS: i32 = 10;

/// The services of `desired` that read or write `into`.
pub fn users_of<'d>(desired: &'d DesiredState, into: &RestoreInto) -> Vec<&'d Service> {
    desired
        .services()
        .filter(|s| match into {
            RestoreInto::Database(db) => s.depends_on.iter().any(|d| {
                ResourceId::parse(d, Some(Kind::Service))
                    .is_some_and(|id| id.kind == Kind::Database && id.name == *db)
            }),
            RestoreInto::Dir(dir) => s
                .volumes
                .iter()
                .filter(|v| !v.is_named_volume())
                .any(|v| Path::new(&v.source).starts_with(dir)),
        })
        .collect()
}

impl Recovery<'_> {
    /// Stops every running container of the services that use `into`; a line each.
    pub(super) fn fence(
        &self,
        label: &str,
        into: &RestoreInto,
    ) -> Result<Vec<String>, RecoverError> {
        let Some(rt) = self.engine.registry().runtime() else {
            return Ok(Vec::new());
        };
        let failed = |e: crate::providers::runtime::RuntimeError| RecoverError::Phase {
            phase: format!("restore {label}"),
            detail: format!("cannot stop the services that use it before replacing it: {e}"),
        };
        let mut lines = Vec::new();
        for s in users_of(self.desired, into) {
            let names = self
                .rt
                .block_on(rt.container_names(&format!("service/{}", s.name)))
                .map_err(failed)?;
            for name in names {
                let running = self
                    .rt
                    .block_on(rt.status(&name))
                    .map_err(failed)?
                    .is_some_and(|st| st.running);
                if running {
                    self.rt
                        .block_on(rt.stop(&name, GRACE_SECS))
                        .map_err(failed)?;
                    lines.push(format!(
                        "stopped {name} (service {} uses {label}) until the data is back",
                        s.name
                    ));
                }
            }
        }
        Ok(lines)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_users_of_a_database_depend_on_it_and_of_a_directory_mount_it() {
        let yaml = r#"
kind: Project
name: shop
---
kind: Database
name: shop
---
kind: Service
name: api
image: shop/api:1
depends_on: [database/shop]
volumes: [{source: /srv/shop/media/thumbs, target: /thumbs}]
---
kind: Service
name: cache
image: redis:7
volumes: [{source: /srv/shop/cache, target: /data}]
"#;
        let tree = crate::load::SourceTree::new("t").with_file("all.yaml", yaml);
        let desired = crate::load::load(&tree, None).expect("valid");
        let names = |into: RestoreInto| -> Vec<String> {
            users_of(&desired, &into)
                .iter()
                .map(|s| s.name.to_string())
                .collect()
        };
        assert_eq!(names(RestoreInto::Database("shop".into())), ["api"]);
        assert_eq!(names(RestoreInto::Dir("/srv/shop/media".into())), ["api"]);
        assert_eq!(names(RestoreInto::Dir("/srv/shop/cache".into())), ["cache"]);
        assert!(names(RestoreInto::Dir("/srv/other".into())).is_empty());
    }
}
