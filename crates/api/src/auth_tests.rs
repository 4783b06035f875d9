//! The authorisation matrix (issue 10): every role against every route, callers without a key or
//! with a wrong one, and tenant isolation.

use std::collections::BTreeSet;
use std::time::Duration;

use aluskort_config::{ApiKey, AuthConfig, Role};
use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

use super::tests::{TestApp, sentinel_line, spawn_app_authenticated};
use crate::auth::Auth;

fn key(name: &str, role: Role, tenants: Option<&[&str]>) -> ApiKey {
    ApiKey {
        name: name.to_owned(),
        key_sha256: aluskort_config::auth::key_digest(&secret(name)),
        role,
        tenants: tenants.map(|tenants| tenants.iter().map(|tenant| (*tenant).to_owned()).collect::<BTreeSet<_>>()),
    }
}

fn secret(name: &str) -> String {
    format!("{name}-key-0123456789abcdef0123456789")
}

async fn app() -> TestApp {
    let config = AuthConfig {
        disabled: false,
        keys: vec![
            key("ana", Role::Analyst, None),
            key("sam", Role::SeniorAnalyst, None),
            key("root", Role::Admin, None),
            key("aud", Role::AuditReader, None),
            key("other", Role::Analyst, Some(&["other-tenant"])),
        ],
        oidc: None,
    };
    spawn_app_authenticated(None, Auth::new(&config)).await
}

async fn call_as(app: &TestApp, caller: Option<&str>, method: &str, uri: &str, body: &str) -> (StatusCode, Value) {
    let mut request = Request::builder().method(method).uri(uri);
    if let Some(caller) = caller {
        request = request.header("authorization", format!("Bearer {}", secret(caller)));
    }
    let response = app.router.clone().oneshot(request.body(Body::from(body.to_owned())).expect("request")).await.expect("response");
    let status = response.status();
    let bytes = response.into_body().collect().await.expect("body").to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

/// One investigation to act on, posted by an admin.
async fn investigated(app: &TestApp) -> String {
    let (status, body) = call_as(app, Some("root"), "POST", "/v1/alerts", &sentinel_line()).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    for _ in 0..200 {
        let (_, body) = call_as(app, Some("root"), "GET", "/v1/investigations", "").await;
        if let Some(id) = body["investigations"][0]["investigation_id"].as_str() {
            return id.to_owned();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the alert was never investigated")
}

/// Every route, every role: who gets through (2xx, or 404 for a resource that does not exist)
/// and who is refused (401 without a key, 403 for a role that may not).
#[tokio::test]
async fn every_role_against_every_route() {
    let app = app().await;
    let id = investigated(&app).await;
    let tenant = call_as(&app, Some("root"), "GET", &format!("/v1/investigations/{id}"), "").await.1["investigation"]["tenant_id"]
        .as_str()
        .expect("tenant")
        .to_owned();
    let missing_approval = "/v1/approvals/no-such-approval";
    let feedback = r#"{"correct": true, "rating": 4}"#;
    // (method, path, body, expected status per caller: none, analyst, senior, admin, audit reader)
    let routes: Vec<(&str, String, &str, [u16; 5])> = vec![
        ("POST", "/v1/alerts".to_owned(), "{}", [401, 400, 400, 400, 403]),
        ("GET", "/v1/investigations".to_owned(), "", [401, 200, 200, 200, 200]),
        ("GET", format!("/v1/investigations/{id}"), "", [401, 200, 200, 200, 200]),
        ("POST", format!("/v1/investigations/{id}/feedback"), feedback, [401, 200, 200, 200, 403]),
        ("GET", "/v1/approvals".to_owned(), "", [401, 200, 200, 200, 200]),
        ("GET", missing_approval.to_owned(), "", [401, 404, 404, 404, 404]),
        ("POST", format!("{missing_approval}/approve"), "{}", [401, 403, 404, 404, 403]),
        ("POST", format!("{missing_approval}/reject"), "{}", [401, 403, 404, 404, 403]),
        ("GET", "/v1/audit/verify".to_owned(), "", [401, 403, 200, 200, 200]),
        ("GET", "/v1/stream?tenant=%20".to_owned(), "", [401, 400, 400, 400, 400]),
        ("GET", format!("/v1/incidents?tenant={tenant}"), "", [401, 200, 200, 200, 200]),
        ("GET", "/v1/incidents/no-such-incident".to_owned(), "", [401, 404, 404, 404, 404]),
        ("GET", "/v1/fp-patterns".to_owned(), "", [401, 200, 200, 200, 200]),
        ("GET", format!("/v1/audit/evidence-package/{id}"), "", [401, 403, 200, 200, 200]),
        ("GET", format!("/v1/audit/events?tenant={tenant}"), "", [401, 403, 200, 200, 200]),
        ("GET", "/v1/alerts".to_owned(), "", [401, 200, 200, 200, 200]),
        ("GET", format!("/v1/alerts/no-such-alert?tenant={tenant}"), "", [401, 404, 404, 404, 404]),
        ("GET", "/v1/playbooks".to_owned(), "", [401, 200, 200, 200, 200]),
        ("GET", "/v1/tenants".to_owned(), "", [401, 200, 200, 200, 200]),
        ("GET", "/v1/llm/usage".to_owned(), "", [401, 200, 200, 200, 200]),
        ("GET", "/v1/degradation".to_owned(), "", [401, 200, 200, 200, 200]),
        ("GET", "/v1/openapi.json".to_owned(), "", [200, 200, 200, 200, 200]),
    ];
    let callers = [None, Some("ana"), Some("sam"), Some("root"), Some("aud")];
    let mut seen = Vec::new();
    let mut expected = Vec::new();
    for (method, path, body, statuses) in &routes {
        for (caller, status) in callers.iter().zip(statuses) {
            let (got, _) = call_as(&app, *caller, method, path, body).await;
            seen.push(format!("{method} {path} as {}: {}", caller.unwrap_or("nobody"), got.as_u16()));
            expected.push(format!("{method} {path} as {}: {status}", caller.unwrap_or("nobody")));
        }
    }
    assert_eq!(seen, expected);
    // Probes stay open for the orchestrator.
    assert_eq!(call_as(&app, None, "GET", "/health", "").await.0, StatusCode::OK);
}

/// The OpenAPI document is generated from the route table the router mounts: every documented
/// path answers (no 404/405 from routing), every route documented as needing a permission refuses
/// a caller without credentials with the 401 the document lists, and public ones do not.
#[tokio::test]
async fn every_documented_route_is_served_and_guarded_as_documented() {
    let app = app().await;
    let (status, document) = call_as(&app, None, "GET", "/v1/openapi.json", "").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(document["openapi"], "3.1.0");
    let paths = document["paths"].as_object().expect("paths");
    let mut checked = 0;
    for route in crate::openapi::routes() {
        let spec = route.spec;
        let operation = &paths[spec.path][spec.method.as_str()];
        assert!(operation.is_object(), "{} {} is documented", spec.method.as_str(), spec.path);
        for name in spec.path.split('/').filter_map(|part| part.strip_prefix('{').and_then(|p| p.strip_suffix('}'))) {
            let declared = operation["parameters"].as_array().expect("parameters").iter().any(|p| p["name"] == name && p["in"] == "path");
            assert!(declared, "path parameter {name} of {} is declared", spec.path);
        }
        let uri = spec.path.replace("{id}", "x");
        let method = spec.method.as_str().to_uppercase();
        let (status, body) = call_as(&app, None, &method, &uri, "{}").await;
        match spec.access {
            crate::openapi::Access::Needs(_) => {
                assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {uri} without credentials: {body}");
                assert!(operation["responses"]["401"].is_object() && operation["responses"]["403"].is_object(), "{method} {uri}");
            }
            crate::openapi::Access::Public => {
                assert!(
                    ![StatusCode::UNAUTHORIZED, StatusCode::NOT_FOUND, StatusCode::METHOD_NOT_ALLOWED].contains(&status),
                    "{method} {uri}: {status}"
                );
                assert_eq!(operation["security"], serde_json::json!([]), "{method} {uri} is documented as public");
            }
        }
        checked += 1;
    }
    assert!(checked >= 26, "{checked} routes");
    assert_eq!(
        paths.values().map(|item| item.as_object().map_or(0, serde_json::Map::len)).sum::<usize>(),
        checked,
        "nothing documented that is not routed"
    );
}

#[tokio::test]
async fn unknown_or_malformed_keys_are_401_and_name_the_header() {
    let app = app().await;
    let (status, body) = call_as(&app, Some("mallory"), "GET", "/v1/investigations", "").await;
    assert_eq!(
        (status, body["field"].as_str(), body["reason"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("authorization"), Some("unknown API key"))
    );
    let request = Request::builder().uri("/v1/investigations").header("authorization", "Basic abc").body(Body::empty()).expect("request");
    let response = app.router.clone().oneshot(request).await.expect("response");
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let request = Request::builder().uri("/v1/investigations").header("x-api-key", secret("ana")).body(Body::empty()).expect("request");
    assert_eq!(app.router.clone().oneshot(request).await.expect("response").status(), StatusCode::OK, "X-API-Key works too");
    // No keys configured at all: still 401, saying how to configure them.
    let closed = spawn_app_authenticated(None, Auth::new(&AuthConfig::default())).await;
    let (status, body) = call_as(&closed, None, "GET", "/v1/investigations", "").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(body["reason"].as_str().is_some_and(|reason| reason.contains("no API keys are configured")), "{body}");
}

/// A key limited to one tenant sees only that tenant, files what it posts under it, and cannot
/// ask for another.
#[tokio::test]
async fn a_tenant_limited_key_sees_only_its_tenant() {
    let app = app().await;
    let id = investigated(&app).await;
    let (status, body) = call_as(&app, Some("other"), "GET", "/v1/investigations", "").await;
    assert_eq!((status, body["count"].as_u64()), (StatusCode::OK, Some(0)), "the admin's alert is another tenant's");
    let (_, seen) = call_as(&app, Some("other"), "GET", "/v1/tenants", "").await;
    assert_eq!(seen["count"], 0, "another tenant's name is not revealed: {seen}");
    let (_, all) = call_as(&app, Some("root"), "GET", "/v1/tenants", "").await;
    assert_eq!(all["count"], 1, "{all}");
    let (status, _) = call_as(&app, Some("other"), "GET", &format!("/v1/investigations/{id}"), "").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "not revealed");
    let (status, _) =
        call_as(&app, Some("other"), "POST", &format!("/v1/investigations/{id}/feedback"), r#"{"correct":true,"rating":3}"#).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let tenant = call_as(&app, Some("root"), "GET", &format!("/v1/investigations/{id}"), "").await.1["investigation"]["tenant_id"]
        .as_str()
        .expect("tenant")
        .to_owned();
    let (status, _) = call_as(&app, Some("other"), "GET", &format!("/v1/investigations?tenant={tenant}"), "").await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // What it posts is filed under its tenant.
    let line = sentinel_line().replacen("\"SystemAlertId\": \"", "\"SystemAlertId\": \"other-", 1);
    assert_ne!(line, sentinel_line(), "a different alert");
    let (status, body) = call_as(&app, Some("other"), "POST", "/v1/alerts", &line).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    for _ in 0..200 {
        let (_, body) = call_as(&app, Some("other"), "GET", "/v1/investigations", "").await;
        if body["count"] == 1 {
            assert_eq!(body["investigations"][0]["tenant_id"], "other-tenant");
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the tenant's own alert never showed");
}

/// The decision's actor is the key's caller; a body naming someone else is refused.
#[tokio::test]
async fn decisions_are_recorded_under_the_keys_caller() {
    let app = app().await;
    let (status, body) = call_as(&app, Some("sam"), "POST", "/v1/approvals/no-such/approve", r#"{"actor":"someone-else"}"#).await;
    assert_eq!((status, body["field"].as_str()), (StatusCode::NOT_FOUND, None), "existence is checked first: {body}");
    let id = investigated(&app).await;
    let (_, approvals) = call_as(&app, Some("sam"), "GET", &format!("/v1/approvals?investigation_id={id}"), "").await;
    let approval =
        approvals["approvals"][0]["approval_id"].as_str().map(str::to_owned).expect("an investigation awaiting a human has an approval");
    let (status, body) =
        call_as(&app, Some("sam"), "POST", &format!("/v1/approvals/{approval}/approve"), r#"{"actor":"someone-else"}"#).await;
    assert_eq!((status, body["field"].as_str()), (StatusCode::BAD_REQUEST, Some("actor")));
    let (status, body) = call_as(&app, Some("sam"), "POST", &format!("/v1/approvals/{approval}/approve"), r#"{"comment":"contain"}"#).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.to_string().contains("\"sam\""), "the approver is the key's caller: {body}");
}

fn oidc_config(issuer: String) -> aluskort_config::OidcConfig {
    aluskort_config::OidcConfig {
        issuer,
        audience: "api://aluskort".to_owned(),
        roles_claim: "roles".to_owned(),
        tenants_claim: "tenants".to_owned(),
        name_claim: "preferred_username".to_owned(),
    }
}

fn claims(roles: &[&str]) -> Value {
    let now = chrono::Utc::now().timestamp();
    serde_json::json!({"sub": "u-1", "preferred_username": "olivia@contoso.com", "aud": "api://aluskort",
        "iat": now, "nbf": now - 5, "exp": now + 600, "roles": roles})
}

async fn call_bearer(app: &TestApp, token: &str, method: &str, uri: &str, body: &str) -> (StatusCode, Value) {
    let request = Request::builder().method(method).uri(uri).header("authorization", format!("Bearer {token}"));
    let response = app.router.clone().oneshot(request.body(Body::from(body.to_owned())).expect("request")).await.expect("response");
    let status = response.status();
    let bytes = response.into_body().collect().await.expect("body").to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

/// OIDC bearer tokens (RS256 via the issuer's JWKS): roles from the token decide, and every way a
/// token can be wrong is 401 (no role: 403). Against a local issuer (crates/testkit fake::oidc).
#[tokio::test]
async fn oidc_tokens_are_verified_against_the_issuers_keys() {
    use aluskort_testkit::fake::oidc::FakeOidc;
    let issuer = FakeOidc::start().await;
    let app = spawn_app_authenticated(None, Auth::with_oidc(crate::oidc::Oidc::new(oidc_config(issuer.issuer())))).await;
    let senior = issuer.token(claims(&["senior_analyst"]));
    assert_eq!(call_bearer(&app, &senior, "GET", "/v1/investigations", "").await.0, StatusCode::OK);
    assert_eq!(call_bearer(&app, &senior, "POST", "/v1/approvals/none/approve", "{}").await.0, StatusCode::NOT_FOUND, "may decide");
    let analyst = issuer.token(claims(&["analyst", "unknown_role"]));
    assert_eq!(call_bearer(&app, &analyst, "POST", "/v1/approvals/none/approve", "{}").await.0, StatusCode::FORBIDDEN);
    let (status, body) = call_bearer(&app, &issuer.token(claims(&["viewer"])), "GET", "/v1/investigations", "").await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");

    let mut wrong_audience = claims(&["admin"]);
    wrong_audience["aud"] = Value::from("api://someone-else");
    let mut expired = claims(&["admin"]);
    expired["exp"] = Value::from(chrono::Utc::now().timestamp() - 3600);
    let mut other_issuer = claims(&["admin"]);
    other_issuer["iss"] = Value::from("https://evil.example");
    let unsigned = {
        use base64::Engine as _;
        let encode = |value: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(value.to_string());
        let mut claims = claims(&["admin"]);
        claims["iss"] = Value::from(issuer.issuer());
        format!("{}.{}.", encode(&serde_json::json!({"alg": "none", "typ": "JWT"})), encode(&claims))
    };
    for (what, token) in [
        ("audience", issuer.token(wrong_audience)),
        ("expired", issuer.token(expired)),
        ("issuer", issuer.token(other_issuer)),
        ("forged signature", issuer.forged_token(claims(&["admin"]))),
        ("alg none", unsigned),
    ] {
        let (status, body) = call_bearer(&app, &token, "GET", "/v1/investigations", "").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{what}: {body}");
    }
}

/// Key rotation: a token signed with a key the cache has not seen refetches the JWKS; tokens naming
/// unknown keys do not make the server fetch again and again.
#[tokio::test]
async fn oidc_key_rotation_is_followed_and_unknown_keys_do_not_hammer_the_issuer() {
    use aluskort_testkit::fake::oidc::FakeOidc;
    let issuer = FakeOidc::start().await;
    let rotating = crate::oidc::Oidc::with_refetch_after(oidc_config(issuer.issuer()), Duration::ZERO);
    let app = spawn_app_authenticated(None, Auth::with_oidc(rotating)).await;
    assert_eq!(call_bearer(&app, &issuer.token(claims(&["analyst"])), "GET", "/v1/investigations", "").await.0, StatusCode::OK);
    issuer.rotate();
    assert_eq!(call_bearer(&app, &issuer.token(claims(&["analyst"])), "GET", "/v1/investigations", "").await.0, StatusCode::OK, "new key");
    assert_eq!(issuer.jwks_fetches(), 2);

    let patient = spawn_app_authenticated(None, Auth::with_oidc(crate::oidc::Oidc::new(oidc_config(issuer.issuer())))).await;
    let before = issuer.jwks_fetches();
    for n in 0..5 {
        let token = issuer.token_with_kid(&format!("made-up-{n}"), claims(&["admin"]));
        assert_eq!(call_bearer(&patient, &token, "GET", "/v1/investigations", "").await.0, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(issuer.jwks_fetches() - before, 1, "one fetch, then the cache answers until REFETCH_AFTER");
}
