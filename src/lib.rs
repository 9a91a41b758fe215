//! converge: a GitOps agent that converges Docker, PostgreSQL and S3 to the desired state in Git.
//!
//! The loop: `load` → `DesiredState`; providers observe → `LiveState`; `diff` → changes;
//! `plan` → ordered steps; apply runs them. `load`, `diff`, `plan` and `render` do no I/O.

pub mod agent;
pub mod backup;
pub mod budget;
pub mod cli;
pub mod clock;
pub mod cost;
pub mod diff;
pub mod engine;
pub mod lint;
pub mod load;
pub mod model;
pub mod plan;
pub mod providers;
pub mod render;
pub mod scale;
pub mod schema;
pub mod secrets;
