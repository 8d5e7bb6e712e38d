//! The standard `process_*` series (CLI_CONFIG.md §6: Litestream exports
//! them through its client library), read from `/proc` at each scrape.
//! Go's runtime series (`go_*`) have no counterpart here.

use std::sync::Arc;

use super::registry::{Counter, Gauge, Registry};

/// `/proc/<pid>/stat` times are in USER_HZ, which Linux fixes at 100 for
/// everything it reports to user space, whatever the kernel's tick rate.
const USER_HZ: f64 = 100.0;

/// The gauges, refreshed by [`Process::refresh`].
#[derive(Debug)]
pub(crate) struct Process {
    cpu: Arc<Counter>,
    rss: Arc<Gauge>,
    start: Arc<Gauge>,
    fds: Arc<Gauge>,
}

impl Process {
    pub(crate) fn register(r: &Registry) -> Process {
        Process {
            cpu: r.counter(
                "process_cpu_seconds_total",
                "CPU time of the process (user + system), in seconds.",
            ),
            rss: r.gauge(
                "process_resident_memory_bytes",
                "Resident set size of the process, in bytes.",
            ),
            start: r.gauge(
                "process_start_time_seconds",
                "When the process started, in seconds since the Unix epoch.",
            ),
            fds: r.gauge("process_open_fds", "File descriptors the process has open."),
        }
    }

    /// Reads `/proc/self`; a value that cannot be read keeps its last one.
    pub(crate) fn refresh(&self) {
        if let Some(stat) = read_stat() {
            self.cpu
                .set_total((stat.utime + stat.stime) as f64 / USER_HZ);
            if let Some(boot) = boot_time() {
                self.start.set(boot + stat.starttime as f64 / USER_HZ);
            }
        }
        if let Some(rss) = rss_bytes() {
            self.rss.set(rss as f64);
        }
        if let Ok(dir) = std::fs::read_dir("/proc/self/fd") {
            self.fds.set(dir.count() as f64);
        }
    }
}

struct Stat {
    utime: u64,
    stime: u64,
    starttime: u64,
}

/// Fields 14, 15 and 22 of `/proc/self/stat` (proc(5)); the command name
/// (field 2) may hold spaces and parentheses, so fields are counted after
/// its last `)`.
fn read_stat() -> Option<Stat> {
    let s = std::fs::read_to_string("/proc/self/stat").ok()?;
    let rest = &s[s.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3.
    let at = |n: usize| f.get(n - 3)?.parse::<u64>().ok();
    Some(Stat {
        utime: at(14)?,
        stime: at(15)?,
        starttime: at(22)?,
    })
}

/// `btime` of `/proc/stat`: boot time, seconds since the epoch.
fn boot_time() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/stat").ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix("btime "))
        .and_then(|v| v.trim().parse::<f64>().ok())
}

/// `VmRSS` of `/proc/self/status`, which is in kB.
fn rss_bytes() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let kb = s
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .split_whitespace()
        .next()?
        .parse::<u64>()
        .ok()?;
    Some(kb * 1024)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process() {
        let r = Registry::new();
        let p = Process::register(&r);
        p.refresh();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        assert!(p.rss.get() > 0.0);
        assert!(p.fds.get() >= 3.0);
        assert!(p.start.get() > now - 3600.0 && p.start.get() <= now + 1.0);
        assert!(
            r.render()
                .contains("# TYPE process_cpu_seconds_total counter\n")
        );
    }
}
