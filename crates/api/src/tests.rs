use std::time::Duration;

use aluskort_audit::AuditLog;
use aluskort_bus::MemoryBus;
use aluskort_investigate::PipelineSettings;
use aluskort_store::{ResponseStore, SqliteStore};
use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use metrics_exporter_prometheus::PrometheusBuilder;
use serde_json::Value;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use super::*;

pub(super) struct TestApp {
    pub(super) router: Router,
    bus: MemoryBus,
    shutdown: CancellationToken,
    store: Arc<SqliteStore>,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

async fn spawn_app() -> TestApp {
    spawn_app_with(None).await
}

async fn spawn_app_with(secret: Option<&str>) -> TestApp {
    spawn_app_authenticated(secret, crate::auth::Auth::disabled()).await
}

pub(super) async fn spawn_app_authenticated(secret: Option<&str>, auth: Arc<crate::auth::Auth>) -> TestApp {
    let store = Arc::new(SqliteStore::in_memory().await.expect("store"));
    let bus = MemoryBus::new();
    let audit = Arc::new(AuditLog::new(store.clone()));
    let responder = Arc::new(aluskort_respond::service::Responder {
        cases: store.clone(),
        responses: store.clone(),
        audit: Arc::clone(&audit),
        executors: Arc::new(aluskort_respond::executors::Executors::empty()),
        notifier: aluskort_respond::notify::Notifier::disabled(),
        config: aluskort_config::RespondConfig::default(),
        clock: aluskort_respond::service::Clock::system(),
        kill_switches: aluskort_config::SharedKillSwitches::default(),
    });
    let feedback = Arc::new(aluskort_respond::feedback::FeedbackStores {
        cases: store.clone(),
        responses: store.clone(),
        context: store.clone(),
        audit: Arc::clone(&audit),
        memory: None,
        policy: aluskort_respond::feedback::FpPolicy::default(),
    });
    let pipeline = Pipeline::new(Arc::new(bus.clone()), store.clone(), audit, PipelineSettings::default());
    let shutdown = CancellationToken::new();
    tokio::spawn(Arc::clone(&pipeline).run_parse_stage(shutdown.clone()));
    tokio::spawn(Arc::clone(&pipeline).run_investigate_stage(shutdown.clone()));
    let metrics = PrometheusBuilder::new().build_recorder().handle();
    let keep = Arc::clone(&store);
    let state = AppState {
        pipeline,
        store,
        bus: Arc::new(bus.clone()),
        metrics,
        gateway: None,
        responder: Some(responder),
        feedback: Some(feedback),
        audit: Some(keep.clone()),
        usage: Some(keep.clone()),
        auth,
        webhook_secret: secret.map(|s| aluskort_config::SecretString::new(s.to_owned())),
    };
    TestApp { router: router(state, 1024 * 1024), bus, shutdown, store: keep }
}

async fn call(app: &TestApp, method: &str, uri: &str, body: &str) -> (StatusCode, Value) {
    let request = Request::builder().method(method).uri(uri).body(Body::from(body.to_owned())).expect("request");
    let response = app.router.clone().oneshot(request).await.expect("response");
    let status = response.status();
    let bytes = response.into_body().collect().await.expect("body").to_bytes();
    let value = serde_json::from_slice(&bytes).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    (status, value)
}

pub(super) fn sentinel_line() -> String {
    let path = aluskort_testkit::sentinel_alerts_path();
    std::fs::read_to_string(path).expect("shared alerts").lines().next().expect("a line").to_owned()
}

#[tokio::test]
async fn health_ready_and_metrics_answer() {
    let app = spawn_app().await;
    assert_eq!(call(&app, "GET", "/health", "").await.0, StatusCode::OK);
    let (status, body) = call(&app, "GET", "/ready", "").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["checks"]["case_store"]["ok"], true);
    assert_eq!(body["degradation_level"], "deterministic");
    assert_eq!(body["degradations"][0]["reason"], "no model provider configured");
    assert_eq!(call(&app, "GET", "/metrics", "").await.0, StatusCode::OK);
    app.bus.close();
    let (status, body) = call(&app, "GET", "/ready", "").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["checks"]["bus"]["ok"], false);
}

/// Degradation level 5: with the state store down the service is not ready and says
/// `passthrough` (alerts stay on the bus, nothing is acknowledged).
#[tokio::test]
async fn ready_shows_passthrough_while_the_store_is_down() {
    let app = spawn_app().await;
    app.store.close().await;
    let (status, body) = call(&app, "GET", "/ready", "").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["degradation_level"], "passthrough");
    assert_eq!(body["checks"]["case_store"]["ok"], false);
    let levels: Vec<&str> = body["degradations"].as_array().expect("list").iter().filter_map(|d| d["level"].as_str()).collect();
    assert_eq!(levels, vec!["passthrough", "deterministic"]);
}

#[tokio::test]
async fn posted_alerts_are_investigated_and_queryable() {
    let app = spawn_app().await;
    let body = format!("{}\nnot json\n", sentinel_line());
    let (status, response) = call(&app, "POST", "/v1/alerts", &body).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{response}");
    assert_eq!(response["accepted"].as_array().map(Vec::len), Some(1));
    assert_eq!(response["rejected"][0]["location"], "request:2");

    let mut listed = Value::Null;
    for _ in 0..200 {
        let (_, body) = call(&app, "GET", "/v1/investigations?state=awaiting_human", "").await;
        if body["count"] == 1 {
            listed = body;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let investigation = &listed["investigations"][0];
    assert_eq!(investigation["alert_id"], "197c2262-2cd9-4ca0-4c33-add856f8af63");
    let id = investigation["investigation_id"].as_str().expect("id").to_owned();
    let (status, detail) = call(&app, "GET", &format!("/v1/investigations/{id}"), "").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(detail["graph_state"]["state"], "awaiting_human");
    assert!(detail["graph_state"]["decision_chain"].as_array().is_some_and(|chain| chain.len() >= 3));
}

/// `/v1/audit/verify` and `/v1/audit/evidence-package/{id}` (§3.8): the chain verifies and a
/// posted alert's investigation comes back as a package that verifies on its own.
#[tokio::test]
async fn the_audit_chain_and_evidence_packages_are_served() {
    let app = spawn_app().await;
    let (status, _) = call(&app, "POST", "/v1/alerts", &sentinel_line()).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let mut id = None;
    for _ in 0..200 {
        let (_, body) = call(&app, "GET", "/v1/investigations?state=awaiting_human", "").await;
        if let Some(found) = body["investigations"][0]["investigation_id"].as_str() {
            id = Some(found.to_owned());
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let id = id.expect("investigated");
    let (status, report) = call(&app, "GET", "/v1/audit/verify", "").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(report["valid"], true, "{report}");
    assert!(report["records"].as_u64().is_some_and(|records| records >= 4), "{report}");

    let (status, package) = call(&app, "GET", &format!("/v1/audit/evidence-package/{id}"), "").await;
    assert_eq!(status, StatusCode::OK, "{package}");
    assert_eq!(package["investigation_id"], id.as_str());
    let decoded: aluskort_audit::evidence::EvidencePackage = serde_json::from_value(package).expect("a package");
    assert!(aluskort_audit::evidence::verify_package(&decoded).is_ok());

    let (status, body) = call(&app, "GET", "/v1/audit/evidence-package/nope", "").await;
    assert_eq!((status, body["field"].as_str()), (StatusCode::BAD_REQUEST, Some("id")));
    let (status, _) = call(&app, "GET", "/v1/audit/evidence-package/0190f000-0000-7000-8000-000000000000", "").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

/// `GET /v1/incidents` and `/v1/incidents/{id}`: the incident an investigated alert joined, with
/// its members; `/v1/fp-patterns` lists patterns and names a bad status.
#[tokio::test]
async fn incidents_and_fp_patterns_are_served() {
    let app = spawn_app().await;
    let (status, _) = call(&app, "POST", "/v1/alerts", &sentinel_line()).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let mut investigation = Value::Null;
    for _ in 0..200 {
        let (_, body) = call(&app, "GET", "/v1/investigations?state=awaiting_human", "").await;
        if body["count"] == 1 {
            investigation = body["investigations"][0].clone();
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let incident_id = investigation["incident_id"].as_str().expect("grouped").to_owned();
    let tenant = investigation["tenant_id"].as_str().expect("tenant").to_owned();
    let (status, incident) = call(&app, "GET", &format!("/v1/incidents/{incident_id}"), "").await;
    assert_eq!(status, StatusCode::OK, "{incident}");
    assert_eq!(incident["incident"]["alert_ids"][0], investigation["alert_id"]);
    assert!(incident["incident"]["members"][0]["keys"].as_array().is_some_and(|keys| !keys.is_empty()), "{incident}");
    // The alert's activity is from June 2024: a window around it finds the incident, the last week does not.
    let (status, listed) =
        call(&app, "GET", &format!("/v1/incidents?tenant={tenant}&since=2024-06-01T00:00:00Z&until=2024-07-31T00:00:00Z"), "").await;
    assert_eq!((status, listed["count"].as_u64()), (StatusCode::OK, Some(1)), "{listed} {incident}");
    assert_eq!(listed["next_cursor"], Value::Null, "one incident: no next page");
    let week_ago = (chrono::Utc::now() - chrono::Duration::days(7)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let (_, recent) = call(&app, "GET", &format!("/v1/incidents?tenant={tenant}&since={week_ago}"), "").await;
    assert_eq!(recent["count"], 0);
    let (status, body) = call(&app, "GET", "/v1/incidents", "").await;
    assert_eq!((status, body["count"].as_u64()), (StatusCode::OK, Some(1)), "every tenant's for a caller of every tenant");
    let (status, body) = call(&app, "GET", "/v1/incidents?since=2024-07-31T00:00:00Z&until=2024-06-01T00:00:00Z", "").await;
    assert_eq!((status, body["field"].as_str()), (StatusCode::BAD_REQUEST, Some("since")));
    let (status, body) = call(&app, "GET", "/v1/fp-patterns", "").await;
    assert_eq!((status, body["count"].as_u64()), (StatusCode::OK, Some(0)));
    let (status, body) = call(&app, "GET", "/v1/fp-patterns?status=bogus", "").await;
    assert_eq!((status, body["field"].as_str()), (StatusCode::BAD_REQUEST, Some("status")));
}

/// `GET /v1/stream` (live updates): an investigation saved after the client connected arrives as
/// `investigation` events, up to its settled state.
#[tokio::test]
async fn live_updates_stream_investigations_as_they_change() {
    let app = spawn_app().await;
    let request = Request::builder().uri("/v1/stream").body(Body::empty()).expect("request");
    let response = app.router.clone().oneshot(request).await.expect("response");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers().get("content-type").and_then(|v| v.to_str().ok()), Some("text/event-stream"));
    let mut body = response.into_body();
    let (status, _) = call(&app, "POST", "/v1/alerts", &sentinel_line()).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    let mut text = String::new();
    while !text.contains("\"state\":\"awaiting_human\"") {
        let frame =
            tokio::time::timeout_at(deadline, body.frame()).await.expect("the settled state in time").expect("open").expect("frame");
        if let Ok(data) = frame.into_data() {
            text.push_str(&String::from_utf8_lossy(&data));
        }
    }
    assert!(text.contains("event: investigation"), "{text}");
    assert!(text.contains("\"alert_id\":\"197c2262-2cd9-4ca0-4c33-add856f8af63\""), "{text}");
}

#[tokio::test]
async fn bad_requests_name_the_field() {
    let app = spawn_app().await;
    let (status, body) = call(&app, "GET", "/v1/investigations?state=bogus", "").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["field"], "state");
    let (status, body) = call(&app, "GET", "/v1/investigations?since=yesterday", "").await;
    assert_eq!((status, body["field"].as_str()), (StatusCode::BAD_REQUEST, Some("since")));
    let (status, body) = call(&app, "GET", "/v1/investigations/not-a-uuid", "").await;
    assert_eq!((status, body["field"].as_str()), (StatusCode::BAD_REQUEST, Some("id")));
    let (status, _) = call(&app, "GET", "/v1/investigations/0190f000-0000-7000-8000-000000000000", "").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, body) = call(&app, "POST", "/v1/alerts", "  ").await;
    assert_eq!((status, body["field"].as_str()), (StatusCode::BAD_REQUEST, Some("body")));
    let (status, _) = call(&app, "POST", "/v1/alerts", &"x".repeat(2 * 1024 * 1024)).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
}

async fn call_with(app: &TestApp, uri: &str, body: &str, signature: Option<String>) -> (StatusCode, Value) {
    let mut request = Request::builder().method("POST").uri(uri);
    if let Some(signature) = signature {
        request = request.header(SIGNATURE_HEADER, signature);
    }
    let response = app.router.clone().oneshot(request.body(Body::from(body.to_owned())).expect("request")).await.expect("response");
    let status = response.status();
    let bytes = response.into_body().collect().await.expect("body").to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

fn sign(secret: &str, body: &str) -> String {
    use hmac::Mac;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).expect("key");
    mac.update(body.as_bytes());
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// FR-ING-001/003: duplicates by (source, source alert id), heartbeats dropped, every outcome
/// listed with the alert id; Event Hubs and Splunk webhook bodies detected.
#[tokio::test]
async fn webhook_dedups_drops_heartbeats_and_detects_envelopes() {
    let app = spawn_app().await;
    let line = sentinel_line();
    let heartbeat = r#"{"SystemAlertId":"hb-1","AlertName":"Heartbeat","AlertSeverity":"Informational"}"#;
    let (status, body) = call(&app, "POST", "/v1/alerts", &format!("{line}\n{line}\n{heartbeat}\n")).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let statuses: Vec<&str> = body["accepted"].as_array().expect("list").iter().filter_map(|e| e["status"].as_str()).collect();
    assert_eq!(statuses, vec!["queued", "duplicate", "dropped"]);
    assert_eq!(body["accepted"][0]["alert_id"], "197c2262-2cd9-4ca0-4c33-add856f8af63");
    assert_eq!(body["accepted"][0]["source"], "sentinel");
    assert_eq!(body["accepted"][2]["reason"], "heartbeat");

    let event_hub = format!(r#"{{"records": [{line}]}}"#);
    let (status, body) = call(&app, "POST", "/v1/alerts", &event_hub).await;
    assert_eq!((status, body["accepted"][0]["status"].as_str()), (StatusCode::ACCEPTED, Some("duplicate")), "{body}");

    let splunk = r#"{"sid":"rt_scheduler__admin","search_name":"Brute Force - Rule","app":"SplunkEnterpriseSecuritySuite","owner":"admin",
        "results_link":"https://splunk.example/app/search","result":{"event_id":"E-77","urgency":"high","_time":"1700000000","src":"203.0.113.9"}}"#;
    let (status, body) = call(&app, "POST", "/v1/webhooks/splunk", splunk).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!((body["accepted"][0]["source"].as_str(), body["accepted"][0]["alert_id"].as_str()), (Some("splunk"), Some("E-77")));

    let (status, body) = call(&app, "POST", "/v1/alerts", r#"{"what": "not an alert"}"#).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["rejected"][0]["error"].as_str().is_some_and(|e| e.starts_with("unrecognised alert format")), "{body}");
}

#[tokio::test]
async fn signed_webhooks_refuse_missing_or_wrong_signatures() {
    let secret = "0123456789abcdef-webhook";
    let app = spawn_app_with(Some(secret)).await;
    let line = sentinel_line();
    let (status, body) = call_with(&app, "/v1/alerts", &line, None).await;
    assert_eq!((status, body["field"].as_str()), (StatusCode::UNAUTHORIZED, Some(SIGNATURE_HEADER)));
    let (status, body) = call_with(&app, "/v1/alerts", &line, Some(sign("another-secret-entirely", &line))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["reason"], "signature does not match the body");
    let (status, _) = call_with(&app, "/v1/alerts", &line, Some("sha256=zz".to_owned())).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, body) = call_with(&app, "/v1/alerts", &line, Some(sign(secret, &line))).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
}

/// FR-RSP-002: an investigation awaiting a human has an approval; deciding it over the API
/// records the actor and comment, a second decision is a conflict, and bad input names the field.
#[tokio::test]
async fn approvals_are_listed_and_decided_over_the_api() {
    let app = spawn_app().await;
    let (status, _) = call(&app, "POST", "/v1/alerts", &sentinel_line()).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let mut listed = Value::Null;
    for _ in 0..200 {
        let (_, body) = call(&app, "GET", "/v1/approvals", "").await;
        if body["count"] == 1 {
            listed = body;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let approval = &listed["approvals"][0];
    assert_eq!(approval["status"], "pending");
    let id = approval["approval_id"].as_str().expect("id").to_owned();
    let (status, detail) = call(&app, "GET", &format!("/v1/approvals/{id}"), "").await;
    assert_eq!((status, detail["approval"]["approval_id"].as_str()), (StatusCode::OK, Some(id.as_str())));

    let (status, body) = call(&app, "POST", &format!("/v1/approvals/{id}/approve"), r#"{"comment": "no actor"}"#).await;
    assert_eq!((status, body["field"].as_str()), (StatusCode::BAD_REQUEST, Some("actor")));
    let (status, body) =
        call(&app, "POST", &format!("/v1/approvals/{id}/reject"), r#"{"actor": "bob", "comment": "benign admin script"}"#).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["approval"]["status"], "rejected");
    assert_eq!(body["approval"]["decisions"][0]["comment"], "benign admin script");
    let (status, body) = call(&app, "POST", &format!("/v1/approvals/{id}/approve"), r#"{"actor": "carol"}"#).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    let (status, _) = call(&app, "POST", "/v1/approvals/no-such-approval/approve", r#"{"actor": "carol"}"#).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, body) = call(&app, "GET", "/v1/approvals?status=maybe", "").await;
    assert_eq!((status, body["field"].as_str()), (StatusCode::BAD_REQUEST, Some("status")));
    let (_, body) = call(&app, "GET", "/v1/approvals?status=rejected", "").await;
    assert_eq!(body["count"], 1);
    let (_, body) = call(&app, "GET", "/v1/investigations?state=closed", "").await;
    assert_eq!(body["count"], 1, "a rejected response closes the investigation");
}

/// FR-CSM-004: feedback is validated field by field, stored, and listed with the investigation.
#[tokio::test]
async fn feedback_is_validated_and_stored() {
    let app = spawn_app().await;
    call(&app, "POST", "/v1/alerts", &sentinel_line()).await;
    let mut id = String::new();
    for _ in 0..200 {
        let (_, body) = call(&app, "GET", "/v1/investigations", "").await;
        if let Some(found) = body["investigations"][0]["investigation_id"].as_str() {
            id = found.to_owned();
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let uri = format!("/v1/investigations/{id}/feedback");
    let (status, body) = call(&app, "POST", &uri, r#"{"actor": "alice", "correct": true}"#).await;
    assert_eq!((status, body["field"].as_str()), (StatusCode::BAD_REQUEST, Some("rating")));
    let (status, body) = call(&app, "POST", &uri, r#"{"actor": "alice", "correct": true, "rating": 9}"#).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, body) = call(&app, "POST", &uri, r#"{"actor": "alice", "correct": true, "rating": 4, "comment": "good call"}"#).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["feedback"]["rating"], 4);
    let (status, _) = call(
        &app,
        "POST",
        "/v1/investigations/0190f000-0000-7000-8000-000000000000/feedback",
        r#"{"actor": "a", "correct": true, "rating": 3}"#,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let stored = app.store.feedback_for(&id).await.expect("feedback");
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].comment, "good call");
}

/// The first `n` shared Sentinel alerts.
fn sentinel_lines(n: usize) -> String {
    let text = std::fs::read_to_string(aluskort_testkit::sentinel_alerts_path()).expect("shared alerts");
    text.lines().take(n).collect::<Vec<_>>().join("\n")
}

async fn settled(app: &TestApp, n: u64) {
    for _ in 0..500 {
        let (_, body) = call(app, "GET", "/v1/investigations?state=awaiting_human&limit=1000", "").await;
        let (_, closed) = call(app, "GET", "/v1/investigations?state=closed&limit=1000", "").await;
        if body["count"].as_u64().unwrap_or(0) + closed["count"].as_u64().unwrap_or(0) >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("{n} investigations never settled");
}

/// Follows `next_cursor` from `first` to the end, collecting `field` of every item of `list`.
async fn all_pages(app: &TestApp, first: &str, list: &str, field: &str) -> (Vec<String>, usize) {
    let mut uri = first.to_owned();
    let (mut items, mut pages) = (Vec::new(), 0);
    loop {
        let (status, body) = call(app, "GET", &uri, "").await;
        assert_eq!(status, StatusCode::OK, "{uri}: {body}");
        pages += 1;
        items.extend(body[list].as_array().expect("items").iter().map(|item| item[field].to_string()));
        match body["next_cursor"].as_str() {
            Some(cursor) => uri = format!("{first}&cursor={cursor}"),
            None => return (items, pages),
        }
        assert!(pages < 50, "paging ends");
    }
}

/// Cursor pagination (issue 10): pages of every listing visit every item once; a cursor of one
/// listing is refused by another, naming the field.
#[tokio::test]
async fn listings_are_cursor_paged() {
    let app = spawn_app().await;
    let (status, body) = call(&app, "POST", "/v1/alerts", &sentinel_lines(5)).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let accepted = body["accepted"].as_array().map_or(0, |entries| entries.iter().filter(|entry| entry["status"] == "queued").count());
    assert!(accepted >= 4, "{body}");
    settled(&app, accepted as u64).await;

    let (unpaged, _) = all_pages(&app, "/v1/investigations?limit=1000", "investigations", "investigation_id").await;
    let (paged, pages) = all_pages(&app, "/v1/investigations?limit=2", "investigations", "investigation_id").await;
    assert_eq!(unpaged.len(), accepted);
    assert_eq!(paged, unpaged, "pages of 2 visit every investigation once, in order");
    assert_eq!(pages, accepted.div_ceil(2) + usize::from(accepted % 2 == 0), "a full last page is followed by an empty one");

    let (alerts, _) = all_pages(&app, "/v1/alerts?limit=2", "alerts", "alert_id").await;
    assert_eq!(alerts.len(), accepted);
    let (_, listed) = call(&app, "GET", "/v1/alerts?limit=1", "").await;
    let alert = &listed["alerts"][0];
    assert!(alert["investigation_id"].is_string() && alert["state"].is_string(), "{listed}");
    let (status, one) = call(
        &app,
        "GET",
        &format!("/v1/alerts/{}?tenant={}", alert["alert_id"].as_str().expect("id"), alert["tenant_id"].as_str().expect("tenant")),
        "",
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{one}");
    assert_eq!(one["summary"]["investigation_id"], alert["investigation_id"]);
    assert!(one["alert"]["raw_payload"].is_object(), "the stored alert with its payload");
    let (status, body) = call(&app, "GET", "/v1/alerts?severity=severe", "").await;
    assert_eq!((status, body["field"].as_str()), (StatusCode::BAD_REQUEST, Some("severity")));

    let tenant = alert["tenant_id"].as_str().expect("tenant").to_owned();
    let (records, _) = all_pages(&app, &format!("/v1/audit/events?tenant={tenant}&limit=1000"), "events", "sequence_number").await;
    let (paged, _) = all_pages(&app, &format!("/v1/audit/events?tenant={tenant}&limit=3"), "events", "sequence_number").await;
    assert!(records.len() > accepted, "several records per alert");
    assert_eq!(paged, records);
    let expected: Vec<String> = (0..records.len()).map(|n| n.to_string()).collect();
    assert_eq!(records, expected, "chain order, no gaps");
    let (_, events) = call(&app, "GET", &format!("/v1/audit/events?tenant={tenant}&limit=1"), "").await;
    assert_eq!(events["chain_head"]["sequence_number"].as_u64(), Some(records.len() as u64 - 1));

    // A cursor is bound to its listing.
    let (_, page) = call(&app, "GET", "/v1/investigations?limit=1", "").await;
    let cursor = page["next_cursor"].as_str().expect("more than one").to_owned();
    let (status, body) = call(&app, "GET", &format!("/v1/alerts?cursor={cursor}"), "").await;
    assert_eq!((status, body["field"].as_str()), (StatusCode::BAD_REQUEST, Some("cursor")), "{body}");
    let (status, body) = call(&app, "GET", "/v1/investigations?cursor=garbage!", "").await;
    assert_eq!((status, body["field"].as_str()), (StatusCode::BAD_REQUEST, Some("cursor")));
    let (status, body) = call(&app, "GET", "/v1/approvals?limit=0", "").await;
    assert_eq!((status, body["field"].as_str()), (StatusCode::BAD_REQUEST, Some("limit")));
}

/// `/v1/llm/usage` sums the ledger; `/v1/degradation` says why; `/v1/playbooks` lists the set.
#[tokio::test]
async fn usage_degradation_and_playbooks_are_served() {
    use aluskort_store::UsageStore;
    let app = spawn_app().await;
    let now = chrono::Utc::now();
    for (n, outcome) in ["ok", "ok", "timeout"].iter().enumerate() {
        let call = aluskort_store::LlmCall {
            call_id: format!("c-{n}"),
            called_at: now - chrono::Duration::hours(1),
            tenant_id: "default".to_owned(),
            task: "reasoning".to_owned(),
            tier: "tier_1".to_owned(),
            provider: "anthropic".to_owned(),
            model: "claude-sonnet-4-5-20250929".to_owned(),
            outcome: (*outcome).to_owned(),
            input_tokens: 1_000,
            output_tokens: 200,
            cache_read_tokens: 0,
            cache_write_tokens: 0,
            cost_micros: 4_500,
            latency_ms: 900,
        };
        app.store.record_llm_call(&call).await.expect("record");
    }
    let (status, usage) = call(&app, "GET", "/v1/llm/usage", "").await;
    assert_eq!(status, StatusCode::OK, "{usage}");
    assert_eq!(usage["totals"]["calls"], 3);
    assert_eq!(usage["totals"]["failures"], 1);
    assert_eq!(usage["totals"]["input_tokens"], 3_000);
    assert!((usage["totals"]["cost_usd"].as_f64().expect("cost") - 0.0135).abs() < 1e-9, "{usage}");
    assert_eq!(usage["totals"]["mean_latency_ms"], 900);
    let (_, old) = call(&app, "GET", "/v1/llm/usage?until=2020-01-01T00:00:00Z", "").await;
    assert_eq!(old["totals"]["calls"], 0);

    let (status, degradation) = call(&app, "GET", "/v1/degradation", "").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(degradation["degradation_level"], "deterministic");
    assert_eq!(degradation["degradations"][0]["reason"], "no model provider configured");

    let (status, playbooks) = call(&app, "GET", "/v1/playbooks", "").await;
    assert_eq!((status, playbooks["response_enabled"].as_bool()), (StatusCode::OK, Some(false)), "none configured in this app");
}

/// The web UI is served by the binary itself, with a policy that allows only its own script.
#[tokio::test]
async fn the_web_ui_is_served_with_a_strict_content_security_policy() {
    let app = spawn_app().await;
    for (uri, kind, marker) in
        [("/ui/", "text/html", "app.js"), ("/ui/app.js", "text/javascript", "textContent"), ("/ui/app.css", "text/css", "--accent")]
    {
        let response =
            app.router.clone().oneshot(Request::builder().uri(uri).body(Body::empty()).expect("request")).await.expect("response");
        assert_eq!(response.status(), StatusCode::OK, "{uri}");
        let header = |name: &str| response.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
        assert!(header("content-type").starts_with(kind), "{uri}");
        assert!(header("content-security-policy").contains("script-src 'self'"), "{uri}");
        assert_eq!(header("x-content-type-options"), "nosniff");
        let body = response.into_body().collect().await.expect("body").to_bytes();
        assert!(String::from_utf8_lossy(&body).contains(marker), "{uri}");
    }
    let script = String::from_utf8_lossy(
        &app.router
            .clone()
            .oneshot(Request::builder().uri("/ui/app.js").body(Body::empty()).expect("r"))
            .await
            .expect("r")
            .into_body()
            .collect()
            .await
            .expect("b")
            .to_bytes(),
    )
    .into_owned();
    assert!(!script.contains("innerHTML"), "untrusted alert text is never parsed as HTML");
    let response = app.router.clone().oneshot(Request::builder().uri("/").body(Body::empty()).expect("request")).await.expect("response");
    assert_eq!(response.headers().get("location").and_then(|v| v.to_str().ok()), Some("/ui/"));
    let response = app
        .router
        .clone()
        .oneshot(Request::builder().uri("/ui/secrets.txt").body(Body::empty()).expect("request"))
        .await
        .expect("response");
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
}
