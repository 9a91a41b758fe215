//! Backup checks: the schedule (a template input), one source, valid destinations and
//! retention, a secret encryption key, the RPO.

use super::{bucket_name_problem, inputs, must_be_secret, reference, span_at, Ctx};
use crate::load::diagnostic::Diagnostic;
use crate::load::yaml::Node;
use crate::model::{Backup, Kind};

pub(super) fn check_backup(b: &Backup, n: &Node, ctx: &mut Ctx) {
    ctx.diags.extend(inputs::text(
        "backup schedule",
        b.schedule.as_str(),
        &span_at(n, &["schedule"]),
        "write five cron fields separated by spaces, e.g. `0 2 * * *`",
    ));
    let src = &b.source;
    let count = [
        src.database.is_some(),
        src.files.is_some(),
        src.command.is_some(),
    ]
    .iter()
    .filter(|x| **x)
    .count();
    if count != 1 {
        ctx.diags.push(
            Diagnostic::at(&span_at(n, &["source"]), format!("a backup source needs exactly one of `database`, `files` or `command`, found {count}"))
                .hint("e.g. `source: {database: ytempire}`"),
        );
    }
    if let Some(db) = &src.database {
        reference(
            ctx,
            Kind::Database,
            db,
            &span_at(n, &["source", "database"]),
            "backup source",
        );
    }
    if let Some(f) = &src.files {
        if !f.starts_with('/') {
            ctx.diags.push(Diagnostic::at(
                &span_at(n, &["source", "files"]),
                format!("expected an absolute path, found `{f}`"),
            ));
        }
    }
    if let Some(c) = &src.command {
        if c.is_empty() {
            ctx.diags.push(Diagnostic::at(
                &span_at(n, &["source", "command"]),
                "backup command is an empty list",
            ));
        }
    }
    if b.destinations.is_empty() {
        ctx.diags.push(
            Diagnostic::at(
                &span_at(n, &["destinations"]),
                "a backup needs at least one destination",
            )
            .hint("e.g. `- {url: \"file:///var/backups/db\", keep: 7d}`"),
        );
    }
    for (i, d) in b.destinations.iter().enumerate() {
        let span = span_at(n, &["destinations", &i.to_string(), "url"]);
        let valid = match d.url.split_once("://") {
            Some(("file", path)) => path.starts_with('/'),
            Some(("s3", rest)) => crate::model::s3_bucket_of(&format!("s3://{rest}"))
                .is_some_and(|b| bucket_name_problem(b).is_none()),
            _ => false,
        };
        if !valid {
            ctx.diags.push(
                Diagnostic::at(&span, format!("invalid destination URL `{}`", d.url))
                    .hint("expected `file:///absolute/dir` or `s3://bucket/prefix/`"),
            );
        }
        if d.keep.as_millis() == 0 {
            ctx.diags.push(Diagnostic::at(
                &span_at(n, &["destinations", &i.to_string(), "keep"]),
                "keep must be more than 0s",
            ));
        }
    }
    if let Some(e) = &b.encryption {
        must_be_secret(
            &e.key,
            &span_at(n, &["encryption", "key"]),
            "the encryption key",
            ctx,
        );
    }
    if b.rpo.is_some_and(|r| r.as_millis() == 0) {
        ctx.diags.push(Diagnostic::at(
            &span_at(n, &["rpo"]),
            "rpo must be more than 0s",
        ));
    }
}
