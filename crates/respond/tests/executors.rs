//! Action executors against local fakes of Defender for Endpoint, Microsoft Graph and a webhook
//! receiver, over HTTP: each execution is keyed by (investigation, step, approval), so a retry or
//! a redelivery never applies an action twice (FR-RSP-002), and what an execution sends is
//! describable without secrets for the audit record (FR-RSP-004).

use std::collections::BTreeMap;
use std::time::Duration;

use aluskort_config::{OAuthApi, RespondConfig, SecretString, WebhookTarget};
use aluskort_core::response::execution_key;
use aluskort_respond::action::{ActionError, ActionOutcome, ActionRequest};
use aluskort_respond::executors::Executors;
use aluskort_respond::executors::defender::marker;
use aluskort_testkit::fake::Fault;
use aluskort_testkit::fake::defender::{self, FakeDefender};
use aluskort_testkit::fake::graph::{self, FakeGraph};
use aluskort_testkit::fake::receiver::{FakeReceiver, verify_signature};
use serde_json::{Map, Value, json};
use tokio_util::sync::CancellationToken;

const WEBHOOK_SECRET: &str = "webhook-signing-secret";
const WEBHOOK_TOKEN: &str = "Bearer firewall-api-token";

fn request(action: &str, target: &str, approval: &str, params: Value) -> ActionRequest {
    let step_key = format!("contain/{action}/{target}");
    ActionRequest {
        execution_key: execution_key("inv-1", &step_key, Some(approval)),
        tenant_id: "acme".to_owned(),
        investigation_id: "inv-1".to_owned(),
        step_key,
        action: action.to_owned(),
        target: target.to_owned(),
        params: params.as_object().cloned().unwrap_or_else(Map::new),
    }
}

fn defender_api(fake: &FakeDefender) -> OAuthApi {
    OAuthApi {
        api_url: fake.api_url(),
        token_url: fake.token_url(),
        client_id: defender::CLIENT_ID.to_owned(),
        client_secret: SecretString::new(defender::CLIENT_SECRET.to_owned()),
        scope: defender::SCOPE.to_owned(),
        timeout: Duration::from_secs(5),
    }
}

fn graph_api(fake: &FakeGraph) -> OAuthApi {
    OAuthApi {
        api_url: fake.api_url(),
        token_url: fake.token_url(),
        client_id: graph::CLIENT_ID.to_owned(),
        client_secret: SecretString::new(graph::CLIENT_SECRET.to_owned()),
        scope: graph::SCOPE.to_owned(),
        timeout: Duration::from_secs(5),
    }
}

fn firewall(receiver: &FakeReceiver) -> WebhookTarget {
    WebhookTarget {
        name: "firewall".to_owned(),
        url: receiver.url(),
        method: "POST".to_owned(),
        headers: BTreeMap::from([("Authorization".to_owned(), SecretString::new(WEBHOOK_TOKEN.to_owned()))]),
        secret: Some(SecretString::new(WEBHOOK_SECRET.to_owned())),
        timeout: Duration::from_secs(5),
    }
}

fn executors(config: &RespondConfig) -> Executors {
    Executors::from_config(config, CancellationToken::new()).expect("executors build")
}

async fn defender_setup() -> (FakeDefender, Executors) {
    let fake = FakeDefender::start().await;
    fake.add_machine("1e5bc9d7e413ddd7902c2932e418702b84d0cc07", "ws-01.contoso.com");
    let config = RespondConfig { defender: Some(defender_api(&fake)), ..RespondConfig::default() };
    let executors = executors(&config);
    (fake, executors)
}

async fn graph_setup() -> (FakeGraph, Executors) {
    let fake = FakeGraph::start().await;
    fake.add_user("6f3c0e4a-0000-4000-8000-000000000001", "alice@contoso.com");
    fake.add_user("6f3c0e4a-0000-4000-8000-000000000002", "bob_fabrikam.com#EXT#@contoso.onmicrosoft.com");
    let config = RespondConfig { entra: Some(graph_api(&fake)), ..RespondConfig::default() };
    let executors = executors(&config);
    (fake, executors)
}

fn detail(outcome: ActionOutcome) -> Value {
    match outcome {
        ActionOutcome::Applied { detail } => detail,
        other => panic!("expected Applied, got {other:?}"),
    }
}

#[tokio::test]
async fn executors_exist_for_each_configured_api_and_webhook() {
    let (defender, graph, receiver) = (FakeDefender::start().await, FakeGraph::start().await, FakeReceiver::start().await);
    assert!(Executors::empty().names().is_empty());
    assert!(executors(&RespondConfig::default()).names().is_empty(), "nothing configured, nothing to run");
    let config = RespondConfig {
        defender: Some(defender_api(&defender)),
        entra: Some(graph_api(&graph)),
        webhooks: BTreeMap::from([("firewall".to_owned(), firewall(&receiver))]),
        ..RespondConfig::default()
    };
    let executors = executors(&config);
    assert_eq!(
        executors.names(),
        [
            "defender.collect_investigation_package",
            "defender.isolate_machine",
            "defender.release_machine",
            "defender.run_av_scan",
            "entra.disable_user",
            "entra.revoke_sessions",
            "webhook.firewall",
        ]
    );
    assert_eq!(executors.get("webhook.firewall").expect("configured").name(), "webhook.firewall");
    assert!(executors.get("webhook.other").is_none());
}

#[tokio::test]
async fn a_webhook_header_aluskort_sets_itself_is_a_config_error() {
    let receiver = FakeReceiver::start().await;
    let mut target = firewall(&receiver);
    target.headers.insert("Idempotency-Key".to_owned(), SecretString::new("fixed".to_owned()));
    let config = RespondConfig { webhooks: BTreeMap::from([("firewall".to_owned(), target)]), ..RespondConfig::default() };
    let error = Executors::from_config(&config, CancellationToken::new()).expect_err("refused");
    assert!(error.contains("respond.webhooks.firewall.headers"), "{error}");
}

/// FR-RSP-002: the approved isolation runs once, on the device the host name resolves to.
#[tokio::test]
async fn isolate_resolves_the_machine_by_dns_name_and_isolates_it_once() {
    let (fake, executors) = defender_setup().await;
    let isolate = executors.get("defender.isolate_machine").expect("built");
    let request = request("defender.isolate_machine", "WS-01.contoso.com", "appr-1", json!({"isolation_type": "selective"}));

    let detail = detail(isolate.execute(&request).await.expect("isolated"));

    assert_eq!(fake.isolations("ws-01.contoso.com"), 1);
    assert_eq!(detail["machine_id"], "1e5bc9d7e413ddd7902c2932e418702b84d0cc07");
    assert_eq!(detail["machine_action"]["type"], "Isolate");
    let action = &fake.actions()[0];
    assert_eq!(action.scope.as_deref(), Some("Selective"));
    assert!(action.requestor_comment.ends_with(&marker(&request.execution_key)), "{}", action.requestor_comment);
    assert_eq!(
        fake.handle.requests(),
        [
            "POST token",
            "GET machines $filter=computerDnsName eq 'ws-01.contoso.com'",
            "POST machines/1e5bc9d7e413ddd7902c2932e418702b84d0cc07/isolate",
        ]
    );
}

/// FR-RSP-002: a worker that died after isolating (its result lost) is followed by one that checks
/// first and finds the earlier attempt by its execution key, so the device is isolated once.
#[tokio::test]
async fn already_applied_finds_an_earlier_attempt_by_its_execution_key() {
    let (fake, executors) = defender_setup().await;
    let isolate = executors.get("defender.isolate_machine").expect("built");
    let first = request("defender.isolate_machine", "ws-01.contoso.com", "appr-1", json!({}));
    assert!(!isolate.already_applied(&first).await.expect("checked"), "nothing ran yet");

    isolate.execute(&first).await.expect("isolated");
    // The result never reached the store; the redelivered execution checks before running.
    let redelivered = first.clone();
    if !isolate.already_applied(&redelivered).await.expect("checked") {
        isolate.execute(&redelivered).await.expect("isolated");
    }
    assert_eq!(fake.isolations("ws-01.contoso.com"), 1, "isolated once");

    let other_approval = request("defender.isolate_machine", "ws-01.contoso.com", "appr-2", json!({}));
    assert!(!isolate.already_applied(&other_approval).await.expect("checked"), "another key is another execution");
    let action_id = fake.actions()[0].id.clone();
    fake.set_status(&action_id, "Failed");
    assert!(!isolate.already_applied(&first).await.expect("checked"), "a failed action did not take effect");
}

#[tokio::test]
async fn a_lost_answer_to_the_isolation_is_not_resent_blindly() {
    let (fake, executors) = defender_setup().await;
    let isolate = executors.get("defender.isolate_machine").expect("built");
    fake.lose_next_result();

    let detail =
        detail(isolate.execute(&request("defender.isolate_machine", "ws-01.contoso.com", "appr-1", json!({}))).await.expect("found"));

    assert_eq!(fake.isolations("ws-01.contoso.com"), 1, "the 503 did not lead to a second isolation");
    assert_eq!(detail["machine_action"]["type"], "Isolate");
}

#[tokio::test]
async fn throttling_is_retried_until_the_action_succeeds() {
    let (fake, executors) = defender_setup().await;
    let scan = executors.get("defender.run_av_scan").expect("built");
    let request = request(
        "defender.run_av_scan",
        "ignored",
        "appr-1",
        json!({"machine_id": "1e5bc9d7e413ddd7902c2932e418702b84d0cc07", "scan_type": "Full"}),
    );
    fake.handle.fail_next(Fault::throttled(0));

    scan.execute(&request).await.expect("scanned after the 429");

    assert_eq!(fake.scans("1e5bc9d7e413ddd7902c2932e418702b84d0cc07"), 1);
    assert_eq!(fake.actions()[0].scope.as_deref(), Some("Full"));
    let posts = fake.handle.requests().iter().filter(|line| line.ends_with("/runAntiVirusScan")).count();
    assert_eq!(posts, 2, "one throttled attempt, one that ran");
}

#[tokio::test]
async fn release_and_package_collection_send_their_own_verbs() {
    let (fake, executors) = defender_setup().await;
    for action in ["defender.release_machine", "defender.collect_investigation_package"] {
        let executor = executors.get(action).expect("built");
        executor.execute(&request(action, "ws-01.contoso.com", "appr-1", json!({"comment": "contain INC-7"}))).await.expect("applied");
    }
    assert_eq!(fake.releases("ws-01.contoso.com"), 1);
    assert_eq!(fake.package_collections("ws-01.contoso.com"), 1);
    assert!(fake.actions().iter().all(|a| a.requestor_comment.starts_with("contain INC-7 [aluskort:")));
}

#[tokio::test]
async fn an_unknown_device_or_a_bad_parameter_is_permanent() {
    let (fake, executors) = defender_setup().await;
    let isolate = executors.get("defender.isolate_machine").expect("built");

    let unknown = isolate.execute(&request("defender.isolate_machine", "nowhere.contoso.com", "appr-1", json!({}))).await;
    assert!(matches!(&unknown, Err(ActionError::Permanent(text)) if text.contains("nowhere.contoso.com")), "{unknown:?}");

    let bad = request("defender.isolate_machine", "ws-01.contoso.com", "appr-1", json!({"isolation_type": "Partial"}));
    assert!(matches!(isolate.describe(&bad), Err(ActionError::Permanent(_))));
    assert!(matches!(isolate.execute(&bad).await, Err(ActionError::Permanent(_))));

    let missing = request("defender.isolate_machine", "x", "appr-1", json!({"machine_id": "0000"}));
    let error = isolate.execute(&missing).await.expect_err("no such machine");
    assert!(matches!(&error, ActionError::Permanent(text) if text.contains("404")), "{error:?}");
    assert_eq!(fake.isolations("ws-01.contoso.com"), 0);
}

#[tokio::test]
async fn one_token_serves_several_actions_and_a_refused_one_is_replaced_once() {
    let (fake, executors) = defender_setup().await;
    let isolate = executors.get("defender.isolate_machine").expect("built");
    let scan = executors.get("defender.run_av_scan").expect("built");
    let request_1 = request("defender.isolate_machine", "ws-01.contoso.com", "appr-1", json!({}));
    isolate.execute(&request_1).await.expect("isolated");
    assert!(isolate.already_applied(&request_1).await.expect("checked"));
    scan.execute(&request("defender.run_av_scan", "ws-01.contoso.com", "appr-1", json!({}))).await.expect("scanned");
    assert_eq!(fake.token_requests(), 1, "the token is cached across executors");

    fake.revoke_tokens();
    scan.execute(&request("defender.run_av_scan", "ws-01.contoso.com", "appr-2", json!({}))).await.expect("scanned with a new token");
    assert_eq!(fake.token_requests(), 2);
    assert_eq!(fake.scans("ws-01.contoso.com"), 2);
}

#[tokio::test]
async fn a_wrong_client_secret_is_permanent() {
    let fake = FakeDefender::start().await;
    fake.add_machine("m1", "ws-01");
    let mut api = defender_api(&fake);
    api.client_secret = SecretString::new("wrong".to_owned());
    let executors = executors(&RespondConfig { defender: Some(api), ..RespondConfig::default() });
    let isolate = executors.get("defender.isolate_machine").expect("built");
    let error = isolate.execute(&request("defender.isolate_machine", "ws-01", "appr-1", json!({}))).await.expect_err("refused");
    assert!(matches!(&error, ActionError::Permanent(text) if text.contains("invalid_client") && !text.contains("wrong")), "{error:?}");
    assert_eq!(fake.isolations("m1"), 0);
}

/// FR-RSP-002: disabling is idempotent and visible, so a redelivery checks and stops.
#[tokio::test]
async fn disable_user_disables_once_and_then_reports_it_applied() {
    let (fake, executors) = graph_setup().await;
    let disable = executors.get("entra.disable_user").expect("built");
    let request = request("entra.disable_user", "alice@contoso.com", "appr-1", json!({}));
    assert!(!disable.already_applied(&request).await.expect("checked"));

    let detail = detail(disable.execute(&request).await.expect("disabled"));

    assert_eq!(detail["status"], 204);
    assert_eq!(fake.account_enabled("alice@contoso.com"), Some(false));
    assert_eq!(fake.disables("alice@contoso.com"), 1);
    assert!(disable.already_applied(&request).await.expect("checked"), "a disabled account is applied");
    assert_eq!(fake.token_requests(), 1);
}

#[tokio::test]
async fn a_guest_upn_is_sent_as_one_encoded_path_segment() {
    let (fake, executors) = graph_setup().await;
    let disable = executors.get("entra.disable_user").expect("built");
    let guest = "bob_fabrikam.com#EXT#@contoso.onmicrosoft.com";
    let request = request("entra.disable_user", guest, "appr-1", json!({}));
    let described = disable.describe(&request).expect("described");
    assert_eq!(described["url"], format!("{}/v1.0/users/bob_fabrikam.com%23EXT%23@contoso.onmicrosoft.com", fake.api_url()));
    disable.execute(&request).await.expect("disabled");
    assert_eq!(fake.disables(guest), 1);
}

#[tokio::test]
async fn revoke_sessions_revokes_and_cannot_tell_it_already_did() {
    let (fake, executors) = graph_setup().await;
    let revoke = executors.get("entra.revoke_sessions").expect("built");
    let request = request("entra.revoke_sessions", "6f3c0e4a-0000-4000-8000-000000000001", "appr-1", json!({}));

    let detail = detail(revoke.execute(&request).await.expect("revoked"));

    assert_eq!(detail["answer"]["value"], true);
    assert_eq!(fake.revocations("alice@contoso.com"), 1);
    assert!(!revoke.already_applied(&request).await.expect("checked"), "Graph cannot tell; revoking again is harmless");
}

#[tokio::test]
async fn graph_throttling_is_retried_and_an_unknown_user_is_permanent() {
    let (fake, executors) = graph_setup().await;
    let disable = executors.get("entra.disable_user").expect("built");
    fake.handle.fail_next(Fault::throttled(0));
    disable.execute(&request("entra.disable_user", "alice@contoso.com", "appr-1", json!({}))).await.expect("disabled after the 429");
    assert_eq!(fake.disables("alice@contoso.com"), 1);

    let error = disable.execute(&request("entra.disable_user", "mallory@contoso.com", "appr-1", json!({}))).await.expect_err("unknown");
    let ActionError::Permanent(text) = &error else { panic!("expected Permanent, got {error:?}") };
    assert!(text.contains("404") && text.contains("Request_ResourceNotFound"), "{text}");
}

#[tokio::test]
async fn webhook_signs_the_body_and_sends_the_execution_key_as_idempotency_key() {
    let receiver = FakeReceiver::start_at("/hooks/firewall").await;
    let config = RespondConfig { webhooks: BTreeMap::from([("firewall".to_owned(), firewall(&receiver))]), ..RespondConfig::default() };
    let block = executors(&config).get("webhook.firewall").expect("built");
    let request =
        request("webhook.firewall", "203.0.113.7", "appr-1", json!({"rule": "block", "duration_hours": 24, "action": "overridden"}));

    block.execute(&request).await.expect("delivered");
    // A redelivered execution sends the same key; the receiver applies it once.
    assert!(!block.already_applied(&request).await.expect("checked"));
    block.execute(&request).await.expect("delivered again");

    let received = receiver.received();
    assert_eq!(received.len(), 2);
    assert_eq!(receiver.effects(), 1, "deduplicated on Idempotency-Key");
    let first = &received[0];
    assert_eq!((first.method.as_str(), first.path.as_str()), ("POST", "/hooks/firewall"));
    assert_eq!(first.idempotency_key(), Some(request.execution_key.as_str()));
    assert_eq!(first.header("authorization"), Some(WEBHOOK_TOKEN));
    let signature = first.header("x-aluskort-signature").expect("signed");
    assert!(verify_signature(WEBHOOK_SECRET.as_bytes(), &first.body, signature));
    let body = first.json().expect("JSON body");
    assert_eq!(body["rule"], "block");
    assert_eq!(body["duration_hours"], 24);
    assert_eq!(body["action"], "webhook.firewall", "the execution's own fields win");
    assert_eq!(body["target"], "203.0.113.7");
    assert_eq!(body["execution_key"], request.execution_key.as_str());
    assert_eq!(body["tenant_id"], "acme");
    assert_eq!(body["investigation_id"], "inv-1");
    assert_eq!(body["step_key"], request.step_key.as_str());
}

#[tokio::test]
async fn webhook_retries_server_errors_and_reports_rejections_as_permanent() {
    let receiver = FakeReceiver::start().await;
    let soar = WebhookTarget { name: "soar".to_owned(), ..firewall(&receiver) };
    let config = RespondConfig { webhooks: BTreeMap::from([("soar".to_owned(), soar)]), ..RespondConfig::default() };
    let hook = executors(&config).get("webhook.soar").expect("built");
    let request = request("webhook.soar", "host-1", "appr-1", json!({}));

    receiver.fail_next(Fault::unavailable());
    hook.execute(&request).await.expect("delivered after the 503");
    assert_eq!((receiver.received().len(), receiver.effects()), (2, 1));

    for _ in 0..3 {
        receiver.fail_next(Fault::throttled(0));
    }
    let exhausted = hook.execute(&request).await;
    assert!(matches!(exhausted, Err(ActionError::Retryable(_))), "{exhausted:?}");

    receiver.respond_with(400, json!({"error": "unknown rule"}));
    let rejected = hook.execute(&request).await.expect_err("rejected");
    assert!(matches!(&rejected, ActionError::Permanent(text) if text.contains("400") && text.contains("unknown rule")), "{rejected:?}");
}

/// FR-RSP-004: what the audit record shows of an execution names the call, never a credential.
#[tokio::test]
async fn describe_shows_the_call_without_any_secret() {
    let (defender, graph, receiver) = (FakeDefender::start().await, FakeGraph::start().await, FakeReceiver::start().await);
    let config = RespondConfig {
        defender: Some(defender_api(&defender)),
        entra: Some(graph_api(&graph)),
        webhooks: BTreeMap::from([("firewall".to_owned(), firewall(&receiver))]),
        ..RespondConfig::default()
    };
    let executors = executors(&config);
    for name in executors.names() {
        let executor = executors.get(&name).expect("listed");
        let described = executor.describe(&request(&name, "ws-01.contoso.com", "appr-1", json!({"note": "n"}))).expect("described");
        for key in ["method", "url", "body"] {
            assert!(described.get(key).is_some(), "{name}: no {key} in {described}");
        }
        let text = described.to_string();
        for secret in [defender::CLIENT_SECRET, graph::CLIENT_SECRET, WEBHOOK_SECRET, WEBHOOK_TOKEN, "firewall-api-token"] {
            assert!(!text.contains(secret), "{name} describes a secret: {text}");
        }
    }
    let isolate = executors.get("defender.isolate_machine").expect("built").describe(&request(
        "defender.isolate_machine",
        "ws-01.contoso.com",
        "appr-1",
        json!({}),
    ));
    let isolate = isolate.expect("described");
    assert_eq!(isolate["method"], "POST");
    assert_eq!(isolate["body"]["IsolationType"], "Full");
    assert!(isolate["machine_lookup"].as_str().expect("lookup").contains("computerDnsName%20eq%20%27ws-01.contoso.com%27"));
    assert!(
        defender.handle.requests().is_empty() && graph.handle.requests().is_empty() && receiver.received().is_empty(),
        "describe sends nothing"
    );
}
