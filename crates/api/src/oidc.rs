//! OpenID Connect bearer tokens (issue 10): RS256 JWTs of the configured issuer, checked against
//! its published keys (the `jwks_uri` of `{issuer}/.well-known/openid-configuration`, RFC 7517),
//! with `iss`, `aud`, `exp` and `nbf` enforced. Keys are cached; a token naming a key id the cache
//! lacks refetches the JWKS (the issuer rotated its keys), at most once per [`REFETCH_AFTER`], so
//! forged key ids cannot make the server hammer the issuer. Only RS256 is accepted (no `none`, no
//! HMAC with the public key).
//!
//! The caller's name is the `name_claim` (else `sub`); its role the most privileged of the
//! `roles_claim` values this API knows; its tenants the `tenants_claim` (absent: every tenant).

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use aluskort_config::{OidcConfig, Role};
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::Value;
use tokio::sync::Mutex;

use crate::auth::Caller;
use crate::error::ApiError;

/// Shortest time between two JWKS fetches caused by unknown key ids.
pub const REFETCH_AFTER: Duration = Duration::from_secs(30);
/// Longest a fetched JWKS is used before it is fetched again.
const JWKS_TTL: Duration = Duration::from_secs(3600);

#[derive(Debug)]
pub struct Oidc {
    config: OidcConfig,
    client: reqwest::Client,
    cache: Mutex<Option<(JwkSet, Instant)>>,
    refetch_after: Duration,
}

fn unauthorized(reason: impl Into<String>) -> ApiError {
    ApiError::Unauthorized { field: "authorization".to_owned(), reason: reason.into() }
}

impl Oidc {
    pub fn new(config: OidcConfig) -> Self {
        let client = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap_or_default();
        Oidc { config, client, cache: Mutex::new(None), refetch_after: REFETCH_AFTER }
    }

    /// As [`Oidc::new`], refetching for an unknown key id after `refetch_after` (tests).
    pub fn with_refetch_after(config: OidcConfig, refetch_after: Duration) -> Self {
        Oidc { refetch_after, ..Oidc::new(config) }
    }

    async fn fetch_jwks(&self) -> Result<JwkSet, ApiError> {
        let unavailable = |what: &str, error: &dyn std::fmt::Display| {
            tracing::warn!(issuer = %self.config.issuer, %error, "OIDC {what} could not be read");
            ApiError::Unauthorized { field: "authorization".to_owned(), reason: format!("the token issuer's {what} could not be read") }
        };
        let discovery: Value = self
            .client
            .get(format!("{}/.well-known/openid-configuration", self.config.issuer))
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(|error| unavailable("discovery document", &error.without_url()))?
            .json()
            .await
            .map_err(|error| unavailable("discovery document", &error))?;
        // OpenID Connect Discovery 1.0 §4.3: the document's issuer must be the one configured.
        if discovery.get("issuer").and_then(Value::as_str).map(|issuer| issuer.trim_end_matches('/')) != Some(self.config.issuer.as_str()) {
            return Err(unavailable("discovery document", &"its issuer is not the configured one"));
        }
        let jwks_uri =
            discovery.get("jwks_uri").and_then(Value::as_str).ok_or_else(|| unavailable("discovery document", &"no jwks_uri"))?;
        self.client
            .get(jwks_uri)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(|error| unavailable("JWKS", &error.without_url()))?
            .json::<JwkSet>()
            .await
            .map_err(|error| unavailable("JWKS", &error))
    }

    /// The decoding key for `kid`, from the cache or a fresh JWKS.
    async fn key(&self, kid: &str) -> Result<DecodingKey, ApiError> {
        let mut cache = self.cache.lock().await;
        let stale = cache.as_ref().is_none_or(|(_, fetched)| fetched.elapsed() > JWKS_TTL);
        let unknown = cache.as_ref().is_some_and(|(set, fetched)| set.find(kid).is_none() && fetched.elapsed() >= self.refetch_after);
        if stale || unknown {
            *cache = Some((self.fetch_jwks().await?, Instant::now()));
        }
        let jwk = cache.as_ref().and_then(|(set, _)| set.find(kid)).ok_or_else(|| unauthorized("the token's key is not the issuer's"))?;
        DecodingKey::from_jwk(jwk).map_err(|error| unauthorized(format!("the issuer's key cannot be used: {error}")))
    }

    /// The caller a bearer token names, after every check.
    pub async fn caller(&self, token: &str) -> Result<Caller, ApiError> {
        let header = jsonwebtoken::decode_header(token).map_err(|error| unauthorized(format!("not a JWT: {error}")))?;
        if header.alg != Algorithm::RS256 {
            return Err(unauthorized(format!("tokens must be RS256, not {:?}", header.alg)));
        }
        let kid = header.kid.ok_or_else(|| unauthorized("the token names no key (kid)"))?;
        let key = self.key(&kid).await?;
        let mut validation = Validation::new(Algorithm::RS256);
        validation.set_issuer(&[&self.config.issuer]);
        validation.set_audience(&[&self.config.audience]);
        validation.validate_nbf = true;
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        let claims = jsonwebtoken::decode::<Value>(token, &key, &validation)
            .map_err(|error| unauthorized(format!("the token does not verify: {error}")))?
            .claims;
        let strings = |name: &str| -> Option<Vec<String>> {
            match claims.get(name)? {
                Value::String(one) => Some(vec![one.clone()]),
                Value::Array(many) => Some(many.iter().filter_map(Value::as_str).map(str::to_owned).collect()),
                _ => Some(Vec::new()),
            }
        };
        let roles = strings(&self.config.roles_claim).unwrap_or_default();
        let role = [Role::Admin, Role::SeniorAnalyst, Role::Analyst, Role::AuditReader]
            .into_iter()
            .find(|role| roles.iter().any(|named| named == role.as_str()))
            .ok_or_else(|| ApiError::Forbidden(format!("the token carries no ALUSKORT role in `{}`", self.config.roles_claim)))?;
        let name = claims
            .get(&self.config.name_claim)
            .or_else(|| claims.get("sub"))
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| unauthorized("the token names no caller"))?;
        let tenants = strings(&self.config.tenants_claim).map(|tenants| tenants.into_iter().collect::<BTreeSet<_>>());
        Ok(Caller { name: Some(name), role, tenants })
    }
}
