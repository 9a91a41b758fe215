//! The recoveries and drills the journal recorded: each `recovery-finished` entry read back as
//! figures (when, recovery or drill, its outcome, the RTO and the achieved RPO), for
//! `converge status` and the agent's `/metrics`.

use serde::Serialize;

use crate::engine::event::{Entry, Event};

use super::resume::RECOVERED;

/// The `detail` of a drill that completed.
pub const DRILLED: &str = "drilled";
/// The start of the `detail` of a drill that failed.
pub const DRILL_FAILED: &str = "drill failed";

/// A recovery or a drill.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RecoveryKind {
    Recovery,
    Drill,
}

impl RecoveryKind {
    /// The `kind` label of the metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            RecoveryKind::Recovery => "recovery",
            RecoveryKind::Drill => "drill",
        }
    }
}

/// One finished recovery or drill, as the journal recorded it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Figures {
    pub kind: RecoveryKind,
    /// When it finished, Unix seconds.
    pub at: u64,
    /// Whether it completed (`recovered`, `drilled`) rather than failed.
    pub ok: bool,
    /// `recovered`, `drilled`, or `failed: …` / `drill failed: …`.
    pub outcome: String,
    /// The RTO: every phase's wall time.
    pub rto_seconds: f64,
    /// The achieved RPO: the age of the oldest restored copy.
    pub data_age_seconds: Option<u64>,
}

impl Figures {
    /// The figures of a `recovery-finished` entry; `None` for any other.
    pub fn of(e: &Entry) -> Option<Figures> {
        let Event::RecoveryFinished { detail, data } = &e.event else {
            return None;
        };
        let drill = detail == DRILLED || detail.starts_with(DRILL_FAILED);
        Some(Figures {
            kind: if drill {
                RecoveryKind::Drill
            } else {
                RecoveryKind::Recovery
            },
            at: e.ts,
            ok: detail == DRILLED || detail == RECOVERED,
            outcome: detail.clone(),
            rto_seconds: data.phases.iter().map(|p| p.seconds).sum(),
            data_age_seconds: data.data_age_seconds,
        })
    }
}

/// The last recovery or drill of `kind`, whatever its outcome.
pub fn last(entries: &[Entry], kind: RecoveryKind) -> Option<Figures> {
    entries
        .iter()
        .rev()
        .filter_map(Figures::of)
        .find(|f| f.kind == kind)
}

/// The last recovery or drill of `kind` that completed.
pub fn last_success(entries: &[Entry], kind: RecoveryKind) -> Option<Figures> {
    entries
        .iter()
        .rev()
        .filter_map(Figures::of)
        .find(|f| f.kind == kind && f.ok)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::event::{PhaseTime, RecoveryPhases};

    fn finished(ts: u64, detail: &str, seconds: f64, age: Option<u64>) -> Entry {
        Entry {
            ts,
            run: "r".into(),
            event: Event::RecoveryFinished {
                detail: detail.into(),
                data: RecoveryPhases {
                    phases: vec![
                        PhaseTime {
                            name: "select copies".into(),
                            seconds: 1.0,
                        },
                        PhaseTime {
                            name: "restore database/app".into(),
                            seconds: seconds - 1.0,
                        },
                    ],
                    data_age_seconds: age,
                },
            },
        }
    }

    #[test]
    fn drills_and_recoveries_are_told_apart_by_their_outcome() {
        let j = vec![
            finished(10, RECOVERED, 30.0, Some(600)),
            finished(20, DRILLED, 4.0, Some(60)),
            finished(30, "drill failed: the verify phase failed", 2.0, None),
        ];
        let drill = last(&j, RecoveryKind::Drill).unwrap();
        assert_eq!((drill.at, drill.ok), (30, false));
        let good = last_success(&j, RecoveryKind::Drill).unwrap();
        assert_eq!(good.at, 20);
        assert_eq!(good.rto_seconds, 4.0);
        assert_eq!(good.data_age_seconds, Some(60));
        let rec = last_success(&j, RecoveryKind::Recovery).unwrap();
        assert_eq!((rec.at, rec.rto_seconds), (10, 30.0));
    }

    #[test]
    fn a_failed_recovery_is_no_success() {
        let j = vec![finished(10, "failed: x", 3.0, None)];
        assert!(!last(&j, RecoveryKind::Recovery).unwrap().ok);
        assert!(last_success(&j, RecoveryKind::Recovery).is_none());
        assert!(last(&j, RecoveryKind::Drill).is_none());
    }
}
