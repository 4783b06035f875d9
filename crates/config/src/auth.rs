//! `[api.auth]`: who may call the API (issue 10, NFR-CMP-001). Every `/v1` request carries an API
//! key (`Authorization: Bearer <key>` or `X-API-Key`) of a configured caller with a role; there is
//! no default identity. Authentication can be switched off only explicitly (`disabled = true`), for
//! local use, and the server then refuses to listen anywhere but loopback.

use std::collections::{BTreeSet, HashMap};

use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::interpolate;

/// Shortest API key accepted (characters).
pub const MIN_KEY_LENGTH: usize = 32;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAuth {
    /// Local use only: every request is served as a local admin; refused with a non-loopback
    /// `listen_addr`.
    pub disabled: Option<bool>,
    #[serde(default)]
    pub keys: Vec<RawApiKey>,
    /// Bearer tokens of an OpenID Connect issuer (Entra ID, Okta, Keycloak): RS256, keys from its JWKS.
    pub oidc: Option<RawOidc>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawOidc {
    /// The `iss` of accepted tokens; its `/.well-known/openid-configuration` names the JWKS.
    pub issuer: String,
    /// The `aud` accepted tokens must carry (the API's application id URI or client id).
    pub audience: String,
    /// The claim holding the caller's roles (default `roles`): analyst, senior_analyst, admin,
    /// audit_reader; the most privileged present counts.
    pub roles_claim: Option<String>,
    /// The claim listing the tenants the caller may see (default `tenants`); absent from a token:
    /// every tenant.
    pub tenants_claim: Option<String>,
    /// The claim naming the caller (default `preferred_username`, then `sub`).
    pub name_claim: Option<String>,
}

/// A validated `[api.auth.oidc]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OidcConfig {
    pub issuer: String,
    pub audience: String,
    pub roles_claim: String,
    pub tenants_claim: String,
    pub name_claim: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawApiKey {
    /// Who calls (recorded as the actor of what the key does).
    pub name: String,
    /// The key itself, usually `${VAR}`; at least [`MIN_KEY_LENGTH`] characters. Only its SHA-256 is kept.
    pub key: String,
    /// analyst, senior_analyst, admin or audit_reader.
    pub role: String,
    /// The tenants the key may see; absent: every tenant.
    pub tenants: Option<Vec<String>>,
}

/// The roles of the spec: what each may do is [`Role::allows`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    Analyst,
    SeniorAnalyst,
    Admin,
    AuditReader,
}

/// What a request needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permission {
    /// Submit alerts (`POST /v1/alerts`, the webhooks).
    Ingest,
    /// Read investigations and approvals.
    Read,
    /// Give feedback on an investigation.
    Feedback,
    /// Approve or reject response actions (senior analysts and admins only, FR-RSP-002).
    Decide,
    /// Read the audit trail and evidence packages.
    Audit,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Analyst, Role::SeniorAnalyst, Role::Admin, Role::AuditReader];

    pub const fn as_str(self) -> &'static str {
        match self {
            Role::Analyst => "analyst",
            Role::SeniorAnalyst => "senior_analyst",
            Role::Admin => "admin",
            Role::AuditReader => "audit_reader",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Role::ALL.into_iter().find(|role| role.as_str() == text)
    }

    pub const fn allows(self, permission: Permission) -> bool {
        match self {
            Role::Admin => true,
            Role::SeniorAnalyst => true,
            Role::Analyst => matches!(permission, Permission::Ingest | Permission::Read | Permission::Feedback),
            Role::AuditReader => matches!(permission, Permission::Read | Permission::Audit),
        }
    }
}

/// A configured caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKey {
    pub name: String,
    /// SHA-256 of the key.
    pub key_sha256: [u8; 32],
    pub role: Role,
    /// `None`: every tenant.
    pub tenants: Option<BTreeSet<String>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AuthConfig {
    pub disabled: bool,
    pub keys: Vec<ApiKey>,
    pub oidc: Option<OidcConfig>,
}

/// SHA-256 of an API key, as [`ApiKey::key_sha256`] keeps it.
pub fn key_digest(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

pub(crate) fn validate_auth(raw: RawAuth, env: &HashMap<String, String>, errors: &mut Vec<String>) -> AuthConfig {
    let disabled = raw.disabled.unwrap_or(false);
    if disabled && !raw.keys.is_empty() {
        errors.push("`api.auth`: disabled = true and keys configured; choose one".to_owned());
    }
    let mut names = BTreeSet::new();
    let mut digests = BTreeSet::new();
    let mut keys = Vec::with_capacity(raw.keys.len());
    for (index, key) in raw.keys.into_iter().enumerate() {
        let at = |field: &str| format!("`api.auth.keys[{index}].{field}`");
        if key.name.trim().is_empty() || key.name.chars().any(char::is_control) {
            errors.push(format!("{}: must name the caller", at("name")));
        } else if !names.insert(key.name.clone()) {
            errors.push(format!("{}: {:?} is used twice", at("name"), key.name));
        }
        let secret = interpolate(&format!("api.auth.keys[{index}].key"), &key.key, env, errors);
        if secret.chars().count() < MIN_KEY_LENGTH {
            errors.push(format!("{}: at least {MIN_KEY_LENGTH} characters (a random token, e.g. `openssl rand -hex 32`)", at("key")));
        }
        let digest = key_digest(&secret);
        if !digests.insert(digest) {
            errors.push(format!("{}: the same key as another caller", at("key")));
        }
        let Some(role) = Role::parse(&key.role) else {
            errors.push(format!("{}: {:?} is not one of analyst, senior_analyst, admin, audit_reader", at("role"), key.role));
            continue;
        };
        let tenants = key.tenants.map(|tenants| tenants.into_iter().map(|tenant| tenant.trim().to_owned()).collect::<BTreeSet<_>>());
        if tenants.as_ref().is_some_and(|tenants| tenants.is_empty() || tenants.iter().any(String::is_empty)) {
            errors.push(format!("{}: list at least one tenant, or leave it out for every tenant", at("tenants")));
        }
        keys.push(ApiKey { name: key.name, key_sha256: digest, role, tenants });
    }
    let oidc = raw.oidc.map(|oidc| {
        if disabled {
            errors.push("`api.auth`: disabled = true and oidc configured; choose one".to_owned());
        }
        let issuer = oidc.issuer.trim_end_matches('/').to_owned();
        crate::blobs::check_server_url("api.auth.oidc.issuer", &issuer, None, errors);
        if oidc.audience.trim().is_empty() {
            errors.push("`api.auth.oidc.audience`: required (the API's application id URI or client id)".to_owned());
        }
        OidcConfig {
            issuer,
            audience: oidc.audience,
            roles_claim: oidc.roles_claim.unwrap_or_else(|| "roles".to_owned()),
            tenants_claim: oidc.tenants_claim.unwrap_or_else(|| "tenants".to_owned()),
            name_claim: oidc.name_claim.unwrap_or_else(|| "preferred_username".to_owned()),
        }
    });
    AuthConfig { disabled, keys, oidc }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn validate(raw: RawAuth) -> (AuthConfig, Vec<String>) {
        let env = HashMap::from([("KEY".to_owned(), "k".repeat(40))]);
        let mut errors = Vec::new();
        (validate_auth(raw, &env, &mut errors), errors)
    }

    fn key(name: &str, key: &str, role: &str) -> RawApiKey {
        RawApiKey { name: name.to_owned(), key: key.to_owned(), role: role.to_owned(), tenants: None }
    }

    #[test]
    fn only_senior_analysts_and_admins_decide_and_audit_readers_change_nothing() {
        use Permission::*;
        let matrix: Vec<(Role, Vec<Permission>)> = Role::ALL
            .into_iter()
            .map(|role| (role, [Ingest, Read, Feedback, Decide, Audit].into_iter().filter(|p| role.allows(*p)).collect()))
            .collect();
        assert_eq!(
            matrix,
            vec![
                (Role::Analyst, vec![Ingest, Read, Feedback]),
                (Role::SeniorAnalyst, vec![Ingest, Read, Feedback, Decide, Audit]),
                (Role::Admin, vec![Ingest, Read, Feedback, Decide, Audit]),
                (Role::AuditReader, vec![Read, Audit]),
            ]
        );
    }

    #[test]
    fn keys_are_interpolated_hashed_and_checked() {
        let (config, errors) = validate(RawAuth { disabled: None, keys: vec![key("soar", "${KEY}", "analyst")], oidc: None });
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(config.keys[0].key_sha256, key_digest(&"k".repeat(40)));
        assert!(!format!("{config:?}").contains(&"k".repeat(40)), "only the digest is kept");

        let (_, errors) = validate(RawAuth {
            disabled: Some(true),
            keys: vec![key("a", "short", "root"), key("a", "${KEY}", "admin"), key("b", "${KEY}", "admin")],
            oidc: None,
        });
        assert_eq!(errors.len(), 5, "{errors:#?}");
        assert!(errors[0].contains("choose one"));
        assert!(errors.iter().any(|e| e.contains("keys[0].key`: at least 32")));
        assert!(errors.iter().any(|e| e.contains("\"root\" is not one of")));
        assert!(errors.iter().any(|e| e.contains("keys[1].name`: \"a\" is used twice")));
        assert!(errors.iter().any(|e| e.contains("keys[2].key`: the same key as another caller")));
    }
}
