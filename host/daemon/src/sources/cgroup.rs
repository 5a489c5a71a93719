//! A container's counters read straight from its cgroup files, as cAdvisor
//! does, instead of asking the engine: a stats call costs `dockerd` a
//! collection cycle per container (two with `one-shot=false`), a file read
//! costs it nothing.
//!
//! Both hierarchies, as Docker lays them out:
//!
//! ```text
//! v1  <root>/{cpuacct,cpu,memory}/docker/<id>/             cgroupfs driver
//!     <root>/{cpuacct,cpu,memory}/system.slice/docker-<id>.scope/   systemd driver
//!     (cpu and cpuacct may be one mount, `cpu,cpuacct`)
//! v2  <root>/docker/<id>/  or  <root>/system.slice/docker-<id>.scope/
//! ```
//!
//! What is read, by version (v1 | v2):
//! - CPU time: `cpuacct.usage` ns | `cpu.stat` `usage_usec`;
//! - throttling: `cpu.stat` `nr_periods`, `nr_throttled` (both);
//! - CPU limit: `cpu.cfs_quota_us` / `cpu.cfs_period_us` | `cpu.max`;
//! - memory as Docker counts it: `memory.usage_in_bytes` minus
//!   `total_inactive_file` | `memory.current` minus `inactive_file`;
//! - memory limit: `memory.limit_in_bytes` | `memory.max`;
//! - OOM kills: `memory.oom_control` `oom_kill` | `memory.events` `oom_kill`;
//! - memory pressure (PSI, v2 only): `memory.pressure` `some avg10`.
//!
//! Everything here is plain file reading on a root given to it, so it is
//! tested on a fake tree; [`Cgroups::detect`] decides whether the daemon
//! can see the engine's cgroups at all.

use std::path::{Path, PathBuf};

/// The environment variable naming where the cgroup hierarchy is mounted
/// (`/sys/fs/cgroup` on the host; in the daemon's container, where the
/// host's is mounted read-only). `off` reads every container through the
/// engine's API.
pub const ROOT_ENV: &str = "VEDFOLNIR_CGROUP_ROOT";

/// Where the host mounts its cgroups.
pub const DEFAULT_ROOT: &str = "/sys/fs/cgroup";

/// A v1 limit this large is no limit (the kernel's "unlimited" is
/// `PAGE_COUNTER_MAX` pages, about 2^63 bytes).
const UNLIMITED: u64 = 1 << 62;

/// The cgroup hierarchy's version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Version {
    /// One hierarchy per controller.
    V1,
    /// The unified hierarchy.
    V2,
}

impl Version {
    /// How the path is named in status, metrics and logs.
    pub fn path_name(self) -> &'static str {
        match self {
            Version::V1 => "cgroup-v1",
            Version::V2 => "cgroup-v2",
        }
    }
}

/// Why a container's cgroup could not be read.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    /// No directory of this container under the root: another host's
    /// engine, an unusual cgroup parent, or the container is gone.
    #[error("no cgroup of container {id} under {root}")]
    NotFound {
        /// The container.
        id: String,
        /// Where it was looked for.
        root: PathBuf,
    },
    /// A file could not be read.
    #[error("cannot read {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A file does not hold what it should.
    #[error("{path}: no {key} in {text:?}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What was looked for.
        key: &'static str,
        /// What it holds (cut to a line).
        text: String,
    },
}

/// The engine's cgroups, as this process sees them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cgroups {
    root: PathBuf,
    version: Version,
}

/// The directories of one container's cgroup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Located {
    /// v1: one directory per controller.
    V1 {
        /// Holds `cpuacct.usage`.
        cpuacct: PathBuf,
        /// Holds `cpu.stat` and the CFS quota (may equal `cpuacct`).
        cpu: PathBuf,
        /// Holds the `memory.*` files.
        memory: PathBuf,
    },
    /// v2: one directory.
    V2(PathBuf),
}

/// One read of a container's counters.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Counters {
    /// CPU time used since the container started, ns.
    pub cpu_ns: u64,
    /// CFS periods elapsed and periods throttled, since it started.
    pub periods: Option<(u64, u64)>,
    /// Its CPU limit in cores, `None` without a quota.
    pub cpu_limit: Option<f64>,
    /// Memory in use, less inactive page cache, bytes.
    pub memory_used: u64,
    /// Its memory limit, bytes; `None` without one.
    pub memory_limit: Option<u64>,
    /// OOM kills in this cgroup; `None` where the kernel does not count
    /// them.
    pub oom_kills: Option<u64>,
    /// Share of the last 10 s some task waited for memory (PSI `some
    /// avg10` / 100); `None` where the kernel has no PSI for the cgroup.
    pub memory_pressure: Option<f64>,
}

impl Cgroups {
    /// The hierarchy at `root`, when it is one: v2 when it holds
    /// `cgroup.controllers`, v1 when it holds a `memory` controller and a
    /// `cpuacct` one (alone or as `cpu,cpuacct`).
    pub fn detect(root: &Path) -> Option<Cgroups> {
        let version = if root.join("cgroup.controllers").is_file() {
            Version::V2
        } else if root.join("memory").is_dir()
            && (root.join("cpuacct").is_dir() || root.join("cpu,cpuacct").is_dir())
        {
            Version::V1
        } else {
            return None;
        };
        Some(Cgroups {
            root: root.to_path_buf(),
            version,
        })
    }

    /// The hierarchy [`ROOT_ENV`] names (default [`DEFAULT_ROOT`]), `None`
    /// when it is `off` or holds no cgroups.
    pub fn from_env() -> Option<Cgroups> {
        let root = std::env::var(ROOT_ENV).unwrap_or_else(|_| DEFAULT_ROOT.into());
        match root.trim() {
            "off" | "" => None,
            root => Cgroups::detect(Path::new(root)),
        }
    }

    /// Which version it is.
    pub fn version(&self) -> Version {
        self.version
    }

    /// Whether the kernel reports memory pressure per cgroup: PSI is on
    /// (`/proc/pressure/memory` exists) and the hierarchy is v2.
    pub fn has_psi(&self) -> bool {
        self.version == Version::V2 && Path::new("/proc/pressure/memory").exists()
    }

    /// Where it is mounted.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The container's cgroup directories, under either driver's layout.
    pub fn locate(&self, id: &str) -> Result<Located, CgroupError> {
        // An id that is not plain hex could walk out of the root.
        let not_found = || CgroupError::NotFound {
            id: id.to_string(),
            root: self.root.clone(),
        };
        if id.is_empty() || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(not_found());
        }
        let relative = [
            PathBuf::from("docker").join(id),
            PathBuf::from("system.slice").join(format!("docker-{id}.scope")),
        ];
        let first_dir = |controllers: &[&str], rel: &Path| {
            controllers
                .iter()
                .map(|c| self.root.join(c).join(rel))
                .find(|p| p.is_dir())
        };
        for rel in &relative {
            match self.version {
                Version::V2 => {
                    let dir = self.root.join(rel);
                    if dir.is_dir() {
                        return Ok(Located::V2(dir));
                    }
                }
                Version::V1 => {
                    let found = (
                        first_dir(&["cpuacct", "cpu,cpuacct"], rel),
                        first_dir(&["cpu", "cpu,cpuacct"], rel),
                        first_dir(&["memory"], rel),
                    );
                    if let (Some(cpuacct), Some(cpu), Some(memory)) = found {
                        return Ok(Located::V1 {
                            cpuacct,
                            cpu,
                            memory,
                        });
                    }
                }
            }
        }
        Err(not_found())
    }
}

/// Read a container's counters.
pub fn read(at: &Located) -> Result<Counters, CgroupError> {
    match at {
        Located::V1 {
            cpuacct,
            cpu,
            memory,
        } => read_v1(cpuacct, cpu, memory),
        Located::V2(dir) => read_v2(dir),
    }
}

fn read_v1(cpuacct: &Path, cpu: &Path, memory: &Path) -> Result<Counters, CgroupError> {
    let cpu_stat = File::read(cpu.join("cpu.stat"))?;
    let memory_stat = File::read(memory.join("memory.stat"))?;
    let usage = File::read(memory.join("memory.usage_in_bytes"))?.number()?;
    let quota = File::read(cpu.join("cpu.cfs_quota_us"))?.signed()?;
    let period = File::read(cpu.join("cpu.cfs_period_us"))?.number()?;
    let limit = File::read(memory.join("memory.limit_in_bytes"))?.number()?;
    // `oom_kill` is counted since Linux 4.13; older kernels lack the line.
    let oom = File::read(memory.join("memory.oom_control"))?;
    Ok(Counters {
        cpu_ns: File::read(cpuacct.join("cpuacct.usage"))?.number()?,
        periods: throttling(&cpu_stat),
        cpu_limit: (quota > 0 && period > 0).then(|| quota as f64 / period as f64),
        memory_used: usage.saturating_sub(memory_stat.key("total_inactive_file").unwrap_or(0)),
        memory_limit: (limit < UNLIMITED).then_some(limit),
        oom_kills: oom.key("oom_kill"),
        memory_pressure: None,
    })
}

fn read_v2(dir: &Path) -> Result<Counters, CgroupError> {
    let cpu_stat = File::read(dir.join("cpu.stat"))?;
    let memory_stat = File::read(dir.join("memory.stat"))?;
    let usage = File::read(dir.join("memory.current"))?.number()?;
    let cpu_max = File::read(dir.join("cpu.max"))?;
    let memory_max = File::read(dir.join("memory.max"))?;
    let events = File::read(dir.join("memory.events"))?;
    // PSI exists only when the kernel was built and booted with it.
    let pressure = File::read(dir.join("memory.pressure")).ok();
    Ok(Counters {
        cpu_ns: cpu_stat.required("usage_usec")?.saturating_mul(1_000),
        periods: throttling(&cpu_stat),
        cpu_limit: cpu_max.cpu_max(),
        memory_used: usage.saturating_sub(memory_stat.key("inactive_file").unwrap_or(0)),
        memory_limit: memory_max.text.trim().parse().ok(),
        oom_kills: events.key("oom_kill"),
        memory_pressure: pressure.and_then(|p| p.some_avg10()).map(|p| p / 100.0),
    })
}

/// `nr_periods` and `nr_throttled` of a `cpu.stat`.
fn throttling(cpu_stat: &File) -> Option<(u64, u64)> {
    Some((cpu_stat.key("nr_periods")?, cpu_stat.key("nr_throttled")?))
}

/// One cgroup file's text, with its path for messages.
struct File {
    path: PathBuf,
    text: String,
}

impl File {
    fn read(path: PathBuf) -> Result<File, CgroupError> {
        // Reads of cgroup files are answered from kernel memory, in
        // microseconds: not worth a blocking-pool hop per file.
        match std::fs::read_to_string(&path) {
            Ok(text) => Ok(File { path, text }),
            Err(source) => Err(CgroupError::Read { path, source }),
        }
    }

    fn parse_error(&self, key: &'static str) -> CgroupError {
        CgroupError::Parse {
            path: self.path.clone(),
            key,
            text: self
                .text
                .lines()
                .next()
                .unwrap_or("")
                .chars()
                .take(80)
                .collect(),
        }
    }

    /// The file as one unsigned number.
    fn number(&self) -> Result<u64, CgroupError> {
        self.text
            .trim()
            .parse()
            .map_err(|_| self.parse_error("number"))
    }

    /// The file as one signed number (a v1 quota is -1 without a limit).
    fn signed(&self) -> Result<i64, CgroupError> {
        self.text
            .trim()
            .parse()
            .map_err(|_| self.parse_error("number"))
    }

    /// The value of `key` in a flat keyed file (`key value` lines).
    fn key(&self, key: &str) -> Option<u64> {
        self.text.lines().find_map(|line| {
            let (k, v) = line.split_once(' ')?;
            (k == key).then(|| v.trim().parse().ok()).flatten()
        })
    }

    fn required(&self, key: &'static str) -> Result<u64, CgroupError> {
        self.key(key).ok_or_else(|| self.parse_error(key))
    }

    /// `cpu.max`: `max 100000` (no limit) or `<quota> <period>`, as cores.
    fn cpu_max(&self) -> Option<f64> {
        let mut words = self.text.split_whitespace();
        let quota: f64 = words.next()?.parse().ok()?;
        let period: f64 = words.next()?.parse().ok()?;
        (quota > 0.0 && period > 0.0).then(|| quota / period)
    }

    /// PSI's `some avg10=<percent> ...` line.
    fn some_avg10(&self) -> Option<f64> {
        let line = self.text.lines().find(|l| l.starts_with("some "))?;
        line.split_whitespace()
            .find_map(|w| w.strip_prefix("avg10="))?
            .parse()
            .ok()
            .filter(|v: &f64| v.is_finite() && (0.0..=100.0).contains(v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    fn write(dir: &Path, files: &[(&str, &str)]) {
        std::fs::create_dir_all(dir).unwrap();
        for (name, text) in files {
            std::fs::write(dir.join(name), text).unwrap();
        }
    }

    /// A v1 tree with the cgroupfs driver's layout and one container.
    fn v1(root: &Path, quota: &str, limit: &str) {
        for c in ["cpuacct", "cpu", "memory"] {
            std::fs::create_dir_all(root.join(c)).unwrap();
        }
        let rel = Path::new("docker").join(ID);
        write(
            &root.join("cpuacct").join(&rel),
            &[("cpuacct.usage", "2500000000\n")],
        );
        write(
            &root.join("cpu").join(&rel),
            &[
                (
                    "cpu.stat",
                    "nr_periods 40\nnr_throttled 10\nthrottled_time 123\n",
                ),
                ("cpu.cfs_quota_us", quota),
                ("cpu.cfs_period_us", "100000\n"),
            ],
        );
        write(
            &root.join("memory").join(&rel),
            &[
                ("memory.usage_in_bytes", "629145600\n"),
                (
                    "memory.stat",
                    "cache 1\ninactive_file 7\ntotal_inactive_file 104857600\n",
                ),
                ("memory.limit_in_bytes", limit),
                (
                    "memory.oom_control",
                    "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n",
                ),
            ],
        );
    }

    /// A v2 tree with the systemd driver's layout and one container.
    fn v2(root: &Path, cpu_max: &str, memory_max: &str, pressure: Option<&str>) {
        write(root, &[("cgroup.controllers", "cpu memory\n")]);
        let dir = root.join("system.slice").join(format!("docker-{ID}.scope"));
        write(
            &dir,
            &[
                (
                    "cpu.stat",
                    "usage_usec 2500000\nuser_usec 1\nnr_periods 8\nnr_throttled 2\n",
                ),
                ("cpu.max", cpu_max),
                ("memory.current", "629145600\n"),
                ("memory.stat", "anon 1\ninactive_file 104857600\n"),
                ("memory.max", memory_max),
                ("memory.events", "low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n"),
            ],
        );
        if let Some(p) = pressure {
            write(&dir, &[("memory.pressure", p)]);
        }
    }

    #[test]
    fn v1_reads_cpu_time_throttling_limits_memory_as_docker_counts_it_and_oom_kills() {
        let tmp = tempfile::tempdir().unwrap();
        v1(tmp.path(), "50000\n", "1073741824\n");
        let cg = Cgroups::detect(tmp.path()).unwrap();
        assert_eq!(cg.version(), Version::V1);
        let c = read(&cg.locate(ID).unwrap()).unwrap();
        assert_eq!(c.cpu_ns, 2_500_000_000);
        assert_eq!(c.periods, Some((40, 10)));
        assert_eq!(c.cpu_limit, Some(0.5));
        // 600 MiB used, 100 MiB inactive file (the hierarchical total, not
        // the cgroup's own `inactive_file`).
        assert_eq!(c.memory_used, 500 << 20);
        assert_eq!(c.memory_limit, Some(1 << 30));
        assert_eq!(c.oom_kills, Some(2));
        assert_eq!(c.memory_pressure, None);
    }

    #[test]
    fn v1_without_limits_has_none() {
        let tmp = tempfile::tempdir().unwrap();
        v1(tmp.path(), "-1\n", "9223372036854771712\n");
        let cg = Cgroups::detect(tmp.path()).unwrap();
        let c = read(&cg.locate(ID).unwrap()).unwrap();
        assert_eq!((c.cpu_limit, c.memory_limit), (None, None));
    }

    #[test]
    fn v1_with_cpu_and_cpuacct_mounted_together_is_found() {
        let tmp = tempfile::tempdir().unwrap();
        v1(tmp.path(), "-1\n", "1\n");
        let root = tmp.path();
        std::fs::rename(root.join("cpu"), root.join("cpu,cpuacct")).unwrap();
        // Both controllers' files in the one directory.
        let joint = root.join("cpu,cpuacct").join("docker").join(ID);
        std::fs::copy(
            root.join("cpuacct/docker").join(ID).join("cpuacct.usage"),
            joint.join("cpuacct.usage"),
        )
        .unwrap();
        std::fs::remove_dir_all(root.join("cpuacct")).unwrap();
        let cg = Cgroups::detect(root).unwrap();
        let Located::V1 { cpuacct, cpu, .. } = cg.locate(ID).unwrap() else {
            panic!("v1 expected");
        };
        assert_eq!((&cpuacct, &cpu), (&joint, &joint));
    }

    #[test]
    fn v2_reads_the_systemd_drivers_scope_with_its_pressure() {
        let tmp = tempfile::tempdir().unwrap();
        v2(
            tmp.path(),
            "150000 100000\n",
            "2147483648\n",
            Some(
                "some avg10=12.50 avg60=1.00 avg300=0.00 total=5\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0\n",
            ),
        );
        let cg = Cgroups::detect(tmp.path()).unwrap();
        assert_eq!(cg.version(), Version::V2);
        let c = read(&cg.locate(ID).unwrap()).unwrap();
        assert_eq!(c.cpu_ns, 2_500_000_000);
        assert_eq!(c.periods, Some((8, 2)));
        assert_eq!(c.cpu_limit, Some(1.5));
        assert_eq!(c.memory_used, 500 << 20);
        assert_eq!(c.memory_limit, Some(2 << 30));
        assert_eq!(c.oom_kills, Some(1));
        assert_eq!(c.memory_pressure, Some(0.125));
    }

    #[test]
    fn v2_without_limits_or_psi_has_none() {
        let tmp = tempfile::tempdir().unwrap();
        v2(tmp.path(), "max 100000\n", "max\n", None);
        let cg = Cgroups::detect(tmp.path()).unwrap();
        let c = read(&cg.locate(ID).unwrap()).unwrap();
        assert_eq!((c.cpu_limit, c.memory_limit), (None, None));
        assert_eq!(c.memory_pressure, None);
    }

    #[test]
    fn a_container_without_a_cgroup_here_is_not_found_naming_it() {
        let tmp = tempfile::tempdir().unwrap();
        v1(tmp.path(), "-1\n", "1\n");
        let cg = Cgroups::detect(tmp.path()).unwrap();
        let other = "f".repeat(64);
        let err = cg.locate(&other).unwrap_err().to_string();
        assert!(err.contains(&other) && err.contains("no cgroup"), "{err}");
        // An id that is not hex never becomes a path.
        assert!(cg.locate("../../etc").is_err());
        assert!(cg.locate("").is_err());
    }

    #[test]
    fn a_missing_or_garbled_file_is_an_error_naming_the_file() {
        let tmp = tempfile::tempdir().unwrap();
        v1(tmp.path(), "-1\n", "1\n");
        let cg = Cgroups::detect(tmp.path()).unwrap();
        let at = cg.locate(ID).unwrap();
        let usage = tmp
            .path()
            .join("cpuacct/docker")
            .join(ID)
            .join("cpuacct.usage");
        std::fs::write(&usage, "lots\n").unwrap();
        let err = read(&at).unwrap_err().to_string();
        assert!(
            err.contains("cpuacct.usage") && err.contains("lots"),
            "{err}"
        );
        std::fs::remove_file(&usage).unwrap();
        let err = read(&at).unwrap_err().to_string();
        assert!(
            err.contains("cannot read") && err.contains("cpuacct.usage"),
            "{err}"
        );
    }

    #[test]
    fn a_folder_that_is_no_cgroup_hierarchy_is_not_detected() {
        let tmp = tempfile::tempdir().unwrap();
        assert_eq!(Cgroups::detect(tmp.path()), None);
        assert_eq!(Cgroups::detect(&tmp.path().join("absent")), None);
    }
}
