//! Disaster recovery, `converge recover`: from the desired state and the backups alone back to
//! serving. It chooses a verified copy of every database and files backup (`choose`), shows the
//! recovery plan (`plan`), then runs the phases in order (`run`): the infrastructure the data
//! needs, each restore, the rest of the desired state, a verification; each phase is timed and
//! the RTO and RPO reported against the Project's objectives (`report`). The journal records
//! each restore, so a recovery that crashed resumes without restoring twice (`resume`). A drill
//! (`drill`) restores into scratch copies while the real stack runs, starts the services against
//! them as a project of their own (`drill_stack`), checks and tears it all down; the journal's recoveries and drills are read back for status and metrics (`history`).

mod choose;
mod drill;
mod drill_stack;
mod error;
mod fence;
mod history;
mod phase;
mod plan;
mod report;
mod resume;
mod run;
mod targets;

pub use choose::{parse_time, Choice, Criteria};
pub use error::RecoverError;
pub use history::{last, last_success, Figures, RecoveryKind};
pub use plan::{Planned, RecoveryPlan};
pub use report::{duration, Report};
pub use run::{Recovery, RecoveryOptions};
pub use targets::{RestoreInto, Target};
