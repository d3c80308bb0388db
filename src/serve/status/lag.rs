//! The topic's end offsets, asked of the brokers, for the lag column of the status page. Only
//! when `lake serve` is told the brokers (`--brokers`, `LAKE_BROKERS`, `brokers` in lake.toml):
//! serving the lake does not need Kafka, so without them the page shows no lag.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::ClientConfig;

use crate::error::{Error, Result};

/// How long one partition's end offset may take before the page goes without it.
const TIMEOUT: Duration = Duration::from_secs(2);

/// The topic ingest reads and how to reach it.
#[derive(Debug, Clone)]
pub(crate) struct KafkaTopic {
    pub(crate) brokers: String,
    pub(crate) topic: String,
    /// librdkafka properties (`[kafka]`, `-X`): security settings and the like.
    pub(crate) properties: BTreeMap<String, String>,
}

/// A Kafka client made on first use and kept (it holds the broker connections).
pub(crate) struct EndOffsets {
    kafka: KafkaTopic,
    client: Mutex<Option<Arc<BaseConsumer>>>,
}

impl EndOffsets {
    pub(crate) fn new(kafka: KafkaTopic) -> Self {
        Self {
            kafka,
            client: Mutex::new(None),
        }
    }

    fn client(&self) -> Result<Arc<BaseConsumer>> {
        let mut client = self
            .client
            .lock()
            .map_err(|_| Error::Other("Kafka client lock poisoned".into()))?;
        if let Some(c) = client.as_ref() {
            return Ok(c.clone());
        }
        let mut cfg = ClientConfig::new();
        cfg.set("bootstrap.servers", &self.kafka.brokers);
        for (k, v) in &self.kafka.properties {
            cfg.set(k, v);
        }
        let made: Arc<BaseConsumer> = Arc::new(cfg.create()?);
        *client = Some(made.clone());
        Ok(made)
    }

    /// The high watermark (the offset the next message will get) of each of `partitions`.
    /// Stops at the first partition that does not answer in time.
    pub(crate) async fn high_watermarks(&self, partitions: Vec<i32>) -> Result<BTreeMap<i32, i64>> {
        let client = self.client()?;
        let topic = self.kafka.topic.clone();
        tokio::task::spawn_blocking(move || {
            let mut out = BTreeMap::new();
            for p in partitions {
                let (_, high) = client.fetch_watermarks(&topic, p, TIMEOUT)?;
                out.insert(p, high);
            }
            Ok(out)
        })
        .await
        .map_err(|e| Error::Other(format!("asking Kafka for end offsets: {e}")))?
    }
}
