//! LLM work queues (FR-ING-005/006): jobs go to `jobs.llm.priority.{critical,high,normal,low}`
//! (severity → queue per FR-ING-005) and are drained strictly by priority, each class with its own
//! concurrency (8/4/2/1 by default, decisions table).
//!
//! "Strictly" means: a job of a lower class starts only while no job of a higher class is
//! waiting. A saturated critical class therefore holds back high, normal and low work rather
//! than letting it take rate-limit headroom the critical backlog needs.
//!
//! A job is acknowledged on the bus only when it is done or dead-lettered, so a crash redelivers
//! it. A failed job is retried (retryable failures, 3 attempts, 1 s doubling); then, or at once
//! for a permanent failure or an unreadable message, it goes to its class's `.dlq` topic with the
//! reason. Tenant hourly quotas (FR-ING-007) are enforced by the gateway on every call.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aluskort_bus::topic::group;
use aluskort_bus::{Bus, BusError, Delivery, Topic};
use aluskort_core::QueuePriority;
use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// Classes in drain order.
pub const CLASSES: [QueuePriority; 4] = [QueuePriority::Critical, QueuePriority::High, QueuePriority::Normal, QueuePriority::Low];

pub const fn index(priority: QueuePriority) -> usize {
    match priority {
        QueuePriority::Critical => 0,
        QueuePriority::High => 1,
        QueuePriority::Normal => 2,
        QueuePriority::Low => 3,
    }
}

pub const fn label(priority: QueuePriority) -> &'static str {
    match priority {
        QueuePriority::Critical => "critical",
        QueuePriority::High => "high",
        QueuePriority::Normal => "normal",
        QueuePriority::Low => "low",
    }
}

pub const fn topic(priority: QueuePriority) -> Topic {
    match priority {
        QueuePriority::Critical => Topic::JobsLlmPriorityCritical,
        QueuePriority::High => Topic::JobsLlmPriorityHigh,
        QueuePriority::Normal => Topic::JobsLlmPriorityNormal,
        QueuePriority::Low => Topic::JobsLlmPriorityLow,
    }
}

pub const fn dead_letter_topic(priority: QueuePriority) -> Topic {
    match priority {
        QueuePriority::Critical => Topic::JobsLlmPriorityCriticalDlq,
        QueuePriority::High => Topic::JobsLlmPriorityHighDlq,
        QueuePriority::Normal => Topic::JobsLlmPriorityNormalDlq,
        QueuePriority::Low => Topic::JobsLlmPriorityLowDlq,
    }
}

/// One unit of model work. `payload` is the caller's (the investigation engine's) description
/// of the task; the queue never looks inside it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LlmJob {
    pub job_id: String,
    pub tenant: String,
    pub priority: QueuePriority,
    pub task: String,
    pub payload: Value,
}

/// What goes to a dead-letter topic.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeadJob {
    /// The job, or `null` when the message could not be read as one.
    pub job: Option<LlmJob>,
    /// The message as received, when it could not be read.
    pub raw: Option<String>,
    pub reason: String,
    pub attempts: u32,
    pub failed_at: DateTime<Utc>,
}

/// Publishes `job` to its priority topic, keyed by tenant.
pub async fn submit(bus: &dyn Bus, job: &LlmJob) -> Result<u64, BusError> {
    let payload =
        serde_json::to_vec(job).map_err(|error| BusError::Unavailable(format!("job {} does not serialise: {error}", job.job_id)))?;
    bus.publish(topic(job.priority), &job.tenant, Bytes::from(payload)).await
}

#[derive(Debug, Clone)]
pub struct JobFailure {
    pub reason: String,
    /// Worth another attempt (the provider was down, throttled); `false` for permanent failures.
    pub retryable: bool,
}

#[async_trait]
pub trait JobHandler: Send + Sync + 'static {
    async fn handle(&self, job: &LlmJob) -> Result<(), JobFailure>;
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueSettings {
    /// Concurrent jobs per class, in [`CLASSES`] order.
    pub concurrency: [usize; 4],
    /// Jobs read ahead from the bus per class (REQUIREMENTS §3.5 backlog 100/500/1000/5000).
    pub backlog: [usize; 4],
    pub max_attempts: u32,
    pub retry_base: Duration,
}

impl Default for QueueSettings {
    fn default() -> Self {
        QueueSettings { concurrency: [8, 4, 2, 1], backlog: [100, 500, 1_000, 5_000], max_attempts: 3, retry_base: Duration::from_secs(1) }
    }
}

/// The dispatch decision, free of I/O: waiting items per class and running counts.
#[derive(Debug)]
pub struct Dispatch<T> {
    concurrency: [usize; 4],
    waiting: [VecDeque<T>; 4],
    running: [usize; 4],
}

impl<T> Dispatch<T> {
    pub fn new(concurrency: [usize; 4]) -> Self {
        Dispatch { concurrency: concurrency.map(|n| n.max(1)), waiting: Default::default(), running: [0; 4] }
    }

    pub fn push(&mut self, class: usize, item: T) {
        if let Some(queue) = self.waiting.get_mut(class) {
            queue.push_back(item);
        }
    }

    /// The next item to start: from the highest class that has one waiting, if that class has a
    /// free slot; `None` otherwise (lower classes wait while a higher class has work waiting).
    pub fn next_ready(&mut self) -> Option<(usize, T)> {
        let class = self.waiting.iter().position(|queue| !queue.is_empty())?;
        if self.running[class] >= self.concurrency[class] {
            return None;
        }
        let item = self.waiting[class].pop_front()?;
        self.running[class] += 1;
        Some((class, item))
    }

    pub fn finish(&mut self, class: usize) {
        if let Some(running) = self.running.get_mut(class) {
            *running = running.saturating_sub(1);
        }
    }

    pub fn running(&self) -> [usize; 4] {
        self.running
    }

    pub fn waiting(&self) -> usize {
        self.waiting.iter().map(VecDeque::len).sum()
    }
}

struct Queued {
    delivery: Delivery,
    /// Held while the job is read ahead or running; bounds the backlog.
    _slot: OwnedSemaphorePermit,
}

struct Shared {
    dispatch: Mutex<Dispatch<Queued>>,
    wake: Notify,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Dispatch<Queued>> {
        self.dispatch.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Drains the four queues until `cancel`; jobs not yet started are left unacknowledged (the bus
/// redelivers them) and running jobs are finished first.
pub async fn run(
    bus: Arc<dyn Bus>,
    handler: Arc<dyn JobHandler>,
    settings: QueueSettings,
    cancel: CancellationToken,
) -> Result<(), BusError> {
    let shared = Arc::new(Shared { dispatch: Mutex::new(Dispatch::new(settings.concurrency)), wake: Notify::new() });
    let mut pumps = Vec::new();
    for priority in CLASSES {
        let class = index(priority);
        let mut subscription = bus.subscribe(topic(priority), group::PRIORITY_ROUTER).await?;
        let backlog = Arc::new(Semaphore::new(settings.backlog[class].max(1)));
        let shared = Arc::clone(&shared);
        let cancel = cancel.clone();
        pumps.push(tokio::spawn(async move {
            loop {
                let slot = tokio::select! {
                    () = cancel.cancelled() => break,
                    slot = Arc::clone(&backlog).acquire_owned() => match slot { Ok(slot) => slot, Err(_) => break },
                };
                let delivery = tokio::select! {
                    () = cancel.cancelled() => break,
                    delivery = subscription.next() => match delivery { Some(delivery) => delivery, None => break },
                };
                metrics::gauge!("aluskort_llm_queue_waiting", "priority" => label(priority)).increment(1.0);
                shared.lock().push(class, Queued { delivery, _slot: slot });
                shared.wake.notify_one();
            }
        }));
    }
    let settings = Arc::new(settings);
    let mut workers = tokio::task::JoinSet::new();
    loop {
        let ready = shared.lock().next_ready();
        if let Some((class, queued)) = ready {
            metrics::gauge!("aluskort_llm_queue_waiting", "priority" => label(CLASSES[class])).decrement(1.0);
            let (bus, handler, settings, shared) = (Arc::clone(&bus), Arc::clone(&handler), Arc::clone(&settings), Arc::clone(&shared));
            workers.spawn(async move {
                work(bus.as_ref(), handler.as_ref(), &settings, CLASSES[class], queued.delivery).await;
                shared.lock().finish(class);
                shared.wake.notify_one();
            });
            continue;
        }
        // Reap finished workers so the set does not grow without bound.
        while workers.try_join_next().is_some() {}
        tokio::select! {
            () = cancel.cancelled() => break,
            () = shared.wake.notified() => {}
        }
    }
    for pump in pumps {
        pump.abort();
    }
    while workers.join_next().await.is_some() {}
    Ok(())
}

fn backoff(settings: &QueueSettings, attempt: u32) -> Duration {
    settings.retry_base.saturating_mul(1 << attempt.saturating_sub(1).min(16))
}

async fn work(bus: &dyn Bus, handler: &dyn JobHandler, settings: &QueueSettings, priority: QueuePriority, delivery: Delivery) {
    let job: LlmJob = match serde_json::from_slice(&delivery.message.payload) {
        Ok(job) => job,
        Err(error) => {
            let raw = String::from_utf8_lossy(&delivery.message.payload).chars().take(4_096).collect();
            let dead =
                DeadJob { job: None, raw: Some(raw), reason: format!("unreadable job: {error}"), attempts: 0, failed_at: Utc::now() };
            let key = delivery.message.key.clone();
            dead_letter(bus, priority, &key, dead, delivery).await;
            return;
        }
    };
    let mut attempt = 0;
    loop {
        attempt += 1;
        let started = tokio::time::Instant::now();
        let result = handler.handle(&job).await;
        metrics::histogram!("aluskort_llm_job_seconds", "priority" => label(priority)).record(started.elapsed().as_secs_f64());
        match result {
            Ok(()) => {
                metrics::counter!("aluskort_llm_jobs_total", "priority" => label(priority), "outcome" => "done").increment(1);
                delivery.ack();
                return;
            }
            Err(failure) if failure.retryable && attempt < settings.max_attempts => {
                let delay = backoff(settings, attempt);
                warn!(job = %job.job_id, task = %job.task, attempt, reason = %failure.reason, delay_ms = delay.as_millis(), "LLM job failed; retrying");
                tokio::time::sleep(delay).await;
            }
            Err(failure) => {
                let reason = if failure.retryable {
                    format!("gave up after {attempt} attempts: {}", failure.reason)
                } else {
                    format!("permanent failure: {}", failure.reason)
                };
                let dead = DeadJob { job: Some(job.clone()), raw: None, reason, attempts: attempt, failed_at: Utc::now() };
                dead_letter(bus, priority, &job.tenant, dead, delivery).await;
                return;
            }
        }
    }
}

/// Publishes to the class's DLQ, then acknowledges; if the DLQ cannot take it, the job is left
/// unacknowledged so the bus delivers it again (never lost).
async fn dead_letter(bus: &dyn Bus, priority: QueuePriority, key: &str, dead: DeadJob, delivery: Delivery) {
    metrics::counter!("aluskort_llm_jobs_total", "priority" => label(priority), "outcome" => "dead_lettered").increment(1);
    let payload = match serde_json::to_vec(&dead) {
        Ok(payload) => payload,
        Err(error) => {
            warn!(%error, "dead letter does not serialise; leaving the job for redelivery");
            delivery.nack();
            return;
        }
    };
    match bus.publish(dead_letter_topic(priority), key, Bytes::from(payload)).await {
        Ok(_) => {
            info!(priority = label(priority), reason = %dead.reason, "LLM job dead-lettered");
            delivery.ack();
        }
        Err(error) => {
            warn!(%error, "dead-letter topic unavailable; leaving the job for redelivery");
            delivery.nack();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dispatch_is_strict_by_priority_and_capped_per_class() {
        let mut dispatch = Dispatch::new([1, 1, 2, 1]);
        dispatch.push(3, "L1");
        assert_eq!(dispatch.next_ready(), Some((3, "L1")), "an idle queue runs low work");
        for (class, item) in [(2, "N1"), (2, "N2"), (1, "H1"), (0, "C1"), (0, "C2"), (3, "L2")] {
            dispatch.push(class, item);
        }
        assert_eq!(dispatch.next_ready(), Some((0, "C1")));
        assert_eq!(dispatch.next_ready(), None, "C2 waits for the critical slot, and everything below waits for C2");
        dispatch.finish(0);
        assert_eq!(dispatch.next_ready(), Some((0, "C2")));
        assert_eq!(dispatch.next_ready(), Some((1, "H1")), "critical queue empty: high may start");
        assert_eq!(dispatch.next_ready(), Some((2, "N1")));
        assert_eq!(dispatch.next_ready(), Some((2, "N2")), "normal has two slots");
        assert_eq!(dispatch.next_ready(), None, "low's one slot is still taken by L1");
        assert_eq!(dispatch.running(), [1, 1, 2, 1]);
        dispatch.finish(3);
        assert_eq!(dispatch.next_ready(), Some((3, "L2")));
        assert_eq!(dispatch.waiting(), 0);
    }

    #[test]
    fn classes_map_to_their_topics() {
        assert_eq!(topic(QueuePriority::Critical).name(), "jobs.llm.priority.critical");
        assert_eq!(dead_letter_topic(QueuePriority::Low).name(), "jobs.llm.priority.low.dlq");
        assert_eq!(CLASSES.map(index), [0, 1, 2, 3]);
        assert_eq!(QueueSettings::default().concurrency, [8, 4, 2, 1]);
    }
}
