//! freshet's I/O layer.
//!
//! - [`durable`]: the one way freshet writes a file that must survive a
//!   crash — temp file, fsync, rename, directory fsync.
#![deny(missing_docs)]

pub mod durable;
