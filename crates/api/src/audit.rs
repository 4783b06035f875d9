//! `/v1/audit`: chain verification and evidence packages over HTTP (REQUIREMENTS §3.8's
//! `/v1/audit/verify` and `/v1/audit/evidence-package/{id}`), for audit readers, senior analysts
//! and admins.

use aluskort_audit::evidence::{EvidenceError, build_package, verify_package};
use axum::Json;
use axum::extract::{Path, State};
use serde_json::{Value, json};

use crate::AppState;
use crate::auth::Caller;
use crate::error::ApiError;
use aluskort_config::Permission;

pub(crate) fn audit(state: &AppState) -> Result<&dyn aluskort_store::AuditStore, ApiError> {
    state.audit.as_deref().ok_or_else(|| ApiError::NotFound("the audit trail is not served by this process".to_owned()))
}

/// `GET /v1/audit/verify`: every tenant's chain, every record and link; `valid` false names the
/// first broken record.
pub async fn verify(State(state): State<AppState>, caller: Caller) -> Result<Json<Value>, ApiError> {
    caller.require(Permission::Audit)?;
    if caller.tenants.is_some() {
        return Err(ApiError::Forbidden("verifying every tenant's chain needs a key for every tenant".to_owned()));
    }
    let report = aluskort_audit::verify_store(audit(&state)?).await?;
    Ok(Json(json!({
        "valid": report.first_break.is_none(),
        "records": report.records,
        "tenants": report.tenants,
        "first_break": report.first_break,
    })))
}

/// `GET /v1/audit/evidence-package/{investigation_id}`: the investigation's evidence package
/// (see `aluskort_audit::evidence`), checked before it is served.
pub async fn evidence_package(State(state): State<AppState>, caller: Caller, Path(id): Path<String>) -> Result<Json<Value>, ApiError> {
    caller.require(Permission::Audit)?;
    let uuid = uuid_of(&id)?;
    // Another tenant's investigation is not revealed (and not exported).
    let visible =
        state.store.investigation(aluskort_core::InvestigationId(uuid)).await?.is_some_and(|graph| caller.sees(graph.tenant_id.as_str()));
    if !visible {
        return Err(ApiError::NotFound(format!("no investigation {id}")));
    }
    let package = match build_package(state.store.as_ref(), audit(&state)?, aluskort_core::InvestigationId(uuid), chrono::Utc::now()).await
    {
        Ok(package) => package,
        Err(error @ (EvidenceError::NotFound(_) | EvidenceError::NoRecords(_))) => return Err(ApiError::NotFound(error.to_string())),
        Err(EvidenceError::Store(error)) => return Err(ApiError::Store(error)),
        Err(error) => return Err(ApiError::Internal(error.into())),
    };
    if let Err(problem) = verify_package(&package) {
        return Err(ApiError::Conflict(format!("the evidence package does not verify: {problem}")));
    }
    Ok(Json(serde_json::to_value(&package).map_err(anyhow::Error::from)?))
}

fn uuid_of(id: &str) -> Result<uuid::Uuid, ApiError> {
    uuid::Uuid::parse_str(id)
        .map_err(|_| ApiError::BadRequest { field: "id".to_owned(), reason: format!("{id:?} is not an investigation id") })
}
