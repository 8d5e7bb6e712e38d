//! Choosing the I/O engine: io_uring where the kernel allows it, positional
//! reads and writes (`pread(2)`/`pwrite(2)`) otherwise.
//!
//! `FRESHET_IO` overrides the choice: `sync` always uses positional I/O,
//! `uring` makes an unavailable io_uring an error, and `auto` (the default)
//! falls back with one log line. io_uring can be missing on old kernels
//! (ENOSYS), switched off by `sysctl kernel.io_uring_disabled` (EPERM), or
//! blocked by a container's seccomp filter (EPERM or ENOSYS).

use std::io;
use std::sync::OnceLock;

use io_uring::{IoUring, Probe, opcode};

/// The environment variable that picks the I/O engine.
pub const ENV_VAR: &str = "FRESHET_IO";

/// What the user asked for in [`ENV_VAR`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum IoMode {
    /// io_uring when available, else positional I/O (one log line).
    #[default]
    Auto,
    /// Positional I/O only.
    Sync,
    /// io_uring, and an error when it is unavailable.
    Uring,
}

impl IoMode {
    /// Parses a value of [`ENV_VAR`]; the empty string means `auto`.
    pub fn parse(value: &str) -> io::Result<IoMode> {
        match value.trim().to_ascii_lowercase().as_str() {
            "" | "auto" => Ok(IoMode::Auto),
            "sync" => Ok(IoMode::Sync),
            "uring" | "io_uring" => Ok(IoMode::Uring),
            other => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{ENV_VAR}={other:?} is not a valid I/O mode: use auto, sync or uring"),
            )),
        }
    }

    /// The mode [`ENV_VAR`] asks for (`auto` when unset).
    pub fn from_env() -> io::Result<IoMode> {
        match std::env::var(ENV_VAR) {
            Ok(v) => IoMode::parse(&v),
            Err(std::env::VarError::NotPresent) => Ok(IoMode::Auto),
            Err(std::env::VarError::NotUnicode(_)) => IoMode::parse("?"),
        }
    }
}

/// The engine in use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Engine {
    /// io_uring rings, one per thread.
    Uring,
    /// Positional reads and writes through `std::os::unix::fs::FileExt`.
    Sync,
}

/// The engine for this process, chosen once from [`ENV_VAR`] and what the
/// kernel allows. Logs one line when io_uring is not used. Errors when
/// [`ENV_VAR`] is invalid, or is `uring` and io_uring is unavailable.
pub fn engine() -> io::Result<Engine> {
    static CHOSEN: OnceLock<Result<Engine, (io::ErrorKind, String)>> = OnceLock::new();
    let chosen = CHOSEN.get_or_init(|| {
        let mode = IoMode::from_env().map_err(|e| (e.kind(), e.to_string()))?;
        let engine = select(mode).map_err(|e| (e.kind(), e.to_string()))?;
        match (mode, engine) {
            (IoMode::Sync, _) => {
                tracing::info!("{ENV_VAR}=sync: using positional reads and writes");
            }
            (_, Engine::Sync) => {
                if let Err(e) = probe() {
                    tracing::warn!(
                        "io_uring is unavailable ({e}); using positional reads and writes"
                    );
                }
            }
            (_, Engine::Uring) => tracing::debug!("using io_uring"),
        }
        Ok(engine)
    });
    chosen
        .clone()
        .map_err(|(kind, msg)| io::Error::new(kind, msg))
}

/// The engine for `mode` on this kernel, without logging or caching.
pub fn select(mode: IoMode) -> io::Result<Engine> {
    match mode {
        IoMode::Sync => Ok(Engine::Sync),
        IoMode::Auto => Ok(if probe().is_ok() {
            Engine::Uring
        } else {
            Engine::Sync
        }),
        IoMode::Uring => match probe() {
            Ok(()) => Ok(Engine::Uring),
            Err(e) => Err(io::Error::new(
                io::ErrorKind::Unsupported,
                format!(
                    "{ENV_VAR}=uring but io_uring is unavailable ({e}); unset {ENV_VAR} or set \
                     {ENV_VAR}=sync, or allow io_uring (sysctl kernel.io_uring_disabled=0, \
                     the container's seccomp profile)"
                ),
            )),
        },
    }
}

/// Whether a ring can be set up and supports every operation we submit.
fn probe() -> io::Result<()> {
    static RESULT: OnceLock<Result<(), (io::ErrorKind, String)>> = OnceLock::new();
    RESULT
        .get_or_init(|| {
            let ring = IoUring::new(4).map_err(|e| (e.kind(), describe(&e)))?;
            let mut probe = Probe::new();
            ring.submitter()
                .register_probe(&mut probe)
                .map_err(|e| (e.kind(), describe(&e)))?;
            for (code, name) in [
                (opcode::Read::CODE, "read"),
                (opcode::ReadFixed::CODE, "read-fixed"),
                (opcode::Write::CODE, "write"),
                (opcode::Fsync::CODE, "fsync"),
            ] {
                if !probe.is_supported(code) {
                    return Err((
                        io::ErrorKind::Unsupported,
                        format!("the kernel's io_uring lacks the {name} operation"),
                    ));
                }
            }
            Ok(())
        })
        .clone()
        .map_err(|(kind, msg)| io::Error::new(kind, msg))
}

/// A setup error with the likely cause spelled out.
fn describe(e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(libc::ENOSYS) => format!("{e}: the kernel has no io_uring"),
        Some(libc::EPERM) => {
            format!("{e}: disabled by sysctl kernel.io_uring_disabled or a seccomp filter")
        }
        _ => e.to_string(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn modes_parse_and_reject_typos() {
        assert_eq!(IoMode::parse("").unwrap(), IoMode::Auto);
        assert_eq!(IoMode::parse("AUTO").unwrap(), IoMode::Auto);
        assert_eq!(IoMode::parse("sync").unwrap(), IoMode::Sync);
        assert_eq!(IoMode::parse(" uring ").unwrap(), IoMode::Uring);
        let err = IoMode::parse("urign").unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        assert!(err.to_string().contains("auto, sync or uring"), "{err}");
    }

    #[test]
    fn sync_is_always_available_and_auto_matches_the_probe() {
        assert_eq!(select(IoMode::Sync).unwrap(), Engine::Sync);
        let auto = select(IoMode::Auto).unwrap();
        match select(IoMode::Uring) {
            Ok(e) => assert_eq!((e, auto), (Engine::Uring, Engine::Uring)),
            Err(e) => {
                assert_eq!(auto, Engine::Sync);
                assert!(e.to_string().contains("FRESHET_IO=sync"), "{e}");
            }
        }
    }
}
