//! Entra ID user actions through Microsoft Graph v1.0 (`entra.*`).
//!
//! The target is the user's object id or userPrincipalName (`params.user_id` overrides it), sent
//! as one percent-encoded path segment (a guest UPN's `#EXT#` becomes `%23EXT%23`).
//!
//! - `entra.disable_user`: `PATCH {api}/v1.0/users/{id | userPrincipalName}` `{"accountEnabled":
//!   false}`, answered `204 No Content` (update user,
//!   <https://learn.microsoft.com/graph/api/user-update?view=graph-rest-1.0>). Setting a value is
//!   idempotent; [`Executor::already_applied`] reads `GET .../users/{id}?$select=accountEnabled`
//!   (get user, <https://learn.microsoft.com/graph/api/user-get?view=graph-rest-1.0>) and reports
//!   a disabled account as applied.
//! - `entra.revoke_sessions`: `POST {api}/v1.0/users/{id}/revokeSignInSessions`, answered `200
//!   {"value": true}` (<https://learn.microsoft.com/graph/api/user-revokesigninsessions?view=graph-rest-1.0>).
//!   It resets `signInSessionsValidFromDateTime` to now, so running it again only moves that
//!   time forward: idempotent in effect. Graph cannot say whether an earlier call happened, so
//!   `already_applied` answers `false` and a redelivery revokes again, harmlessly.

use std::sync::Arc;

use aluskort_http::{VendorError, json_body};
use async_trait::async_trait;
use serde_json::{Value, json};
use tracing::info;

use super::oauth::OAuthClient;
use super::{action_error, answer_of, api_url, text_param};
use crate::action::{ActionError, ActionOutcome, ActionRequest, Executor};

/// The Entra ID actions ALUSKORT runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntraAction {
    DisableUser,
    RevokeSessions,
}

impl EntraAction {
    pub const ALL: [EntraAction; 2] = [EntraAction::DisableUser, EntraAction::RevokeSessions];

    /// The catalogue name.
    pub const fn action_name(self) -> &'static str {
        match self {
            EntraAction::DisableUser => "entra.disable_user",
            EntraAction::RevokeSessions => "entra.revoke_sessions",
        }
    }
}

/// One `entra.*` action.
#[derive(Debug)]
pub struct EntraExecutor {
    action: EntraAction,
    client: Arc<OAuthClient>,
}

impl EntraExecutor {
    pub fn new(action: EntraAction, client: Arc<OAuthClient>) -> Self {
        EntraExecutor { action, client }
    }

    fn user<'a>(&self, request: &'a ActionRequest) -> Result<&'a str, ActionError> {
        let user = text_param(request, "user_id")?.unwrap_or(request.target.as_str()).trim();
        if user.is_empty() {
            return Err(ActionError::Permanent(format!("{}: no target user (and no `user_id` parameter)", request.action)));
        }
        Ok(user)
    }

    /// Method, URL and body of the action's call.
    fn call(&self, request: &ActionRequest) -> Result<(reqwest::Method, reqwest::Url, Option<Value>), ActionError> {
        let user = self.user(request)?;
        let api = self.client.api_url();
        Ok(match self.action {
            EntraAction::DisableUser => {
                (reqwest::Method::PATCH, api_url(api, &["v1.0", "users", user], &[])?, Some(json!({"accountEnabled": false})))
            }
            EntraAction::RevokeSessions => {
                (reqwest::Method::POST, api_url(api, &["v1.0", "users", user, "revokeSignInSessions"], &[])?, None)
            }
        })
    }
}

#[async_trait]
impl Executor for EntraExecutor {
    fn name(&self) -> &str {
        self.action.action_name()
    }

    fn describe(&self, request: &ActionRequest) -> Result<Value, ActionError> {
        let (method, url, body) = self.call(request)?;
        Ok(json!({"method": method.as_str(), "url": url.as_str(), "body": body}))
    }

    async fn already_applied(&self, request: &ActionRequest) -> Result<bool, ActionError> {
        if self.action == EntraAction::RevokeSessions {
            return Ok(false);
        }
        let url = api_url(self.client.api_url(), &["v1.0", "users", self.user(request)?], &[("$select", "accountEnabled")])?;
        let fail = |error: VendorError| action_error(&request.action, "read user", error);
        let response = self.client.send("read user", |client, token| client.get(url.clone()).bearer_auth(token)).await.map_err(fail)?;
        let body = json_body("read user", response).await.map_err(fail)?;
        match body.get("accountEnabled").and_then(Value::as_bool) {
            Some(enabled) => Ok(!enabled),
            None => Err(fail(VendorError::Malformed("user has no boolean `accountEnabled`".to_owned()))),
        }
    }

    async fn execute(&self, request: &ActionRequest) -> Result<ActionOutcome, ActionError> {
        let (method, url, body) = self.call(request)?;
        let call = match self.action {
            EntraAction::DisableUser => "update user",
            EntraAction::RevokeSessions => "revoke sign-in sessions",
        };
        // Both calls are idempotent in effect, so the client's own retries are safe.
        let response = self
            .client
            .send(call, |client, token| {
                let builder = client.request(method.clone(), url.clone()).bearer_auth(token);
                match &body {
                    Some(body) => builder.json(body),
                    // Graph wants a length on a bodiless POST.
                    None => builder.header(reqwest::header::CONTENT_LENGTH, "0"),
                }
            })
            .await
            .map_err(|error| action_error(&request.action, call, error))?;
        let status = response.status().as_u16();
        let answer = answer_of(response).await;
        info!(action = self.name(), execution_key = %request.execution_key, status, "entra action applied");
        Ok(ActionOutcome::Applied { detail: json!({"status": status, "user": self.user(request)?, "answer": answer}) })
    }
}
