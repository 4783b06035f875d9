//! The LLM priority queues over the embedded bus (FR-ING-005/006): every job is done or
//! dead-lettered with its reason, no class exceeds its concurrency, nothing is left unacknowledged.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aluskort_bus::topic::group;
use aluskort_bus::{Bus, MemoryBus, Topic};
use aluskort_core::QueuePriority;
use aluskort_gateway::queue::{self, CLASSES, DeadJob, JobFailure, JobHandler, LlmJob, QueueSettings};
use async_trait::async_trait;
use bytes::Bytes;
use serde_json::json;
use tokio_util::sync::CancellationToken;

#[derive(Default)]
struct Recorder {
    running: Mutex<HashMap<QueuePriority, usize>>,
    peak: Mutex<HashMap<QueuePriority, usize>>,
    attempts: Mutex<HashMap<String, u32>>,
    done: Mutex<Vec<String>>,
}

#[async_trait]
impl JobHandler for Recorder {
    async fn handle(&self, job: &LlmJob) -> Result<(), JobFailure> {
        {
            let mut running = self.running.lock().expect("lock");
            let now = running.entry(job.priority).or_default();
            *now += 1;
            let mut peak = self.peak.lock().expect("lock");
            let max = peak.entry(job.priority).or_default();
            *max = (*max).max(*now);
        }
        *self.attempts.lock().expect("lock").entry(job.job_id.clone()).or_default() += 1;
        tokio::time::sleep(Duration::from_millis(5)).await;
        *self.running.lock().expect("lock").entry(job.priority).or_default() -= 1;
        match job.payload["fail"].as_str() {
            Some("always") => Err(JobFailure { reason: "provider unavailable".to_owned(), retryable: true }),
            Some("permanent") => Err(JobFailure { reason: "tool schema rejected".to_owned(), retryable: false }),
            _ => {
                self.done.lock().expect("lock").push(job.job_id.clone());
                Ok(())
            }
        }
    }
}

fn job(id: &str, priority: QueuePriority, payload: serde_json::Value) -> LlmJob {
    LlmJob { job_id: id.to_owned(), tenant: "acme".to_owned(), priority, task: "investigation".to_owned(), payload }
}

async fn drain(bus: &MemoryBus, topic: Topic) -> Vec<DeadJob> {
    let mut subscription = bus.subscribe(topic, "test-reader").await.expect("subscribe");
    let mut dead = Vec::new();
    for _ in 0..bus.len(topic) {
        let Some(delivery) = subscription.next().await else { break };
        dead.push(serde_json::from_slice(&delivery.message.payload).expect("dead job JSON"));
        delivery.ack();
    }
    dead
}

#[tokio::test]
async fn every_job_is_done_or_dead_lettered_within_each_class_concurrency() {
    let bus = Arc::new(MemoryBus::new());
    for n in 0..40 {
        let priority = CLASSES[n % 4];
        queue::submit(bus.as_ref(), &job(&format!("j{n}"), priority, json!({}))).await.expect("submit");
    }
    queue::submit(bus.as_ref(), &job("flaky", QueuePriority::High, json!({"fail": "always"}))).await.expect("submit");
    queue::submit(bus.as_ref(), &job("broken", QueuePriority::Low, json!({"fail": "permanent"}))).await.expect("submit");
    bus.publish(Topic::JobsLlmPriorityNormal, "acme", Bytes::from_static(b"{not a job")).await.expect("publish");

    let recorder = Arc::new(Recorder::default());
    let cancel = CancellationToken::new();
    let settings = QueueSettings { retry_base: Duration::from_millis(10), ..QueueSettings::default() };
    let runner = tokio::spawn(queue::run(bus.clone(), recorder.clone(), settings, cancel.clone()));
    for _ in 0..500 {
        let mut pending = 0;
        for priority in CLASSES {
            pending += bus.pending(queue::topic(priority), group::PRIORITY_ROUTER).await.expect("pending");
        }
        if pending == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    cancel.cancel();
    runner.await.expect("join").expect("run");

    assert_eq!(recorder.done.lock().expect("lock").len(), 40, "every good job ran once");
    let peak = recorder.peak.lock().expect("lock").clone();
    for (priority, cap) in CLASSES.into_iter().zip([8, 4, 2, 1]) {
        assert!(peak.get(&priority).copied().unwrap_or(0) <= cap, "{priority:?} ran {:?} at once, cap {cap}", peak.get(&priority));
    }
    let attempts = recorder.attempts.lock().expect("lock").clone();
    assert_eq!(attempts.get("flaky"), Some(&3), "retryable failures get 3 attempts");
    assert_eq!(attempts.get("broken"), Some(&1), "permanent failures are not retried");

    let high = drain(&bus, Topic::JobsLlmPriorityHighDlq).await;
    assert_eq!(high.len(), 1);
    assert_eq!((high[0].reason.as_str(), high[0].attempts), ("gave up after 3 attempts: provider unavailable", 3));
    assert_eq!(high[0].job.as_ref().map(|job| job.job_id.as_str()), Some("flaky"));
    let low = drain(&bus, Topic::JobsLlmPriorityLowDlq).await;
    assert_eq!(low[0].reason, "permanent failure: tool schema rejected");
    let normal = drain(&bus, Topic::JobsLlmPriorityNormalDlq).await;
    assert_eq!(normal.len(), 1);
    assert!(normal[0].reason.starts_with("unreadable job:") && normal[0].raw.as_deref() == Some("{not a job"), "{:?}", normal[0]);
    assert!(drain(&bus, Topic::JobsLlmPriorityCriticalDlq).await.is_empty());
}
