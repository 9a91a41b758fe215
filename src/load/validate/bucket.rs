//! Bucket checks: S3 naming rules and lifecycle rules.

use super::{span_at, Ctx};
use crate::load::diagnostic::Diagnostic;
use crate::load::yaml::Node;
use crate::model::Bucket;

/// S3's bucket naming rules.
pub fn bucket_name_problem(name: &str) -> Option<&'static str> {
    let b = name.as_bytes();
    if !(3..=63).contains(&b.len()) {
        return Some("must be 3 to 63 characters long");
    }
    if !b
        .iter()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-' || *c == b'.')
    {
        return Some("may hold only lowercase letters, digits, `-` and `.`");
    }
    if !b[0].is_ascii_alphanumeric() || !b[b.len() - 1].is_ascii_alphanumeric() {
        return Some("must start and end with a letter or digit");
    }
    if name.contains("..") {
        return Some("must not contain two adjacent periods");
    }
    if name.split('.').count() == 4 && name.split('.').all(|p| p.parse::<u8>().is_ok()) {
        return Some("must not look like an IP address");
    }
    if name.starts_with("xn--")
        || name.starts_with("sthree-")
        || name.ends_with("-s3alias")
        || name.ends_with("--ol-s3")
    {
        return Some("must not use a prefix or suffix reserved by S3");
    }
    None
}

pub(super) fn check_bucket(b: &Bucket, n: &Node, ctx: &mut Ctx) {
    if let Some(problem) = bucket_name_problem(b.name.as_str()) {
        ctx.diags.push(
            Diagnostic::at(
                &span_at(n, &["name"]),
                format!("invalid S3 bucket name `{}`: it {problem}", b.name),
            )
            .hint("e.g. `ytempire-backups`"),
        );
    }
    for (i, r) in b.lifecycle.iter().enumerate() {
        let span = span_at(n, &["lifecycle", &i.to_string()]);
        if r.transition.is_none()
            && r.expire_after.is_none()
            && r.abort_incomplete_uploads_after.is_none()
        {
            ctx.diags.push(
                Diagnostic::at(&span, "a lifecycle rule needs `transition`, `expire_after` or `abort_incomplete_uploads_after`"),
            );
        }
        if let (Some(t), Some(e)) = (&r.transition, r.expire_after) {
            if e <= t.after {
                ctx.diags.push(
                    Diagnostic::at(
                        &span_at(n, &["lifecycle", &i.to_string(), "expire_after"]),
                        format!(
                            "expire_after ({e}) is not later than the transition ({})",
                            t.after
                        ),
                    )
                    .hint("objects would expire before (or as) they move to the colder tier"),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_names_follow_s3_rules() {
        assert_eq!(bucket_name_problem("ytempire-backups"), None);
        assert!(bucket_name_problem("Ytempire").is_some());
        assert!(bucket_name_problem("ab").is_some());
        assert!(bucket_name_problem("192.168.1.1").is_some());
        assert!(bucket_name_problem("a..b").is_some());
    }
}
