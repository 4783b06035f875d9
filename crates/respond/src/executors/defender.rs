//! Microsoft Defender for Endpoint machine actions (`defender.*`).
//!
//! - Device: the target is the device's DNS name as Defender reports it (`computerDnsName`,
//!   matched lowercased), looked up with `GET {api}/api/machines?$filter=computerDnsName eq
//!   '<name>'` (List machines API, <https://learn.microsoft.com/defender-endpoint/api/get-machines>;
//!   OData string literals double a `'`). `params.machine_id` skips the lookup. When several
//!   records share the name (a re-imaged device) the one seen last is used.
//! - Actions, each `POST {api}/api/machines/{id}/<verb>` answered `201` with a MachineAction:
//!   `isolate` `{"Comment","IsolationType":"Full"|"Selective"}`
//!   (<https://learn.microsoft.com/defender-endpoint/api/isolate-machine>), `unisolate`
//!   `{"Comment"}` (<https://learn.microsoft.com/defender-endpoint/api/unisolate-machine>),
//!   `runAntiVirusScan` `{"Comment","ScanType":"Quick"|"Full"}`
//!   (<https://learn.microsoft.com/defender-endpoint/api/run-av-scan>), `collectInvestigationPackage`
//!   `{"Comment"}` (<https://learn.microsoft.com/defender-endpoint/api/collect-investigation-package>).
//!   Params: `comment`, `isolation_type` (default `Full`), `scan_type` (default `Quick`).
//! - Idempotency: the API takes no idempotency key, so the comment ends with
//!   `[aluskort:<execution key>]`. [`Executor::already_applied`] lists the device's actions of the
//!   same type (`GET {api}/api/machineactions?$filter=machineId eq '<id>' and type eq '<Type>'`,
//!   List MachineActions API, <https://learn.microsoft.com/defender-endpoint/api/get-machineactions-collection>)
//!   and looks for that marker in `requestorComment` on an action whose `status` is not `Failed`,
//!   `TimeOut` or `Cancelled` (MachineAction resource,
//!   <https://learn.microsoft.com/defender-endpoint/api/machineaction>).
//!
//! The action request itself is never resent blindly: a `429` (refused before acting) is retried,
//! but after a `5xx` or a lost connection the executor first looks for the marker and reports the
//! action found instead of creating a second one.

use std::sync::Arc;

use aluskort_http::{VendorError, json_body};
use async_trait::async_trait;
use serde_json::{Map, Value, json};
use tracing::{info, warn};

use super::oauth::OAuthClient;
use super::{action_error, answer_of, api_url, text_param};
use crate::action::{ActionError, ActionOutcome, ActionRequest, Executor};

/// Statuses of a machine action that never took effect.
const NOT_APPLIED_STATUSES: [&str; 4] = ["Failed", "TimeOut", "Cancelled", "Canceled"];

/// Pages of machine actions read when looking for an earlier attempt (10 000 actions each).
const MAX_ACTION_PAGES: usize = 5;

/// The machine actions ALUSKORT runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MachineActionKind {
    Isolate,
    Release,
    AntivirusScan,
    CollectInvestigationPackage,
}

impl MachineActionKind {
    pub const ALL: [MachineActionKind; 4] = [
        MachineActionKind::Isolate,
        MachineActionKind::Release,
        MachineActionKind::AntivirusScan,
        MachineActionKind::CollectInvestigationPackage,
    ];

    /// The catalogue name.
    pub const fn action_name(self) -> &'static str {
        match self {
            MachineActionKind::Isolate => "defender.isolate_machine",
            MachineActionKind::Release => "defender.release_machine",
            MachineActionKind::AntivirusScan => "defender.run_av_scan",
            MachineActionKind::CollectInvestigationPackage => "defender.collect_investigation_package",
        }
    }

    /// The last path segment of the API call.
    pub const fn verb(self) -> &'static str {
        match self {
            MachineActionKind::Isolate => "isolate",
            MachineActionKind::Release => "unisolate",
            MachineActionKind::AntivirusScan => "runAntiVirusScan",
            MachineActionKind::CollectInvestigationPackage => "collectInvestigationPackage",
        }
    }

    /// The MachineAction `type` the call creates.
    pub const fn machine_action_type(self) -> &'static str {
        match self {
            MachineActionKind::Isolate => "Isolate",
            MachineActionKind::Release => "Unisolate",
            MachineActionKind::AntivirusScan => "RunAntiVirusScan",
            MachineActionKind::CollectInvestigationPackage => "CollectInvestigationPackage",
        }
    }
}

/// What the comment of an execution's machine action carries, for [`Executor::already_applied`].
pub fn marker(execution_key: &str) -> String {
    format!("[aluskort:{execution_key}]")
}

/// `'` doubled, as an OData string literal needs.
fn odata_string(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

/// One `defender.*` action.
#[derive(Debug)]
pub struct DefenderExecutor {
    kind: MachineActionKind,
    client: Arc<OAuthClient>,
}

impl DefenderExecutor {
    pub fn new(kind: MachineActionKind, client: Arc<OAuthClient>) -> Self {
        DefenderExecutor { kind, client }
    }

    /// The request body, with the execution marker at the end of the comment.
    fn body(&self, request: &ActionRequest) -> Result<Value, ActionError> {
        let comment = match text_param(request, "comment")? {
            Some(comment) => comment.to_owned(),
            None => format!("ALUSKORT investigation {} step {}", request.investigation_id, request.step_key),
        };
        let mut body = Map::new();
        body.insert("Comment".to_owned(), json!(format!("{comment} {}", marker(&request.execution_key))));
        let choice = |param: &str, field: &str, allowed: [&str; 2], default: &str| -> Result<(String, Value), ActionError> {
            let value = text_param(request, param)?.unwrap_or(default);
            let canonical = allowed.iter().find(|allowed| allowed.eq_ignore_ascii_case(value.trim())).ok_or_else(|| {
                ActionError::Permanent(format!("{}: `{param}` is {value:?}; expected {} or {}", request.action, allowed[0], allowed[1]))
            })?;
            Ok((field.to_owned(), json!(canonical)))
        };
        match self.kind {
            MachineActionKind::Isolate => {
                let (field, value) = choice("isolation_type", "IsolationType", ["Full", "Selective"], "Full")?;
                body.insert(field, value);
            }
            MachineActionKind::AntivirusScan => {
                let (field, value) = choice("scan_type", "ScanType", ["Quick", "Full"], "Quick")?;
                body.insert(field, value);
            }
            MachineActionKind::Release | MachineActionKind::CollectInvestigationPackage => {}
        }
        Ok(Value::Object(body))
    }

    /// The device lookup URL for the request's target.
    fn lookup_url(&self, request: &ActionRequest) -> Result<reqwest::Url, ActionError> {
        let host = request.target.trim().to_ascii_lowercase();
        if host.is_empty() {
            return Err(ActionError::Permanent(format!("{}: no target device (and no `machine_id` parameter)", request.action)));
        }
        let filter = format!("computerDnsName eq {}", odata_string(&host));
        api_url(self.client.api_url(), &["api", "machines"], &[("$filter", &filter)])
    }

    fn action_url(&self, machine_id: &str) -> Result<reqwest::Url, ActionError> {
        api_url(self.client.api_url(), &["api", "machines", machine_id, self.kind.verb()], &[])
    }

    /// The Defender machine id of the target.
    async fn machine_id(&self, request: &ActionRequest) -> Result<String, ActionError> {
        if let Some(id) = text_param(request, "machine_id")? {
            return Ok(id.trim().to_owned());
        }
        let url = self.lookup_url(request)?;
        let fail = |error: VendorError| action_error(&request.action, "machine lookup", error);
        let response =
            self.client.send("machine lookup", |client, token| client.get(url.clone()).bearer_auth(token)).await.map_err(fail)?;
        let body = json_body("machine lookup", response).await.map_err(fail)?;
        let machines = body
            .get("value")
            .and_then(Value::as_array)
            .ok_or_else(|| fail(VendorError::Malformed("machine list has no `value` array".to_owned())))?;
        // Latest `lastSeen` wins (ISO 8601 UTC strings order by time).
        let newest = machines
            .iter()
            .filter_map(|machine| Some((machine.get("lastSeen").and_then(Value::as_str).unwrap_or(""), machine.get("id")?.as_str()?)))
            .max_by(|a, b| a.0.cmp(b.0));
        match newest {
            Some((_, id)) => Ok(id.to_owned()),
            None => Err(ActionError::Permanent(format!("{}: no Defender device named {:?}", request.action, request.target))),
        }
    }

    /// A machine action of this kind on `machine_id` carrying the execution's marker and not
    /// failed or cancelled.
    async fn earlier_attempt(&self, request: &ActionRequest, machine_id: &str) -> Result<Option<Value>, ActionError> {
        let filter = format!("machineId eq {} and type eq {}", odata_string(machine_id), odata_string(self.kind.machine_action_type()));
        let mut url = api_url(self.client.api_url(), &["api", "machineactions"], &[("$filter", &filter)])?;
        let wanted = marker(&request.execution_key);
        let fail = |error: VendorError| action_error(&request.action, "machine action list", error);
        for _ in 0..MAX_ACTION_PAGES {
            let page_url = url.clone();
            let response = self
                .client
                .send("machine action list", |client, token| client.get(page_url.clone()).bearer_auth(token))
                .await
                .map_err(fail)?;
            let body = json_body("machine action list", response).await.map_err(fail)?;
            let actions = body
                .get("value")
                .and_then(Value::as_array)
                .ok_or_else(|| fail(VendorError::Malformed("machine action list has no `value` array".to_owned())))?;
            let found = actions.iter().find(|action| {
                let comment = action.get("requestorComment").and_then(Value::as_str).unwrap_or("");
                let status = action.get("status").and_then(Value::as_str).unwrap_or("");
                comment.contains(&wanted) && !NOT_APPLIED_STATUSES.contains(&status)
            });
            if let Some(found) = found {
                return Ok(Some(found.clone()));
            }
            match body.get("@odata.nextLink").and_then(Value::as_str).map(reqwest::Url::parse) {
                // The bearer token goes only to the API's own origin, never where a body points.
                Some(Ok(next)) if next.origin() == url.origin() => url = next,
                Some(Ok(_)) => {
                    return Err(fail(VendorError::Malformed("machine action list: @odata.nextLink leaves the API host".to_owned())));
                }
                _ => return Ok(None),
            }
        }
        Ok(None)
    }
}

#[async_trait]
impl Executor for DefenderExecutor {
    fn name(&self) -> &str {
        self.kind.action_name()
    }

    fn describe(&self, request: &ActionRequest) -> Result<Value, ActionError> {
        let body = self.body(request)?;
        match text_param(request, "machine_id")? {
            Some(id) => Ok(json!({"method": "POST", "url": self.action_url(id.trim())?.as_str(), "body": body})),
            None => Ok(json!({
                "method": "POST",
                "url": format!("{}/api/machines/{{machineId}}/{}", self.client.api_url(), self.kind.verb()),
                "body": body,
                "machine_lookup": format!("GET {}", self.lookup_url(request)?),
            })),
        }
    }

    async fn already_applied(&self, request: &ActionRequest) -> Result<bool, ActionError> {
        let machine_id = self.machine_id(request).await?;
        Ok(self.earlier_attempt(request, &machine_id).await?.is_some())
    }

    async fn execute(&self, request: &ActionRequest) -> Result<ActionOutcome, ActionError> {
        let body = self.body(request)?;
        let machine_id = self.machine_id(request).await?;
        let url = self.action_url(&machine_id)?;
        let call = self.kind.verb();
        let mut retries = 0;
        loop {
            let error = match self.client.send_once(call, |client, token| client.post(url.clone()).bearer_auth(token).json(&body)).await {
                Ok(response) => {
                    let answer = answer_of(response).await;
                    info!(action = self.name(), execution_key = %request.execution_key, %machine_id, "defender machine action created");
                    return Ok(ActionOutcome::Applied { detail: json!({"machine_id": machine_id, "machine_action": answer}) });
                }
                Err(error) => error,
            };
            retries += 1;
            let Some(delay) = self.client.http().policy.delay(retries, &error) else {
                return Err(action_error(&request.action, call, error));
            };
            warn!(action = self.name(), execution_key = %request.execution_key, %error, retry = retries, "defender machine action failed; retrying");
            self.client.http().pause(delay).await.map_err(|error| action_error(&request.action, call, error))?;
            // A 429 was refused before anything happened; after anything else the action may
            // exist, and sending it again would create a second one.
            if !matches!(error, VendorError::Throttled { .. })
                && let Some(found) = self.earlier_attempt(request, &machine_id).await?
            {
                info!(action = self.name(), execution_key = %request.execution_key, %machine_id, "defender machine action found after a lost answer");
                return Ok(ActionOutcome::Applied { detail: json!({"machine_id": machine_id, "machine_action": found}) });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn odata_literals_double_single_quotes() {
        assert_eq!(odata_string("o'brien-pc"), "'o''brien-pc'");
    }

    #[test]
    fn the_catalogue_knows_every_machine_action() {
        for kind in MachineActionKind::ALL {
            let spec = crate::action::spec(kind.action_name()).expect("in the catalogue");
            assert_eq!(spec.target, "host");
        }
    }
}
