//! The services of a drill: the real stack's services run as project `<project>-drill` against
//! the scratch copies. Each runs one replica, publishes on free loopback ports (never the real
//! ones), mounts a restored directory's scratch copy instead of the real directory (any other
//! host path read-only), reaches the scratch databases (resolved values that name a restored
//! database name its scratch copy: `Secrets::rename_databases`), and is health-gated; no Router,
//! ConfigFile, Database, Bucket or Backup is part of it, so nothing of the real stack is touched.
//! Torn down when the drill ends; what a killed drill left is swept by the next.

use std::net::TcpListener;
use std::path::{Path, PathBuf};

use crate::engine::journal::{Journal, StateLock};
use crate::engine::{Engine, PlanOptions};
use crate::model::host_ip::HostIp;
use crate::model::service::Service;
use crate::model::types::{Name, Port};
use crate::model::{DesiredState, Kind, Resource, ResourceId};

use super::phase::Phase;
use super::run::{Progress, Recovery};
use super::RecoverError;

/// Appended to the project's name for the drill's containers, network and volumes.
pub const DRILL_SUFFIX: &str = "-drill";

/// The drill's project name: `<project>-drill`, the project's name shortened to fit a name.
pub fn drill_project(project: &str) -> String {
    let keep = 63 - DRILL_SUFFIX.len();
    let mut end = project.len().min(keep);
    while !project.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{DRILL_SUFFIX}", &project[..end])
}

/// A free TCP port on the loopback interface, held until the listener is dropped.
fn free_port() -> Result<(TcpListener, Port), std::io::Error> {
    let l = TcpListener::bind("127.0.0.1:0")?;
    let port = l.local_addr()?.port();
    let port = Port::try_from(i64::from(port)).map_err(std::io::Error::other)?;
    Ok((l, port))
}

/// Gives each published port of the drill a free loopback port; the listeners are kept until
/// every port is chosen, so no two are the same.
struct Ports(Vec<TcpListener>);

impl Ports {
    fn next(&mut self) -> Result<Port, RecoverError> {
        let (l, port) = free_port().map_err(|e| RecoverError::Phase {
            phase: "services".into(),
            detail: format!("cannot find a free loopback port for the drill: {e}"),
        })?;
        self.0.push(l);
        Ok(port)
    }
}

/// The real state's services as the drill runs them (see the module's text); `dirs` maps each
/// restored directory to its scratch copy.
pub fn scratch_state(
    real: &DesiredState,
    dirs: &[(PathBuf, PathBuf)],
    port: &mut dyn FnMut() -> Result<Port, RecoverError>,
) -> Result<DesiredState, RecoverError> {
    let mut project = real.project.clone();
    project.name = Name::try_from(drill_project(real.project.name.as_str())).map_err(|e| {
        RecoverError::Phase {
            phase: "services".into(),
            detail: format!("no drill project name: {e}"),
        }
    })?;
    project.recovery = None;
    let mut state = DesiredState {
        project,
        environment: real.environment.clone(),
        resources: Default::default(),
        templates: real.templates.clone(),
        migrations: Default::default(),
    };
    for s in real.services() {
        let drilled = scratch_service(s, real, dirs, port)?;
        state.resources.insert(
            ResourceId::new(Kind::Service, s.name.as_str()),
            Resource::Service(drilled),
        );
    }
    Ok(state)
}

fn scratch_service(
    s: &Service,
    real: &DesiredState,
    dirs: &[(PathBuf, PathBuf)],
    port: &mut dyn FnMut() -> Result<Port, RecoverError>,
) -> Result<Service, RecoverError> {
    let mut s = s.clone();
    s.replicas = 1;
    s.scale = None;
    for p in &mut s.ports {
        if p.host.is_some() {
            p.host = Some(port()?);
            p.host_ip = Some(HostIp::LOOPBACK);
        }
    }
    for color in [&mut s.deploy.blue, &mut s.deploy.green]
        .into_iter()
        .flatten()
    {
        color.port = port()?;
        color.host_ip = HostIp::LOOPBACK;
    }
    for v in s.volumes.iter_mut().filter(|v| !v.is_named_volume()) {
        match scratch_of(Path::new(&v.source), dirs) {
            Some(scratch) => v.source = scratch.display().to_string(),
            None => v.read_only = true,
        }
    }
    // Only other services remain to depend on: the data is restored before they start.
    s.depends_on.retain(|d| {
        ResourceId::parse(d, Some(Kind::Service))
            .is_some_and(|id| id.kind == Kind::Service && real.service(&id.name).is_some())
    });
    Ok(s)
}

/// The scratch path standing for `source`, when it is a restored directory or inside one.
fn scratch_of(source: &Path, dirs: &[(PathBuf, PathBuf)]) -> Option<PathBuf> {
    dirs.iter().find_map(|(real, scratch)| {
        source.strip_prefix(real).ok().map(|rest| {
            if rest.as_os_str().is_empty() {
                scratch.clone()
            } else {
                scratch.join(rest)
            }
        })
    })
}

/// The drill's services, running or torn down (the caller holds the drill project's lock).
pub(super) struct DrillStack {
    state: DesiredState,
    engine: Engine,
    journal: Journal,
    /// Each restored database and its scratch copy.
    renames: Vec<(String, String)>,
}

/// Locks the drill project of `project` in `state_dir` (one drill at a time; what a drill holds
/// while it runs is the next one's to sweep only once this lock is free).
pub(super) fn lock(state_dir: &Path, project: &str) -> Result<StateLock, RecoverError> {
    Ok(StateLock::acquire(state_dir, &drill_project(project))?)
}

impl DrillStack {
    /// Connects to the drill project's engine; `renames` maps each restored database to its
    /// scratch copy, `dirs` each restored directory.
    pub(super) fn open(
        r: &Recovery,
        renames: Vec<(String, String)>,
        dirs: &[(PathBuf, PathBuf)],
    ) -> Result<DrillStack, RecoverError> {
        let mut ports = Ports(Vec::new());
        let state = scratch_state(r.desired, dirs, &mut || ports.next())?;
        drop(ports);
        let state_dir = r.engine.state_dir().to_path_buf();
        let project = state.project.name.to_string();
        let journal = Journal::open(&state_dir, &project)?;
        let engine =
            r.rt.block_on(Engine::open(&state, state_dir))?
                .with_renamed_databases(renames.clone());
        Ok(DrillStack {
            state,
            engine,
            journal,
            renames,
        })
    }

    /// Starts every service (health-gated); one line per container started.
    pub(super) fn start(
        &self,
        r: &Recovery,
        progress: Progress,
    ) -> Result<Vec<String>, RecoverError> {
        r.rt.block_on(async {
            let live = self.engine.observe(&self.state).await?;
            let opts = PlanOptions {
                host: r.opts.host,
                ..Default::default()
            };
            let plan = self.engine.plan(&self.state, &live, &opts);
            Phase::new("services", &self.engine, r.dir)
                .apply(&self.state, &plan, &live, &self.journal, progress)
                .await?;
            self.running().await
        })
    }

    /// `service api: ytempire-drill-api-blue running and healthy, on 127.0.0.1:40123`.
    async fn running(&self) -> Result<Vec<String>, RecoverError> {
        let Some(rt) = self.engine.registry().runtime() else {
            return Ok(Vec::new());
        };
        let names = rt.all_names().await.map_err(|e| RecoverError::Phase {
            phase: "services".into(),
            detail: e.to_string(),
        })?;
        let mut lines = Vec::new();
        for s in self.state.services() {
            let mine: Vec<&String> = names
                .iter()
                .filter(|n| n.starts_with(&format!("{}-{}-", self.state.project.name, s.name)))
                .collect();
            let ports = published(s);
            lines.extend(self.pointed(s));
            let gate = if s.health.is_some() {
                "started and passed its health gate"
            } else {
                "started and running (it declares no health check)"
            };
            lines.push(format!(
                "service {}: {} {gate}{}",
                s.name,
                if mine.is_empty() {
                    "(no container on this host)".to_string()
                } else {
                    mine.iter()
                        .map(|n| n.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                },
                if ports.is_empty() {
                    String::new()
                } else {
                    format!(" (drill ports {ports})")
                }
            ));
        }
        Ok(lines)
    }

    /// Removes what the drill project has on the engine: containers, volumes, its network, and
    /// its journal; how many containers, and a line each, warnings for what was not removed.
    pub(super) fn teardown(&self, r: &Recovery) -> (usize, Vec<String>) {
        let Some(rt) = self.engine.registry().runtime() else {
            return (0, Vec::new());
        };
        let project = self.state.project.name.as_str();
        r.rt.block_on(async {
            let mut lines = Vec::new();
            let names = match rt.all_names().await {
                Ok(n) => n,
                Err(e) => {
                    let line = format!("warning: the drill's containers were not listed: {e}");
                    return (0, vec![line]);
                }
            };
            let mut removed = 0;
            for name in &names {
                let _ = rt.stop(name, 5).await;
                match rt.remove(name).await {
                    Ok(()) => removed += 1,
                    Err(e) => lines.push(format!("warning: container {name} was not removed: {e}")),
                }
            }
            lines.push(format!(
                "torn down: {removed} container(s) of project {project}"
            ));
            for v in named_volumes(&self.state) {
                if let Err(e) = rt.remove_volume(&v).await {
                    lines.push(format!(
                        "warning: volume {} was not removed: {e}",
                        rt.volume_name(&v)
                    ));
                }
            }
            if let Err(e) = rt.remove_network().await {
                lines.push(format!("warning: network {project} was not removed: {e}"));
            }
            let _ = std::fs::remove_file(Journal::path_for(self.engine.state_dir(), project));
            (removed, lines)
        })
    }
}

impl DrillStack {
    /// `service api: env DATABASE_URL names the scratch database app_drill_…` for each variable
    /// the drill pointed at a scratch copy (its value is never shown).
    fn pointed(&self, s: &Service) -> Vec<String> {
        let secrets = self.engine.secrets();
        s.env
            .iter()
            .filter_map(|(k, v)| {
                let value = secrets.resolve(v).ok()?;
                let (_, to) = self
                    .renames
                    .iter()
                    .find(|(_, to)| value.contains(to.as_str()))?;
                Some(format!(
                    "service {}: env {k} names the scratch database {to}",
                    s.name
                ))
            })
            .collect()
    }
}

/// The named volumes the drill's services mount.
fn named_volumes(state: &DesiredState) -> Vec<String> {
    let mut v: Vec<String> = state
        .services()
        .flat_map(|s| s.volumes.iter())
        .filter(|v| v.is_named_volume())
        .map(|v| v.source.clone())
        .collect();
    v.sort();
    v.dedup();
    v
}

/// `127.0.0.1:40123->8000, …` for a service's drill ports.
fn published(s: &Service) -> String {
    let mut out: Vec<String> = s
        .ports
        .iter()
        .filter_map(|p| p.host.map(|h| format!("127.0.0.1:{h}->{}", p.container)))
        .collect();
    for (color, c) in [("blue", &s.deploy.blue), ("green", &s.deploy.green)] {
        if let Some(c) = c {
            out.push(format!("{color} 127.0.0.1:{}", c.port));
        }
    }
    out.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn real() -> DesiredState {
        let yaml = r#"
kind: Project
name: shop
---
kind: Service
name: api
image: shop/api:1
env: {DATABASE_URL: "${env:DATABASE_URL}"}
ports: [{container: 8000}]
volumes:
  - {source: /srv/shop/media, target: /media}
  - {source: /srv/shop/config, target: /config}
  - {source: cache, target: /cache}
depends_on: [database/shop, worker]
scale: {min: 1, max: 3}
health: {http: {path: /health, port: 8000}}
deploy: {strategy: blue-green, blue: {port: 8000}, green: {port: 8001}}
---
kind: Service
name: worker
image: shop/worker:1
ports: [{container: 9000, host: 9000, host_ip: 0.0.0.0}]
---
kind: Database
name: shop
---
kind: Router
name: web
path: /srv/shop/nginx.conf
routes: [{service: api, host: shop.example}]
"#;
        let tree = crate::load::SourceTree::new("t").with_file("all.yaml", yaml);
        crate::load::load(&tree, None).expect("valid")
    }

    #[test]
    fn a_drill_runs_only_services_on_other_ports_with_scratch_directories() {
        let dirs = vec![(PathBuf::from("/srv/shop/media"), PathBuf::from("/tmp/d1"))];
        let mut next = 40000;
        let state = scratch_state(&real(), &dirs, &mut || {
            next += 1;
            Ok(Port::try_from(next).unwrap())
        })
        .unwrap();
        assert_eq!(state.project.name.as_str(), "shop-drill");
        let kinds: Vec<Kind> = state.resources.keys().map(|k| k.kind).collect();
        assert_eq!(kinds, vec![Kind::Service, Kind::Service]);
        let api = state.service("api").unwrap();
        assert_eq!(api.replicas, 1);
        assert!(api.scale.is_none(), "the autoscaler leaves a drill alone");
        assert_eq!(api.deploy.blue.as_ref().unwrap().port.get(), 40001);
        assert_eq!(api.deploy.green.as_ref().unwrap().port.get(), 40002);
        assert_eq!(api.volumes[0].source, "/tmp/d1");
        assert!(!api.volumes[0].read_only);
        assert_eq!(api.volumes[1].source, "/srv/shop/config");
        assert!(
            api.volumes[1].read_only,
            "a real directory is mounted read-only"
        );
        assert_eq!(api.volumes[2].source, "cache");
        assert_eq!(api.depends_on, vec!["worker".to_string()]);
        let worker = state.service("worker").unwrap();
        assert_eq!(worker.ports[0].host.unwrap().get(), 40003);
        assert_eq!(worker.ports[0].host_ip, Some(HostIp::LOOPBACK));
    }

    #[test]
    fn a_long_project_name_keeps_the_drill_suffix_within_63_bytes() {
        let name = drill_project(&"p".repeat(63));
        assert_eq!(name.len(), 63);
        assert!(name.ends_with(DRILL_SUFFIX));
    }
}
