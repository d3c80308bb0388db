//! lake: a SQL-first lakehouse in one binary.
//!
//! Data flows one way, and so do the modules:
//! Kafka → [`ingest`] (decode, offsets, writer) → Delta tables under [`lake`] → query.

pub mod config;
pub mod daily;
pub mod demo;
pub mod error;
pub mod event;
pub mod ingest;
pub mod lake;
pub mod produce;
pub mod serve;
pub mod sql;

pub use error::{Error, Result};
