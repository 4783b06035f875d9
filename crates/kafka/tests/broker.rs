//! The Kafka bus against a real Kafka-protocol broker (`ALUSKORT_TEST_KAFKA_BROKERS`, which
//! `scripts/test` sets after `scripts/kafka-broker start` brings up tansu on 127.0.0.1:9092;
//! unset, these tests skip, and with `CI` set the script fails instead). Each test uses its own
//! topic prefix and consumer groups.

use std::collections::BTreeSet;
use std::time::Duration;

use aluskort_bus::{Bus, Subscription, Topic};
use aluskort_kafka::{KafkaBus, KafkaSettings, topic_layout};
use bytes::Bytes;

async fn bus(name: &str) -> Option<KafkaBus> {
    let brokers = aluskort_testkit::kafka_test_brokers()?;
    let settings = KafkaSettings {
        brokers,
        topic_prefix: format!("t{}-{name}.", uuid::Uuid::new_v4().simple()),
        client_id: format!("aluskort-test-{name}"),
        replication: 1,
    };
    Some(KafkaBus::connect(settings).await.expect("the test broker answers"))
}

async fn next(subscription: &mut Box<dyn Subscription>) -> aluskort_bus::Delivery {
    tokio::time::timeout(Duration::from_secs(20), subscription.next()).await.expect("a delivery within 20 s").expect("open")
}

fn payloads(count: usize) -> Vec<String> {
    (0..count).map(|n| format!("{{\"alert\":{n}}}")).collect()
}

/// Offsets are committed only after acknowledgement: a member that acknowledged the first half
/// and then went away (its unacknowledged deliveries dropped) leaves the second half to the next
/// member of the group, which receives exactly those, in order per key.
#[tokio::test]
async fn a_restarted_member_resumes_after_the_last_acknowledged_message() {
    let Some(bus) = bus("resume").await else { return };
    for (n, payload) in payloads(10).into_iter().enumerate() {
        // One key: one partition, so the order is the publication order.
        let offset = bus.publish(Topic::AlertsRaw, "tenant-a", Bytes::from(payload)).await.expect("publish");
        assert_eq!(offset, n as u64);
    }
    let mut first = bus.subscribe(Topic::AlertsRaw, "aluskort.entity-parser").await.expect("subscribe");
    let mut held = Vec::new();
    for n in 0..10 {
        let delivery = next(&mut first).await;
        assert_eq!(delivery.message.payload, Bytes::from(format!("{{\"alert\":{n}}}")));
        assert_eq!((delivery.attempt, delivery.message.key.as_str()), (1, "tenant-a"));
        if n < 5 {
            delivery.ack();
        } else {
            held.push(delivery);
        }
    }
    // Acknowledgements are applied by the subscription; let it commit before it goes.
    tokio::time::timeout(Duration::from_millis(500), first.next()).await.ok();
    drop(held);
    drop(first);
    assert_eq!(bus.pending(Topic::AlertsRaw, "aluskort.entity-parser").await.expect("lag"), 5, "five left to the group");

    let mut second = bus.subscribe(Topic::AlertsRaw, "aluskort.entity-parser").await.expect("resubscribe");
    for n in 5..10 {
        let delivery = next(&mut second).await;
        assert_eq!(delivery.message.payload, Bytes::from(format!("{{\"alert\":{n}}}")), "resumes at the first unacknowledged");
        delivery.ack();
    }
    tokio::time::timeout(Duration::from_millis(500), second.next()).await.ok();
    assert_eq!(bus.pending(Topic::AlertsRaw, "aluskort.entity-parser").await.expect("lag"), 0);
    // Another group reads the topic from the start, independently.
    let mut other = bus.subscribe(Topic::AlertsRaw, "aluskort.audit-service").await.expect("other group");
    assert_eq!(next(&mut other).await.message.payload, Bytes::from("{\"alert\":0}"));
    bus.close();
}

/// A nacked delivery comes back with its attempt count raised, and holds its partition's commit
/// until it is acknowledged: the lag counts it meanwhile.
#[tokio::test]
async fn a_nacked_delivery_is_redelivered_and_holds_the_commit() {
    let Some(bus) = bus("nack").await else { return };
    for payload in payloads(3) {
        bus.publish(Topic::AlertsNormalized, "alert-1", Bytes::from(payload)).await.expect("publish");
    }
    let mut subscription = bus.subscribe(Topic::AlertsNormalized, "aluskort.orchestrator").await.expect("subscribe");
    let first = next(&mut subscription).await;
    let second = next(&mut subscription).await;
    first.nack();
    second.ack();
    let again = next(&mut subscription).await;
    assert_eq!((again.message.payload.clone(), again.attempt), (Bytes::from("{\"alert\":0}"), 2), "redelivered first, attempt 2");
    let third = next(&mut subscription).await;
    assert_eq!(third.message.payload, Bytes::from("{\"alert\":2}"));
    third.ack();
    tokio::time::timeout(Duration::from_millis(500), subscription.next()).await.ok();
    assert_eq!(
        bus.pending(Topic::AlertsNormalized, "aluskort.orchestrator").await.expect("lag"),
        3,
        "nothing committed past the nacked one"
    );
    again.ack();
    tokio::time::timeout(Duration::from_millis(500), subscription.next()).await.ok();
    assert_eq!(bus.pending(Topic::AlertsNormalized, "aluskort.orchestrator").await.expect("lag"), 0);
    bus.close();
}

/// Messages of many keys spread over the topic's §3.9 partitions and all arrive once; `close`
/// ends a subscription's wait.
#[tokio::test]
async fn many_keys_spread_over_the_partitions_and_all_arrive_once() {
    let Some(bus) = bus("spread").await else { return };
    assert_eq!(topic_layout(Topic::AlertsRaw).partitions, 4);
    assert_eq!((topic_layout(Topic::AuditEvents).partitions, topic_layout(Topic::AuditEvents).retention_days), (4, 90));
    for n in 0..200 {
        bus.publish(Topic::AlertsRaw, &format!("alert-{n}"), Bytes::from(format!("{n}"))).await.expect("publish");
    }
    let mut subscription = bus.subscribe(Topic::AlertsRaw, "aluskort.entity-parser").await.expect("subscribe");
    let mut seen = BTreeSet::new();
    while seen.len() < 200 {
        let delivery = next(&mut subscription).await;
        let n: u32 = std::str::from_utf8(&delivery.message.payload).expect("utf8").parse().expect("number");
        assert!(seen.insert(n), "{n} delivered twice");
        delivery.ack();
    }
    bus.close();
    let ended = tokio::time::timeout(Duration::from_secs(5), subscription.next()).await.expect("close ends the wait");
    assert!(ended.is_none());
    assert!(bus.publish(Topic::AlertsRaw, "k", Bytes::from("late")).await.is_err(), "a closed bus refuses to publish");
}

/// A rebalance ends the ownership deliveries were handed out under. Whoever owns the partition
/// afterwards reads it again from the committed offset (attempt 1); the deliveries of before,
/// nacked now, do not come back from their old member, and acked now, commit nothing: their
/// offsets are not contiguous with what the new ownership hands out, and committing them could
/// skip messages it has not handed out yet (the distributed e2e stall). Everything gets through
/// and the lag drains.
#[tokio::test]
async fn deliveries_from_before_a_rebalance_are_read_again_by_the_owner_not_redelivered() {
    let Some(bus) = bus("rebalance").await else { return };
    let (topic, group) = (Topic::AlertsNormalized, "aluskort.orchestrator");
    for payload in payloads(10) {
        bus.publish(topic, "alert-1", Bytes::from(payload)).await.expect("publish");
    }
    let mut first = bus.subscribe(topic, group).await.expect("subscribe");
    let mut held = Vec::new();
    for n in 0..10 {
        let delivery = next(&mut first).await;
        if n < 4 { delivery.ack() } else { held.push(delivery) }
    }
    tokio::time::timeout(Duration::from_millis(500), first.next()).await.ok();
    assert_eq!(bus.pending(topic, group).await.expect("lag"), 6, "0..3 committed");

    // A second member joins: the group rebalances, and the partition's owner reads 4..9 again.
    let mut second = bus.subscribe(topic, group).await.expect("second member");
    let mut again = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while again.len() < 6 && tokio::time::Instant::now() < deadline {
        tokio::select! {
            Some(delivery) = first.next() => again.push(delivery),
            Some(delivery) = second.next() => again.push(delivery),
            () = tokio::time::sleep(Duration::from_millis(200)) => {}
        }
    }
    let mut read_again: Vec<(Bytes, u32)> = again.iter().map(|d| (d.message.payload.clone(), d.attempt)).collect();
    read_again.sort();
    let expected: Vec<(Bytes, u32)> = (4..10).map(|n| (Bytes::from(format!("{{\"alert\":{n}}}")), 1)).collect();
    assert_eq!(read_again, expected, "the owner after the rebalance reads from the committed offset");

    // The deliveries of before are nacked: they belonged to an ended ownership, nobody hands them out again.
    drop(held);
    let mut late = Vec::new();
    let quiet = tokio::time::Instant::now() + Duration::from_secs(3);
    while tokio::time::Instant::now() < quiet {
        let delivery = tokio::select! {
            Some(delivery) = first.next() => delivery,
            Some(delivery) = second.next() => delivery,
            () = tokio::time::sleep(Duration::from_millis(200)) => continue,
        };
        late.push((String::from_utf8_lossy(&delivery.message.payload).into_owned(), delivery.attempt));
        delivery.ack();
    }
    assert_eq!(late, Vec::<(String, u32)>::new(), "nothing of an ended ownership is redelivered");

    again.into_iter().for_each(aluskort_bus::Delivery::ack);
    for _ in 0..5 {
        tokio::select! {
            _ = first.next() => {}
            _ = second.next() => {}
            () = tokio::time::sleep(Duration::from_millis(300)) => {}
        }
    }
    assert_eq!(bus.pending(topic, group).await.expect("lag"), 0, "everything committed by the owner");
    bus.close();
}
