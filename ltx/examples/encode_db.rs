//! Encodes a SQLite database file as a snapshot LTX file and stores it in a
//! file replica, where `litestream restore` finds it:
//!
//! ```text
//! cargo run --release -p ltx --example encode_db -- DB REPLICA_DIR
//! litestream restore -o OUT file://REPLICA_DIR
//! ```
//!
//! The database must be consistent on disk: no other process writing it and
//! an empty or absent `-wal` file (run `PRAGMA wal_checkpoint(TRUNCATE)`
//! first). The file is written the way Litestream writes TXID 1 to a file
//! replica (REPLICA_LAYOUT.md §2): `REPLICA_DIR/ltx/0/<1>-<1>.ltx`, flags
//! NoChecksum with both database checksums zero (LTX.md §9.4), through a
//! `.tmp` file that is fsynced and renamed, then the directory fsynced and the
//! file's times set to the header timestamp. The lock page of databases over
//! 1 GiB is not stored (LTX.md §6); restore writes zeros there.

use std::error::Error;
use std::fs::{self, File, FileTimes};
use std::io::{BufReader, BufWriter, Read};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ltx::{Checksum, Decoder, Encoder, Header, HeaderFlags, TxId, file_name, lock_pgno};

type Result<T> = std::result::Result<T, Box<dyn Error>>;

/// The first 16 bytes of every SQLite database file.
const SQLITE_MAGIC: &[u8; 16] = b"SQLite format 3\0";

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("encode_db: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [db, replica] = args.as_slice() else {
        return Err("usage: encode_db DB REPLICA_DIR".into());
    };
    let db = Path::new(db);
    let replica = Path::new(replica);

    let layout = inspect_database(db)?;
    let txid = TxId::new(1);
    let dir = replica.join("ltx").join("0");
    let path = dir.join(file_name(txid, txid));
    let header = Header {
        flags: HeaderFlags::NO_CHECKSUM,
        page_size: layout.page_size,
        commit: layout.page_count,
        min_txid: txid,
        max_txid: txid,
        timestamp: now_millis()?,
        ..Header::default()
    };

    fs::create_dir_all(&dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
    let size = write_durably(&path, |out| encode_snapshot(db, &header, out))?;
    set_times(&path, header.timestamp)?;
    let pages = verify(&path)?;

    println!(
        "{} -> {}: {} pages of {} bytes ({} stored, lock page {}), {} bytes of LTX, TXID {}",
        db.display(),
        path.display(),
        header.commit,
        header.page_size,
        pages,
        if header.commit >= lock_pgno(header.page_size) {
            "skipped"
        } else {
            "not reached"
        },
        size,
        txid,
    );
    Ok(())
}

/// Page size and page count of a database file.
struct Layout {
    page_size: u32,
    page_count: u32,
}

/// Reads the database header and checks that the file alone is the whole
/// database: whole pages, no pending WAL content.
fn inspect_database(db: &Path) -> Result<Layout> {
    let mut file = File::open(db).map_err(|e| format!("open {}: {e}", db.display()))?;
    let len = file.metadata()?.len();
    let mut head = [0u8; 100];
    file.read_exact(&mut head)
        .map_err(|e| format!("{}: too short for a SQLite header: {e}", db.display()))?;
    if &head[..16] != SQLITE_MAGIC {
        return Err(format!("{} is not a SQLite database", db.display()).into());
    }
    // Bytes 16..18: the page size, big-endian, where 1 means 65536.
    let page_size = match u16::from_be_bytes([head[16], head[17]]) {
        1 => 65536,
        n => u32::from(n),
    };
    if !ltx::is_valid_page_size(page_size) {
        return Err(format!("{}: invalid page size {page_size}", db.display()).into());
    }
    if len % u64::from(page_size) != 0 {
        return Err(format!(
            "{}: size {len} is not a whole number of {page_size}-byte pages",
            db.display()
        )
        .into());
    }
    let page_count = u32::try_from(len / u64::from(page_size))
        .map_err(|_| format!("{}: too many pages", db.display()))?;
    // Bytes 28..32 hold the page count, trusted only when the change counter
    // (24..28) equals the version-valid-for number (92..96).
    let in_header = u32::from_be_bytes([head[28], head[29], head[30], head[31]]);
    if head[24..28] == head[92..96] && in_header != 0 && in_header != page_count {
        return Err(format!(
            "{}: the header says {in_header} pages but the file holds {page_count}",
            db.display()
        )
        .into());
    }
    let mut wal = db.as_os_str().to_owned();
    wal.push("-wal");
    let wal = PathBuf::from(wal);
    match fs::metadata(&wal) {
        Ok(m) if m.len() > 0 => {
            return Err(format!(
                "{} holds {} bytes that may not be in the database file yet: \
                 run PRAGMA wal_checkpoint(TRUNCATE) first",
                wal.display(),
                m.len()
            )
            .into());
        }
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(format!("stat {}: {e}", wal.display()).into()),
    }
    Ok(Layout {
        page_size,
        page_count,
    })
}

/// Streams every page of `db` except the lock page into an LTX snapshot.
fn encode_snapshot(db: &Path, header: &Header, out: &mut BufWriter<File>) -> Result<()> {
    let file = File::open(db).map_err(|e| format!("open {}: {e}", db.display()))?;
    let mut input = BufReader::with_capacity(1 << 20, file);
    let mut page = vec![0u8; header.page_size as usize];
    let lock = lock_pgno(header.page_size);
    let mut enc = Encoder::new(out, header)?;
    for pgno in 1..=header.commit {
        input
            .read_exact(&mut page)
            .map_err(|e| format!("{}: read page {pgno}: {e}", db.display()))?;
        if pgno != lock {
            enc.encode_page(pgno, &page)?;
        }
    }
    enc.finish(Checksum::ZERO)?;
    Ok(())
}

/// Writes `path` through `<path>.tmp`: write, fsync, rename, fsync the
/// directory. The temporary file is removed on any failure. Returns the
/// file's size.
fn write_durably<F>(path: &Path, write: F) -> Result<u64>
where
    F: FnOnce(&mut BufWriter<File>) -> Result<()>,
{
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let result = (|| -> Result<u64> {
        let file = File::create(&tmp).map_err(|e| format!("create {}: {e}", tmp.display()))?;
        let mut out = BufWriter::with_capacity(1 << 20, file);
        write(&mut out)?;
        let file = out
            .into_inner()
            .map_err(|e| format!("write {}: {e}", tmp.display()))?;
        file.sync_all()
            .map_err(|e| format!("fsync {}: {e}", tmp.display()))?;
        let size = file.metadata()?.len();
        drop(file);
        fs::rename(&tmp, path)
            .map_err(|e| format!("rename {} to {}: {e}", tmp.display(), path.display()))?;
        Ok(size)
    })();
    match result {
        Ok(size) => {
            let dir = path.parent().unwrap_or(Path::new("."));
            File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(|e| format!("fsync {}: {e}", dir.display()))?;
            Ok(size)
        }
        Err(e) => {
            // Best effort: the write already failed and that error is reported.
            let _ = fs::remove_file(&tmp);
            Err(e)
        }
    }
}

/// Sets the access and modification times to the LTX header timestamp: the
/// file backend's record of when the file was created.
fn set_times(path: &Path, timestamp_ms: i64) -> Result<()> {
    let ms = u64::try_from(timestamp_ms).map_err(|_| "timestamp before 1970")?;
    let t = UNIX_EPOCH + Duration::from_millis(ms);
    File::options()
        .write(true)
        .open(path)
        .and_then(|f| f.set_times(FileTimes::new().set_accessed(t).set_modified(t)))
        .map_err(|e| format!("set times of {}: {e}", path.display()))?;
    Ok(())
}

/// Decodes the written file completely (structure, index, checksum) and
/// returns the number of pages it holds.
fn verify(path: &Path) -> Result<u64> {
    let file = File::open(path).map_err(|e| format!("open {}: {e}", path.display()))?;
    let mut dec = Decoder::new(file)?;
    let mut page = vec![0u8; dec.header().page_size as usize];
    while dec.next_page(&mut page)?.is_some() {}
    let pages = dec.page_count();
    dec.finish()
        .map_err(|e| format!("{} does not decode: {e}", path.display()))?;
    Ok(pages)
}

fn now_millis() -> Result<i64> {
    let since = SystemTime::now().duration_since(UNIX_EPOCH)?;
    Ok(i64::try_from(since.as_millis())?)
}
