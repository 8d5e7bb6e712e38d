//! Log output: text to stdout at INFO by default, like Litestream; the
//! config's `logging` section, `LOG_LEVEL` and `-log-level` adjust it.

use std::io::IsTerminal;

use engine::config::{LogFormat, LogLevel, LoggingConfig};
use tracing_subscriber::EnvFilter;

/// Installs the global subscriber. `flag` (`-log-level`) beats `LOG_LEVEL`,
/// which beats the config file.
pub(crate) fn init(config: &LoggingConfig, flag: Option<&str>, force_stderr: bool) {
    let env = std::env::var("LOG_LEVEL").ok();
    let level = flag
        .or(env.as_deref())
        .and_then(LogLevel::parse)
        .unwrap_or(config.level);
    let directive = match level {
        LogLevel::Trace => "trace",
        LogLevel::Debug => "debug",
        LogLevel::Info => "info",
        LogLevel::Warn => "warn",
        LogLevel::Error => "error",
    };
    let filter = EnvFilter::new(directive);
    let to_stderr = force_stderr || config.stderr;
    let tty = if to_stderr {
        std::io::stderr().is_terminal()
    } else {
        std::io::stdout().is_terminal()
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(tty && config.format != LogFormat::Json)
        .with_target(false)
        .with_file(config.source)
        .with_line_number(config.source);
    let result = match (config.format, to_stderr) {
        (LogFormat::Json, true) => builder.json().with_writer(std::io::stderr).try_init(),
        (LogFormat::Json, false) => builder.json().with_writer(std::io::stdout).try_init(),
        (_, true) => builder.with_writer(std::io::stderr).try_init(),
        (_, false) => builder.with_writer(std::io::stdout).try_init(),
    };
    // A second init (tests) keeps the first subscriber.
    let _ = result;
}
