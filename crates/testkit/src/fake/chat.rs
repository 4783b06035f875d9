//! Notification endpoints: a Slack incoming webhook ([`FakeSlack`]), a Microsoft Teams incoming
//! webhook / Workflows webhook ([`FakeTeams`]) and the PagerDuty Events API v2 ([`FakePagerDuty`]),
//! plus [`Silent`], a server that takes connections and never answers.
//!
//! Each fake checks the shape the real service requires and answers as it does, keeps the JSON
//! bodies it accepted ([`Inbox::messages`]), logs every request in [`Handle::requests`], and
//! serves a scripted [`Fault`] instead of the next answer when told to ([`Handle::fail_next`]).
//!
//! - Slack (<https://docs.slack.dev/messaging/sending-messages-using-incoming-webhooks>): `200 ok`;
//!   `400 invalid_payload` for a body that is not JSON, `400 no_text` without `text` or `blocks`,
//!   `400 invalid_blocks` for blocks over the Block Kit limits.
//! - Teams (<https://learn.microsoft.com/en-us/microsoftteams/platform/webhooks-and-connectors/how-to/connectors-using>):
//!   `202` (Workflows); `400` unless the body is a `message` whose attachments are Adaptive Cards.
//! - PagerDuty (<https://developer.pagerduty.com/docs/events-api-v2/trigger-events/>):
//!   `202 {"status":"success","message":"Event processed","dedup_key"}`; otherwise
//!   `400 {"status":"invalid event","message":"Event object is invalid","errors":[...]}`.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};

use super::{Fault, Handle, serve};

/// A PagerDuty integration key the fake accepts (any 32 characters pass the shape check).
pub const PAGERDUTY_ROUTING_KEY: &str = "0123456789abcdef0123456789abcdef";

/// Requests and accepted bodies of one fake.
#[derive(Debug, Clone, Default)]
pub struct Inbox {
    pub handle: Handle,
    accepted: Arc<Mutex<Vec<Value>>>,
}

impl Inbox {
    /// The JSON bodies accepted so far, in order.
    pub fn messages(&self) -> Vec<Value> {
        self.accepted.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    fn accept(&self, body: Value) {
        self.accepted.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(body);
    }

    /// Logs the request and returns the scripted fault for it, if any.
    fn fault(&self, line: &str) -> Option<Response> {
        self.handle.log(line.to_owned());
        self.handle.next_fault().and_then(|fault| fault.response())
    }
}

/// A Slack incoming webhook at `/services/T0000/B0000/<secret>`.
pub struct FakeSlack {
    pub addr: SocketAddr,
    pub inbox: Inbox,
}

impl FakeSlack {
    pub async fn start() -> Self {
        let inbox = Inbox::default();
        let router = Router::new().route("/services/{team}/{bot}/{secret}", post(slack)).with_state(inbox.clone());
        FakeSlack { addr: serve(router).await, inbox }
    }

    /// The webhook URL (its last segment stands for the secret).
    pub fn url(&self) -> String {
        format!("http://{}/services/T0000/B0000/slack-webhook-secret", self.addr)
    }

    pub fn messages(&self) -> Vec<Value> {
        self.inbox.messages()
    }

    pub fn handle(&self) -> &Handle {
        &self.inbox.handle
    }
}

async fn slack(State(inbox): State<Inbox>, body: Bytes) -> Response {
    if let Some(fault) = inbox.fault("POST slack webhook") {
        return fault;
    }
    let bad = |error: &str| (StatusCode::BAD_REQUEST, error.to_owned()).into_response();
    let Ok(message) = serde_json::from_slice::<Value>(&body) else { return bad("invalid_payload") };
    let text = message.get("text").and_then(Value::as_str).filter(|text| !text.trim().is_empty());
    let blocks = message.get("blocks").and_then(Value::as_array).filter(|blocks| !blocks.is_empty());
    if text.is_none() && blocks.is_none() {
        return bad("no_text");
    }
    if let Some(blocks) = blocks
        && !(blocks.len() <= 50 && blocks.iter().all(slack_block_valid))
    {
        return bad("invalid_blocks");
    }
    inbox.accept(message);
    (StatusCode::OK, "ok").into_response()
}

/// The Block Kit limits the notifier relies on (<https://api.slack.com/reference/block-kit/blocks>).
fn slack_block_valid(block: &Value) -> bool {
    let text_object = |text: &Value, max: usize, kinds: &[&str]| {
        kinds.contains(&text.get("type").and_then(Value::as_str).unwrap_or_default())
            && text.get("text").and_then(Value::as_str).is_some_and(|t| !t.is_empty() && t.chars().count() <= max)
    };
    match block.get("type").and_then(Value::as_str) {
        Some("header") => block.get("text").is_some_and(|text| text_object(text, 150, &["plain_text"])),
        Some("section") => {
            let text_ok = block.get("text").is_none_or(|text| text_object(text, 3000, &["plain_text", "mrkdwn"]));
            let fields = block.get("fields").and_then(Value::as_array);
            let fields_ok =
                fields.is_none_or(|fields| fields.len() <= 10 && fields.iter().all(|f| text_object(f, 2000, &["plain_text", "mrkdwn"])));
            text_ok && fields_ok && (block.get("text").is_some() || fields.is_some())
        }
        Some("context") => block
            .get("elements")
            .and_then(Value::as_array)
            .is_some_and(|elements| elements.len() <= 10 && elements.iter().all(|e| text_object(e, 3000, &["plain_text", "mrkdwn"]))),
        Some("divider") => true,
        _ => false,
    }
}

/// A Teams incoming webhook (Workflows) at `/webhookb2/<secret>`.
pub struct FakeTeams {
    pub addr: SocketAddr,
    pub inbox: Inbox,
}

impl FakeTeams {
    pub async fn start() -> Self {
        let inbox = Inbox::default();
        let router = Router::new().route("/webhookb2/{secret}", post(teams)).with_state(inbox.clone());
        FakeTeams { addr: serve(router).await, inbox }
    }

    pub fn url(&self) -> String {
        format!("http://{}/webhookb2/teams-webhook-secret", self.addr)
    }

    pub fn messages(&self) -> Vec<Value> {
        self.inbox.messages()
    }

    pub fn handle(&self) -> &Handle {
        &self.inbox.handle
    }

    /// What the older connectors answered when throttling: `200` with the error in the body.
    pub fn throttled_in_body() -> Fault {
        Fault::Status {
            status: 200,
            retry_after: None,
            body: "Microsoft Teams endpoint returned HTTP error 429 with ContextId tcid=0".to_owned(),
        }
    }
}

async fn teams(State(inbox): State<Inbox>, body: Bytes) -> Response {
    if let Some(fault) = inbox.fault("POST teams webhook") {
        return fault;
    }
    let Ok(message) = serde_json::from_slice::<Value>(&body) else {
        return (StatusCode::BAD_REQUEST, "Bad payload received by generic incoming webhook.").into_response();
    };
    if let Err(error) = teams_message_valid(&message) {
        return (StatusCode::BAD_REQUEST, format!("Bad payload received by generic incoming webhook: {error}")).into_response();
    }
    inbox.accept(message);
    StatusCode::ACCEPTED.into_response()
}

fn teams_message_valid(message: &Value) -> Result<(), String> {
    if message.get("type").and_then(Value::as_str) != Some("message") {
        return Err("\"type\" must be \"message\"".to_owned());
    }
    let attachments = message.get("attachments").and_then(Value::as_array).filter(|a| !a.is_empty()).ok_or("no attachments")?;
    for attachment in attachments {
        if attachment.get("contentType").and_then(Value::as_str) != Some("application/vnd.microsoft.card.adaptive") {
            return Err("contentType must be application/vnd.microsoft.card.adaptive".to_owned());
        }
        let card = attachment.get("content").ok_or("attachment without content")?;
        if card.get("type").and_then(Value::as_str) != Some("AdaptiveCard") || card.get("version").and_then(Value::as_str).is_none() {
            return Err("content must be an AdaptiveCard with a version".to_owned());
        }
        let body = card.get("body").and_then(Value::as_array).ok_or("card without body")?;
        for element in body {
            adaptive_element_valid(element)?;
        }
        for action in card.get("actions").and_then(Value::as_array).into_iter().flatten() {
            let url = action.get("url").and_then(Value::as_str).unwrap_or_default();
            if action.get("type").and_then(Value::as_str) != Some("Action.OpenUrl") || !url.starts_with("http") {
                return Err("only Action.OpenUrl with a URL is supported here".to_owned());
            }
        }
    }
    Ok(())
}

fn adaptive_element_valid(element: &Value) -> Result<(), String> {
    let string = |value: Option<&Value>| value.and_then(Value::as_str).is_some();
    let ok = match element.get("type").and_then(Value::as_str) {
        Some("TextBlock") => string(element.get("text")),
        Some("RichTextBlock") => element.get("inlines").and_then(Value::as_array).is_some_and(|inlines| {
            inlines.iter().all(|inline| inline.get("type").and_then(Value::as_str) == Some("TextRun") && string(inline.get("text")))
        }),
        Some("FactSet") => element
            .get("facts")
            .and_then(Value::as_array)
            .is_some_and(|facts| facts.iter().all(|fact| string(fact.get("title")) && string(fact.get("value")))),
        _ => false,
    };
    if ok { Ok(()) } else { Err(format!("invalid card element {element}")) }
}

/// The PagerDuty Events API v2 at `/v2/enqueue`.
pub struct FakePagerDuty {
    pub addr: SocketAddr,
    pub inbox: Inbox,
}

impl FakePagerDuty {
    pub async fn start() -> Self {
        let inbox = Inbox::default();
        let router = Router::new().route("/v2/enqueue", post(enqueue)).with_state(inbox.clone());
        FakePagerDuty { addr: serve(router).await, inbox }
    }

    pub fn url(&self) -> String {
        format!("http://{}/v2/enqueue", self.addr)
    }

    pub fn messages(&self) -> Vec<Value> {
        self.inbox.messages()
    }

    pub fn handle(&self) -> &Handle {
        &self.inbox.handle
    }
}

async fn enqueue(State(inbox): State<Inbox>, body: Bytes) -> Response {
    if let Some(fault) = inbox.fault("POST enqueue") {
        return fault;
    }
    let invalid = |errors: Vec<String>| {
        let body = json!({"status": "invalid event", "message": "Event object is invalid", "errors": errors});
        (StatusCode::BAD_REQUEST, axum::Json(body)).into_response()
    };
    let Ok(event) = serde_json::from_slice::<Value>(&body) else { return invalid(vec!["Malformed JSON".to_owned()]) };
    let errors = pagerduty_errors(&event);
    if !errors.is_empty() {
        return invalid(errors);
    }
    let dedup_key = event.get("dedup_key").cloned().unwrap_or_else(|| json!("generated-dedup-key"));
    inbox.accept(event);
    (StatusCode::ACCEPTED, axum::Json(json!({"status": "success", "message": "Event processed", "dedup_key": dedup_key}))).into_response()
}

fn text(value: Option<&Value>) -> Option<&str> {
    value.and_then(Value::as_str)
}

fn pagerduty_errors(event: &Value) -> Vec<String> {
    let mut errors = Vec::new();
    match text(event.get("routing_key")) {
        None => errors.push("'routing_key' is missing or blank".to_owned()),
        Some(key) if key.chars().count() != 32 => errors.push("Length of 'routing_key' is incorrect (should be 32 characters)".to_owned()),
        Some(_) => {}
    }
    let action = text(event.get("event_action"));
    if !matches!(action, Some("trigger" | "acknowledge" | "resolve")) {
        errors.push("'event_action' is missing or invalid (must be trigger, acknowledge or resolve)".to_owned());
    }
    if let Some(key) = event.get("dedup_key")
        && text(Some(key)).is_none_or(|key| key.chars().count() > 255)
    {
        errors.push("'dedup_key' must be a string of at most 255 characters".to_owned());
    }
    if action != Some("trigger") {
        if action.is_some() && event.get("dedup_key").is_none() {
            errors.push("'dedup_key' is required for acknowledge and resolve".to_owned());
        }
        return errors;
    }
    let payload = event.get("payload");
    match text(payload.and_then(|p| p.get("summary"))) {
        Some(summary) if !summary.trim().is_empty() && summary.chars().count() <= 1024 => {}
        Some(summary) if summary.chars().count() > 1024 => errors.push("'payload.summary' is longer than 1024 characters".to_owned()),
        _ => errors.push("'payload.summary' is missing or blank".to_owned()),
    }
    if text(payload.and_then(|p| p.get("source"))).is_none_or(|source| source.trim().is_empty()) {
        errors.push("'payload.source' is missing or blank".to_owned());
    }
    if !matches!(text(payload.and_then(|p| p.get("severity"))), Some("critical" | "error" | "warning" | "info")) {
        errors.push("'payload.severity' is missing or invalid (must be critical, error, warning or info)".to_owned());
    }
    if let Some(details) = payload.and_then(|p| p.get("custom_details"))
        && !details.is_object()
    {
        errors.push("'payload.custom_details' must be an object".to_owned());
    }
    for link in event.get("links").and_then(Value::as_array).into_iter().flatten() {
        if text(link.get("href")).is_none() {
            errors.push("each of 'links' needs an 'href'".to_owned());
        }
    }
    errors
}

/// Accepts connections and never answers: a hung receiver.
pub struct Silent {
    pub addr: SocketAddr,
}

impl Silent {
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind a loopback port");
        let addr = listener.local_addr().expect("bound address");
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((stream, _)) = listener.accept().await {
                held.push(stream);
            }
        });
        Silent { addr }
    }

    pub fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }
}
