//! Who is calling (issue 10): an API key of `[api.auth]` (`Authorization: Bearer <key>` or
//! `X-API-Key: <key>`), or a bearer token of the `[api.auth.oidc]` issuer (see [`crate::oidc`]),
//! names a caller with a role and, optionally, the tenants it may see. There is
//! no default identity: a missing or unknown key is 401, a role or tenant the request needs and the
//! caller lacks is 403 (or 404 for a single resource of another tenant, which is not revealed).
//! Only with `[api.auth] disabled = true` (loopback only) is every request a local admin.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use aluskort_config::{AuthConfig, Permission, Role};
use axum::extract::FromRequestParts;
use axum::http::HeaderMap;
use axum::http::request::Parts;

use crate::AppState;
use crate::error::ApiError;

/// The configured keys, by digest, and the OIDC issuer whose tokens are accepted.
#[derive(Debug, Default)]
pub struct Auth {
    disabled: bool,
    keys: HashMap<[u8; 32], aluskort_config::ApiKey>,
    oidc: Option<crate::oidc::Oidc>,
}

impl Auth {
    pub fn new(config: &AuthConfig) -> Arc<Self> {
        Arc::new(Auth {
            disabled: config.disabled,
            keys: config.keys.iter().map(|key| (key.key_sha256, key.clone())).collect(),
            oidc: config.oidc.clone().map(crate::oidc::Oidc::new),
        })
    }

    /// Bearer tokens of `oidc` only (tests set how soon an unknown key id refetches the JWKS).
    pub fn with_oidc(oidc: crate::oidc::Oidc) -> Arc<Self> {
        Arc::new(Auth { disabled: false, keys: HashMap::new(), oidc: Some(oidc) })
    }

    /// Every request served as a local admin (tests and `[api.auth] disabled = true`).
    pub fn disabled() -> Arc<Self> {
        Arc::new(Auth { disabled: true, keys: HashMap::new(), oidc: None })
    }

    /// The caller the request's API key or (with `[api.auth.oidc]`) bearer token names.
    pub async fn authenticate(&self, headers: &HeaderMap) -> Result<Caller, ApiError> {
        if self.disabled {
            return Ok(Caller { name: None, role: Role::Admin, tenants: None });
        }
        if let Some(oidc) = &self.oidc
            && let Some(token) = headers
                .get("authorization")
                .and_then(|value| value.to_str().ok())
                .and_then(|value| value.strip_prefix("Bearer "))
                .map(str::trim)
                .filter(|token| token.split('.').count() == 3)
        {
            return oidc.caller(token).await;
        }
        let unauthorized = |field: &str, reason: &str| ApiError::Unauthorized { field: field.to_owned(), reason: reason.to_owned() };
        let presented = match (headers.get("authorization"), headers.get("x-api-key")) {
            (Some(value), _) => value
                .to_str()
                .ok()
                .and_then(|value| value.strip_prefix("Bearer "))
                .map(str::trim)
                .ok_or_else(|| unauthorized("authorization", "expected `Bearer <API key>`"))?,
            (None, Some(value)) => value.to_str().map(str::trim).map_err(|_| unauthorized("x-api-key", "not a valid header value"))?,
            (None, None) if self.keys.is_empty() => {
                return Err(unauthorized(
                    "authorization",
                    "no API keys are configured ([[api.auth.keys]]; `aluskort api-key new` makes one); for local use only, set [api.auth] disabled = true",
                ));
            }
            (None, None) => return Err(unauthorized("authorization", "an API key is required (Authorization: Bearer <key>)")),
        };
        let key =
            self.keys.get(&aluskort_config::auth::key_digest(presented)).ok_or_else(|| unauthorized("authorization", "unknown API key"))?;
        Ok(Caller { name: Some(key.name.clone()), role: key.role, tenants: key.tenants.clone() })
    }
}

/// An authenticated caller.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The key's name; `None` when authentication is disabled (local use).
    pub name: Option<String>,
    pub role: Role,
    /// `None`: every tenant.
    pub tenants: Option<BTreeSet<String>>,
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        state.auth.authenticate(&parts.headers).await
    }
}

impl Caller {
    /// 403 unless the caller's role allows `permission`.
    pub fn require(&self, permission: Permission) -> Result<(), ApiError> {
        if self.role.allows(permission) {
            Ok(())
        } else {
            Err(ApiError::Forbidden(format!("role {} may not {}", self.role.as_str(), describe(permission))))
        }
    }

    pub fn sees(&self, tenant: &str) -> bool {
        self.tenants.as_ref().is_none_or(|tenants| tenants.contains(tenant))
    }

    /// The tenant a listing is limited to: the requested one if the caller sees it, the caller's
    /// only tenant if none was asked for; a caller of several tenants must name one.
    pub fn tenant_scope(&self, requested: Option<&str>) -> Result<Option<String>, ApiError> {
        match (&self.tenants, requested) {
            (None, requested) => Ok(requested.map(str::to_owned)),
            (Some(tenants), Some(requested)) if tenants.contains(requested) => Ok(Some(requested.to_owned())),
            (Some(_), Some(requested)) => Err(ApiError::Forbidden(format!("this key may not see tenant {requested}"))),
            (Some(tenants), None) if tenants.len() == 1 => Ok(tenants.iter().next().cloned()),
            (Some(_), None) => {
                Err(ApiError::BadRequest { field: "tenant".to_owned(), reason: "this key sees several tenants: name one".to_owned() })
            }
        }
    }

    /// [`Caller::tenant_scope`] as the tenant id a store filter takes (400 naming `tenant` when
    /// the requested one is not a valid tenant id).
    pub fn tenant_filter(&self, requested: Option<&str>) -> Result<Option<aluskort_core::TenantId>, ApiError> {
        self.tenant_scope(requested)?
            .map(|raw| {
                aluskort_core::TenantId::parse(&raw)
                    .map_err(|error| ApiError::BadRequest { field: "tenant".to_owned(), reason: error.to_string() })
            })
            .transpose()
    }

    /// Who acts: the key's caller; with authentication disabled, the `actor` the body names.
    pub fn actor(&self, named: Option<String>) -> Result<String, ApiError> {
        match (&self.name, named) {
            (Some(name), Some(named)) if named != *name => Err(ApiError::BadRequest {
                field: "actor".to_owned(),
                reason: format!("the key belongs to {name}; leave `actor` out or name the same caller"),
            }),
            (Some(name), _) => Ok(name.clone()),
            (None, Some(named)) if !named.trim().is_empty() => Ok(named),
            (None, _) => Err(ApiError::BadRequest { field: "actor".to_owned(), reason: "who acts must be named".to_owned() }),
        }
    }
}

fn describe(permission: Permission) -> &'static str {
    match permission {
        Permission::Ingest => "submit alerts",
        Permission::Read => "read investigations and approvals",
        Permission::Feedback => "give feedback",
        Permission::Decide => "approve or reject response actions",
        Permission::Audit => "read the audit trail",
    }
}
