//! converge: a GitOps agent that converges Docker, PostgreSQL and S3 to the desired state in Git.
//!
//! # The loop
//!
//! ```text
//! desired ──load──▶ DesiredState ─┐
//!                                  ├─diff──▶ Changes ──plan──▶ Plan ──engine──▶ Outcome
//! providers ──observe──▶ LiveState ┘                                 │
//!          ◀──────────── apply one step, record its undo ────────────┘
//! ```
//!
//! * [`load`], [`diff`], [`plan`], [`render`], [`cost`], [`budget`], [`scale`] and [`lint`] are
//!   pure: no I/O, no provider, no SDK type. [`model`] holds the desired-state types and the live
//!   state as plain data.
//! * [`engine`] owns the loop: [`engine::Engine::open`] connects the providers the desired state
//!   needs and checks its secrets; `observe` → `plan` → `apply` → [`engine::Outcome`], with the
//!   journal, recovery after a crash, deferred drains, verification after a traffic switch and
//!   saved plans. The CLI ([`cli`]) and the daemon ([`agent`]) are thin callers of it.
//! * [`import`] writes a desired-state directory from Docker Compose files (`converge import
//!   compose`): read, merged and converted in memory, the gaps listed with file:line.
//! * [`providers`] is the seam: a [`providers::Provider`] owns some kinds of resource, observes
//!   them, applies one step returning its [`providers::Undo`], and runs undos. The registry
//!   ([`providers::registry::FACTORIES`]) connects each provider only when needed. Services run
//!   on a [`providers::ContainerRuntime`] (Docker today).
//!
//! # Where new things go
//!
//! * A kind: `model/<kind>.rs`, its validation in `load/validate/`, and a provider's `KINDS`.
//! * A provider: a folder `providers/<name>/` (`mod.rs` with a `FACTORY`, `provider.rs` with
//!   `impl Provider`) and one line in `providers::registry::FACTORIES`.
//! * A container runtime: a folder implementing `ContainerRuntime`.

pub mod agent;
pub mod backup;
pub mod budget;
pub mod cli;
pub mod clock;
pub mod cost;
pub mod diff;
pub mod disaster;
pub mod engine;
pub mod import;
pub mod lint;
pub mod load;
pub mod model;
pub mod plan;
pub mod policy;
pub mod providers;
pub mod render;
pub mod scale;
pub mod schema;
pub mod secrets;
pub mod state_dir;
