//! Merging the fetched files into the database file (RESTORE.md §5 steps
//! 4–5, LTX.md §12, §12.1). Runs on a blocking thread.

use std::fs::File;
use std::io::{self, Write};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use backends::FileInfo;
use freshet_io::SeqWriter;
use freshet_io::durable::{self, AtomicOptions};
use ltx::{Compactor, Decoder, HEADER_SIZE, Header, HeaderFlags, TxId, lock_pgno};

use super::error::{RestoreError, Result};
use super::fetch::Input;

/// Mode for the new database file before the umask, as `os.Create` in
/// Litestream (so usually 0644).
const OUTPUT_MODE: u32 = 0o666;

/// What was written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Written {
    pub(crate) txid: TxId,
    pub(crate) page_size: u32,
    pub(crate) pages: u32,
    pub(crate) bytes: u64,
}

/// Checks every input's header against its name, merges the inputs and
/// writes the database to `<output>.tmp`, then fsyncs it, links it to
/// `output` (never replacing a file) and fsyncs the directory. On any error
/// the temp file is removed and `output` does not appear.
///
/// The merge hands out pages in ascending order; restore requires them to be
/// exactly 1..=commit with only the lock page missing (as Litestream's
/// snapshot decoder does), so writing them one after another puts each page
/// at `(pgno - 1) × page_size` and the lock page's range is filled with
/// zeros. The file is then exactly `commit × page_size` bytes.
pub(crate) fn write_database(
    output: &Path,
    mut inputs: Vec<Input>,
    files: &[FileInfo],
    cancel: &AtomicBool,
) -> Result<Written> {
    let (Some(first), Some(last)) = (files.first(), files.last()) else {
        return Err(RestoreError::InvalidOptions("the plan has no files".into()));
    };
    for (input, f) in inputs.iter_mut().zip(files) {
        let h = peek_header(input).map_err(|e| input_error(e, f, cancel))?;
        if h.min_txid != f.id.min_txid || h.max_txid != f.id.max_txid {
            return Err(RestoreError::HeaderMismatch {
                file: f.id,
                min_txid: h.min_txid,
                max_txid: h.max_txid,
            });
        }
    }
    let rereads = inputs
        .iter()
        .map(Input::reread)
        .collect::<io::Result<Vec<_>>>()
        .map_err(|e| RestoreError::io("reopen a fetched file", output, e))?;
    let compactor = Compactor::new(inputs, HeaderFlags::NO_CHECKSUM)
        .map_err(|e| classify(e, files, &rereads, cancel))?;
    let header = *compactor.header();
    if header.min_txid != TxId::new(1) {
        return Err(RestoreError::NotASnapshot {
            first: first.id,
            min_txid: header.min_txid,
        });
    }
    debug_assert_eq!(header.max_txid, last.id.max_txid);

    let tmp = durable::temp_path(output);
    let opts = AtomicOptions {
        mode: Some(OUTPUT_MODE),
        no_replace: true,
    };
    let written = durable::write_atomic(output, opts, |file| {
        write_pages(file, compactor, &header, &tmp, cancel).map_err(|e| {
            let e = match e {
                MergeError::Ltx(e) => classify(e, files, &rereads, cancel),
                MergeError::Restore(e) => e,
            };
            io::Error::other(e)
        })
    });
    written.map_err(|e| match e.downcast::<RestoreError>() {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => RestoreError::OutputExists {
            path: output.to_path_buf(),
        },
        Err(e) => RestoreError::io("write the restored database", &tmp, e),
    })
}

enum MergeError {
    Ltx(ltx::Error),
    Restore(RestoreError),
}

/// Streams the merged pages into `file` (see [`write_database`]).
fn write_pages(
    file: &mut File,
    compactor: Compactor<Input>,
    header: &Header,
    tmp: &Path,
    cancel: &AtomicBool,
) -> std::result::Result<Written, MergeError> {
    let page_size = header.page_size;
    let commit = header.commit;
    let lock = lock_pgno(page_size);
    let zeros = vec![0u8; page_size as usize];
    let missing = |pgno: u32| RestoreError::MissingPage {
        pgno,
        commit,
        txid: header.max_txid,
    };
    let write_err = |e: io::Error| RestoreError::io("write", tmp, e);
    // Sink errors travel through the compactor as I/O errors carrying a
    // RestoreError; `classify` unwraps them.
    let wrap = |e: RestoreError| ltx::Error::Io(io::Error::other(e));

    // Pages arrive in order, so they are written front to back in 1 MiB
    // positional writes, up to 4 in flight through io_uring where available
    // (freshet_io::SeqWriter); the fsync stays with `write_atomic`.
    let mut out = SeqWriter::new(file, 0).map_err(|e| MergeError::Restore(write_err(e)))?;
    let mut next = 1u32;
    compactor
        .merge_pages(|pgno, page| {
            if cancel.load(Ordering::Relaxed) {
                return Err(wrap(RestoreError::Cancelled));
            }
            if next == lock && pgno != lock {
                out.write_all(&zeros).map_err(|e| wrap(write_err(e)))?;
                next += 1;
            }
            if pgno != next {
                return Err(wrap(missing(next)));
            }
            out.write_all(page).map_err(|e| wrap(write_err(e)))?;
            next += 1;
            Ok(())
        })
        .map_err(MergeError::Ltx)?;
    while next <= commit {
        if next != lock {
            return Err(MergeError::Restore(missing(next)));
        }
        out.write_all(&zeros)
            .map_err(|e| MergeError::Restore(write_err(e)))?;
        next += 1;
    }
    out.flush().map_err(|e| MergeError::Restore(write_err(e)))?;
    drop(out);

    let bytes = u64::from(commit) * u64::from(page_size);
    let len = file
        .metadata()
        .map_err(|e| MergeError::Restore(write_err(e)))?
        .len();
    if len != bytes {
        return Err(MergeError::Restore(write_err(io::Error::other(format!(
            "wrote {len} bytes, expected {commit} pages of {page_size} bytes"
        )))));
    }
    Ok(Written {
        txid: header.max_txid,
        page_size,
        pages: commit,
        bytes,
    })
}

/// Reads an input's header, leaving the input at its start.
fn peek_header(input: &mut Input) -> ltx::Result<Header> {
    let mut bytes = [0u8; HEADER_SIZE];
    input.peek(&mut bytes).map_err(|e| {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            ltx::Error::Truncated {
                offset: 0,
                what: "a 100-byte header",
            }
        } else {
            ltx::Error::Io(e)
        }
    })?;
    Header::from_bytes(&bytes)
}

/// The error of one input whose identity is known.
fn input_error(e: ltx::Error, f: &FileInfo, cancel: &AtomicBool) -> RestoreError {
    if cancel.load(Ordering::Relaxed) {
        return RestoreError::Cancelled;
    }
    match e {
        ltx::Error::Io(e) => match e.downcast::<RestoreError>() {
            Ok(e) => e,
            Err(e) => RestoreError::Fetch {
                file: f.id,
                offset: 0,
                reason: format!("reading the fetched copy: {e}"),
            },
        },
        e => RestoreError::Corrupt {
            file: f.id,
            source: e,
        },
    }
}

/// Turns a merge error into a [`RestoreError`] naming the file at fault.
///
/// The compactor does not say which input failed a check. Contiguity and
/// page-size errors name TXIDs already; for a damaged file, every input
/// that can be read again is decoded alone, and the first that fails is
/// named. If none does, the fault is in the only input that cannot be read
/// again: the streamed first file.
fn classify(
    e: ltx::Error,
    files: &[FileInfo],
    rereads: &[Option<Input>],
    cancel: &AtomicBool,
) -> RestoreError {
    if cancel.load(Ordering::Relaxed) {
        return RestoreError::Cancelled;
    }
    let e = match e {
        ltx::Error::Io(io) => match io.downcast::<RestoreError>() {
            Ok(e) => return e,
            Err(io) => ltx::Error::Io(io),
        },
        e @ (ltx::Error::NotContiguous { .. } | ltx::Error::PageSizeMismatch(..)) => {
            return RestoreError::Chain { source: e };
        }
        e => e,
    };
    for (reread, f) in rereads.iter().zip(files) {
        if let Some(input) = reread
            && let Ok(Some(copy)) = input.reread()
            && let Err(found) = verify(copy)
        {
            return input_error(found, f, cancel);
        }
    }
    match files.first() {
        Some(f) => input_error(e, f, cancel),
        None => RestoreError::Chain { source: e },
    }
}

/// Decodes a whole file, verifying everything the decoder checks.
fn verify(input: Input) -> ltx::Result<()> {
    let mut dec = Decoder::new(input)?;
    let mut page = vec![0u8; dec.header().page_size as usize];
    while dec.next_page(&mut page)?.is_some() {}
    dec.finish().map(|_| ())
}
