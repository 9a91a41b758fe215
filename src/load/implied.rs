//! What the desired state implies beyond what it spells out, added after validation so plans show
//! it: a bucket that receives backups aborts incomplete multipart uploads (an interrupted backup
//! would otherwise leave billed parts behind forever).

use crate::model::bucket::LifecycleRule;
use crate::model::types::Duration;
use crate::model::{DesiredState, Resource};

/// How long an interrupted upload's parts stay in a backup bucket.
pub const ABORT_INCOMPLETE_AFTER: Duration = Duration::from_secs(86_400);

/// Adds an abort-incomplete-uploads rule to every declared bucket a Backup writes to, unless one
/// of its rules for every key (`prefix: ""`) already aborts them.
pub fn add_implied(state: &mut DesiredState) {
    let targets: Vec<String> = state
        .resources
        .values()
        .filter_map(|r| match r {
            Resource::Backup(b) => Some(b),
            _ => None,
        })
        .flat_map(|b| b.destinations.iter())
        .filter_map(|d| crate::model::s3_bucket_of(&d.url).map(str::to_string))
        .collect();
    for r in state.resources.values_mut() {
        let Resource::Bucket(b) = r else { continue };
        if !targets.iter().any(|t| t == b.name.as_str()) {
            continue;
        }
        let covered = b
            .lifecycle
            .iter()
            .any(|l| l.prefix.is_empty() && l.abort_incomplete_uploads_after.is_some());
        if !covered {
            b.lifecycle.push(LifecycleRule {
                prefix: String::new(),
                transition: None,
                expire_after: None,
                abort_incomplete_uploads_after: Some(ABORT_INCOMPLETE_AFTER),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::load::source::SourceTree;

    fn load(yaml: &str) -> crate::model::DesiredState {
        let tree = SourceTree::new("t").with_file("converge.yaml", yaml);
        crate::load::load(&tree, None).unwrap()
    }

    const PROJECT: &str =
        "kind: Project\nname: shop\nhosts: [{name: local}]\nproviders: {s3: {}}\n";

    fn rules(state: &crate::model::DesiredState, bucket: &str) -> Vec<String> {
        state
            .resources
            .values()
            .find_map(|r| match r {
                crate::model::Resource::Bucket(b) if b.name.as_str() == bucket => {
                    Some(b.lifecycle.iter().map(|l| l.text()).collect())
                }
                _ => None,
            })
            .unwrap()
    }

    #[test]
    fn a_bucket_that_receives_backups_aborts_incomplete_uploads_and_others_are_untouched() {
        let state = load(&format!(
            "{PROJECT}---\nkind: Bucket\nname: shop-backups\n---\nkind: Bucket\nname: shop-media\n---\nkind: Backup\nname: files\nsource: {{files: /srv/shop}}\nschedule: \"0 * * * *\"\ndestinations: [{{url: \"s3://shop-backups/files/\", keep: 7d}}]\n"
        ));
        assert_eq!(
            rules(&state, "shop-backups"),
            vec!["*: abort uploads after 1d"]
        );
        assert!(rules(&state, "shop-media").is_empty());
    }

    #[test]
    fn a_declared_abort_rule_for_every_key_is_kept_as_written() {
        let state = load(&format!(
            "{PROJECT}---\nkind: Bucket\nname: shop-backups\nlifecycle: [{{abort_incomplete_uploads_after: 3d}}]\n---\nkind: Backup\nname: files\nsource: {{files: /srv/shop}}\nschedule: \"0 * * * *\"\ndestinations: [{{url: \"s3://shop-backups/files/\", keep: 7d}}]\n"
        ));
        assert_eq!(
            rules(&state, "shop-backups"),
            vec!["*: abort uploads after 3d"]
        );
    }
}
