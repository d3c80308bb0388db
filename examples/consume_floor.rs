//! The floor under any librdkafka-based ingest on this machine: reads a whole topic with the
//! consumer settings `lake ingest` uses, and does nothing with the messages but count their
//! bytes (no decode, no Parquet, no Delta commit). `bench/ingest.sh` runs it beside `lake
//! ingest` and Spark, so the report can say how much of the ingest time is Kafka's own.
//!
//!   cargo run --release --example consume_floor -- BROKERS TOPIC
//!
//! Prints one JSON line: messages, payload bytes, seconds (from the first message to the last)
//! and messages per second.

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use lake::testing::FETCH_SETTINGS;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Message, Offset, TopicPartitionList};

const METADATA_TIMEOUT: Duration = Duration::from_secs(10);

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [brokers, topic] = args.as_slice() else {
        bail!("usage: consume_floor BROKERS TOPIC");
    };
    // `lake ingest`'s fetch settings; no group membership, since partitions are assigned here.
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", brokers)
        .set("group.id", "consume-floor")
        .set("enable.auto.commit", "false");
    for (k, v) in FETCH_SETTINGS {
        config.set(*k, *v);
    }
    let consumer: BaseConsumer = config.create().context("creating the consumer")?;

    let metadata = consumer
        .fetch_metadata(Some(topic), METADATA_TIMEOUT)
        .context("reading the topic's metadata")?;
    let partitions: Vec<i32> = metadata
        .topics()
        .iter()
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    if partitions.is_empty() {
        bail!("topic {topic} has no partitions");
    }
    let mut assignment = TopicPartitionList::new();
    let mut expected = 0i64;
    for p in &partitions {
        let (low, high) = consumer
            .fetch_watermarks(topic, *p, METADATA_TIMEOUT)
            .with_context(|| format!("reading partition {p}'s offsets"))?;
        expected += high - low;
        assignment.add_partition_offset(topic, *p, Offset::Beginning)?;
    }
    consumer.assign(&assignment)?;

    let (mut messages, mut bytes) = (0i64, 0u64);
    let mut first: Option<Instant> = None;
    let mut idle_since = Instant::now();
    while messages < expected {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                first.get_or_insert_with(Instant::now);
                messages += 1;
                bytes += m.payload().map_or(0, |p| p.len() as u64);
                idle_since = Instant::now();
            }
            Some(Err(e)) => bail!("consuming: {e}"),
            None if idle_since.elapsed() > Duration::from_secs(30) => {
                bail!("no message for 30 s after {messages} of {expected}")
            }
            None => {}
        }
    }
    let seconds = first.map_or(0.0, |t| t.elapsed().as_secs_f64());
    println!(
        "{{\"messages\": {messages}, \"bytes\": {bytes}, \"seconds\": {seconds:.3}, \"messages_per_s\": {:.0}}}",
        messages as f64 / seconds.max(f64::EPSILON)
    );
    Ok(())
}
