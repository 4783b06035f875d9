//! FP hot patterns (FR-RAG-005): the patterns that may close a tenant's alerts, read by every
//! worker for every batch, cached in Redis under `fp:{tenant}` (TTL 86,400 s, decisions table).
//!
//! Correctness over freshness tricks: each cached list carries the value of the generation
//! counter `fp:generation` it was read under, and every pattern write (upsert, approval,
//! revocation, expiry) increments the counter after the store has the change. A list is used only
//! while its generation is current, so a revocation is never hidden by a list another worker read
//! just before it, and nothing needs to enumerate tenants to invalidate.

use std::sync::Arc;

use aluskort_store::{ContextStore, Exposure, FpPattern, FpStatus, StoreResult, UserRisk};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::{CacheError, RedisCache};

/// Lifetime of a cached list (decisions table: `fp:{tenant}` TTL 86,400 s).
const HOT_TTL_SECS: u64 = 86_400;

#[derive(Serialize, Deserialize)]
struct HotList {
    generation: i64,
    patterns: Vec<FpPattern>,
}

/// A [`ContextStore`] whose matchable FP patterns come from Redis when current; everything else
/// (and everything when Redis fails) is the wrapped store's.
#[derive(Clone)]
pub struct CachedContext {
    cache: RedisCache,
    store: Arc<dyn ContextStore>,
}

impl CachedContext {
    pub fn new(cache: RedisCache, store: Arc<dyn ContextStore>) -> Self {
        CachedContext { cache, store }
    }

    fn generation_key(&self) -> String {
        self.cache.key("fp:generation")
    }

    /// The cached list when it is current, and the generation now.
    async fn cached(&self, tenant: &str) -> Result<(Option<Vec<FpPattern>>, i64), CacheError> {
        let key = self.cache.key(&format!("fp:{tenant}"));
        let (generation, list): (Option<i64>, Option<String>) =
            self.cache.query("fp hot read", redis::pipe().get(self.generation_key()).get(&key)).await?;
        let generation = generation.unwrap_or(0);
        let Some(list) = list else { return Ok((None, generation)) };
        let list: HotList =
            serde_json::from_str(&list).map_err(|error| CacheError::Corrupt { what: "fp hot read", key, message: error.to_string() })?;
        Ok(((list.generation == generation).then_some(list.patterns), generation))
    }

    async fn remember(&self, tenant: &str, generation: i64, patterns: &[FpPattern]) -> Result<(), CacheError> {
        let list = serde_json::to_string(&HotList { generation, patterns: patterns.to_vec() }).map_err(|error| CacheError::Corrupt {
            what: "fp hot write",
            key: tenant.to_owned(),
            message: error.to_string(),
        })?;
        self.cache
            .query("fp hot write", redis::cmd("SET").arg(self.cache.key(&format!("fp:{tenant}"))).arg(list).arg("EX").arg(HOT_TTL_SECS))
            .await
    }

    /// Makes every cached list stale; called after each pattern write.
    async fn invalidate(&self) {
        if let Err(error) = self.cache.query::<i64>("fp invalidate", redis::cmd("INCR").arg(self.generation_key())).await {
            // The change is stored; lists cached before it live until their TTL unless a later
            // write succeeds. Loud, because a revoked pattern could keep closing alerts.
            tracing::error!(%error, "FP pattern changed but the redis hot lists were not invalidated; use a kill switch on the pattern if it must stop now");
        }
    }
}

/// `patterns` that may close an alert at `now` (status approved or active, not expired).
fn matchable_at(patterns: Vec<FpPattern>, now: DateTime<Utc>) -> Vec<FpPattern> {
    patterns
        .into_iter()
        .filter(|pattern| matches!(pattern.status, FpStatus::Approved | FpStatus::Active) && pattern.expires_at.is_none_or(|at| at > now))
        .collect()
}

#[async_trait]
impl ContextStore for CachedContext {
    async fn upsert_fp_pattern(&self, pattern: &FpPattern) -> StoreResult<()> {
        self.store.upsert_fp_pattern(pattern).await?;
        self.invalidate().await;
        Ok(())
    }

    async fn replace_fp_pattern(&self, previous: &FpPattern, next: &FpPattern) -> StoreResult<()> {
        self.store.replace_fp_pattern(previous, next).await?;
        self.invalidate().await;
        Ok(())
    }

    async fn fp_pattern(&self, pattern_id: &str) -> StoreResult<Option<FpPattern>> {
        self.store.fp_pattern(pattern_id).await
    }

    async fn matchable_fp_patterns(&self, tenant: &str, now: DateTime<Utc>) -> StoreResult<Vec<FpPattern>> {
        let generation = match self.cached(tenant).await {
            Ok((Some(patterns), _)) => return Ok(matchable_at(patterns, now)),
            Ok((None, generation)) => Some(generation),
            Err(error) => {
                tracing::debug!(%error, "fp hot list unavailable: asking the case store");
                None
            }
        };
        // Read as of 1970 (every stored expiry is later), so the cached list stays right as time
        // passes: `now` is applied on every read.
        let patterns = self.store.matchable_fp_patterns(tenant, DateTime::<Utc>::UNIX_EPOCH).await?;
        if let Some(generation) = generation
            && let Err(error) = self.remember(tenant, generation, &patterns).await
        {
            tracing::debug!(%error, "fp hot list not cached");
        }
        Ok(matchable_at(patterns, now))
    }

    async fn fp_patterns(&self, tenant: Option<&str>, status: Option<FpStatus>) -> StoreResult<Vec<FpPattern>> {
        self.store.fp_patterns(tenant, status).await
    }

    async fn upsert_user_risk(&self, rows: &[UserRisk]) -> StoreResult<u64> {
        self.store.upsert_user_risk(rows).await
    }

    async fn user_risk(&self, tenant: &str, users: &[String]) -> StoreResult<Vec<UserRisk>> {
        self.store.user_risk(tenant, users).await
    }

    async fn upsert_exposures(&self, exposures: &[Exposure]) -> StoreResult<u64> {
        self.store.upsert_exposures(exposures).await
    }

    async fn exposures_for_assets(&self, tenant: &str, assets: &[(String, String)]) -> StoreResult<Vec<Exposure>> {
        self.store.exposures_for_assets(tenant, assets).await
    }
}
