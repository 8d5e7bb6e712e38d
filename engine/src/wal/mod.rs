//! SQLite WAL reader (REPLICATION.md §3).
