//! inotify wake-ups: a database's monitor sleeps until its `-wal` file
//! changes (or its fallback interval passes), so an idle database costs no
//! CPU and a write is noticed at once.

use std::collections::HashMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::mpsc::Sender;

use inotify::{Inotify, WatchDescriptor, WatchMask};

/// What the watcher tells a monitor.
#[derive(Debug)]
pub(crate) enum Wake {
    /// The WAL (or the database file) changed.
    Changed,
}

/// Watches the directories of several databases on one inotify instance.
pub(crate) struct Watcher {
    inotify: Inotify,
    dirs: HashMap<WatchDescriptor, Vec<(OsString, Sender<super::monitor::Command>)>>,
}

impl Watcher {
    /// A watcher, or `None` (with one log line) where inotify is unavailable;
    /// monitors then fall back to polling at their interval.
    pub(crate) fn new() -> Option<Watcher> {
        match Inotify::init() {
            Ok(inotify) => Some(Watcher {
                inotify,
                dirs: HashMap::new(),
            }),
            Err(e) => {
                tracing::warn!(error = %e, "inotify unavailable; databases are polled at their monitor interval");
                None
            }
        }
    }

    /// Wakes `tx` when `db`'s `-wal` file (or the database) is written.
    pub(crate) fn watch(
        &mut self,
        db: &Path,
        tx: Sender<super::monitor::Command>,
    ) -> std::io::Result<()> {
        let dir = db
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        let mask =
            WatchMask::MODIFY | WatchMask::CREATE | WatchMask::MOVED_TO | WatchMask::CLOSE_WRITE;
        let wd = self.inotify.watches().add(&dir, mask)?;
        let mut wal = db.file_name().unwrap_or_default().to_os_string();
        wal.push("-wal");
        self.dirs.entry(wd).or_default().push((wal, tx));
        Ok(())
    }

    /// Reads events until the inotify descriptor fails; runs on its own
    /// thread. Events are coalesced by the monitors (a burst of writes costs
    /// one sync).
    pub(crate) fn run(mut self) {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let events = match self.inotify.read_events_blocking(&mut buf) {
                Ok(ev) => ev,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    tracing::warn!(error = %e, "inotify stopped; falling back to polling");
                    return;
                }
            };
            let mut closed = Vec::new();
            for ev in events {
                let Some(name) = ev.name else { continue };
                if let Some(list) = self.dirs.get(&ev.wd) {
                    for (i, (wal, tx)) in list.iter().enumerate() {
                        if name == wal.as_os_str()
                            && tx
                                .send(super::monitor::Command::Wake(Wake::Changed))
                                .is_err()
                        {
                            closed.push((ev.wd.clone(), i));
                        }
                    }
                }
            }
            for (wd, i) in closed.into_iter().rev() {
                if let Some(list) = self.dirs.get_mut(&wd)
                    && i < list.len()
                {
                    list.remove(i);
                }
            }
            if self.dirs.values().all(Vec::is_empty) {
                return;
            }
        }
    }
}
