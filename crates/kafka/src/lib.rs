//! The Kafka bus (issue 9, NFR-SCL-001, NFR-REL-002): [`KafkaBus`] implements the pipeline's
//! [`Bus`] on any Kafka-protocol broker through librdkafka (`rdkafka`).
//!
//! - Topics are bootstrapped with the partitions and retention of REQUIREMENTS §3.9
//!   ([`topic_layout`]); an existing topic is left as it is.
//! - Each stage's consumer group reads with auto-commit off. An offset is committed only when
//!   every message before it in its partition has been acknowledged, that is after the effects of
//!   all of them are persisted; a crash redelivers whatever was not (at-least-once, and the
//!   pipeline is idempotent under redelivery).
//! - A nacked delivery is handed out again by the same subscription with its attempt count
//!   raised, ahead of new messages, and holds its partition's commits back until it is acked.
//! - Messages are keyed by the caller (tenant or alert id), so ordering holds per key.
//! - Topics and consumer groups are both named with `topic_prefix`, so deployments sharing a
//!   cluster never share a group.
//! - `pending` is the group's lag: the high watermarks minus the committed offsets.
//! - A member that has been idle for [`STALL_CHECK`] twice in a row while its group's lag stayed
//!   above zero and unchanged rejoins the group (leaves and subscribes again), which makes the
//!   coordinator hand out every partition anew. Nobody was consuming those messages: seen with the
//!   tansu 0.6.0 broker, whose coordinator drops a dead member without asking the survivors to
//!   rejoin, so the dead member's partitions would wait for a new member (and sometimes stay
//!   unowned after one joined). A healthy group never trips it: lag that others are working
//!   through goes down.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use aluskort_bus::{Acker, Bus, BusError, Delivery, Message, Subscription, Topic};
use async_trait::async_trait;
use bytes::Bytes;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, StreamConsumer};
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Message as _, Offset, TopicPartitionList};
use tokio::sync::mpsc;

/// Longest wait for a produce, a metadata or a watermark request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a member waits for a message before it checks whether its group is stalled.
pub const STALL_CHECK: Duration = Duration::from_secs(20);

/// How a topic is created (REQUIREMENTS §3.9).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TopicLayout {
    pub partitions: i32,
    pub retention_days: u32,
}

/// §3.9: alerts.raw 4p/7d, alerts.normalized 4/7d, incidents.enriched 4/7d, priority critical
/// and high 4/3d, normal 4/7d, low 2/14d, actions.pending 2/7d, audit.events 4/90d, DLQs 2/30d.
pub const fn topic_layout(topic: Topic) -> TopicLayout {
    let (partitions, retention_days) = match topic {
        Topic::AlertsRaw | Topic::AlertsNormalized | Topic::IncidentsEnriched => (4, 7),
        Topic::JobsLlmPriorityCritical | Topic::JobsLlmPriorityHigh => (4, 3),
        Topic::JobsLlmPriorityNormal => (4, 7),
        Topic::JobsLlmPriorityLow => (2, 14),
        Topic::ActionsPending => (2, 7),
        Topic::AuditEvents => (4, 90),
        Topic::AlertsRawDlq
        | Topic::JobsLlmPriorityCriticalDlq
        | Topic::JobsLlmPriorityHighDlq
        | Topic::JobsLlmPriorityNormalDlq
        | Topic::JobsLlmPriorityLowDlq => (2, 30),
    };
    TopicLayout { partitions, retention_days }
}

/// Where the broker is and how topics are named.
#[derive(Debug, Clone)]
pub struct KafkaSettings {
    /// `host:port[,host:port…]`.
    pub brokers: String,
    /// Put before every topic name (several deployments or test runs on one cluster).
    pub topic_prefix: String,
    pub client_id: String,
    /// Replication factor of bootstrapped topics (1 on a single broker).
    pub replication: i32,
}

/// The bus over a Kafka cluster.
pub struct KafkaBus {
    settings: KafkaSettings,
    producer: FutureProducer,
    closed: tokio_util::sync::CancellationToken,
}

impl KafkaBus {
    /// Connects a producer (the broker is asked for its metadata, so a wrong address fails here)
    /// and creates the topics that do not exist yet.
    pub async fn connect(settings: KafkaSettings) -> Result<Self, BusError> {
        let producer: FutureProducer = client_config(&settings)
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("message.timeout.ms", "30000")
            .create()
            .map_err(unavailable)?;
        let bus = KafkaBus { settings, producer, closed: tokio_util::sync::CancellationToken::new() };
        bus.check_connectivity().await.map_err(|error| BusError::Unavailable(error.to_string()))?;
        bus.bootstrap_topics().await?;
        Ok(bus)
    }

    fn topic_name(&self, topic: Topic) -> String {
        format!("{}{}", self.settings.topic_prefix, topic.name())
    }

    /// Consumer groups carry the topic prefix too: deployments (or test runs) sharing a cluster
    /// must not share a group, or one's members would rebalance, and stall, the other's.
    fn group_name(&self, group: &str) -> String {
        format!("{}{group}", self.settings.topic_prefix)
    }

    /// Creates every topic of [`Topic::ALL`] missing on the cluster, with its §3.9 layout.
    pub async fn bootstrap_topics(&self) -> Result<(), BusError> {
        let admin: AdminClient<DefaultClientContext> = client_config(&self.settings).create().map_err(unavailable)?;
        let names: Vec<(Topic, String, String)> = Topic::ALL
            .iter()
            .map(|topic| {
                let retention_ms = u64::from(topic_layout(*topic).retention_days) * 86_400_000;
                (*topic, self.topic_name(*topic), retention_ms.to_string())
            })
            .collect();
        let new_topics: Vec<NewTopic<'_>> = names
            .iter()
            .map(|(topic, name, retention_ms)| {
                NewTopic::new(name, topic_layout(*topic).partitions, TopicReplication::Fixed(self.settings.replication))
                    .set("retention.ms", retention_ms)
            })
            .collect();
        let options = AdminOptions::new().operation_timeout(Some(REQUEST_TIMEOUT));
        let results = admin.create_topics(new_topics.iter(), &options).await.map_err(unavailable)?;
        for result in results {
            match result {
                Ok(name) => tracing::info!(topic = %name, "kafka topic created"),
                Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((name, code)) => return Err(BusError::Unavailable(format!("cannot create topic {name}: {code}"))),
            }
        }
        Ok(())
    }

    /// Ends every subscription's `next` with `None` (after what it is handing out).
    pub fn close(&self) {
        self.closed.cancel();
    }
}

fn client_config(settings: &KafkaSettings) -> ClientConfig {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", &settings.brokers).set("client.id", &settings.client_id);
    config
}

fn unavailable(error: impl std::fmt::Display) -> BusError {
    BusError::Unavailable(error.to_string())
}

#[async_trait]
impl Bus for KafkaBus {
    async fn publish(&self, topic: Topic, key: &str, payload: Bytes) -> Result<u64, BusError> {
        if self.closed.is_cancelled() {
            return Err(BusError::Closed);
        }
        let name = self.topic_name(topic);
        let record = FutureRecord::to(&name).key(key).payload(payload.as_ref());
        match self.producer.send(record, REQUEST_TIMEOUT).await {
            Ok(delivered) => {
                metrics::counter!("aluskort_kafka_produced_total", "topic" => topic.name()).increment(1);
                Ok(u64::try_from(delivered.offset).unwrap_or(0))
            }
            Err((error, _)) => Err(BusError::Unavailable(format!("produce to {name}: {error}"))),
        }
    }

    async fn subscribe(&self, topic: Topic, group: &str) -> Result<Box<dyn Subscription>, BusError> {
        let group = self.group_name(group);
        let consumer: StreamConsumer = client_config(&self.settings)
            .set("group.id", &group)
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest")
            .set("enable.partition.eof", "false")
            // A member that died (SIGKILL) hands its partitions over after 10 s, not librdkafka's 45.
            .set("session.timeout.ms", "10000")
            .set("heartbeat.interval.ms", "2000")
            .create()
            .map_err(unavailable)?;
        let name = self.topic_name(topic);
        consumer.subscribe(&[&name]).map_err(unavailable)?;
        let (settled_tx, settled_rx) = mpsc::unbounded_channel();
        Ok(Box::new(KafkaSubscription {
            consumer: Arc::new(consumer),
            lag_config: client_config(&self.settings).set("group.id", &group).clone(),
            idle_lag: None,
            topic,
            topic_name: name,
            settled_tx,
            settled_rx,
            partitions: HashMap::new(),
            redeliver: VecDeque::new(),
            closed: self.closed.clone(),
        }))
    }

    async fn pending(&self, topic: Topic, group: &str) -> Result<u64, BusError> {
        group_lag(client_config(&self.settings).set("group.id", self.group_name(group)).clone(), self.topic_name(topic)).await
    }

    async fn check_connectivity(&self) -> anyhow::Result<()> {
        let config = client_config(&self.settings);
        tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
            let consumer: BaseConsumer = config.create()?;
            let metadata = consumer.fetch_metadata(None, REQUEST_TIMEOUT)?;
            anyhow::ensure!(!metadata.brokers().is_empty(), "the cluster lists no brokers");
            Ok(())
        })
        .await?
    }
}

/// The lag of the consumer group `config` names on topic `name`: per partition, the high
/// watermark minus the committed offset (the low watermark when nothing is committed).
async fn group_lag(mut config: ClientConfig, name: String) -> Result<u64, BusError> {
    config.set("enable.auto.commit", "false");
    tokio::task::spawn_blocking(move || -> Result<u64, BusError> {
        let consumer: BaseConsumer = config.create().map_err(unavailable)?;
        let metadata = consumer.fetch_metadata(Some(&name), REQUEST_TIMEOUT).map_err(unavailable)?;
        let mut list = TopicPartitionList::new();
        for found in metadata.topics().iter().filter(|found| found.name() == name) {
            for partition in found.partitions() {
                list.add_partition(&name, partition.id());
            }
        }
        let committed = consumer.committed_offsets(list, REQUEST_TIMEOUT).map_err(unavailable)?;
        let mut lag = 0u64;
        for element in committed.elements() {
            let (low, high) = consumer.fetch_watermarks(&name, element.partition(), REQUEST_TIMEOUT).map_err(unavailable)?;
            let from = match element.offset() {
                Offset::Offset(offset) => offset,
                _ => low,
            };
            lag += u64::try_from(high - from).unwrap_or(0);
        }
        Ok(lag)
    })
    .await
    .map_err(|error| BusError::Unavailable(format!("lag query panicked: {error}")))?
}

/// After an idle [`STALL_CHECK`] with the group's lag at `lag`: whether the group is stalled (the
/// same lag, above zero, as at the previous idle check), and the lag to compare the next check with.
fn stall_verdict(previous: Option<u64>, lag: u64) -> (bool, Option<u64>) {
    match previous {
        Some(previous) if lag > 0 && previous == lag => (true, None),
        _ => (false, (lag > 0).then_some(lag)),
    }
}

/// An acknowledgement, sent from wherever the delivery is settled.
struct Settled {
    message: Message,
    partition: i32,
    offset: i64,
    attempt: u32,
    acked: bool,
}

struct KafkaAcker {
    sender: mpsc::UnboundedSender<Settled>,
    message: Message,
    partition: i32,
    offset: i64,
    attempt: u32,
}

impl Acker for KafkaAcker {
    fn settle(&self, acked: bool) {
        // A closed receiver means the subscription is gone; the broker redelivers what it never
        // saw committed.
        let _ = self.sender.send(Settled {
            message: self.message.clone(),
            partition: self.partition,
            offset: self.offset,
            attempt: self.attempt,
            acked,
        });
    }
}

/// One consumer group member on one topic.
struct KafkaSubscription {
    consumer: Arc<StreamConsumer>,
    /// Reaches the group's committed offsets (the stall check).
    lag_config: ClientConfig,
    /// The group's lag at the end of the last idle [`STALL_CHECK`], if the member has received
    /// nothing since.
    idle_lag: Option<u64>,
    topic: Topic,
    topic_name: String,
    settled_tx: mpsc::UnboundedSender<Settled>,
    settled_rx: mpsc::UnboundedReceiver<Settled>,
    /// Per partition: offsets handed out and not yet committed, `true` once acknowledged.
    partitions: HashMap<i32, BTreeMap<i64, bool>>,
    /// Nacked deliveries, handed out again before new messages.
    redeliver: VecDeque<(Message, i32, i64, u32)>,
    closed: tokio_util::sync::CancellationToken,
}

impl KafkaSubscription {
    fn deliver(&mut self, message: Message, partition: i32, offset: i64, attempt: u32) -> Delivery {
        self.partitions.entry(partition).or_default().entry(offset).or_insert(false);
        let acker = KafkaAcker { sender: self.settled_tx.clone(), message: message.clone(), partition, offset, attempt };
        Delivery::new(message, attempt, Box::new(acker))
    }

    /// Applies one acknowledgement: a nack queues the redelivery; an ack may free a commit.
    fn apply(&mut self, settled: Settled) {
        if !settled.acked {
            self.redeliver.push_back((settled.message, settled.partition, settled.offset, settled.attempt.saturating_add(1)));
            return;
        }
        let Some(offsets) = self.partitions.get_mut(&settled.partition) else { return };
        if let Some(acked) = offsets.get_mut(&settled.offset) {
            *acked = true;
        }
        let mut commit = None;
        while let Some(entry) = offsets.first_entry() {
            if !*entry.get() {
                break;
            }
            commit = Some(*entry.key() + 1);
            entry.remove();
        }
        if let Some(next) = commit {
            self.commit(settled.partition, next);
        }
    }

    /// Commits `next` as the partition's position (asynchronously; a later commit covers a lost
    /// one). A partition this member no longer owns is not committed: its new owner decides.
    fn commit(&mut self, partition: i32, next: i64) {
        let owned = self
            .consumer
            .assignment()
            .map(|assignment| assignment.elements_for_topic(&self.topic_name).iter().any(|element| element.partition() == partition))
            .unwrap_or(false);
        if !owned {
            self.partitions.remove(&partition);
            return;
        }
        let mut list = TopicPartitionList::new();
        if list.add_partition_offset(&self.topic_name, partition, Offset::Offset(next)).is_ok()
            && let Err(error) = self.consumer.commit(&list, CommitMode::Async)
        {
            tracing::warn!(topic = %self.topic_name, partition, next, %error, "kafka commit failed; a later one covers it");
        }
    }

    /// Called after [`STALL_CHECK`] without a message: rejoins the group when its lag stayed above
    /// zero and unchanged since the previous idle check (nobody is consuming it).
    async fn check_stall(&mut self) {
        let lag = match group_lag(self.lag_config.clone(), self.topic_name.clone()).await {
            Ok(lag) => lag,
            Err(error) => {
                tracing::warn!(topic = %self.topic_name, %error, "consumer lag not measured; stall check skipped");
                return;
            }
        };
        let (stalled, idle_lag) = stall_verdict(self.idle_lag, lag);
        self.idle_lag = idle_lag;
        if stalled {
            tracing::warn!(
                topic = %self.topic_name,
                lag,
                idle_secs = 2 * STALL_CHECK.as_secs(),
                "consumer group looks stalled (lag unchanged while this member idles); rejoining it"
            );
            metrics::counter!("aluskort_bus_rejoins_total", "topic" => self.topic.name()).increment(1);
            self.consumer.unsubscribe();
            if let Err(error) = self.consumer.subscribe(&[&self.topic_name]) {
                tracing::warn!(topic = %self.topic_name, %error, "rejoining the consumer group failed; retrying at the next check");
            }
        }
    }

    fn drain_settled(&mut self) {
        while let Ok(settled) = self.settled_rx.try_recv() {
            self.apply(settled);
        }
    }
}

fn to_message(topic: Topic, message: &rdkafka::message::BorrowedMessage<'_>) -> (Message, i32, i64) {
    let key = message.key().map(|key| String::from_utf8_lossy(key).into_owned()).unwrap_or_default();
    let payload = message.payload().map(Bytes::copy_from_slice).unwrap_or_default();
    let offset = message.offset();
    (Message { topic, key, payload, offset: u64::try_from(offset).unwrap_or(0) }, message.partition(), offset)
}

#[async_trait]
impl Subscription for KafkaSubscription {
    async fn next(&mut self) -> Option<Delivery> {
        loop {
            self.drain_settled();
            if let Some((message, partition, offset, attempt)) = self.redeliver.pop_front() {
                return Some(self.deliver(message, partition, offset, attempt));
            }
            if self.closed.is_cancelled() {
                return None;
            }
            let consumer = Arc::clone(&self.consumer);
            tokio::select! {
                () = self.closed.cancelled() => return None,
                settled = self.settled_rx.recv() => {
                    if let Some(settled) = settled {
                        self.apply(settled);
                    }
                }
                () = tokio::time::sleep(STALL_CHECK) => self.check_stall().await,
                received = consumer.recv() => match received {
                    Ok(message) => {
                        self.idle_lag = None;
                        let (message, partition, offset) = to_message(self.topic, &message);
                        return Some(self.deliver(message, partition, offset, 1));
                    }
                    Err(error) => {
                        tracing::warn!(topic = %self.topic_name, %error, "kafka receive failed; retrying");
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                },
            }
        }
    }

    fn next_ready(&mut self) -> Option<Delivery> {
        use futures::FutureExt as _;
        self.drain_settled();
        if let Some((message, partition, offset, attempt)) = self.redeliver.pop_front() {
            return Some(self.deliver(message, partition, offset, attempt));
        }
        let consumer = Arc::clone(&self.consumer);
        let ready = consumer.recv().now_or_never()?;
        match ready {
            Ok(message) => {
                self.idle_lag = None;
                let (message, partition, offset) = to_message(self.topic, &message);
                Some(self.deliver(message, partition, offset, 1))
            }
            Err(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_lag_that_stays_put_across_two_idle_checks_is_a_stall() {
        assert_eq!(stall_verdict(None, 0), (false, None), "nothing to consume");
        assert_eq!(stall_verdict(None, 323), (false, Some(323)), "first idle check: remember");
        assert_eq!(stall_verdict(Some(323), 300), (false, Some(300)), "others are working through it");
        assert_eq!(stall_verdict(Some(323), 323), (true, None), "nobody consumed it: rejoin, then start over");
        assert_eq!(stall_verdict(Some(323), 0), (false, None), "drained");
        assert_eq!(stall_verdict(Some(5), 9), (false, Some(9)), "growing lag is being produced, not stalled yet");
    }
}
