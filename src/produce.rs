//! `lake produce`: a seeded generator of seed-contract events into Kafka, keyed by user_id.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{NaiveDate, NaiveDateTime};
use indicatif::{ProgressBar, ProgressStyle};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::ClientContext;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::event::DEFAULT_EVENT_TYPES;
use crate::shutdown::CancellationToken;

#[derive(Debug, Clone)]
pub(crate) struct ProduceOptions {
    pub(crate) brokers: String,
    pub(crate) topic: String,
    pub(crate) partitions: i32,
    /// None: until shutdown.
    pub(crate) events: Option<u64>,
    /// Events per second; 0 = as fast as possible.
    pub(crate) rate: u64,
    pub(crate) start_date: NaiveDate,
    pub(crate) days: u32,
    pub(crate) seed: u64,
    pub(crate) users: u64,
    pub(crate) pages: u64,
    pub(crate) kafka: BTreeMap<String, String>,
    pub(crate) progress: bool,
}

impl Default for ProduceOptions {
    fn default() -> Self {
        Self {
            brokers: crate::config::DEFAULT_BROKERS.to_string(),
            topic: crate::config::DEFAULT_TOPIC.to_string(),
            partitions: 3,
            events: None,
            rate: 0,
            start_date: first_of_last_days(1),
            days: 1,
            seed: 42,
            users: 1000,
            pages: 100,
            kafka: BTreeMap::new(),
            progress: true,
        }
    }
}

/// What was produced (acknowledged by the broker).
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub(crate) struct ProduceSummary {
    pub(crate) delivered: u64,
    pub(crate) failed: u64,
    pub(crate) by_type: BTreeMap<String, u64>,
    pub(crate) seconds: f64,
    pub(crate) events_per_second: f64,
}

/// Counts deliveries as the broker acknowledges them.
#[derive(Default)]
struct Deliveries {
    delivered: AtomicU64,
    failed: AtomicU64,
}

struct Ctx(Arc<Deliveries>);
impl ClientContext for Ctx {}
impl ProducerContext for Ctx {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(_) => self.0.delivered.fetch_add(1, Ordering::Relaxed),
            Err((e, _)) => {
                tracing::warn!("delivery failed: {e}");
                self.0.failed.fetch_add(1, Ordering::Relaxed)
            }
        };
    }
}

/// The deterministic event stream of the seed contract.
pub(crate) struct Generator {
    rng: StdRng,
    start: NaiveDateTime,
    span_secs: i64,
    users: u64,
    pages: u64,
    weights_total: u32,
}

/// One generated event: its key and JSON payload.
pub(crate) struct Generated {
    pub(crate) user_id: u64,
    pub(crate) event_type: &'static str,
    pub(crate) json: String,
}

impl Generator {
    pub(crate) fn new(seed: u64, start_date: NaiveDate, days: u32, users: u64, pages: u64) -> Self {
        Self {
            rng: StdRng::seed_from_u64(seed),
            start: start_date.and_hms_opt(0, 0, 0).unwrap_or_default(),
            span_secs: i64::from(days.max(1)) * 86_400,
            users: users.max(1),
            pages: pages.max(1),
            weights_total: DEFAULT_EVENT_TYPES.iter().map(|(_, w)| w).sum(),
        }
    }

    pub(crate) fn next_event(&mut self) -> Generated {
        let mut pick = self.rng.random_range(0..self.weights_total);
        let mut event_type = DEFAULT_EVENT_TYPES[0].0;
        for (t, w) in DEFAULT_EVENT_TYPES {
            if pick < w {
                event_type = t;
                break;
            }
            pick -= w;
        }
        let user_id = self.rng.random_range(1..=self.users);
        let page_id = self.rng.random_range(1..=self.pages);
        let session = self.rng.random_range(0..4u32);
        let ts = self.start + chrono::Duration::seconds(self.rng.random_range(0..self.span_secs));
        let json = format!(
            r#"{{"user_id": {user_id}, "event_type": "{event_type}", "timestamp": "{}", "page_id": {page_id}, "session_id": "sess_{user_id}_{session}"}}"#,
            ts.format("%Y-%m-%dT%H:%M:%S")
        );
        Generated {
            user_id,
            event_type,
            json,
        }
    }
}

/// The first of `days` days ending today (UTC): where timestamps start by default.
pub(crate) fn first_of_last_days(days: u32) -> NaiveDate {
    chrono::Utc::now().date_naive() - chrono::Duration::days(i64::from(days.max(1)) - 1)
}

/// Creates `topic` with `partitions` partitions unless it exists.
pub async fn ensure_topic(
    brokers: &str,
    topic: &str,
    partitions: i32,
    kafka: &BTreeMap<String, String>,
) -> Result<()> {
    let mut cfg = ClientConfig::new();
    cfg.set("bootstrap.servers", brokers);
    for (k, v) in kafka {
        cfg.set(k, v);
    }
    let admin: AdminClient<DefaultClientContext> = cfg.create()?;
    // Look first: some brokers (librdkafka's mock cluster among them) do not serve CreateTopics.
    let metadata = admin
        .inner()
        .fetch_metadata(Some(topic), Duration::from_secs(10))?;
    if metadata
        .topics()
        .iter()
        .any(|t| t.name() == topic && !t.partitions().is_empty())
    {
        return Ok(());
    }
    let new = NewTopic::new(topic, partitions, TopicReplication::Fixed(1));
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    for result in admin.create_topics([&new], &opts).await? {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((t, code)) => {
                return Err(Error::Other(format!("cannot create topic {t}: {code}")));
            }
        }
    }
    Ok(())
}

/// Produces events until `opts.events` are acknowledged or `shutdown` is cancelled.
pub(crate) async fn run(
    opts: ProduceOptions,
    shutdown: CancellationToken,
) -> Result<ProduceSummary> {
    ensure_topic(&opts.brokers, &opts.topic, opts.partitions, &opts.kafka).await?;
    tokio::task::spawn_blocking(move || produce_blocking(&opts, &shutdown))
        .await
        .map_err(|e| Error::Other(format!("producer thread: {e}")))?
}

fn produce_blocking(opts: &ProduceOptions, shutdown: &CancellationToken) -> Result<ProduceSummary> {
    let deliveries = Arc::new(Deliveries::default());
    let mut cfg = ClientConfig::new();
    cfg.set("bootstrap.servers", &opts.brokers)
        .set("linger.ms", "20")
        .set("batch.num.messages", "10000")
        .set("compression.type", "lz4")
        .set("enable.idempotence", "true");
    for (k, v) in &opts.kafka {
        cfg.set(k, v);
    }
    let producer: BaseProducer<Ctx> = cfg.create_with_context(Ctx(deliveries.clone()))?;
    let mut generator = Generator::new(
        opts.seed,
        opts.start_date,
        opts.days,
        opts.users,
        opts.pages,
    );

    let bar = if opts.progress {
        match opts.events {
            Some(n) => ProgressBar::new(n),
            None => ProgressBar::new_spinner(),
        }
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template("{spinner} {pos}/{len} events [{elapsed_precise}] {per_sec}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );

    // With a rate, events leave in 100 steps a second, not in bursts: a consumer sees a steady
    // stream, as from many real clients.
    let pace_every = match opts.rate {
        0 => 1000,
        rate => (rate / 100).clamp(1, 1000),
    };
    let started = Instant::now();
    let mut sent: u64 = 0;
    let mut by_type: BTreeMap<String, u64> = BTreeMap::new();
    'events: while opts.events.is_none_or(|n| sent < n) && !shutdown.is_cancelled() {
        let event = generator.next_event();
        let key = event.user_id.to_string();
        let mut record = BaseRecord::to(&opts.topic).key(&key).payload(&event.json);
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                    // The queue stays full while the broker is away: the signal still counts.
                    if shutdown.is_cancelled() {
                        break 'events;
                    }
                    record = r;
                    producer.poll(Duration::from_millis(10));
                }
                Err((e, _)) => return Err(Error::Kafka(e)),
            }
        }
        *by_type.entry(event.event_type.to_string()).or_default() += 1;
        sent += 1;
        if sent % pace_every == 0 {
            producer.poll(Duration::ZERO);
            bar.set_position(sent);
            if opts.rate > 0 {
                let due = Duration::from_secs_f64(sent as f64 / opts.rate as f64);
                if let Some(ahead) = due.checked_sub(started.elapsed()) {
                    std::thread::sleep(ahead);
                }
            }
        }
    }
    // On the signal, deliveries under way get the grace period; what is still unacknowledged
    // then is reported below as not acknowledged.
    let flush_for = match shutdown.is_cancelled() {
        true => crate::shutdown::GRACE,
        false => Duration::from_secs(60),
    };
    if let Err(e) = producer.flush(flush_for) {
        if !shutdown.is_cancelled() {
            return Err(Error::Kafka(e));
        }
    }
    bar.finish_and_clear();
    let seconds = started.elapsed().as_secs_f64();
    let delivered = deliveries.delivered.load(Ordering::Relaxed);
    let failed = deliveries.failed.load(Ordering::Relaxed);
    if failed > 0 {
        return Err(Error::Other(format!(
            "{failed} of {sent} events were not acknowledged by the broker"
        )));
    }
    if delivered < sent {
        return Err(Error::Other(format!(
            "stopped with {} of {sent} events sent but not yet acknowledged: they may or may \
             not be in the topic",
            sent - delivered
        )));
    }
    Ok(ProduceSummary {
        delivered,
        failed,
        by_type,
        seconds,
        events_per_second: delivered as f64 / seconds.max(1e-9),
    })
}
