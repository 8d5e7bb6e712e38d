//! `freshet`: streams every committed SQLite transaction to a replica as LTX
//! files and restores databases from them; a drop-in for `litestream`.
//!
//! This file only parses the command line and turns an error into the exit
//! status of CLI_CONFIG.md §1.1; the work is in `engine`.
#![forbid(unsafe_code)]

mod args;
mod cli;
mod cmd;
mod exec;
mod logging;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let argv = args::normalize(std::env::args_os());
    let cli = match cli::Cli::try_parse_from(argv) {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            };
            let _ = e.print();
            return code;
        }
    };
    match cmd::run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("Error: {}", error_chain(&e));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes on one line, leaving out a cause whose text the
/// message before it already contains (many messages quote their source).
fn error_chain(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}
