//! Notifications for approvals and escalations: Slack and Microsoft Teams incoming webhooks,
//! PagerDuty Events v2 and generic webhooks, retried, never blocking the pipeline.
//!
//! [`Notifier::notify`] only puts the notification on a bounded queue per target (`try_send`) and
//! returns; one task per target sends what its queue holds, in order, retrying 429 (honouring
//! `Retry-After`), 5xx and network failures with backoff. A slow or dead target fills its own
//! queue and then loses notifications (counted and logged), but never holds up the caller or the
//! other targets.
//!
//! Metrics, each labelled `kind` (`slack`, `teams`, `pagerduty`, `webhook`):
//! `aluskort_notifications_sent_total`, `aluskort_notifications_failed_total` (given up after
//! retries, or not retryable) and `aluskort_notifications_dropped_total` (queue full, or the
//! notifier stopped first).
//!
//! Slack, Teams and webhook URLs are secrets (whoever has one can post to the channel), so no log
//! line or error names a URL.
//!
//! # Layout
//! - `payload`: the request body of each kind of target, escaping and truncating untrusted text.
//! - `worker`: the per-target task and its retry loop.

mod payload;
mod worker;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aluskort_config::NotifyTarget;
use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, warn};

pub use payload::{SIGNATURE_HEADER, signature};

/// Notifications a target's queue holds before new ones are dropped.
pub const QUEUE_CAPACITY: usize = 1_000;

/// One thing worth telling people about: an approval to give, an escalation, an executed response.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Notification {
    /// The audit event type (`approval.requested`, `approval.reminder`, `approval.escalated`,
    /// `approval.timed_out`, `response.executed`, ...); targets subscribe by it.
    pub event_type: String,
    pub tenant_id: String,
    pub investigation_id: String,
    pub approval_id: Option<String>,
    /// Untrusted: comes from the alert, so from whoever caused it.
    pub alert_title: String,
    /// `critical`, `high`, `medium`, `low` or `informational`.
    pub severity: String,
    /// What happened and why, a few lines.
    pub summary: String,
    /// When the approval times out.
    pub deadline: Option<DateTime<Utc>>,
    /// One line per proposed action (`defender.isolate_machine host-7`).
    pub actions: Vec<String>,
    /// The investigation in the ALUSKORT UI.
    pub link: Option<String>,
}

/// Tuning of a [`Notifier`]; the defaults suit production.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotifierOptions {
    /// Size of each target's queue.
    pub queue_capacity: usize,
    /// First backoff ceiling; it doubles per retry (full jitter, capped at 60 s).
    pub backoff_base: Duration,
}

impl Default for NotifierOptions {
    fn default() -> Self {
        NotifierOptions { queue_capacity: QUEUE_CAPACITY, backoff_base: Duration::from_secs(1) }
    }
}

/// Counts since start, over all targets (one notification sent to two targets counts twice).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NotifierSnapshot {
    /// Queued or being sent.
    pub pending: usize,
    pub sent: u64,
    pub failed: u64,
    pub dropped: u64,
}

/// Sends notifications off the caller's path. Cheap to clone; all clones share the queues.
#[derive(Clone)]
pub struct Notifier {
    inner: Arc<Inner>,
}

struct Inner {
    lanes: Vec<Lane>,
    counts: Arc<Counts>,
    /// Set by [`Notifier::shutdown`]: later notifications are dropped.
    closed: AtomicBool,
    /// Tells the workers to exit once their queues are empty (fired by shutdown after the drain).
    stop: CancellationToken,
    /// std `Mutex`: taken only to move the handles out, never held across an await.
    workers: Mutex<Vec<JoinHandle<()>>>,
}

/// One target's queue, as the sending side sees it.
struct Lane {
    kind: &'static str,
    events: Vec<String>,
    sender: mpsc::Sender<Arc<Notification>>,
}

/// Shared by the notifier and its workers.
pub(crate) struct Counts {
    /// Notifications queued or in flight; `flush` waits for zero.
    pending: watch::Sender<usize>,
    sent: AtomicU64,
    failed: AtomicU64,
    dropped: AtomicU64,
}

impl Counts {
    fn new() -> Self {
        Counts { pending: watch::Sender::new(0), sent: AtomicU64::new(0), failed: AtomicU64::new(0), dropped: AtomicU64::new(0) }
    }

    /// One queued notification is done with, in whichever way `outcome` says.
    pub(crate) fn settle(&self, kind: &'static str, outcome: Outcome) {
        let (counter, metric) = match outcome {
            Outcome::Sent => (&self.sent, "aluskort_notifications_sent_total"),
            Outcome::Failed => (&self.failed, "aluskort_notifications_failed_total"),
            Outcome::Dropped => (&self.dropped, "aluskort_notifications_dropped_total"),
        };
        counter.fetch_add(1, Ordering::Relaxed);
        metrics::counter!(metric, "kind" => kind).increment(1);
        self.pending.send_modify(|pending| *pending = pending.saturating_sub(1));
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    Sent,
    Failed,
    Dropped,
}

impl Notifier {
    /// A notifier with no targets: `notify` does nothing.
    pub fn disabled() -> Notifier {
        let inner = Inner {
            lanes: Vec::new(),
            counts: Arc::new(Counts::new()),
            closed: AtomicBool::new(false),
            stop: CancellationToken::new(),
            workers: Mutex::new(Vec::new()),
        };
        Notifier { inner: Arc::new(inner) }
    }

    /// Starts one sending task per target. Cancelling `cancel` stops them at once: pauses and
    /// requests in flight are abandoned, and what is still queued is dropped.
    ///
    /// # Panics
    /// Outside a Tokio runtime (the tasks are spawned on the current one).
    pub fn start(targets: Vec<NotifyTarget>, cancel: CancellationToken) -> Notifier {
        Notifier::start_with(targets, cancel, NotifierOptions::default())
    }

    /// As [`Notifier::start`], with the queue size and backoff given.
    pub fn start_with(targets: Vec<NotifyTarget>, cancel: CancellationToken, options: NotifierOptions) -> Notifier {
        if targets.is_empty() {
            return Notifier::disabled();
        }
        let client = match worker::client() {
            Ok(client) => client,
            Err(error) => {
                // Only a broken TLS setup gets here; the process keeps working without notifications.
                error!(%error, "cannot build the notification HTTP client; notifications are disabled");
                return Notifier::disabled();
            }
        };
        let counts = Arc::new(Counts::new());
        let stop = CancellationToken::new();
        let mut lanes = Vec::with_capacity(targets.len());
        let mut workers = Vec::with_capacity(targets.len());
        for target in targets {
            let (sender, receiver) = mpsc::channel(options.queue_capacity.max(1));
            lanes.push(Lane { kind: target.kind.as_str(), events: target.events.clone(), sender });
            let worker =
                worker::Worker::new(target, client.clone(), options.backoff_base, Arc::clone(&counts), cancel.clone(), stop.clone());
            workers.push(tokio::spawn(worker.run(receiver)));
        }
        Notifier { inner: Arc::new(Inner { lanes, counts, closed: AtomicBool::new(false), stop, workers: Mutex::new(workers) }) }
    }

    /// Queues `notification` for every target subscribed to its event type and returns at once;
    /// never waits. A target whose queue is full loses it (counted, logged).
    /// Whether any target takes `event_type` (callers skip work only a notification needs).
    pub fn wants(&self, event_type: &str) -> bool {
        self.inner.lanes.iter().any(|lane| lane.events.iter().any(|event| event == event_type))
    }

    pub fn notify(&self, notification: Notification) {
        if self.inner.closed.load(Ordering::Acquire) {
            debug!(event = %notification.event_type, investigation_id = %notification.investigation_id, "notifier shut down; notification dropped");
            return;
        }
        let notification = Arc::new(notification);
        for lane in &self.inner.lanes {
            if !lane.events.iter().any(|event| *event == notification.event_type) {
                continue;
            }
            // Counted before it is queued, so the worker can never settle it first.
            self.inner.counts.pending.send_modify(|pending| *pending += 1);
            if let Err(error) = lane.sender.try_send(Arc::clone(&notification)) {
                let reason = match error {
                    mpsc::error::TrySendError::Full(_) => "queue full",
                    mpsc::error::TrySendError::Closed(_) => "notifier stopped",
                };
                self.inner.counts.settle(lane.kind, Outcome::Dropped);
                warn!(
                    kind = lane.kind,
                    event = %notification.event_type,
                    investigation_id = %notification.investigation_id,
                    reason,
                    "notification dropped"
                );
            }
        }
    }

    /// Waits until every notification queued so far has been sent, given up on or dropped.
    pub async fn flush(&self) {
        let mut pending = self.inner.counts.pending.subscribe();
        // The sender lives in `self.inner`, so this only ends when the count reaches zero.
        let _ = pending.wait_for(|pending| *pending == 0).await;
    }

    /// Stops taking notifications, waits for the queues to drain ([`Notifier::flush`]), then
    /// ends the tasks. Affects every clone. Cancel the token given to `start` to cut it short.
    pub async fn shutdown(self) {
        self.inner.closed.store(true, Ordering::Release);
        self.flush().await;
        self.inner.stop.cancel();
        let workers = std::mem::take(&mut *self.inner.workers.lock().unwrap_or_else(std::sync::PoisonError::into_inner));
        for worker in workers {
            if let Err(error) = worker.await {
                error!(%error, "notification task failed");
            }
        }
    }

    pub fn snapshot(&self) -> NotifierSnapshot {
        let counts = &self.inner.counts;
        NotifierSnapshot {
            pending: *counts.pending.borrow(),
            sent: counts.sent.load(Ordering::Relaxed),
            failed: counts.failed.load(Ordering::Relaxed),
            dropped: counts.dropped.load(Ordering::Relaxed),
        }
    }
}

impl std::fmt::Debug for Notifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Kinds and event lists only: the targets' URLs and keys stay in the workers.
        let targets: Vec<(&str, &[String])> = self.inner.lanes.iter().map(|lane| (lane.kind, lane.events.as_slice())).collect();
        f.debug_struct("Notifier").field("targets", &targets).field("counts", &self.snapshot()).finish()
    }
}
