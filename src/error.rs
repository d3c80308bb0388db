//! The library's error type. The binary maps it to messages and exit codes.
//!
//! Each message already carries its cause's text, so no variant also reports the cause as its
//! `source()`: printed as a chain (anyhow's `{:#}`) the cause would appear twice.

use deltalake::kernel::transaction::TransactionError;
use deltalake::DeltaTableError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("config: {0}")]
    Config(String),
    #[error("kafka: {0}")]
    Kafka(rdkafka::error::KafkaError),
    #[error("delta table {table}: {error}")]
    Delta {
        table: String,
        error: DeltaTableError,
    },
    #[error("arrow: {0}")]
    Arrow(datafusion::arrow::error::ArrowError),
    #[error("sql: {0}")]
    DataFusion(datafusion::error::DataFusionError),
    #[error("{path}: {error}")]
    Io { path: String, error: std::io::Error },
    /// The sensor's wait ran out before the date was complete.
    #[error("{0}")]
    NotComplete(String),
    /// The shutdown signal came before the work was done; nothing of it was recorded.
    #[error("stopped before it finished")]
    Stopped,
    #[error("{0}")]
    Other(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<rdkafka::error::KafkaError> for Error {
    fn from(e: rdkafka::error::KafkaError) -> Self {
        Error::Kafka(e)
    }
}

impl From<datafusion::arrow::error::ArrowError> for Error {
    fn from(e: datafusion::arrow::error::ArrowError) -> Self {
        Error::Arrow(e)
    }
}

impl From<datafusion::error::DataFusionError> for Error {
    fn from(e: datafusion::error::DataFusionError) -> Self {
        Error::DataFusion(e)
    }
}

impl Error {
    pub(crate) fn delta(table: impl std::fmt::Display, error: DeltaTableError) -> Self {
        Error::Delta {
            table: table.to_string(),
            error,
        }
    }

    /// Whether another writer's commit made this one fail (retrying from the new version may
    /// succeed).
    pub(crate) fn is_commit_conflict(&self) -> bool {
        matches!(
            self,
            Error::Delta {
                error: DeltaTableError::Transaction {
                    source: TransactionError::CommitConflict(_)
                },
                ..
            }
        )
    }

    pub(crate) fn io(path: impl std::fmt::Display, error: std::io::Error) -> Self {
        Error::Io {
            path: path.to_string(),
            error,
        }
    }
}
