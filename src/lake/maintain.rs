//! Compaction and vacuum of lake tables (`lake maintain`).
