//! The `Database` kind: a PostgreSQL database with its roles, grants, extensions and migrations.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::types::{Duration, Name, SecretString};

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Database {
    pub name: Name,
    /// Owning role; declared in `roles` or already present.
    #[serde(default)]
    pub owner: Option<String>,
    #[serde(default = "utf8")]
    pub encoding: String,
    #[serde(default)]
    pub extensions: Vec<String>,
    #[serde(default)]
    pub roles: Vec<Role>,
    #[serde(default)]
    pub migrations: Option<Migrations>,
    /// The database is dropped when it leaves the desired state only if this is true.
    #[serde(default)]
    pub prune: bool,
}

fn utf8() -> String {
    "UTF8".into()
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Role {
    pub name: Name,
    #[serde(default)]
    pub login: bool,
    /// A secret reference such as `${env:PG_APP_PASSWORD}`; never a literal.
    #[serde(default)]
    pub password: Option<SecretString>,
    #[serde(default)]
    pub createdb: bool,
    /// -1 means unlimited.
    #[serde(default = "unlimited")]
    pub connection_limit: i32,
    #[serde(default)]
    pub member_of: Vec<String>,
    #[serde(default)]
    pub grants: Vec<Grant>,
}

fn unlimited() -> i32 {
    -1
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Grant {
    pub privileges: Vec<Privilege>,
    pub on: GrantTarget,
    #[serde(default = "public")]
    pub schema: String,
}

fn public() -> String {
    "public".into()
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize, Serialize, JsonSchema,
)]
#[serde(rename_all = "UPPERCASE")]
pub enum Privilege {
    All,
    Select,
    Insert,
    Update,
    Delete,
    Truncate,
    References,
    Trigger,
    Usage,
    Create,
    Connect,
    Temporary,
    Execute,
}

impl Privilege {
    pub fn sql(&self) -> &'static str {
        match self {
            Privilege::All => "ALL",
            Privilege::Select => "SELECT",
            Privilege::Insert => "INSERT",
            Privilege::Update => "UPDATE",
            Privilege::Delete => "DELETE",
            Privilege::Truncate => "TRUNCATE",
            Privilege::References => "REFERENCES",
            Privilege::Trigger => "TRIGGER",
            Privilege::Usage => "USAGE",
            Privilege::Create => "CREATE",
            Privilege::Connect => "CONNECT",
            Privilege::Temporary => "TEMPORARY",
            Privilege::Execute => "EXECUTE",
        }
    }
}

impl Grant {
    /// The privileges, `ALL` expanded for the target, in PostgreSQL's order, so `ALL` and its
    /// expansion compare equal and never diff forever.
    pub fn canonical_privileges(&self) -> Vec<&'static str> {
        let all = self.on.privileges();
        if self.privileges.contains(&Privilege::All) {
            return all.to_vec();
        }
        all.iter()
            .copied()
            .filter(|p| self.privileges.iter().any(|x| x.sql() == *p))
            .collect()
    }

    /// `SELECT, INSERT on all-tables in public`.
    pub fn describe(&self, privileges: &[&str]) -> String {
        format!(
            "{} on {} in {}",
            privileges.join(", "),
            self.on.as_str(),
            self.schema
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum GrantTarget {
    AllTables,
    AllSequences,
    AllFunctions,
    Schema,
    Database,
}

impl GrantTarget {
    pub fn as_str(&self) -> &'static str {
        match self {
            GrantTarget::AllTables => "all-tables",
            GrantTarget::AllSequences => "all-sequences",
            GrantTarget::AllFunctions => "all-functions",
            GrantTarget::Schema => "schema",
            GrantTarget::Database => "database",
        }
    }

    /// Every privilege that applies to the target, in PostgreSQL's order.
    pub fn privileges(&self) -> &'static [&'static str] {
        match self {
            GrantTarget::AllTables => &[
                "SELECT",
                "INSERT",
                "UPDATE",
                "DELETE",
                "TRUNCATE",
                "REFERENCES",
                "TRIGGER",
            ],
            GrantTarget::AllSequences => &["SELECT", "UPDATE", "USAGE"],
            GrantTarget::AllFunctions => &["EXECUTE"],
            GrantTarget::Schema => &["CREATE", "USAGE"],
            GrantTarget::Database => &["CREATE", "TEMPORARY", "CONNECT"],
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Migrations {
    /// Directory of `NNNN_name.up.sql` (and optional `NNNN_name.down.sql`), relative to the desired-state directory.
    pub dir: String,
    #[serde(default = "five_seconds")]
    pub lock_timeout: Duration,
    #[serde(default = "ten_minutes")]
    pub statement_timeout: Duration,
    #[serde(default)]
    pub allow_out_of_order: bool,
    /// What happens to the migrations an apply ran when one of them or a later step fails:
    /// `none` (forward-only: they stay applied) or `down-files` (their down files run in
    /// reverse, after a `pg_dump` whenever the database holds data).
    #[serde(default)]
    pub rollback: Rollback,
}

/// `migrations.rollback`: whether converge may run down files.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Rollback {
    /// Forward-only: a failure stops at the failed file; earlier ones stay applied.
    #[default]
    None,
    /// Down files run in reverse (every pending file must have one), after a `pg_dump`.
    DownFiles,
}

/// A version as the migration files write it: the zero-padded width of `files` (the first one
/// that has that version, else the width of the others), e.g. `000042`.
pub fn version_text(version: u64, files: &[crate::model::MigrationFile]) -> String {
    if let Some(f) = files.iter().find(|f| f.version == version) {
        return f.version_text();
    }
    let width = files.first().map(|f| f.version_text().len()).unwrap_or(4);
    format!("{version:0width$}")
}

fn five_seconds() -> Duration {
    Duration::from_secs(5)
}
fn ten_minutes() -> Duration {
    Duration::from_secs(600)
}
