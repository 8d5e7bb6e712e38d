//! `freshet databases` (CLI_CONFIG.md §2.3).

use std::process::ExitCode;

use crate::cli::ConfigArgs;

pub(crate) fn run(args: ConfigArgs) -> anyhow::Result<ExitCode> {
    let config = super::load_config(&args.source)?;
    let dbs = config.databases()?;
    if args.json {
        let rows: Vec<_> = dbs
            .iter()
            .map(|d| serde_json::json!({ "path": d.path.display().to_string(), "replica": d.replica.backend.kind().name() }))
            .collect();
        println!("{}", serde_json::Value::Array(rows));
    } else {
        let mut text = String::from("path\treplica\n");
        for d in &dbs {
            text.push_str(&format!(
                "{}\t{}\n",
                d.path.display(),
                d.replica.backend.kind().name()
            ));
        }
        print!("{}", super::ltx_list::align(&text));
    }
    Ok(ExitCode::SUCCESS)
}
