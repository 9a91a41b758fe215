//! Reads a local container's CPU time and memory straight from its cgroup (v1 or v2, cgroupfs or
//! systemd driver), as cAdvisor does: microseconds per container, where the Docker stats API
//! waits for the engine's next once-a-second collection. `None` when the files are not visible
//! (a remote engine, another runtime): callers fall back to the API.

use std::path::{Path, PathBuf};

use crate::providers::runtime::ContainerReading;

/// Where cgroups are mounted; a test can point this elsewhere.
pub struct Cgroups {
    root: PathBuf,
}

impl Default for Cgroups {
    fn default() -> Self {
        Cgroups {
            root: PathBuf::from("/sys/fs/cgroup"),
        }
    }
}

fn read_u64(p: &Path) -> Option<u64> {
    std::fs::read_to_string(p).ok()?.trim().parse().ok()
}

/// A `key value` line of a stat file (`memory.stat`, `cpu.stat`).
fn stat_value(p: &Path, key: &str) -> Option<u64> {
    let text = std::fs::read_to_string(p).ok()?;
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok()).flatten()
    })
}

fn online_cpus() -> u32 {
    std::thread::available_parallelism()
        .map(|n| n.get() as u32)
        .unwrap_or(1)
}

impl Cgroups {
    pub fn at(root: impl Into<PathBuf>) -> Cgroups {
        Cgroups { root: root.into() }
    }

    /// The reading of container `id` (the full id), if its cgroup is visible here.
    pub fn read(&self, id: &str) -> Option<ContainerReading> {
        self.v2(id).or_else(|| self.v1(id))
    }

    fn v2(&self, id: &str) -> Option<ContainerReading> {
        let dir = [
            format!("system.slice/docker-{id}.scope"),
            format!("docker/{id}"),
        ]
        .into_iter()
        .map(|d| self.root.join(d))
        .find(|d| d.join("cpu.stat").is_file())?;
        let usec = stat_value(&dir.join("cpu.stat"), "usage_usec")?;
        let usage = read_u64(&dir.join("memory.current"))?;
        let inactive = stat_value(&dir.join("memory.stat"), "inactive_file").unwrap_or(0);
        let limit = std::fs::read_to_string(dir.join("memory.max"))
            .ok()
            .and_then(|t| t.trim().parse().ok())
            .unwrap_or(0);
        Some(ContainerReading {
            cpu_ns: usec * 1000,
            online_cpus: online_cpus(),
            memory_bytes: usage.saturating_sub(inactive),
            memory_limit: limit,
        })
    }

    fn v1(&self, id: &str) -> Option<ContainerReading> {
        let sub = [
            format!("docker/{id}"),
            format!("system.slice/docker-{id}.scope"),
        ]
        .into_iter()
        .find(|s| {
            self.root
                .join("cpuacct")
                .join(s)
                .join("cpuacct.usage")
                .is_file()
        })?;
        let cpu = self.root.join("cpuacct").join(&sub);
        let mem = self.root.join("memory").join(&sub);
        let usage = read_u64(&mem.join("memory.usage_in_bytes"))?;
        let inactive = stat_value(&mem.join("memory.stat"), "total_inactive_file").unwrap_or(0);
        Some(ContainerReading {
            cpu_ns: read_u64(&cpu.join("cpuacct.usage"))?,
            online_cpus: online_cpus(),
            memory_bytes: usage.saturating_sub(inactive),
            memory_limit: read_u64(&mem.join("memory.limit_in_bytes")).unwrap_or(0),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(root: &Path, rel: &str, text: &str) {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    #[test]
    fn reads_cgroup_v2_cpu_and_memory_less_inactive_file() {
        let dir = tempfile::tempdir().unwrap();
        let base = "system.slice/docker-abc.scope";
        write(
            dir.path(),
            &format!("{base}/cpu.stat"),
            "usage_usec 2500\nuser_usec 2000\n",
        );
        write(dir.path(), &format!("{base}/memory.current"), "1048576\n");
        write(
            dir.path(),
            &format!("{base}/memory.stat"),
            "anon 1\ninactive_file 48576\n",
        );
        write(dir.path(), &format!("{base}/memory.max"), "max\n");
        let r = Cgroups::at(dir.path()).read("abc").expect("visible");
        assert_eq!(r.cpu_ns, 2_500_000);
        assert_eq!(r.memory_bytes, 1_000_000);
        assert_eq!(r.memory_limit, 0, "`max` is no limit");
    }

    #[test]
    fn reads_cgroup_v1_cgroupfs_layout() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "cpuacct/docker/abc/cpuacct.usage",
            "106222348\n",
        );
        write(
            dir.path(),
            "memory/docker/abc/memory.usage_in_bytes",
            "2000000\n",
        );
        write(
            dir.path(),
            "memory/docker/abc/memory.stat",
            "cache 5\ntotal_inactive_file 1000000\n",
        );
        write(
            dir.path(),
            "memory/docker/abc/memory.limit_in_bytes",
            "33554432\n",
        );
        let r = Cgroups::at(dir.path()).read("abc").expect("visible");
        assert_eq!(r.cpu_ns, 106_222_348);
        assert_eq!(r.memory_bytes, 1_000_000);
        assert_eq!(r.memory_limit, 33_554_432);
    }

    #[test]
    fn an_invisible_container_is_none() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(Cgroups::at(dir.path()).read("nope"), None);
    }
}
