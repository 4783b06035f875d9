//! The unit of work of the investigate stage: everything a batch of investigations changes, held
//! in memory while their state machines run and committed in one transaction with the batch's
//! audit records ([`aluskort_store::CaseStore::commit_work`]).
//!
//! Every transition still becomes its own saved version (replayable history), but versions,
//! audit records, incidents and the raw-inbox marks of the whole batch reach the store together:
//! a crash before the commit loses the batch whole (its raw records are still pending and are
//! replayed), a crash after it loses nothing. Reads inside the batch see the batch's own writes
//! first (an alert's incident grown by an earlier alert of the same batch, a member reassessed
//! twice).

use std::collections::HashMap;

use aluskort_audit::AuditEvent;
use aluskort_core::{AlertId, CanonicalAlert, GraphState, Incident, TenantId};
use aluskort_ingest::NormalizedAlert;
use aluskort_store::{CaseStore, GroupingClaim, InvestigationWrite, RawMark, RawStatus, StoreResult, WorkBatch};
use chrono::{DateTime, Duration, Utc};

/// Longest `merged_into` chain followed before giving up (a cycle would be a bug; never loop).
const MAX_MERGE_HOPS: usize = 64;

/// The entity keys of a batch's alerts of one tenant and the union of their grouping windows.
struct Scope {
    keys: Vec<String>,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
}

#[derive(Default)]
pub(crate) struct Work {
    pub(crate) batch: WorkBatch,
    pub(crate) events: Vec<AuditEvent>,
    /// Index into `batch.investigations` per investigated alert.
    writes: HashMap<(TenantId, AlertId), usize>,
    /// Index into `batch.incidents` per incident id.
    incidents: HashMap<String, usize>,
    /// Index into `batch.alerts` per alert.
    alerts: HashMap<(TenantId, AlertId), usize>,
    /// Investigations closed by this batch: remembered in incident memory once committed.
    pub(crate) closed: Vec<GraphState>,
    /// Incidents read from the store for this batch ([`Work::prefetch_incidents`]), as stored.
    stored_incidents: HashMap<String, std::sync::Arc<Incident>>,
    /// Investigations read from the store for this batch, as stored (read at most once a batch).
    stored_states: HashMap<(TenantId, AlertId), GraphState>,
    /// The batch still committing ([`Overlay`]), read in place of the store for what it changed.
    overlay: Option<Overlay>,
    /// Incident ids per entity key, over the stored and this batch's incidents, and how many
    /// members of each incident are indexed (members are only ever appended).
    key_index: HashMap<String, Vec<String>>,
    indexed_members: HashMap<String, usize>,
    /// Index into `batch.grouping_claims` per tenant and entity key.
    claims: HashMap<(TenantId, String), usize>,
    /// Threat intel, user risk, exposures and FP patterns for the batch's alerts.
    pub(crate) context: crate::enrich::BatchContext,
}

/// A batch that is still committing, shared with the commit: the next batch reads what it changed
/// (its investigations, incidents, alerts and grouping claims) in place of the store, which does
/// not have them yet. Only valid if that commit lands; the stage retries the next batch
/// otherwise. Holds no overlay of its own ([`Work::seal`]): by the time a batch is read through,
/// the one before it has landed.
pub(crate) type Overlay = std::sync::Arc<Work>;

/// What [`Work::prefetch_incidents`] read: the grouping epochs of the batch's keys (read first)
/// and the candidate incidents.
pub(crate) struct Prefetched {
    epochs: Vec<(TenantId, Vec<String>, HashMap<String, u64>)>,
    incidents: Vec<std::sync::Arc<Incident>>,
}

impl Work {
    /// A unit of work reading through `overlay` first.
    pub(crate) fn over(overlay: Option<Overlay>) -> Self {
        let mut work = Work::default();
        if let Some(overlay) = &overlay {
            for incident in &overlay.batch.incidents {
                work.index(incident);
            }
        }
        work.overlay = overlay;
        work
    }

    /// Room for a batch of `alerts` new investigations, each ~10 audit events and one write:
    /// grown by doubling, the event list (large elements) was copied over and over, into fresh
    /// memory each time.
    pub(crate) fn reserve(&mut self, alerts: usize) {
        self.events.reserve(alerts * 12);
        self.batch.investigations.reserve(alerts);
        self.batch.alerts.reserve(alerts);
        self.writes.reserve(alerts);
        self.alerts.reserve(alerts);
    }

    /// This batch, prepared, to be committed and read through by the next one: drops what it
    /// read through (the batch before it lands before the next batch reads).
    pub(crate) fn seal(mut self) -> Overlay {
        self.overlay = None;
        std::sync::Arc::new(self)
    }

    fn overlay_state(&self, key: &(TenantId, AlertId)) -> Option<&GraphState> {
        let overlay = self.overlay.as_ref()?;
        overlay.batch.investigations[*overlay.writes.get(key)?].versions.last()
    }

    fn overlay_incident(&self, incident_id: &str) -> Option<&Incident> {
        self.overlay.as_ref()?.pending_incident(incident_id)
    }

    /// The epoch the batch still committing claimed `key` at.
    fn overlay_epoch(&self, key: &(TenantId, String)) -> Option<u64> {
        let overlay = self.overlay.as_ref()?;
        Some(overlay.batch.grouping_claims[*overlay.claims.get(key)?].epoch)
    }

    pub(crate) fn audit(&mut self, event: AuditEvent) {
        self.events.push(event);
    }

    /// Saves `state` as its next version. A state never stored has version 0 and is created.
    /// `skip_on_conflict` (reassessments): if someone saved a newer version meanwhile, theirs wins.
    pub(crate) fn save(&mut self, state: &mut GraphState, skip_on_conflict: bool) {
        let key = (state.tenant_id.clone(), state.alert_id.clone());
        state.version += 1;
        match self.writes.get(&key) {
            Some(&index) => self.batch.investigations[index].versions.push(state.clone()),
            None => {
                self.writes.insert(key, self.batch.investigations.len());
                self.batch.investigations.push(InvestigationWrite {
                    expected_version: state.version - 1,
                    versions: vec![state.clone()],
                    skip_on_conflict,
                });
            }
        }
    }

    /// The newest version of an alert's investigation saved in this batch.
    pub(crate) fn state(&self, tenant: &TenantId, alert_id: &AlertId) -> Option<&GraphState> {
        let index = self.writes.get(&(tenant.clone(), alert_id.clone()))?;
        self.batch.investigations[*index].versions.last()
    }

    /// Reads the investigations of `alert_ids` this batch has neither saved nor read yet, in one
    /// query; [`Work::current_state`] then answers for all of them.
    pub(crate) async fn read_states(&mut self, store: &dyn CaseStore, tenant: &TenantId, alert_ids: &[AlertId]) -> StoreResult<()> {
        let unread = self.unread_states(tenant, alert_ids);
        let states = Self::fetch_states(store, &[(tenant, unread)]).await?;
        self.absorb_states(states);
        Ok(())
    }

    /// The stored investigations of the listed alerts, per tenant (one query per tenant with any).
    pub(crate) async fn fetch_states(store: &dyn CaseStore, unread: &[(&TenantId, Vec<AlertId>)]) -> StoreResult<Vec<GraphState>> {
        let mut found = Vec::new();
        for (tenant, alert_ids) in unread {
            if !alert_ids.is_empty() {
                found.extend(store.investigations_for_alerts(tenant, alert_ids).await?);
            }
        }
        Ok(found)
    }

    /// The alerts of `alert_ids` whose investigation this batch has neither saved nor read.
    pub(crate) fn unread_states(&self, tenant: &TenantId, alert_ids: &[AlertId]) -> Vec<AlertId> {
        alert_ids
            .iter()
            .filter(|id| {
                let key = (tenant.clone(), (*id).clone());
                !self.writes.contains_key(&key) && !self.stored_states.contains_key(&key) && self.overlay_state(&key).is_none()
            })
            .cloned()
            .collect()
    }

    /// Keeps investigations read from the store (see [`Work::unread_states`]).
    pub(crate) fn absorb_states(&mut self, states: Vec<GraphState>) {
        for state in states {
            self.stored_states.insert((state.tenant_id.clone(), state.alert_id.clone()), state);
        }
    }

    /// An alert's investigation as this batch left it, else as read by [`Work::read_states`].
    pub(crate) fn current_state(&self, tenant: &TenantId, alert_id: &AlertId) -> Option<&GraphState> {
        let key = (tenant.clone(), alert_id.clone());
        self.state(tenant, alert_id).or_else(|| self.stored_states.get(&key)).or_else(|| self.overlay_state(&key))
    }

    pub(crate) fn insert_alert(&mut self, alert: &CanonicalAlert) {
        let key = (alert.tenant_id.clone(), alert.alert_id.clone());
        if !self.alerts.contains_key(&key) {
            self.alerts.insert(key, self.batch.alerts.len());
            self.batch.alerts.push(alert.clone());
        }
    }

    fn pending_alert(&self, key: &(TenantId, AlertId)) -> Option<&CanonicalAlert> {
        self.alerts.get(key).map(|&index| &self.batch.alerts[index])
    }

    /// An alert of this batch, else the stored one.
    pub(crate) async fn load_alert(
        &self,
        store: &dyn CaseStore,
        tenant: &TenantId,
        alert_id: &AlertId,
    ) -> StoreResult<Option<CanonicalAlert>> {
        let key = (tenant.clone(), alert_id.clone());
        if let Some(alert) = self.pending_alert(&key).or_else(|| self.overlay.as_ref().and_then(|overlay| overlay.pending_alert(&key))) {
            return Ok(Some(alert.clone()));
        }
        store.alert(tenant, alert_id).await
    }

    pub(crate) fn mark_raw(&mut self, ingest_id: &str, status: RawStatus, error: Option<String>) {
        self.batch.raw.push(RawMark { ingest_id: ingest_id.to_owned(), status, error });
    }

    /// Adds the keys of `incident`'s members not indexed yet to the key index.
    fn index(&mut self, incident: &Incident) {
        let indexed = self.indexed_members.entry(incident.incident_id.clone()).or_default();
        for member in incident.members.iter().skip(*indexed) {
            for key in &member.keys {
                let ids = self.key_index.entry(key.clone()).or_default();
                if !ids.contains(&incident.incident_id) {
                    ids.push(incident.incident_id.clone());
                }
            }
        }
        *indexed = (*indexed).max(incident.members.len());
    }

    /// Records the newest form of `incident` (an earlier form from this batch is replaced). The
    /// first form a batch records is the next version of the one it was made from; later forms
    /// keep that version (one write per batch).
    pub(crate) fn put_incident(&mut self, mut incident: Incident) {
        self.index(&incident);
        match self.incidents.get(&incident.incident_id) {
            Some(&index) => {
                incident.version = self.batch.incidents[index].version;
                self.batch.incidents[index] = incident;
            }
            None => {
                incident.version += 1;
                self.incidents.insert(incident.incident_id.clone(), self.batch.incidents.len());
                self.batch.incidents.push(incident);
            }
        }
    }

    /// The incidents this batch merged into `survivor_id` (their `alert_ids` are those they
    /// brought). Empty when the merge happened in an earlier batch.
    pub(crate) fn absorbed_into<'a>(&'a self, survivor_id: &'a str) -> impl Iterator<Item = &'a Incident> + 'a {
        self.batch.incidents.iter().filter(move |incident| incident.merged_into.as_deref() == Some(survivor_id))
    }

    fn pending_incident(&self, incident_id: &str) -> Option<&Incident> {
        self.incidents.get(incident_id).map(|&index| &self.batch.incidents[index])
    }

    /// An incident as this batch left it, else as read for this batch, else as the batch still
    /// committing left it (a read never keeps an incident that batch holds).
    fn known_incident(&self, incident_id: &str) -> Option<&Incident> {
        self.pending_incident(incident_id)
            .or_else(|| self.stored_incidents.get(incident_id).map(|incident| &**incident))
            .or_else(|| self.overlay_incident(incident_id))
    }

    /// An incident as this batch left it, else as stored.
    pub(crate) async fn load_incident(&self, store: &dyn CaseStore, incident_id: &str) -> StoreResult<Option<Incident>> {
        if let Some(incident) = self.known_incident(incident_id) {
            return Ok(Some(incident.clone()));
        }
        store.incident(incident_id).await
    }

    /// Follows `merged_into` from `incident_id` to the incident that is authoritative now.
    pub(crate) async fn resolve_incident(&self, store: &dyn CaseStore, incident_id: &str) -> StoreResult<Option<Incident>> {
        let Some(mut current) = self.load_incident(store, incident_id).await? else { return Ok(None) };
        for _ in 0..MAX_MERGE_HOPS {
            let Some(next_id) = current.merged_into.clone() else { break };
            match self.load_incident(store, &next_id).await? {
                Some(next) => current = next,
                None => break,
            }
        }
        Ok(Some(current))
    }

    /// Reads the stored grouping candidates of every alert of the batch: per tenant, one query
    /// for the incidents sharing any of the alerts' entity keys and active in the union of their
    /// windows. Runs before the batch's investigations (the batch holds the grouping lock, so
    /// nothing else in this process changes incidents meanwhile), instead of one query per alert;
    /// [`Work::absorb_incidents`] keeps what it read.
    ///
    /// The grouping epochs of the keys are read first ([`CaseStore::grouping_epochs`]): the batch
    /// claims each key at the next epoch, so if another writer (a replica) grouped alerts on one
    /// of these keys after this read, the commit conflicts and the batch is grouped again.
    pub(crate) async fn prefetch_incidents<'a>(
        store: &dyn CaseStore,
        alerts: impl Iterator<Item = &'a NormalizedAlert>,
        window: Duration,
    ) -> StoreResult<Prefetched> {
        let mut scopes: HashMap<&TenantId, Scope> = HashMap::new();
        for normalized in alerts {
            let (from, to) = (normalized.activity_start - window, normalized.activity_end + window);
            let scope = scopes.entry(&normalized.alert.tenant_id).or_insert_with(|| Scope { keys: Vec::new(), from, to });
            scope.keys.extend(crate::grouping::entity_keys(&normalized.entities));
            scope.from = scope.from.min(from);
            scope.to = scope.to.max(to);
        }
        let mut found = Prefetched { epochs: Vec::new(), incidents: Vec::new() };
        for (tenant, mut scope) in scopes {
            scope.keys.sort_unstable();
            scope.keys.dedup();
            if scope.keys.is_empty() {
                continue;
            }
            let epochs = store.grouping_epochs(tenant, &scope.keys).await?;
            found.incidents.extend(store.incidents_with_keys(tenant, &scope.keys, scope.from, scope.to).await?);
            found.epochs.push((tenant.clone(), scope.keys, epochs));
        }
        Ok(found)
    }

    /// Keeps the incidents [`Work::prefetch_incidents`] read, except those this batch already
    /// holds in a newer form (from the overlay of the batch still committing), and claims every
    /// key it looked up at the epoch after the one read (or after the one the batch still
    /// committing claimed).
    pub(crate) fn absorb_incidents(&mut self, prefetched: Prefetched) {
        let Prefetched { epochs, incidents } = prefetched;
        for (tenant_id, keys, read) in epochs {
            for entity_key in keys {
                let key = (tenant_id.clone(), entity_key);
                let epoch = self.overlay_epoch(&key).or_else(|| read.get(&key.1).copied()).unwrap_or(0) + 1;
                self.batch.grouping_claims.push(GroupingClaim { tenant_id: tenant_id.clone(), entity_key: key.1.clone(), epoch });
                self.claims.insert(key, self.batch.grouping_claims.len() - 1);
            }
        }
        for incident in incidents {
            if !self.stored_incidents.contains_key(&incident.incident_id) && self.overlay_incident(&incident.incident_id).is_none() {
                self.index(&incident);
                self.stored_incidents.insert(incident.incident_id.clone(), incident);
            }
        }
    }

    /// Grouping candidates for an alert with `keys` (sorted) active in `[from, to]`: unmerged
    /// incidents of the tenant sharing a key, as this batch left them (including ones it opened).
    /// Stored incidents come from [`Work::prefetch_incidents`], which must have covered `keys`.
    pub(crate) fn candidates(&self, tenant: &TenantId, keys: &[String], from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<&Incident> {
        let mut ids: Vec<&String> = keys.iter().filter_map(|key| self.key_index.get(key)).flatten().collect();
        ids.sort_unstable();
        ids.dedup();
        ids.into_iter().filter_map(|id| self.candidate(id, tenant, from, to)).collect()
    }

    /// The grouping candidates in `[from, to]` holding `key` (a subset of [`Work::candidates`]
    /// for any keys including it).
    pub(crate) fn candidates_holding<'a>(
        &'a self,
        tenant: &'a TenantId,
        key: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> impl Iterator<Item = &'a Incident> + use<'a> {
        self.key_index.get(key).into_iter().flatten().filter_map(move |id| self.candidate(id, tenant, from, to))
    }

    /// Incident `id` if it is a grouping candidate: the tenant's, not merged, active in `[from, to]`.
    fn candidate(&self, id: &str, tenant: &TenantId, from: DateTime<Utc>, to: DateTime<Utc>) -> Option<&Incident> {
        self.known_incident(id).filter(|incident| {
            incident.tenant_id == *tenant && incident.merged_into.is_none() && incident.first_seen <= to && incident.last_seen >= from
        })
    }
}
