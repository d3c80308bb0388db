//! lake: a SQL-first lakehouse in one binary.
//!
//! Data flows one way, and so do the modules (none imports one further down this list):
//! [`event`] (the contract) → `produce` → `ingest` (consumer → stage → decode → committer →
//! writer) → `lake` (tables, progress markers, catalog, maintenance) → `daily` → `serve`,
//! `sql`, `demo` → [`cli`] (flags, settings, one file per command). `shutdown` is the one stop
//! signal every long-running task selects on.
//!
//! The public surface is the command line ([`cli::main`]) and [`testing`], the deliberate seam
//! the integration tests and benchmarks drive; everything else is `pub(crate)`.

pub mod cli;
mod config;
mod daily;
mod demo;
mod error;
pub mod event;
mod ingest;
mod lake;
mod malloc;
mod metrics;
mod produce;
mod serve;
mod shutdown;
mod sql;
pub mod testing;
