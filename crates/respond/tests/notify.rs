//! Notifications against local fakes of Slack, Teams, PagerDuty and a generic webhook receiver:
//! the documented payloads, event subscriptions, retries, and never blocking the caller.

use std::time::Duration;

use aluskort_config::respond::DEFAULT_NOTIFY_EVENTS;
use aluskort_config::{NotifyKind, NotifyTarget, SecretString};
use aluskort_respond::notify::{Notification, Notifier, NotifierOptions, SIGNATURE_HEADER};
use aluskort_testkit::fake::Fault;
use aluskort_testkit::fake::chat::{FakePagerDuty, FakeSlack, FakeTeams, PAGERDUTY_ROUTING_KEY, Silent};
use aluskort_testkit::fake::receiver::{FakeReceiver, verify_signature};
use chrono::{TimeZone, Utc};
use serde_json::json;
use tokio_util::sync::CancellationToken;

fn target(kind: NotifyKind, events: &[&str]) -> NotifyTarget {
    NotifyTarget { kind, events: events.iter().map(|e| (*e).to_owned()).collect(), timeout: Duration::from_secs(10), max_retries: 3 }
}

fn slack(fake: &FakeSlack) -> NotifyKind {
    NotifyKind::Slack { url: SecretString::new(fake.url()) }
}

fn notification(event_type: &str) -> Notification {
    Notification {
        event_type: event_type.to_owned(),
        tenant_id: "acme".to_owned(),
        investigation_id: "inv-42".to_owned(),
        approval_id: Some("apr-7".to_owned()),
        alert_title: "Beacon from <host-7> to evil.example & <!channel>".to_owned(),
        severity: "critical".to_owned(),
        summary: "host-7 beaconed to a known C2 domain every 60 s.\nIsolation is proposed.".to_owned(),
        deadline: Some(Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0).single().expect("valid date")),
        actions: vec!["defender.isolate_machine host-7".to_owned(), "entra.revoke_sessions alice@acme.example".to_owned()],
        link: Some("https://aluskort.example/investigations/inv-42".to_owned()),
    }
}

/// Fast retries, so a test waits milliseconds rather than seconds of backoff.
fn quick() -> NotifierOptions {
    NotifierOptions { backoff_base: Duration::from_millis(10), ..NotifierOptions::default() }
}

/// Waits (in real time: the fakes are real sockets) until `done` holds.
async fn eventually(what: &str, done: impl Fn() -> bool) {
    let wait = async {
        while !done() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(30), wait).await.unwrap_or_else(|_| panic!("timed out waiting until {what}"));
}

#[tokio::test]
async fn slack_gets_blocks_with_the_untrusted_title_escaped() {
    let fake = FakeSlack::start().await;
    let notifier = Notifier::start(vec![target(slack(&fake), &DEFAULT_NOTIFY_EVENTS)], CancellationToken::new());

    notifier.notify(notification("approval.requested"));
    notifier.flush().await;

    let messages = fake.messages();
    assert_eq!(messages.len(), 1, "{:?}", fake.handle().requests());
    let message = &messages[0];
    let text = message["text"].as_str().expect("fallback text");
    assert!(text.starts_with("Approval requested (critical): "), "{text}");
    assert!(text.contains("&lt;host-7&gt; to evil.example &amp; &lt;!channel&gt;"), "{text}");
    assert!(!message.to_string().contains("<!channel>"), "no mention can be injected");
    assert_eq!(message["blocks"][0], json!({"type": "header", "text": {"type": "plain_text", "text": "Approval requested (critical)"}}));
    let rendered = message["blocks"].to_string();
    for expected in ["*Investigation*\\ninv-42", "*Approval*\\napr-7", "2026-03-01 12:00 UTC", "• defender.isolate_machine host-7"] {
        assert!(rendered.contains(expected), "{expected} missing from {rendered}");
    }
    assert_eq!(notifier.snapshot().sent, 1);
}

#[tokio::test]
async fn teams_gets_an_adaptive_card() {
    let fake = FakeTeams::start().await;
    let kind = NotifyKind::Teams { url: SecretString::new(fake.url()) };
    let notifier = Notifier::start(vec![target(kind, &DEFAULT_NOTIFY_EVENTS)], CancellationToken::new());

    notifier.notify(notification("approval.escalated"));
    notifier.flush().await;

    let messages = fake.messages();
    assert_eq!(messages.len(), 1, "{:?}", fake.handle().requests());
    let attachment = &messages[0]["attachments"][0];
    assert_eq!(attachment["contentType"], "application/vnd.microsoft.card.adaptive");
    let card = &attachment["content"];
    assert_eq!(card["$schema"], "http://adaptivecards.io/schemas/adaptive-card.json");
    assert_eq!(card["version"], "1.4");
    assert_eq!(card["body"][0]["text"], "Approval escalated (critical)");
    assert_eq!(card["body"][1]["inlines"][0]["text"], "Beacon from <host-7> to evil.example & <!channel>", "plain text, shown as typed");
    assert_eq!(
        card["actions"][0],
        json!({"type": "Action.OpenUrl", "title": "Open in ALUSKORT", "url": "https://aluskort.example/investigations/inv-42"})
    );
}

#[tokio::test]
async fn pagerduty_gets_a_trigger_event_and_a_resolve_once_decided() {
    let fake = FakePagerDuty::start().await;
    let kind = NotifyKind::PagerDuty { url: fake.url(), routing_key: SecretString::new(PAGERDUTY_ROUTING_KEY.to_owned()) };
    let notifier = Notifier::start(vec![target(kind, &["approval.requested", "approval.granted"])], CancellationToken::new());

    notifier.notify(notification("approval.requested"));
    notifier.notify(notification("approval.granted"));
    notifier.flush().await;

    let events = fake.messages();
    assert_eq!(events.len(), 2, "{:?}", fake.handle().requests());
    let trigger = &events[0];
    assert_eq!(trigger["routing_key"], PAGERDUTY_ROUTING_KEY);
    assert_eq!(trigger["event_action"], "trigger");
    assert_eq!(trigger["dedup_key"], "aluskort-apr-7");
    let payload = &trigger["payload"];
    assert_eq!(payload["summary"], "[critical] Approval requested: Beacon from <host-7> to evil.example & <!channel>");
    assert_eq!(
        (&payload["source"], &payload["severity"], &payload["class"]),
        (&json!("aluskort"), &json!("critical"), &json!("approval.requested"))
    );
    assert_eq!((&payload["component"], &payload["group"]), (&json!("approval"), &json!("acme")));
    assert_eq!(payload["custom_details"]["investigation_id"], "inv-42");
    assert_eq!(trigger["links"][0]["href"], "https://aluskort.example/investigations/inv-42");
    assert_eq!(events[1], json!({"routing_key": PAGERDUTY_ROUTING_KEY, "event_action": "resolve", "dedup_key": "aluskort-apr-7"}));
}

#[tokio::test]
async fn webhook_gets_the_notification_signed_with_the_secret() {
    let receiver = FakeReceiver::start_at("/hooks/soar").await;
    let kind = NotifyKind::Webhook { url: SecretString::new(receiver.url()), secret: Some(SecretString::new("hook-secret".to_owned())) };
    let notifier = Notifier::start(vec![target(kind, &DEFAULT_NOTIFY_EVENTS)], CancellationToken::new());

    let sent = notification("response.executed");
    notifier.notify(sent.clone());
    notifier.flush().await;

    let received = receiver.received();
    assert_eq!(received.len(), 1);
    let request = &received[0];
    assert_eq!(request.method, "POST");
    assert_eq!(request.json(), Some(serde_json::to_value(&sent).expect("serializable")));
    let signature = request.header(SIGNATURE_HEADER).expect("signed");
    assert!(verify_signature(b"hook-secret", &request.body, signature), "{signature}");
    assert!(!verify_signature(b"another-secret", &request.body, signature));
}

#[tokio::test]
async fn only_subscribed_events_are_sent() {
    let fake = FakeSlack::start().await;
    let notifier = Notifier::start(vec![target(slack(&fake), &["approval.escalated"])], CancellationToken::new());

    for event in ["approval.requested", "approval.escalated", "response.executed", "approval.reminder"] {
        notifier.notify(notification(event));
    }
    notifier.flush().await;

    let messages = fake.messages();
    assert_eq!(messages.len(), 1);
    assert!(messages[0]["text"].as_str().is_some_and(|text| text.starts_with("Approval escalated")));
}

#[tokio::test]
async fn a_throttled_request_is_retried_after_retry_after_and_delivered_once() {
    let fake = FakeSlack::start().await;
    fake.handle().fail_next(Fault::throttled(1));
    let notifier = Notifier::start_with(vec![target(slack(&fake), &DEFAULT_NOTIFY_EVENTS)], CancellationToken::new(), quick());

    notifier.notify(notification("approval.requested"));
    notifier.flush().await;

    assert_eq!(fake.handle().requests().len(), 2, "one 429, one success");
    assert_eq!(fake.messages().len(), 1);
    let snapshot = notifier.snapshot();
    assert_eq!((snapshot.sent, snapshot.failed, snapshot.pending), (1, 0, 0));
}

#[tokio::test]
async fn teams_throttling_reported_in_a_200_body_is_retried() {
    let fake = FakeTeams::start().await;
    fake.handle().fail_next(FakeTeams::throttled_in_body());
    let kind = NotifyKind::Teams { url: SecretString::new(fake.url()) };
    let notifier = Notifier::start_with(vec![target(kind, &DEFAULT_NOTIFY_EVENTS)], CancellationToken::new(), quick());

    notifier.notify(notification("approval.requested"));
    notifier.flush().await;

    assert_eq!(fake.handle().requests().len(), 2);
    assert_eq!(fake.messages().len(), 1);
}

#[tokio::test]
async fn server_errors_are_retried_up_to_max_retries_then_given_up() {
    let fake = FakePagerDuty::start().await;
    for _ in 0..10 {
        fake.handle().fail_next(Fault::unavailable());
    }
    let kind = NotifyKind::PagerDuty { url: fake.url(), routing_key: SecretString::new(PAGERDUTY_ROUTING_KEY.to_owned()) };
    let mut failing = target(kind, &DEFAULT_NOTIFY_EVENTS);
    failing.max_retries = 2;
    let notifier = Notifier::start_with(vec![failing], CancellationToken::new(), quick());

    notifier.notify(notification("approval.requested"));
    notifier.flush().await;

    assert_eq!(fake.handle().requests().len(), 3, "the first attempt and two retries");
    assert!(fake.messages().is_empty());
    let snapshot = notifier.snapshot();
    assert_eq!((snapshot.sent, snapshot.failed), (0, 1));
}

#[tokio::test]
async fn a_rejected_event_is_not_retried() {
    let fake = FakePagerDuty::start().await;
    let kind = NotifyKind::PagerDuty { url: fake.url(), routing_key: SecretString::new("too-short".to_owned()) };
    let notifier = Notifier::start_with(vec![target(kind, &DEFAULT_NOTIFY_EVENTS)], CancellationToken::new(), quick());

    notifier.notify(notification("approval.requested"));
    notifier.flush().await;

    assert_eq!(fake.handle().requests().len(), 1, "a 400 is not retried");
    assert_eq!(notifier.snapshot().failed, 1);
}

#[tokio::test]
async fn a_target_that_never_answers_does_not_hold_up_another() {
    let silent = Silent::start().await;
    let fake = FakeSlack::start().await;
    let hung = target(NotifyKind::Webhook { url: SecretString::new(silent.url()), secret: None }, &DEFAULT_NOTIFY_EVENTS);
    let cancel = CancellationToken::new();
    let notifier = Notifier::start(vec![hung, target(slack(&fake), &DEFAULT_NOTIFY_EVENTS)], cancel.clone());

    notifier.notify(notification("approval.requested"));
    eventually("slack has the message", || fake.messages().len() == 1).await;
    assert_eq!(notifier.snapshot().pending, 1, "the webhook is still waiting for an answer");

    cancel.cancel();
    notifier.flush().await;
    let snapshot = notifier.snapshot();
    assert_eq!((snapshot.sent, snapshot.failed, snapshot.pending), (1, 1, 0), "cancelling gives up the hung request");
}

#[tokio::test]
async fn a_full_queue_drops_without_blocking_the_caller() {
    let silent = Silent::start().await;
    let mut hung = target(NotifyKind::Webhook { url: SecretString::new(silent.url()), secret: None }, &DEFAULT_NOTIFY_EVENTS);
    hung.timeout = Duration::from_secs(300);
    let cancel = CancellationToken::new();
    let options = NotifierOptions { queue_capacity: 4, ..quick() };
    let notifier = Notifier::start_with(vec![hung], cancel.clone(), options);

    // Every call returns although nothing is ever answered; at most 4 queued plus 1 in flight.
    for _ in 0..10 {
        notifier.notify(notification("approval.requested"));
    }
    let snapshot = notifier.snapshot();
    assert!((5..=6).contains(&snapshot.dropped), "{snapshot:?}");
    assert_eq!(snapshot.pending as u64 + snapshot.dropped, 10);

    cancel.cancel();
    notifier.flush().await;
    let snapshot = notifier.snapshot();
    assert_eq!(snapshot.pending, 0);
    assert_eq!(snapshot.sent + snapshot.failed + snapshot.dropped, 10, "{snapshot:?}");
}

#[tokio::test]
async fn shutdown_delivers_what_is_queued_then_takes_no_more() {
    let fake = FakeSlack::start().await;
    let notifier = Notifier::start(vec![target(slack(&fake), &DEFAULT_NOTIFY_EVENTS)], CancellationToken::new());
    let clone = notifier.clone();

    for _ in 0..3 {
        notifier.notify(notification("approval.requested"));
    }
    notifier.shutdown().await;
    assert_eq!(fake.messages().len(), 3);

    clone.notify(notification("approval.requested"));
    clone.flush().await;
    assert_eq!(fake.messages().len(), 3, "a notification after shutdown is dropped");
}

#[tokio::test]
async fn a_disabled_notifier_takes_notifications_and_does_nothing() {
    let notifier = Notifier::disabled();
    notifier.notify(notification("approval.requested"));
    notifier.flush().await;
    assert_eq!(notifier.snapshot(), Default::default());
    notifier.shutdown().await;
}

#[tokio::test]
async fn debug_output_holds_no_secret() {
    let targets = vec![
        target(
            NotifyKind::Slack { url: SecretString::new("https://hooks.slack.com/services/T1/B1/slack-secret".to_owned()) },
            &["approval.requested"],
        ),
        target(
            NotifyKind::Teams { url: SecretString::new("https://example.webhook.office.com/webhookb2/teams-secret".to_owned()) },
            &["a"],
        ),
        target(
            NotifyKind::PagerDuty {
                url: "https://events.pagerduty.com/v2/enqueue".to_owned(),
                routing_key: SecretString::new("pagerduty-routing-key-0123456789".to_owned()),
            },
            &["a"],
        ),
        target(
            NotifyKind::Webhook {
                url: SecretString::new("https://soar.example/hook?token=webhook-url-secret".to_owned()),
                secret: Some(SecretString::new("hmac-secret".to_owned())),
            },
            &["a"],
        ),
    ];
    let rendered_targets = format!("{targets:?}");
    let notifier = Notifier::start(targets, CancellationToken::new());
    let rendered = format!("{notifier:?} {rendered_targets}");
    for secret in ["slack-secret", "teams-secret", "pagerduty-routing-key", "webhook-url-secret", "hmac-secret"] {
        assert!(!rendered.contains(secret), "{secret} appears in {rendered}");
    }
    assert!(rendered.contains("slack") && rendered.contains("approval.requested"), "{rendered}");
}

#[tokio::test]
async fn the_fakes_reject_what_the_real_services_reject() {
    let client = reqwest::Client::new();
    let post = |url: String, body: serde_json::Value| client.post(url).json(&body).send();

    let slack = FakeSlack::start().await;
    let answer = post(slack.url(), json!({"username": "x"})).await.expect("answer");
    assert_eq!((answer.status().as_u16(), answer.text().await.expect("body")), (400, "no_text".to_owned()));

    let teams = FakeTeams::start().await;
    let card = json!({"type": "message", "attachments": [{"contentType": "application/json", "content": {}}]});
    assert_eq!(post(teams.url(), card).await.expect("answer").status().as_u16(), 400);

    let pagerduty = FakePagerDuty::start().await;
    let event = json!({"routing_key": PAGERDUTY_ROUTING_KEY, "event_action": "trigger", "payload": {"source": "x", "severity": "high"}});
    let answer = post(pagerduty.url(), event).await.expect("answer");
    assert_eq!(answer.status().as_u16(), 400);
    let body: serde_json::Value = answer.json().await.expect("JSON");
    assert_eq!(body["status"], "invalid event");
    assert_eq!(body["errors"].as_array().map(Vec::len), Some(2), "summary missing, severity invalid: {body}");
    assert!(slack.messages().is_empty() && teams.messages().is_empty() && pagerduty.messages().is_empty());
}
