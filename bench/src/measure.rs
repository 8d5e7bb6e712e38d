//! Measuring a child process: /proc sampling (CPU, peak RSS, bytes written,
//! the databases' `-wal` sizes) every 50 ms while it runs, and the child's
//! exact CPU time from the rusage of its reaping.

use std::fs::{self, File};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use nix::sys::resource::{UsageWho, getrusage};
use nix::sys::signal::{Signal, kill, killpg};
use nix::sys::wait::{Id, WaitPidFlag, WaitStatus, waitid};
use nix::unistd::Pid;

/// Sampling period of /proc and of the `-wal` files.
const SAMPLE_EVERY: Duration = Duration::from_millis(50);
/// Linux reports /proc/PID/stat times in USER_HZ, 100 on every architecture
/// the kernel exports to user space.
const CLOCK_TICKS: f64 = 100.0;

/// Process groups of the children still running, stopped on Ctrl-C.
static GROUPS: Mutex<Vec<i32>> = Mutex::new(Vec::new());

/// Records a child's process group, to stop it if the bench is interrupted.
pub(crate) fn track(pgid: u32) {
    if let Ok(mut g) = GROUPS.lock() {
        g.push(pgid as i32);
    }
}

/// Forgets a child's process group (it was reaped).
pub(crate) fn untrack(pgid: u32) {
    if let Ok(mut g) = GROUPS.lock() {
        g.retain(|&p| p != pgid as i32);
    }
}

/// On SIGINT, SIGTERM or SIGHUP: kills every tracked child group, then exits
/// with 130. The children run in their own process groups (so a signal meant
/// for one never reaches the others), so nothing else would stop them.
pub(crate) fn stop_children_on_interrupt() -> Result<()> {
    ctrlc::set_handler(|| {
        let groups = GROUPS.lock().map(|g| g.clone()).unwrap_or_default();
        for pgid in groups {
            let _ = killpg(Pid::from_raw(pgid), Signal::SIGKILL);
        }
        eprintln!("freshet-bench: interrupted; stopped the replicators and servers it started");
        std::process::exit(130);
    })
    .context("install the interrupt handler")
}

/// One sample of a running process.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Sample {
    /// Seconds since the process started.
    pub(crate) t: f64,
    /// utime + stime so far, seconds.
    pub(crate) cpu: f64,
    /// VmHWM: peak resident set so far, bytes.
    pub(crate) hwm: u64,
    /// `write_bytes` of /proc/PID/io: bytes this process caused to be written
    /// to storage.
    pub(crate) write_bytes: u64,
    /// Sum of the watched `-wal` files' sizes.
    pub(crate) wal: u64,
}

/// What a finished process used.
#[derive(Clone, Debug, Default)]
pub(crate) struct ProcStats {
    /// Seconds from spawn to exit.
    pub(crate) wall: f64,
    /// User + system CPU seconds (rusage of the reaped child).
    pub(crate) cpu: f64,
    /// Peak resident set, bytes (VmHWM, last sample before exit).
    pub(crate) peak_rss: u64,
    /// Bytes written to local storage (last sample before exit).
    pub(crate) write_bytes: u64,
    /// Largest sum of `-wal` sizes seen.
    pub(crate) peak_wal: u64,
    /// Whether the process exited with status 0.
    pub(crate) success: bool,
    /// All samples, for plots.
    pub(crate) samples: Vec<Sample>,
}

/// A running child in its own process group, sampled in the background.
pub(crate) struct Monitored {
    child: Option<Child>,
    started: Instant,
    stop: Arc<AtomicBool>,
    samples: Arc<Mutex<Vec<Sample>>>,
    sampler: Option<JoinHandle<()>>,
    what: String,
    log: PathBuf,
}

impl Monitored {
    /// Starts `program args` with stdout and stderr appended to `log`,
    /// sampling it and the sizes of `wal_files`.
    pub(crate) fn spawn(
        program: &Path,
        args: &[String],
        env: &[(&str, &str)],
        log: &Path,
        wal_files: Vec<PathBuf>,
    ) -> Result<Monitored> {
        let out = File::options()
            .create(true)
            .append(true)
            .open(log)
            .with_context(|| format!("open log {}", log.display()))?;
        let err = out.try_clone()?;
        let mut cmd = Command::new(program);
        cmd.args(args)
            // Litestream's S3 client refuses to start with a custom CA bundle.
            .env_remove("AWS_CA_BUNDLE")
            .env_remove("LITESTREAM_CONFIG")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd
            .spawn()
            .with_context(|| format!("start {}", program.display()))?;
        let started = Instant::now();
        let pid = child.id();
        track(pid);
        let stop = Arc::new(AtomicBool::new(false));
        let samples = Arc::new(Mutex::new(Vec::new()));
        let sampler = {
            let (stop, samples) = (Arc::clone(&stop), Arc::clone(&samples));
            std::thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    let Some(mut s) = sample(pid) else { break };
                    s.t = started.elapsed().as_secs_f64();
                    s.wal = wal_files
                        .iter()
                        .filter_map(|p| fs::metadata(p).ok())
                        .map(|m| m.len())
                        .sum();
                    if let Ok(mut v) = samples.lock() {
                        v.push(s);
                    }
                    std::thread::sleep(SAMPLE_EVERY);
                }
            })
        };
        Ok(Monitored {
            child: Some(child),
            started,
            stop,
            samples,
            sampler: Some(sampler),
            what: format!("{} {}", program.display(), args.join(" ")),
            log: log.to_path_buf(),
        })
    }

    /// Seconds since spawn.
    pub(crate) fn elapsed(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }

    /// The newest sample, if any.
    pub(crate) fn last_sample(&self) -> Option<Sample> {
        self.samples.lock().ok().and_then(|v| v.last().copied())
    }

    /// Fails when the process has already exited (a replicator must not).
    pub(crate) fn ensure_running(&mut self) -> Result<()> {
        if let Some(c) = self.child.as_mut()
            && let Ok(Some(st)) = c.try_wait()
        {
            bail!(
                "`{}` exited early ({st}); its log is {}:\n{}",
                self.what,
                self.log.display(),
                tail(&self.log)
            );
        }
        Ok(())
    }

    /// Sends SIGTERM (when `terminate`), waits up to `timeout` for the exit
    /// (then SIGKILL), and returns what the process used.
    pub(crate) fn finish(mut self, terminate: bool, timeout: Duration) -> Result<ProcStats> {
        let Some(mut child) = self.child.take() else {
            bail!("process already finished");
        };
        let pid = Pid::from_raw(child.id() as i32);
        // The peak resident set, read now and every 10 ms until the exit: a
        // run shorter than the sampler's period would otherwise show only
        // its start.
        let mut hwm = sample(child.id()).map_or(0, |s| s.hwm);
        if terminate {
            let _ = kill(pid, Signal::SIGTERM);
        }
        // Wait for the exit without reaping, so the last /proc sample still
        // sees the whole run.
        let deadline = Instant::now() + timeout;
        let mut killed = false;
        let peek = WaitPidFlag::WEXITED | WaitPidFlag::WNOWAIT | WaitPidFlag::WNOHANG;
        while let Ok(WaitStatus::StillAlive) = waitid(Id::Pid(pid), peek) {
            if let Some(s) = sample(child.id()) {
                hwm = hwm.max(s.hwm);
            }
            if Instant::now() > deadline && !killed {
                let _ = killpg(pid, Signal::SIGKILL);
                killed = true;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        self.stop.store(true, Ordering::SeqCst);
        if let Some(h) = self.sampler.take() {
            let _ = h.join();
        }
        let last_io = read_io(child.id()).unwrap_or(0);
        let wall = self.started.elapsed().as_secs_f64();
        // CPU of exactly this child: the children's rusage grows by it when
        // it is reaped, and nothing else is reaped on this thread meanwhile.
        // Strays of its process group (none expected) go with it.
        let _ = killpg(pid, Signal::SIGKILL);
        let before = children_cpu();
        let status = child.wait().context("wait for the child")?;
        let cpu = (children_cpu() - before).max(0.0);
        untrack(pid.as_raw() as u32);
        let samples = self.samples.lock().map(|v| v.clone()).unwrap_or_default();
        let last = samples.last().copied().unwrap_or_default();
        Ok(ProcStats {
            wall,
            cpu: if cpu > 0.0 { cpu } else { last.cpu },
            peak_rss: samples.iter().map(|s| s.hwm).fold(hwm, u64::max),
            write_bytes: last_io.max(last.write_bytes),
            peak_wal: samples.iter().map(|s| s.wal).max().unwrap_or(0),
            success: status.success() && !killed,
            samples,
        })
    }
}

impl Drop for Monitored {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(mut c) = self.child.take() {
            let _ = killpg(Pid::from_raw(c.id() as i32), Signal::SIGKILL);
            let _ = c.wait();
            untrack(c.id());
        }
    }
}

/// The last lines of a log, for error messages.
pub(crate) fn tail(log: &Path) -> String {
    let text = fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

fn children_cpu() -> f64 {
    getrusage(UsageWho::RUSAGE_CHILDREN)
        .map(|u| {
            let t = |tv: nix::sys::time::TimeVal| tv.tv_sec() as f64 + tv.tv_usec() as f64 / 1e6;
            t(u.user_time()) + t(u.system_time())
        })
        .unwrap_or(0.0)
}

fn sample(pid: u32) -> Option<Sample> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command name; utime and stime are
    // fields 14 and 15 of proc(5), i.e. the 12th and 13th after it.
    let rest = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    if f.first() == Some(&"Z") {
        return None;
    }
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    let cpu = (ticks(11) + ticks(12)) / CLOCK_TICKS;
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let hwm = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .unwrap_or(0)
        * 1024;
    Some(Sample {
        t: 0.0,
        cpu,
        hwm,
        write_bytes: read_io(pid).unwrap_or(0),
        wal: 0,
    })
}

fn read_io(pid: u32) -> Option<u64> {
    let io = fs::read_to_string(format!("/proc/{pid}/io")).ok()?;
    io.lines()
        .find_map(|l| l.strip_prefix("write_bytes:"))
        .and_then(|v| v.trim().parse().ok())
}

/// Cores, kernel, CPU model and memory of this machine.
#[derive(Clone, Debug, serde::Serialize)]
pub(crate) struct MachineInfo {
    /// CPUs this process may use.
    pub(crate) cores: usize,
    /// `uname -r`.
    pub(crate) kernel: String,
    /// The first `model name` of /proc/cpuinfo.
    pub(crate) cpu_model: String,
    /// MemTotal in GiB.
    pub(crate) memory_gib: f64,
}

impl MachineInfo {
    /// Reads the machine's description from /proc.
    pub(crate) fn read() -> MachineInfo {
        let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let meminfo = fs::read_to_string("/proc/meminfo").unwrap_or_default();
        MachineInfo {
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            kernel: fs::read_to_string("/proc/sys/kernel/osrelease")
                .unwrap_or_default()
                .trim()
                .to_owned(),
            cpu_model: cpuinfo
                .lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|v| v.trim_start_matches([' ', '\t', ':']).trim().to_owned())
                .unwrap_or_else(|| "unknown".to_owned()),
            memory_gib: meminfo
                .lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
                .map_or(0.0, |kb| kb / (1024.0 * 1024.0)),
        }
    }
}
