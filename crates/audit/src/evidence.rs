//! Evidence packages (REQUIREMENTS §3.8 "Audit", FR-CSM-003): one investigation exported as a
//! self-contained JSON document that can be checked without ALUSKORT or its database.
//!
//! A package holds the investigation (its current state and every saved version), the alert, the
//! incident, every audit record naming the investigation, and a chain proof:
//!
//! - each record's hash recomputes from its content (canonical JSON, see [`crate::hash`]);
//! - each record's **successor link** (the next record of the tenant's chain: its sequence,
//!   `previous_hash` and `record_hash`) names that hash, so the record sits in the chain exactly
//!   where the package says, committed to by what was written after it;
//! - the tenant's chain head and the result of verifying the whole tenant chain at export time.
//!
//! [`verify_package`] checks all of it; `scripts/verify-evidence` does the same in plain Python,
//! independently of this code. Packages are stored write-once under §3.8's evidence key
//! `{tenant}/{YYYY/MM/DD}/{audit_id}/{type}.json`, `audit_id` being the investigation's newest
//! audit record and the type `evidence_package-{generated_at}`.

use aluskort_core::audit::AuditRecord;
use aluskort_core::graph_state::InvestigationId;
use aluskort_store::{AuditStore, CaseStore, StoreError};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::chain::verify_tenant;
use crate::hash::record_hash;

/// The `format` of packages this code writes and reads.
pub const FORMAT: &str = "aluskort.evidence_package/1";
/// The object name of a package under its evidence key.
pub const PACKAGE_TYPE: &str = "evidence_package";

/// One link of a tenant's chain: enough to check that a record is named by its successor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Link {
    pub sequence_number: u64,
    pub previous_hash: String,
    pub record_hash: String,
}

impl Link {
    fn of(record: &AuditRecord) -> Self {
        Link {
            sequence_number: record.sequence_number,
            previous_hash: record.previous_hash.clone(),
            record_hash: record.record_hash.clone(),
        }
    }
}

/// Where the investigation's records sit in the tenant's chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainProof {
    /// Per audit record of the package, in the same order: the record after it in the chain,
    /// `None` only for the chain's head.
    pub successors: Vec<Option<Link>>,
    /// The tenant's chain head when the package was made: (sequence, record hash).
    pub head_sequence: u64,
    pub head_hash: String,
    /// Records of the tenant's chain verified at export, from genesis.
    pub chain_records_verified: u64,
    /// Why the tenant's chain did not verify at export; `None` when it did.
    pub chain_break: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvidencePackage {
    pub format: String,
    pub generated_at: String,
    pub tenant_id: String,
    pub investigation_id: String,
    /// The investigation's current state (`GraphState`), and every saved version in order.
    pub investigation: Value,
    pub history: Vec<Value>,
    pub alert: Option<Value>,
    pub incident: Option<Value>,
    pub audit_records: Vec<AuditRecord>,
    pub chain_proof: ChainProof,
}

#[derive(Debug, thiserror::Error)]
pub enum EvidenceError {
    #[error("no investigation {0}")]
    NotFound(String),
    #[error("investigation {0} has no audit records: nothing to attest")]
    NoRecords(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot encode the package: {0}")]
    Encode(#[from] serde_json::Error),
}

/// Builds the package of `investigation_id` from the case and audit stores.
pub async fn build_package(
    case: &dyn CaseStore,
    audit: &dyn AuditStore,
    investigation_id: InvestigationId,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<EvidencePackage, EvidenceError> {
    let id = investigation_id.to_string();
    let state = case.investigation(investigation_id).await?.ok_or_else(|| EvidenceError::NotFound(id.clone()))?;
    let tenant = state.tenant_id.as_str().to_owned();
    let history = case.investigation_history(investigation_id).await?;
    let alert = case.alert(&state.tenant_id, &state.alert_id).await?;
    let incident = match state.incident_id.as_deref() {
        Some(incident_id) => case.incident(incident_id).await?,
        None => None,
    };
    let records = audit.audit_records_for_investigation(&tenant, &id).await?;
    if records.is_empty() {
        return Err(EvidenceError::NoRecords(id));
    }
    let mut successors = Vec::with_capacity(records.len());
    for record in &records {
        let next = audit.audit_records(&tenant, record.sequence_number + 1, 1).await?;
        successors.push(next.first().map(Link::of));
    }
    let (head_sequence, head_hash) = audit.audit_head(&tenant).await?.unwrap_or_default();
    let (chain_records_verified, chain_break) = verify_tenant(audit, &tenant).await?;
    Ok(EvidencePackage {
        format: FORMAT.to_owned(),
        generated_at: now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        tenant_id: tenant,
        investigation_id: id,
        investigation: serde_json::to_value(&state)?,
        history: history.iter().map(serde_json::to_value).collect::<Result<_, _>>()?,
        alert: alert.as_ref().map(serde_json::to_value).transpose()?,
        incident: incident.as_ref().map(serde_json::to_value).transpose()?,
        audit_records: records,
        chain_proof: ChainProof {
            successors,
            head_sequence,
            head_hash,
            chain_records_verified,
            chain_break: chain_break.map(|chain_break| chain_break.to_string()),
        },
    })
}

/// The evidence key of `package`: `{tenant}/{YYYY/MM/DD}/{audit_id}/evidence_package-{generated}.json`,
/// from its newest audit record and the time it was made (each export is its own object; none is
/// ever replaced). Characters outside `[A-Za-z0-9._-]` in the tenant become `_` (the key is a path;
/// the package itself carries the tenant exactly).
pub fn package_key(package: &EvidencePackage) -> Option<String> {
    let last = package.audit_records.last()?;
    let day = last.timestamp.get(..10).filter(|day| day.len() == 10 && day.as_bytes()[4] == b'-' && day.as_bytes()[7] == b'-')?;
    let tenant: String =
        package.tenant_id.chars().map(|c| if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') { c } else { '_' }).collect();
    let tenant = if tenant.trim_matches('.').is_empty() { "_".to_owned() } else { tenant };
    let generated: String = package.generated_at.chars().filter(|c| c.is_ascii_alphanumeric()).collect();
    Some(format!("{tenant}/{}/{}/{}/{}/{PACKAGE_TYPE}-{generated}.json", &day[..4], &day[5..7], &day[8..10], last.audit_id))
}

/// What [`verify_package`] checked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PackageReport {
    pub records: usize,
    pub linked: usize,
    pub head_sequence: u64,
}

/// Checks a package as an outside auditor would: format, tenant and investigation of every
/// record, every record's hash against its content, every successor naming that hash at the next
/// sequence, records in chain order and not past the head, and a chain that verified at export.
/// The first failure is returned, naming the record.
pub fn verify_package(package: &EvidencePackage) -> Result<PackageReport, String> {
    if package.format != FORMAT {
        return Err(format!("format {:?} is not {FORMAT:?}", package.format));
    }
    if let Some(reason) = &package.chain_proof.chain_break {
        return Err(format!("the tenant's chain did not verify when the package was made: {reason}"));
    }
    if package.audit_records.is_empty() {
        return Err("the package holds no audit records".to_owned());
    }
    if package.chain_proof.successors.len() != package.audit_records.len() {
        return Err(format!("{} successor links for {} records", package.chain_proof.successors.len(), package.audit_records.len()));
    }
    let state_id = package.investigation.get("investigation_id").and_then(Value::as_str);
    if state_id != Some(package.investigation_id.as_str()) {
        return Err(format!("the investigation in the package is {state_id:?}, not {}", package.investigation_id));
    }
    let mut previous: Option<u64> = None;
    let mut linked = 0;
    for (record, successor) in package.audit_records.iter().zip(&package.chain_proof.successors) {
        let name = format!("record {} ({})", record.sequence_number, record.audit_id);
        if record.tenant_id != package.tenant_id {
            return Err(format!("{name} belongs to tenant {}, not {}", record.tenant_id, package.tenant_id));
        }
        if record.investigation_id.as_deref() != Some(package.investigation_id.as_str()) {
            return Err(format!("{name} is not a record of investigation {}", package.investigation_id));
        }
        if previous.is_some_and(|previous| record.sequence_number <= previous) {
            return Err(format!("{name} is out of chain order"));
        }
        previous = Some(record.sequence_number);
        let recomputed = record_hash(record);
        if recomputed != record.record_hash {
            return Err(format!("{name}: record_hash does not match its content (recomputed {recomputed})"));
        }
        if record.sequence_number > package.chain_proof.head_sequence {
            return Err(format!("{name} is past the chain head {}", package.chain_proof.head_sequence));
        }
        match successor {
            Some(link) => {
                if link.sequence_number != record.sequence_number + 1 || link.previous_hash != record.record_hash {
                    return Err(format!("{name}: its successor (record {}) does not name its hash", link.sequence_number));
                }
                linked += 1;
            }
            None if record.sequence_number == package.chain_proof.head_sequence && record.record_hash == package.chain_proof.head_hash => {}
            None => return Err(format!("{name} has no successor but is not the chain head")),
        }
    }
    Ok(PackageReport { records: package.audit_records.len(), linked, head_sequence: package.chain_proof.head_sequence })
}

#[cfg(test)]
mod tests;
