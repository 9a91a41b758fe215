//! converge: a GitOps agent that converges Docker, PostgreSQL and S3 to the desired state in Git.
//!
//! The loop: `load` → `DesiredState`; providers observe → `LiveState`; `diff` → changes;
//! `plan` → ordered steps; apply runs them. `load`, `diff`, `plan` and `render` do no I/O.

pub mod agent;
pub mod apply;
pub mod backup;
pub mod budget;
pub mod cli;
pub mod cost;
pub mod diff;
pub mod health;
pub mod lint;
pub mod live;
pub mod load;
pub mod model;
pub mod plan;
pub mod render;
pub mod scale;
pub mod schema;
pub mod secrets;
