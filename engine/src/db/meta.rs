//! The local metadata directory next to a database (REPLICA_LAYOUT.md §8):
//! `<meta>/ltx/0/<txid>-<txid>.ltx`, the staged level-0 files. The newest one
//! is the database's replication position.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read};
use std::path::{Path, PathBuf};

use freshet_io::durable::{self, AtomicOptions};
use ltx::{Header, TxId};

use super::error::{DbError, Result};

/// The last WAL page an L0 file consumed: its number and the CRC-64 of its
/// bytes (REPLICATION.md §4.2 step 7).
pub type LastPage = (u32, u64);

/// Size of the streamed-file record: header, page number, page CRC, CRC.
const STREAMED_LEN: usize = ltx::HEADER_SIZE + 4 + 8 + 8;

/// The staged level-0 files of one database.
#[derive(Clone, Debug)]
pub struct MetaDir {
    root: PathBuf,
    file_mode: u32,
    dir_mode: u32,
}

impl MetaDir {
    /// The metadata directory at `root` (e.g. `/dir/.app.db-litestream`).
    /// Files get `file_mode`, directories `dir_mode` (the database's and its
    /// directory's modes, as Litestream does).
    pub fn new(root: impl Into<PathBuf>, file_mode: u32, dir_mode: u32) -> MetaDir {
        MetaDir {
            root: root.into(),
            file_mode: file_mode & 0o777,
            dir_mode: dir_mode & 0o7777,
        }
    }

    /// The directory's path.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `<meta>/ltx/0`.
    pub fn l0_dir(&self) -> PathBuf {
        self.root.join("ltx").join("0")
    }

    /// The path of the L0 file for `txid`.
    pub fn l0_path(&self, txid: TxId) -> PathBuf {
        self.l0_dir().join(ltx::file_name(txid, txid))
    }

    /// Creates the directories and removes `*.tmp` files a crash left behind
    /// (REPLICATION.md §9.1).
    pub fn prepare(&self) -> Result<usize> {
        let dir = self.l0_dir();
        durable::create_dir_all(&dir, Some(self.dir_mode))
            .map_err(|e| DbError::io("create", &dir, e))?;
        durable::remove_temp_files(&self.root).map_err(|e| DbError::io("clean", &self.root, e))
    }

    /// TXIDs of the local L0 files, ascending.
    pub fn l0_txids(&self) -> Result<Vec<TxId>> {
        let dir = self.l0_dir();
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(DbError::io("list", &dir, e)),
        };
        let mut txids = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| DbError::io("list", &dir, e))?;
            if let Some((min, max)) = entry.file_name().to_str().and_then(ltx::parse_file_name)
                && min == max
            {
                txids.push(min);
            }
        }
        txids.sort();
        Ok(txids)
    }

    /// The newest local TXID, or zero when nothing was synced yet.
    pub fn newest_txid(&self) -> Result<TxId> {
        Ok(self.l0_txids()?.last().copied().unwrap_or(TxId::ZERO))
    }

    /// Decodes the whole L0 file for `txid`, verifying its checksum, and
    /// returns its header (REPLICATION.md §4.1: the position file must be
    /// sound before anything is built on it).
    pub fn verify_l0(&self, txid: TxId) -> Result<Header> {
        let path = self.l0_path(txid);
        let file = File::open(&path).map_err(|e| DbError::io("open", &path, e))?;
        let dec =
            ltx::Decoder::new(BufReader::new(file)).map_err(|e| DbError::corrupt(&path, e))?;
        let header = *dec.header();
        dec.finish().map_err(|e| DbError::corrupt(&path, e))?;
        Ok(header)
    }

    /// Finds page `pgno` in the L0 file for `txid`, decoding it.
    pub fn find_page(&self, txid: TxId, pgno: u32) -> Result<Option<Vec<u8>>> {
        let path = self.l0_path(txid);
        let file = File::open(&path).map_err(|e| DbError::io("open", &path, e))?;
        let mut dec =
            ltx::Decoder::new(BufReader::new(file)).map_err(|e| DbError::corrupt(&path, e))?;
        let mut page = vec![0u8; dec.header().page_size as usize];
        while let Some(p) = dec
            .next_page(&mut page)
            .map_err(|e| DbError::corrupt(&path, e))?
        {
            if p == pgno {
                return Ok(Some(page));
            }
            if p > pgno {
                break;
            }
        }
        Ok(None)
    }

    /// Writes the L0 file for `txid` atomically (temp file, fsync, rename,
    /// directory fsync); `fill` streams the LTX bytes.
    pub fn write_l0<T>(
        &self,
        txid: TxId,
        fill: impl FnOnce(&mut BufWriter<&mut File>) -> Result<T>,
    ) -> Result<T> {
        let path = self.l0_path(txid);
        let opts = AtomicOptions {
            mode: Some(self.file_mode),
            no_replace: false,
        };
        let mut inner_err = None;
        let out = durable::write_atomic(&path, opts, |file| {
            let mut w = BufWriter::with_capacity(256 * 1024, file);
            match fill(&mut w) {
                Ok(v) => {
                    std::io::Write::flush(&mut w)?;
                    Ok(Some(v))
                }
                Err(e) => {
                    inner_err = Some(e);
                    Err(std::io::Error::other("LTX encoding failed"))
                }
            }
        });
        match (out, inner_err) {
            // The encoder's own write failed: name the file being written.
            (_, Some(DbError::Ltx(ltx::Error::Io(e)))) => Err(DbError::io("write", &path, e)),
            (_, Some(e)) => Err(e),
            (Ok(Some(v)), None) => Ok(v),
            (Ok(None), None) => Err(DbError::Internal("L0 writer produced no result")),
            (Err(e), None) => Err(DbError::io("write", &path, e)),
        }
    }

    /// Opens the L0 file for `txid` for reading (uploads, compaction).
    pub fn open_l0(&self, txid: TxId) -> Result<File> {
        let path = self.l0_path(txid);
        File::open(&path).map_err(|e| DbError::io("open", &path, e))
    }

    /// Reads the header of the L0 file for `txid` without verifying the rest.
    pub fn read_l0_header(&self, txid: TxId) -> Result<Header> {
        let path = self.l0_path(txid);
        let mut f = self.open_l0(txid)?;
        let mut b = [0u8; ltx::HEADER_SIZE];
        f.read_exact(&mut b)
            .map_err(|e| DbError::io("read", &path, e))?;
        Header::from_bytes(&b).map_err(|e| DbError::corrupt(&path, e))
    }

    /// Removes L0 files (missing ones are fine).
    pub fn remove_l0(&self, txids: &[TxId]) -> Result<()> {
        for &t in txids {
            let path = self.l0_path(t);
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(DbError::io("remove", &path, e)),
            }
        }
        Ok(())
    }

    /// `<meta>/ltx/streamed`: the position record of a level-0 file that
    /// went straight to the replica instead of being staged here.
    pub fn streamed_path(&self) -> PathBuf {
        self.root.join("ltx").join("streamed")
    }

    /// Records that the L0 file with `header` is on the replica without a
    /// local copy, with the last WAL page it consumed (number and CRC-64)
    /// for the next continuity check (REPLICATION.md §4.2 step 7). Written
    /// only after the replica holds the whole file.
    pub fn write_streamed(&self, header: &Header, last_page: Option<LastPage>) -> Result<()> {
        let mut rec = Vec::with_capacity(STREAMED_LEN);
        rec.extend_from_slice(&header.to_bytes());
        let (pgno, crc) = last_page.unwrap_or((0, 0));
        rec.extend_from_slice(&pgno.to_be_bytes());
        rec.extend_from_slice(&crc.to_be_bytes());
        let mut sum = ltx::Crc64::new();
        sum.update(&rec);
        rec.extend_from_slice(&sum.value().to_be_bytes());
        let path = self.streamed_path();
        let opts = AtomicOptions {
            mode: Some(self.file_mode),
            no_replace: false,
        };
        durable::write_atomic(&path, opts, |f| std::io::Write::write_all(f, &rec))
            .map_err(|e| DbError::io("write", &path, e))
    }

    /// The streamed-file record, if there is one: its header and the last
    /// WAL page it consumed.
    pub fn read_streamed(&self) -> Result<Option<(Header, Option<LastPage>)>> {
        let path = self.streamed_path();
        let rec = match std::fs::read(&path) {
            Ok(r) => r,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(DbError::io("read", &path, e)),
        };
        let bad = |why: &str| DbError::corrupt(&path, ltx::Error::Encode(why.to_string()));
        if rec.len() != STREAMED_LEN {
            return Err(bad("the position record has the wrong length"));
        }
        let (body, sum) = rec.split_at(STREAMED_LEN - 8);
        let mut crc = ltx::Crc64::new();
        crc.update(body);
        if sum != crc.value().to_be_bytes() {
            return Err(bad("the position record's checksum does not match"));
        }
        let mut head = [0u8; ltx::HEADER_SIZE];
        head.copy_from_slice(&body[..ltx::HEADER_SIZE]);
        let header = Header::from_bytes(&head).map_err(|e| DbError::corrupt(&path, e))?;
        let mut pgno = [0u8; 4];
        pgno.copy_from_slice(&body[ltx::HEADER_SIZE..ltx::HEADER_SIZE + 4]);
        let mut page_crc = [0u8; 8];
        page_crc.copy_from_slice(&body[ltx::HEADER_SIZE + 4..]);
        let pgno = u32::from_be_bytes(pgno);
        let last = (pgno != 0).then_some((pgno, u64::from_be_bytes(page_crc)));
        Ok(Some((header, last)))
    }

    /// Removes the whole `ltx/` tree (reset after local state loss).
    pub fn reset(&self) -> Result<()> {
        let dir = self.root.join("ltx");
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(DbError::io("remove", &dir, e)),
        }
    }
}
