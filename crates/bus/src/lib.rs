//! The message bus between pipeline stages: topics with canonical names (REQUIREMENTS §3.9),
//! consumer groups, and at-least-once delivery: a delivery that is not acknowledged (nacked, or
//! dropped because its handler failed or panicked) is delivered again.
//!
//! # Layout
//! - [`topic`]: the closed set of topics and their wire names.
//! - [`memory`]: `MemoryBus`, the embedded in-process implementation.
//!
//! A Kafka implementation (rdkafka, manual offset commits) plugs in behind the same [`Bus`] trait.

pub mod memory;
pub mod topic;

use async_trait::async_trait;
use bytes::Bytes;

pub use memory::MemoryBus;
pub use topic::Topic;

/// What went wrong on the bus.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    #[error("bus is closed")]
    Closed,
    #[error("bus unavailable: {0}")]
    Unavailable(String),
}

/// One message as stored on a topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub topic: Topic,
    /// Partitioning key (tenant id or alert id); ordering holds per key.
    pub key: String,
    pub payload: Bytes,
    /// Position in the topic, from 0.
    pub offset: u64,
}

/// The value a message's payload encodes, handed over as it is by a bus whose consumers run in
/// the publisher's process ([`Bus::publish_decoded`]), so that they need not decode the payload.
pub type Decoded = std::sync::Arc<dyn std::any::Any + Send + Sync>;

/// Acknowledgement hook a bus implementation attaches to a delivery.
pub trait Acker: Send + Sync {
    /// Called exactly once: `true` on ack, `false` when the delivery must be redelivered.
    fn settle(&self, acked: bool);
}

/// A message handed to a consumer. Call [`Delivery::ack`] after its effects are durable;
/// otherwise (nack, drop, panic) it is delivered again.
pub struct Delivery {
    pub message: Message,
    /// 1 on first delivery, incremented on each redelivery.
    pub attempt: u32,
    acker: Option<Box<dyn Acker>>,
    decoded: Option<Decoded>,
}

impl Delivery {
    pub fn new(message: Message, attempt: u32, acker: Box<dyn Acker>) -> Self {
        Delivery { message, attempt, acker: Some(acker), decoded: None }
    }

    /// This delivery, carrying the value its payload encodes (see [`Bus::publish_decoded`]).
    pub fn with_decoded(mut self, decoded: Option<Decoded>) -> Self {
        self.decoded = decoded;
        self
    }

    /// The value the publisher handed over with the payload, if the bus carried one and it is a
    /// `T`; otherwise the consumer decodes [`Message::payload`] as usual.
    pub fn decoded<T: std::any::Any + Send + Sync>(&self) -> Option<std::sync::Arc<T>> {
        std::sync::Arc::clone(self.decoded.as_ref()?).downcast().ok()
    }

    /// The value this delivery's payload encodes: the one handed over with it
    /// ([`Delivery::decoded`]), or else the payload decoded as JSON.
    pub fn decode<T>(&self) -> Result<std::sync::Arc<T>, serde_json::Error>
    where
        T: serde::de::DeserializeOwned + std::any::Any + Send + Sync,
    {
        match self.decoded::<T>() {
            Some(value) => Ok(value),
            None => serde_json::from_slice(&self.message.payload).map(std::sync::Arc::new),
        }
    }

    pub fn ack(mut self) {
        if let Some(acker) = self.acker.take() {
            acker.settle(true);
        }
    }

    pub fn nack(mut self) {
        if let Some(acker) = self.acker.take() {
            acker.settle(false);
        }
    }
}

impl Drop for Delivery {
    fn drop(&mut self) {
        if let Some(acker) = self.acker.take() {
            acker.settle(false);
        }
    }
}

impl std::fmt::Debug for Delivery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Delivery").field("message", &self.message).field("attempt", &self.attempt).finish()
    }
}

/// A consumer group's view of one topic.
#[async_trait]
pub trait Subscription: Send {
    /// Waits for the next delivery; `None` once the bus is closed and nothing is left to deliver.
    async fn next(&mut self) -> Option<Delivery>;
    /// The next delivery if one is ready now, without waiting: a batching consumer takes one with
    /// [`Subscription::next`] and then drains what is already there. `None` when nothing is ready
    /// (an implementation that cannot tell always says `None`, and batches are of one).
    fn next_ready(&mut self) -> Option<Delivery> {
        None
    }
}

#[async_trait]
pub trait Bus: Send + Sync + 'static {
    /// Appends a message to `topic`; returns its offset.
    async fn publish(&self, topic: Topic, key: &str, payload: Bytes) -> Result<u64, BusError>;
    /// [`Bus::publish`], also handing `decoded`, the value `payload` encodes, to consumers in this
    /// process ([`Delivery::decoded`]). A bus that carries messages between processes sends the
    /// payload alone, as this default does.
    async fn publish_decoded(&self, topic: Topic, key: &str, payload: Bytes, decoded: Decoded) -> Result<u64, BusError> {
        drop(decoded);
        self.publish(topic, key, payload).await
    }
    /// Joins consumer group `group` on `topic`. A new group starts at the earliest message.
    async fn subscribe(&self, topic: Topic, group: &str) -> Result<Box<dyn Subscription>, BusError>;
    /// Messages of `topic` not yet acknowledged by `group` (lag plus in-flight).
    async fn pending(&self, topic: Topic, group: &str) -> Result<u64, BusError>;
    /// Used by `/ready`.
    async fn check_connectivity(&self) -> anyhow::Result<()>;
}
