//! In-process bus. Each topic is an append-only log; each consumer group has a cursor, a set of
//! in-flight offsets and a redelivery queue. A delivery that is nacked or dropped goes back on the
//! redelivery queue, which is served before new messages: at-least-once, as with Kafka and manual
//! commits. Everything is in memory: durability across restarts comes from the raw inbox in the
//! case store, which `serve` replays on start.
//!
//! Messages every subscribed group has settled are dropped, except the last
//! [`RETAINED_CONSUMED`] of each topic (a group that subscribes later starts at the oldest message
//! still held, as a Kafka group starts at the oldest retained offset): memory stays bounded under
//! a steady stream. A topic nobody subscribes to keeps everything.
//!
//! A `std::sync::Mutex` guards the state: critical sections are short and never await
//! (mini-redis `db.rs` reasoning); waiting happens outside the lock, on a `tokio::sync::Notify`
//! per topic. A publish wakes only that topic's subscribers, and a settle only when it makes
//! something deliverable (a nack) or may end a drain (after `close`): with one notifier for the
//! whole bus, every message published and every ack woke every waiting consumer of every topic
//! (the parse and investigate stages, the outcome readers, the four LLM queue workers) to find
//! nothing to do: a 5,000-alert `bench pipeline` burst made 38,000–44,000 context switches, now
//! 16,000–18,000 (`perf stat`), and ~70 M fewer instructions per 1,000 alerts (callgrind).

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use bytes::Bytes;
use tokio::sync::Notify;

use crate::{Acker, Bus, BusError, Delivery, Message, Subscription, Topic};

#[derive(Default)]
struct GroupState {
    /// Next never-delivered offset.
    cursor: u64,
    /// Offsets delivered and not yet settled.
    in_flight: BTreeSet<u64>,
    /// Offsets to deliver again, with the attempt number they will carry.
    redeliver: VecDeque<(u64, u32)>,
}

/// Settled messages kept per topic for groups that subscribe later.
pub const RETAINED_CONSUMED: u64 = 1024;

/// Most messages a topic may hold (undelivered, in flight and retained) for a new message's
/// decoded value to be kept beside its payload ([`Bus::publish_decoded`]). A decoded alert takes
/// more memory than its JSON: with every value kept, a 20,000-alert burst (all of it queued on
/// the bus at once) peaked at 498 MB resident instead of 347 MB.
pub const DECODED_HELD: usize = 2048;

#[derive(Default)]
struct TopicState {
    /// Messages from offset `base` on, each with the value its payload encodes if the publisher
    /// handed one over ([`Bus::publish_decoded`]).
    messages: VecDeque<(Message, Option<crate::Decoded>)>,
    base: u64,
    groups: HashMap<String, GroupState>,
}

impl TopicState {
    /// Offset the next published message gets.
    fn end(&self) -> u64 {
        self.base + self.messages.len() as u64
    }

    fn message(&self, offset: u64) -> Option<&(Message, Option<crate::Decoded>)> {
        offset.checked_sub(self.base).and_then(|index| usize::try_from(index).ok()).and_then(|index| self.messages.get(index))
    }

    /// The group's state, a new group starting at the oldest message held.
    fn group(&mut self, name: &str) -> &mut GroupState {
        let base = self.base;
        self.groups.entry(name.to_owned()).or_insert_with(|| GroupState { cursor: base, ..GroupState::default() })
    }

    /// Drops messages every group has settled, beyond the last [`RETAINED_CONSUMED`]. Runs once
    /// the log has grown well past that, so its cost is spread over many messages.
    fn compact(&mut self) {
        if (self.messages.len() as u64) < RETAINED_CONSUMED * 2 {
            return;
        }
        let needed = self
            .groups
            .values()
            .map(|group| {
                let in_flight = group.in_flight.first().copied().unwrap_or(u64::MAX);
                let redeliver = group.redeliver.iter().map(|(offset, _)| *offset).min().unwrap_or(u64::MAX);
                group.cursor.min(in_flight).min(redeliver)
            })
            .min();
        let Some(needed) = needed else { return };
        let keep_from = needed.saturating_sub(RETAINED_CONSUMED);
        while self.base < keep_from && self.messages.pop_front().is_some() {
            self.base += 1;
        }
    }
}

#[derive(Default)]
struct State {
    topics: HashMap<Topic, TopicState>,
    closed: bool,
}

struct Inner {
    state: Mutex<State>,
    /// Per topic ([`Topic::index`]): wakes that topic's waiting subscribers.
    notify: [Notify; Topic::ALL.len()],
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding this lock cannot leave the state half-written (every mutation is a
        // single push/insert/remove), so a poisoned lock is safe to keep using.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn notify(&self, topic: Topic) -> &Notify {
        &self.notify[topic.index()]
    }
}

/// The embedded bus. Cheap to clone; clones share the same topics.
#[derive(Clone)]
pub struct MemoryBus {
    inner: Arc<Inner>,
}

impl Default for MemoryBus {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryBus {
    pub fn new() -> Self {
        MemoryBus { inner: Arc::new(Inner { state: Mutex::new(State::default()), notify: std::array::from_fn(|_| Notify::new()) }) }
    }

    /// Stops accepting messages; subscribers drain what is left, then get `None`.
    pub fn close(&self) {
        self.inner.lock().closed = true;
        self.inner.notify.iter().for_each(Notify::notify_waiters);
    }

    /// Messages published on `topic` so far (including ones already dropped as settled).
    pub fn len(&self, topic: Topic) -> usize {
        self.inner.lock().topics.get(&topic).map_or(0, |t| usize::try_from(t.end()).unwrap_or(usize::MAX))
    }

    /// Messages of `topic` held in memory.
    pub fn held(&self, topic: Topic) -> usize {
        self.inner.lock().topics.get(&topic).map_or(0, |t| t.messages.len())
    }

    pub fn is_empty(&self, topic: Topic) -> bool {
        self.len(topic) == 0
    }

    fn append(&self, topic: Topic, key: &str, payload: Bytes, decoded: Option<crate::Decoded>) -> Result<u64, BusError> {
        let offset = {
            let mut state = self.inner.lock();
            if state.closed {
                return Err(BusError::Closed);
            }
            let log = state.topics.entry(topic).or_default();
            let offset = log.end();
            // Behind a long backlog the value is not kept: consumers decode the payload then.
            let decoded = decoded.filter(|_| log.messages.len() < DECODED_HELD);
            log.messages.push_back((Message { topic, key: key.to_owned(), payload, offset }, decoded));
            offset
        };
        self.inner.notify(topic).notify_waiters();
        Ok(offset)
    }
}

#[async_trait]
impl Bus for MemoryBus {
    async fn publish(&self, topic: Topic, key: &str, payload: Bytes) -> Result<u64, BusError> {
        self.append(topic, key, payload, None)
    }

    /// Consumers here run in this process: they get `decoded` itself beside the payload.
    async fn publish_decoded(&self, topic: Topic, key: &str, payload: Bytes, decoded: crate::Decoded) -> Result<u64, BusError> {
        self.append(topic, key, payload, Some(decoded))
    }

    async fn subscribe(&self, topic: Topic, group: &str) -> Result<Box<dyn Subscription>, BusError> {
        self.inner.lock().topics.entry(topic).or_default().group(group);
        Ok(Box::new(MemorySubscription { inner: Arc::clone(&self.inner), topic, group: group.to_owned() }))
    }

    async fn pending(&self, topic: Topic, group: &str) -> Result<u64, BusError> {
        let state = self.inner.lock();
        let Some(log) = state.topics.get(&topic) else { return Ok(0) };
        let total = log.end();
        Ok(match log.groups.get(group) {
            Some(g) => (total - g.cursor) + g.in_flight.len() as u64,
            None => total,
        })
    }

    async fn check_connectivity(&self) -> anyhow::Result<()> {
        if self.inner.lock().closed {
            anyhow::bail!("memory bus is closed");
        }
        Ok(())
    }
}

struct MemorySubscription {
    inner: Arc<Inner>,
    topic: Topic,
    group: String,
}

impl MemorySubscription {
    fn try_next(&self) -> Result<Option<Delivery>, ()> {
        let mut state = self.inner.lock();
        let closed = state.closed;
        let log = state.topics.entry(self.topic).or_default();
        let end = log.end();
        let group = log.group(&self.group);
        let (offset, attempt) = if let Some(next) = group.redeliver.pop_front() {
            next
        } else if group.cursor < end {
            let offset = group.cursor;
            group.cursor += 1;
            (offset, 1)
        } else if closed && group.in_flight.is_empty() {
            return Err(());
        } else {
            return Ok(None);
        };
        group.in_flight.insert(offset);
        let Some((message, decoded)) = log.message(offset).cloned() else {
            return Ok(None);
        };
        let acker = MemoryAcker { inner: Arc::clone(&self.inner), topic: self.topic, group: self.group.clone(), offset, attempt };
        Ok(Some(Delivery::new(message, attempt, Box::new(acker)).with_decoded(decoded)))
    }
}

#[async_trait]
impl Subscription for MemorySubscription {
    async fn next(&mut self) -> Option<Delivery> {
        loop {
            let notified = self.inner.notify(self.topic).notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            match self.try_next() {
                Ok(Some(delivery)) => return Some(delivery),
                Ok(None) => notified.await,
                Err(()) => return None,
            }
        }
    }

    fn next_ready(&mut self) -> Option<Delivery> {
        self.try_next().ok().flatten()
    }
}

struct MemoryAcker {
    inner: Arc<Inner>,
    topic: Topic,
    group: String,
    offset: u64,
    attempt: u32,
}

impl Acker for MemoryAcker {
    fn settle(&self, acked: bool) {
        let wake = {
            let mut state = self.inner.lock();
            let closed = state.closed;
            let Some(log) = state.topics.get_mut(&self.topic) else { return };
            let Some(group) = log.groups.get_mut(&self.group) else { return };
            group.in_flight.remove(&self.offset);
            if acked {
                log.compact();
            } else {
                group.redeliver.push_back((self.offset, self.attempt.saturating_add(1)));
            }
            // A nack makes the message deliverable again; after `close`, the last settle ends
            // the group's drain (its subscribers then get `None`). An ack otherwise changes
            // nothing a waiting subscriber could take.
            !acked || closed
        };
        if wake {
            self.inner.notify(self.topic).notify_waiters();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    async fn next_payload(subscription: &mut Box<dyn Subscription>) -> Delivery {
        tokio::time::timeout(Duration::from_secs(5), subscription.next()).await.ok().flatten().expect("a delivery")
    }

    #[tokio::test]
    async fn ready_messages_are_drained_without_waiting() {
        let bus = MemoryBus::new();
        let mut subscription = bus.subscribe(Topic::AlertsNormalized, "batch").await.expect("subscribe");
        assert!(subscription.next_ready().is_none(), "nothing published yet");
        for payload in ["one", "two", "three"] {
            bus.publish(Topic::AlertsNormalized, "k", Bytes::from(payload)).await.expect("publish");
        }
        let first = next_payload(&mut subscription).await;
        let mut batch = vec![first];
        while let Some(delivery) = subscription.next_ready() {
            batch.push(delivery);
        }
        let payloads: Vec<&[u8]> = batch.iter().map(|d| d.message.payload.as_ref()).collect();
        assert_eq!(payloads, vec![b"one".as_slice(), b"two", b"three"]);
        // A nacked member of a drained batch comes back with its attempt counted.
        let mut batch = batch.into_iter();
        batch.next().expect("first").nack();
        batch.for_each(Delivery::ack);
        let again = next_payload(&mut subscription).await;
        assert_eq!((again.message.payload.as_ref(), again.attempt), (b"one".as_slice(), 2));
        again.ack();
        assert_eq!(bus.pending(Topic::AlertsNormalized, "batch").await.expect("pending"), 0);
    }

    #[tokio::test]
    async fn every_group_gets_every_message_from_the_earliest() {
        let bus = MemoryBus::new();
        bus.publish(Topic::AlertsRaw, "k", Bytes::from_static(b"one")).await.expect("publish");
        let mut a = bus.subscribe(Topic::AlertsRaw, "a").await.expect("subscribe");
        let mut b = bus.subscribe(Topic::AlertsRaw, "b").await.expect("subscribe");
        bus.publish(Topic::AlertsRaw, "k", Bytes::from_static(b"two")).await.expect("publish");
        for subscription in [&mut a, &mut b] {
            let first = next_payload(subscription).await;
            assert_eq!(first.message.payload, "one");
            first.ack();
            let second = next_payload(subscription).await;
            assert_eq!(second.message.payload, "two");
            second.ack();
        }
        assert_eq!(bus.pending(Topic::AlertsRaw, "a").await.expect("pending"), 0);
    }

    /// Settled messages are dropped beyond the retained tail; a group that subscribes later
    /// starts at the oldest message held; one that has not settled holds everything after it.
    #[tokio::test]
    async fn settled_messages_are_dropped_beyond_the_retained_tail() {
        let bus = MemoryBus::new();
        let mut fast = bus.subscribe(Topic::AlertsRaw, "fast").await.expect("subscribe");
        let total = RETAINED_CONSUMED * 3;
        for index in 0..total {
            bus.publish(Topic::AlertsRaw, "k", Bytes::from(index.to_string())).await.expect("publish");
        }
        for _ in 0..total {
            next_payload(&mut fast).await.ack();
        }
        assert_eq!(bus.len(Topic::AlertsRaw) as u64, total, "offsets keep counting");
        let held = bus.held(Topic::AlertsRaw) as u64;
        assert!((RETAINED_CONSUMED..RETAINED_CONSUMED * 2).contains(&held), "held {held}");
        let mut late = bus.subscribe(Topic::AlertsRaw, "late").await.expect("subscribe");
        let first = next_payload(&mut late).await;
        assert_eq!(first.message.offset, total - held, "starts at the oldest message held");
        assert_eq!(first.message.payload, (total - held).to_string());
        // The late group has not settled: nothing after its position is dropped any more.
        for index in 0..total {
            bus.publish(Topic::AlertsRaw, "k", Bytes::from(index.to_string())).await.expect("publish");
            next_payload(&mut fast).await.ack();
        }
        assert_eq!(bus.held(Topic::AlertsRaw) as u64, held + total);
        first.ack();
    }

    #[tokio::test]
    async fn unacknowledged_deliveries_come_back_with_a_higher_attempt() {
        let bus = MemoryBus::new();
        bus.publish(Topic::AlertsNormalized, "k", Bytes::from_static(b"x")).await.expect("publish");
        let mut subscription = bus.subscribe(Topic::AlertsNormalized, "g").await.expect("subscribe");
        let first = next_payload(&mut subscription).await;
        assert_eq!(first.attempt, 1);
        assert_eq!(bus.pending(Topic::AlertsNormalized, "g").await.expect("pending"), 1, "in flight counts as pending");
        drop(first);
        let second = next_payload(&mut subscription).await;
        assert_eq!((second.attempt, second.message.offset), (2, 0));
        second.nack();
        let third = next_payload(&mut subscription).await;
        assert_eq!(third.attempt, 3);
        third.ack();
        assert_eq!(bus.pending(Topic::AlertsNormalized, "g").await.expect("pending"), 0);
    }

    /// A value handed over with its payload reaches every group, redeliveries included, as the
    /// very value published; asked for as another type, or published without one, there is none.
    #[tokio::test]
    async fn a_decoded_value_travels_with_its_payload() {
        let bus = MemoryBus::new();
        let mut a = bus.subscribe(Topic::AlertsNormalized, "a").await.expect("subscribe");
        let mut b = bus.subscribe(Topic::AlertsNormalized, "b").await.expect("subscribe");
        let value = Arc::new(String::from("decoded"));
        let decoded: crate::Decoded = Arc::clone(&value) as crate::Decoded;
        bus.publish_decoded(Topic::AlertsNormalized, "k", Bytes::from_static(b"\"decoded\""), decoded).await.expect("publish");
        bus.publish(Topic::AlertsNormalized, "k", Bytes::from_static(b"\"plain\"")).await.expect("publish");
        for subscription in [&mut a, &mut b] {
            let first = next_payload(subscription).await;
            assert_eq!(first.message.payload, "\"decoded\"", "the payload still travels");
            assert!(first.decoded::<String>().is_some_and(|got| Arc::ptr_eq(&got, &value)));
            assert!(first.decoded::<u64>().is_none(), "not a u64");
            first.nack();
            let again = next_payload(subscription).await;
            assert_eq!(again.attempt, 2);
            assert!(again.decoded::<String>().is_some_and(|got| Arc::ptr_eq(&got, &value)), "redelivered with it");
            assert_eq!(again.decode::<String>().expect("decode").as_str(), "decoded");
            again.ack();
            let plain = next_payload(subscription).await;
            assert!(plain.decoded::<String>().is_none(), "published without one");
            assert_eq!(plain.decode::<String>().expect("decoded from the payload").as_str(), "plain");
            assert!(plain.decode::<u64>().is_err(), "the payload is not a u64");
            plain.ack();
        }
    }

    /// Behind a backlog of [`DECODED_HELD`] messages a value is not kept (memory); the message
    /// still travels, and its consumer decodes the payload.
    #[tokio::test]
    async fn a_long_backlog_keeps_payloads_only() {
        let bus = MemoryBus::new();
        let mut subscription = bus.subscribe(Topic::AlertsRaw, "g").await.expect("subscribe");
        for index in 0..=DECODED_HELD {
            let decoded: crate::Decoded = Arc::new(index);
            bus.publish_decoded(Topic::AlertsRaw, "k", Bytes::from(index.to_string()), decoded).await.expect("publish");
        }
        let first = next_payload(&mut subscription).await;
        assert_eq!(first.decoded::<usize>().as_deref(), Some(&0));
        first.ack();
        // Held, not dropped: a dropped delivery would come straight back.
        let mut backlog = Vec::new();
        while let Some(delivery) = subscription.next_ready() {
            backlog.push(delivery);
        }
        assert_eq!(backlog.len(), DECODED_HELD);
        let last = backlog.last().expect("the backlog");
        assert_eq!(last.message.payload, DECODED_HELD.to_string());
        assert!(last.decoded::<usize>().is_none(), "published behind {DECODED_HELD} held messages");
        assert_eq!(backlog[DECODED_HELD - 2].decoded::<usize>().as_deref(), Some(&(DECODED_HELD - 1)));
        backlog.into_iter().for_each(Delivery::ack);
    }

    /// A member of a group waiting for its next message wakes when another member nacks one (it
    /// is deliverable again) and, after `close`, when the group's last delivery in flight is
    /// settled (its drain ends); a publish on another topic hands it nothing.
    #[tokio::test]
    async fn a_waiting_subscriber_wakes_on_a_nack_and_at_the_end_of_a_drain() {
        let bus = MemoryBus::new();
        let mut first = bus.subscribe(Topic::AlertsRaw, "g").await.expect("subscribe");
        let mut second = bus.subscribe(Topic::AlertsRaw, "g").await.expect("subscribe");
        bus.publish(Topic::AlertsRaw, "k", Bytes::from_static(b"x")).await.expect("publish");
        let taken = next_payload(&mut first).await;
        let waiting = tokio::spawn(async move {
            let delivery = second.next().await;
            (delivery, second)
        });
        bus.publish(Topic::AlertsNormalized, "k", Bytes::from_static(b"elsewhere")).await.expect("publish");
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiting.is_finished(), "nothing of its topic is deliverable yet");
        taken.nack();
        let (delivery, mut second) = tokio::time::timeout(Duration::from_secs(5), waiting).await.expect("woken by the nack").expect("task");
        let delivery = delivery.expect("the nacked message");
        assert_eq!((delivery.message.payload.as_ref(), delivery.attempt), (b"x".as_slice(), 2));

        let draining = tokio::spawn(async move { second.next().await.is_none() });
        bus.close();
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!draining.is_finished(), "the group still has a delivery in flight");
        delivery.ack();
        let ended = tokio::time::timeout(Duration::from_secs(5), draining).await.expect("woken by the last ack").expect("task");
        assert!(ended, "nothing left to deliver after the drain");
    }

    #[tokio::test]
    async fn a_waiting_subscriber_wakes_on_publish_and_ends_on_close() {
        let bus = MemoryBus::new();
        let mut subscription = bus.subscribe(Topic::AuditEvents, "g").await.expect("subscribe");
        let publisher = bus.clone();
        let handle = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            publisher.publish(Topic::AuditEvents, "k", Bytes::from_static(b"late")).await.expect("publish");
            publisher.close();
        });
        let delivery = next_payload(&mut subscription).await;
        assert_eq!(delivery.message.payload, "late");
        delivery.ack();
        assert!(subscription.next().await.is_none());
        handle.await.expect("publisher task");
        assert!(matches!(bus.publish(Topic::AuditEvents, "k", Bytes::new()).await, Err(BusError::Closed)));
    }
}
