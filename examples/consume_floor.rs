//! The floor under any librdkafka-based ingest on this machine: reads a whole topic with the
//! consumer settings `lake ingest` uses, and does nothing with the messages but count their
//! bytes (no decode, no Parquet, no Delta commit). `bench/ingest.sh` runs it beside `lake
//! ingest` and Spark, so the report can say how much of the ingest time is Kafka's own.
//!
//!   cargo run --release --example consume_floor -- BROKERS TOPIC [--poll]
//!
//! Prints one JSON line: messages, payload bytes, seconds (from the first message to the last)
//! and messages per second. `--poll` reads one message per call of rdkafka's `poll` instead,
//! the way ingest read before it took messages in batches.

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use lake::testing::{FetchQueue, FETCH_SETTINGS};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer, DefaultConsumerContext};
use rdkafka::{Message, Offset, TopicPartitionList};

const METADATA_TIMEOUT: Duration = Duration::from_secs(10);

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (brokers, topic, batch) = match args.as_slice() {
        [b, t] => (b, t, true),
        [b, t, mode] if mode == "--poll" => (b, t, false),
        _ => bail!("usage: consume_floor BROKERS TOPIC [--poll]"),
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
    if batch {
        // Forwarded before the assignment, as ingest does, so no message reaches the consumer's
        // own queue.
        let mut queue = FetchQueue::new(&consumer, 1024).context("creating a queue")?;
        let topic_c = std::ffi::CString::new(topic.as_str())?;
        for p in &partitions {
            if !queue.take_partition(&topic_c, *p) {
                bail!("no queue for partition {p}");
            }
        }
        consumer.assign(&assignment)?;
        return consume_batches(&consumer, &mut queue, expected);
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
    report(messages, bytes, first, "poll");
    Ok(())
}

/// Reading as `lake ingest` reads: every partition's messages on one queue, taken up to 1,024
/// per call of librdkafka's batch call (lake's `FetchQueue`).
fn consume_batches(
    consumer: &BaseConsumer,
    queue: &mut FetchQueue<'_, DefaultConsumerContext>,
    expected: i64,
) -> Result<()> {
    let (mut messages, mut bytes) = (0i64, 0u64);
    let mut first: Option<Instant> = None;
    let mut idle_since = Instant::now();
    while messages < expected {
        let (n, error) = queue.read(Duration::from_millis(100), usize::MAX, |m| {
            bytes += m.payload.map_or(0, |p| p.len() as u64);
        });
        if let Some(e) = error {
            bail!("consuming: {e}");
        }
        if n == 0 {
            consumer.poll(Duration::ZERO);
            if idle_since.elapsed() > Duration::from_secs(30) {
                bail!("no message for 30 s after {messages} of {expected}");
            }
            continue;
        }
        first.get_or_insert_with(Instant::now);
        idle_since = Instant::now();
        messages += n as i64;
    }
    report(messages, bytes, first, "batch");
    Ok(())
}

/// The one JSON line.
fn report(messages: i64, bytes: u64, first: Option<Instant>, mode: &str) {
    let seconds = first.map_or(0.0, |t| t.elapsed().as_secs_f64());
    println!(
        "{{\"messages\": {messages}, \"bytes\": {bytes}, \"seconds\": {seconds:.3}, \"messages_per_s\": {:.0}, \"mode\": \"{mode}\"}}",
        messages as f64 / seconds.max(f64::EPSILON)
    );
}
