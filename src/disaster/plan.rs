//! The recovery plan: for each target, the copy chosen and where it is, its age (the data a
//! recovery loses, against the Backup's `rpo`), its size and an estimated restore time; then the
//! phases that follow. Rendered as deterministic text, as `plan` is: targets by label, one line
//! per fact, the copies' age from one `now`.

use std::fmt::Write as _;

use crate::backup::job::human;
use crate::model::DesiredState;

use super::choose::Choice;
use super::report::duration;
use super::targets::Target;

/// Restore throughput in MB (10⁶ bytes) of stored bytes per second, from the restore drill in
/// BENCHMARKS.md ("Backups: throughput, memory and restore drill"): 372.8 MB stored restored in
/// 8.0 s from a local copy, 16.1 s from S3.
pub const LOCAL_MB_PER_S: f64 = 46.6;
pub const S3_MB_PER_S: f64 = 23.2;

/// One restore of the plan.
#[derive(Clone)]
pub struct Planned {
    pub target: Target,
    pub choice: Choice,
}

impl Planned {
    /// How old the copy is at `now`: the data a recovery to it loses.
    pub fn age(&self, now: u64) -> u64 {
        now.saturating_sub(self.choice.copy.started_at)
    }

    /// Seconds the restore is estimated to take at the documented throughput.
    pub fn estimate(&self) -> f64 {
        let rate = if self.choice.store.is_local() {
            LOCAL_MB_PER_S
        } else {
            S3_MB_PER_S
        };
        self.choice.copy.stored_bytes as f64 / (rate * 1e6)
    }

    /// `age 3m 12s (rpo 1h: within)`.
    fn age_text(&self, now: u64) -> String {
        let age = self.age(now);
        let rpo = match self.choice.backup.rpo {
            Some(r) if age > r.as_millis() / 1000 => format!(" (rpo {r}: MISSED)"),
            Some(r) => format!(" (rpo {r}: within)"),
            None => String::new(),
        };
        format!("age {}{rpo}", duration(age as f64))
    }
}

/// What a recovery will restore, and what it will not.
pub struct RecoveryPlan {
    pub restores: Vec<Planned>,
    pub notes: Vec<String>,
    /// `--at`, if given.
    pub at: Option<u64>,
}

impl RecoveryPlan {
    /// The plan as text, ages at `now`.
    pub fn render(&self, desired: &DesiredState, now: u64) -> String {
        let mut s = String::new();
        let at = match self.at {
            Some(a) => format!("the newest copy at or before {}", crate::plan::text::utc(a)),
            None => "the newest copy".to_string(),
        };
        let _ = writeln!(
            s,
            "Recovery plan for project {} ({at} that verifies, of each):",
            desired.project.name
        );
        for p in &self.restores {
            let c = &p.choice;
            let _ = writeln!(
                s,
                "\n  + restore {} <- {} from {}",
                p.target.label,
                c.copy.id,
                c.store.describe()
            );
            let _ = writeln!(
                s,
                "      {}, {} stored ({} raw), est. {} ({} MB/s from {}, the restore drill in BENCHMARKS.md)",
                p.age_text(now),
                human(c.copy.stored_bytes),
                human(c.copy.raw_bytes),
                duration(p.estimate()),
                if c.store.is_local() { LOCAL_MB_PER_S } else { S3_MB_PER_S },
                if c.store.is_local() { "a local copy" } else { "S3" },
            );
            for note in &c.skipped {
                let _ = writeln!(s, "      note: {note}");
            }
        }
        for note in &self.notes {
            let _ = writeln!(s, "\n  note: {note}");
        }
        let total: f64 = self.restores.iter().map(Planned::estimate).sum();
        let _ = writeln!(
            s,
            "\nThen: apply networks, volumes and databases (no migrations) -> restore {} item(s) -> apply the rest (services health-gated, routers switched) -> verify.",
            self.restores.len()
        );
        let _ = writeln!(
            s,
            "Plan: {} restore(s), est. {} of restore.",
            self.restores.len(),
            duration(total)
        );
        s
    }

    /// One line for the journal: each target and its copy.
    pub fn summary(&self) -> String {
        let items: Vec<String> = self
            .restores
            .iter()
            .map(|p| {
                format!(
                    "{} <- {} from {}",
                    p.target.label,
                    p.choice.copy.id,
                    p.choice.store.describe()
                )
            })
            .collect();
        format!("{} restore(s): {}", items.len(), items.join(", "))
    }
}
