//! `litestream.yml` configuration (CLI_CONFIG.md §3–5).
