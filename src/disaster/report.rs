//! The measured outcome of a recovery: the RTO (wall time of every phase, in order, and their
//! sum), the achieved RPO (the age of every restored copy), what verification found, and the
//! Project's declared objectives met or missed.

use std::fmt::Write as _;
use std::time::Instant;

use crate::engine::event::{PhaseTime, RecoveryPhases};
use crate::model::project::RecoveryObjectives;

/// `0.4s`, `3m 12s`, `2h 5m`, `3d 4h`.
pub fn duration(secs: f64) -> String {
    let whole = secs.max(0.0) as u64;
    match whole {
        0..=59 => format!("{secs:.1}s"),
        60..=3599 => format!("{}m {}s", whole / 60, whole % 60),
        3600..=86_399 => format!("{}h {}m", whole / 3600, whole % 3600 / 60),
        _ => format!("{}d {}h", whole / 86_400, whole % 86_400 / 3600),
    }
}

/// A restored copy: what, which copy, how old it was when restored.
#[derive(Debug, Clone)]
pub struct Restored {
    pub label: String,
    pub id: String,
    pub age_secs: u64,
}

/// The figures of one recovery.
#[derive(Debug, Default)]
pub struct Report {
    pub phases: Vec<PhaseTime>,
    pub restored: Vec<Restored>,
    /// What verification checked, one line each.
    pub verified: Vec<String>,
    /// Notes: copies passed over, restores skipped on resume, what is not restored.
    pub notes: Vec<String>,
    /// A drill: restored into a scratch copy, the real stack untouched.
    pub drill: bool,
}

impl Report {
    /// Runs `f` as phase `name`, recording its wall time whether it succeeds or not.
    pub fn time<T>(&mut self, name: impl Into<String>, f: impl FnOnce() -> T) -> T {
        let started = Instant::now();
        let out = f();
        self.phases.push(PhaseTime {
            name: name.into(),
            seconds: started.elapsed().as_secs_f64(),
        });
        out
    }

    /// The RTO: every phase's wall time.
    pub fn rto(&self) -> f64 {
        self.phases.iter().map(|p| p.seconds).sum()
    }

    /// The achieved RPO: the oldest restored copy's age.
    pub fn rpo(&self) -> Option<u64> {
        self.restored.iter().map(|r| r.age_secs).max()
    }

    /// Objectives the recovery missed, one line each (empty: none declared, or all met).
    pub fn missed(&self, objectives: Option<&RecoveryObjectives>) -> Vec<String> {
        let Some(o) = objectives else {
            return Vec::new();
        };
        let mut out = Vec::new();
        if let Some(rto) = o.rto {
            if self.rto() > rto.as_millis() as f64 / 1000.0 {
                out.push(format!(
                    "RTO objective {rto} MISSED: the recovery took {}",
                    duration(self.rto())
                ));
            }
        }
        if let (Some(rpo), Some(age)) = (o.rpo, self.rpo()) {
            if age > rpo.as_millis() / 1000 {
                out.push(format!(
                    "RPO objective {rpo} MISSED: the oldest restored copy was {} old",
                    duration(age as f64)
                ));
            }
        }
        out
    }

    /// What the journal's `recovery-finished` records: the phases and the achieved RPO.
    pub fn journaled(&self) -> RecoveryPhases {
        RecoveryPhases {
            phases: self.phases.clone(),
            data_age_seconds: self.rpo(),
        }
    }

    /// One line for a notification: the RTO, the RPO, and the objectives met or missed.
    pub fn headline(&self, project: &str, objectives: Option<&RecoveryObjectives>) -> String {
        let what = if self.drill {
            "recovery drill restored a scratch copy"
        } else {
            "recovered"
        };
        let rpo = match self.rpo() {
            Some(age) => format!(", oldest restored copy {} old (RPO)", duration(age as f64)),
            None => String::new(),
        };
        let missed = self.missed(objectives);
        let verdict = if missed.is_empty() {
            String::new()
        } else {
            format!("; {}", missed.join("; "))
        };
        format!(
            "{project}: {what} in {} (RTO){rpo}{verdict}",
            duration(self.rto())
        )
    }

    /// The outcome as text.
    pub fn render(&self, project: &str, objectives: Option<&RecoveryObjectives>) -> String {
        let mut s = String::new();
        let title = if self.drill {
            format!("Recovery drill of project {project}: a scratch copy recovered")
        } else {
            format!("Recovered project {project}")
        };
        let _ = writeln!(s, "\n{title} in {} (RTO, wall time):", duration(self.rto()));
        let width = self.phases.iter().map(|p| p.name.len()).max().unwrap_or(0);
        for p in &self.phases {
            let _ = writeln!(s, "  {:<width$}  {}", p.name, duration(p.seconds));
        }
        let _ = writeln!(s, "Achieved RPO (age of each restored copy):");
        if self.restored.is_empty() {
            let _ = writeln!(s, "  nothing was restored");
        }
        for r in &self.restored {
            let _ = writeln!(
                s,
                "  {}  {}  {}",
                r.label,
                r.id,
                duration(r.age_secs as f64)
            );
        }
        if !self.verified.is_empty() {
            let _ = writeln!(s, "Verified:");
        }
        for v in &self.verified {
            let _ = writeln!(s, "  {v}");
        }
        for n in &self.notes {
            let _ = writeln!(s, "note: {n}");
        }
        s.push_str(&self.objectives_text(objectives));
        s
    }

    fn objectives_text(&self, objectives: Option<&RecoveryObjectives>) -> String {
        let Some(o) = objectives.filter(|o| o.rto.is_some() || o.rpo.is_some()) else {
            return "Objectives: none declared (Project `recovery: {rto, rpo}`).\n".to_string();
        };
        let missed = self.missed(objectives);
        if missed.is_empty() {
            let rto = o.rto.map(|r| format!(" rto {r}")).unwrap_or_default();
            let rpo = o.rpo.map(|r| format!(" rpo {r}")).unwrap_or_default();
            return format!("Objectives met:{rto}{rpo}.\n");
        }
        missed.iter().map(|m| format!("{m}\n")).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::types::Duration;

    fn report(seconds: &[f64], ages: &[u64]) -> Report {
        Report {
            phases: seconds
                .iter()
                .enumerate()
                .map(|(i, s)| PhaseTime {
                    name: format!("phase {i}"),
                    seconds: *s,
                })
                .collect(),
            restored: ages
                .iter()
                .map(|a| Restored {
                    label: "database/app".into(),
                    id: "db-20261202T160000Z".into(),
                    age_secs: *a,
                })
                .collect(),
            ..Report::default()
        }
    }

    #[test]
    fn the_rto_is_the_sum_of_the_phases_and_the_rpo_the_oldest_copy() {
        let r = report(&[1.5, 2.0, 0.5], &[60, 3700]);
        assert_eq!(r.rto(), 4.0);
        assert_eq!(r.rpo(), Some(3700));
    }

    #[test]
    fn missed_objectives_are_named_and_met_ones_are_not() {
        let r = report(&[30.0, 40.0], &[7200]);
        let o = RecoveryObjectives {
            rto: Some(Duration::from_secs(60)),
            rpo: Some(Duration::from_secs(3600)),
            drill: None,
        };
        let missed = r.missed(Some(&o));
        assert_eq!(
            missed,
            vec![
                "RTO objective 1m MISSED: the recovery took 1m 10s",
                "RPO objective 1h MISSED: the oldest restored copy was 2h 0m old"
            ]
        );
        let generous = RecoveryObjectives {
            rto: Some(Duration::from_secs(4 * 3600)),
            rpo: Some(Duration::from_secs(3 * 3600)),
            drill: None,
        };
        assert!(r.missed(Some(&generous)).is_empty());
        assert!(r
            .render("p", Some(&generous))
            .contains("Objectives met: rto 4h rpo 3h."));
    }

    #[test]
    fn the_headline_says_which_objective_a_recovery_missed() {
        let r = report(&[30.0, 40.0], &[7200]);
        let o = RecoveryObjectives {
            rto: Some(Duration::from_secs(3600)),
            rpo: Some(Duration::from_secs(3600)),
            drill: None,
        };
        assert_eq!(
            r.headline("shop", Some(&o)),
            "shop: recovered in 1m 10s (RTO), oldest restored copy 2h 0m old (RPO); RPO objective 1h MISSED: the oldest restored copy was 2h 0m old"
        );
        let drill = Report {
            drill: true,
            ..report(&[2.0], &[60])
        };
        assert_eq!(
            drill.headline("shop", Some(&o)),
            "shop: recovery drill restored a scratch copy in 2.0s (RTO), oldest restored copy 1m 0s old (RPO)"
        );
        assert_eq!(
            drill.journaled().data_age_seconds,
            Some(60),
            "the journal records the RPO"
        );
    }

    #[test]
    fn durations_read_at_the_scale_they_have() {
        assert_eq!(duration(0.42), "0.4s");
        assert_eq!(duration(192.0), "3m 12s");
        assert_eq!(duration(7500.0), "2h 5m");
        assert_eq!(duration(3.0 * 86_400.0 + 4.0 * 3600.0), "3d 4h");
    }
}
