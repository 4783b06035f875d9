//! The IOC exact-match cache (FR-ENR-004, NFR-PRF-008): Redis in front of the case store's
//! threat intel.
//!
//! Keys are `ioc:{tenant}:{type}:{value}` (the decisions table's tenant-scoped form), `*` standing
//! for a feed that applies to every tenant. A value is `{generation}|` followed by the indicator
//! as JSON, or by `-` for "the store has no such indicator", so the common case (an indicator
//! nobody reported) is one round trip too. Positive entries live by confidence (> 80: 30 d,
//! ≥ 50: 7 d, else 24 h), negative ones `redis.negative_ttl_secs`.
//!
//! Exactness: the cache holds indicators whatever their expiry and each read applies its own
//! `now`; and every write through [`CachedThreatIntel::upsert_indicators`] increments
//! `ioc:generation` after the store has the indicators, which retires every entry read before it
//! (including one a concurrent reader is about to fill from what it read before the write). An
//! import therefore empties the cache logically; imports are rare next to lookups.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use aluskort_store::{StoreResult, ThreatIntelStore, TiIndicator};
use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::{CacheError, RedisCache};

/// Marks "the store has no such indicator" in the cache.
const ABSENT: &str = "-";
/// Stands for "every tenant" in a key.
const EVERY_TENANT: &str = "*";

/// FR-ENR-004 TTL of a positive entry, by confidence (decisions column: `> 80`, `>= 50`).
pub const fn ttl_for_confidence(confidence: u8) -> u64 {
    if confidence > 80 {
        2_592_000
    } else if confidence >= 50 {
        604_800
    } else {
        86_400
    }
}

/// A [`ThreatIntelStore`] answering lookups from Redis where it can and from `store` where it
/// must (a cache miss, or Redis failing: fail-open to the store).
#[derive(Clone)]
pub struct CachedThreatIntel {
    cache: RedisCache,
    store: Arc<dyn ThreatIntelStore>,
}

impl CachedThreatIntel {
    pub fn new(cache: RedisCache, store: Arc<dyn ThreatIntelStore>) -> Self {
        CachedThreatIntel { cache, store }
    }

    fn key(&self, tenant: &str, indicator: &str) -> String {
        let tenant = if tenant.is_empty() { EVERY_TENANT } else { tenant };
        self.cache.key(&format!("ioc:{tenant}:{indicator}"))
    }

    /// The keys a lookup for `tenant` reads for `indicator`: the tenant's own and the global one.
    fn lookup_keys(&self, tenant: &str, indicator: &str) -> Vec<(String, String)> {
        let mut keys = vec![(String::new(), self.key("", indicator))];
        if !tenant.is_empty() {
            keys.push((tenant.to_owned(), self.key(tenant, indicator)));
        }
        keys
    }

    fn generation_key(&self) -> String {
        self.cache.key("ioc:generation")
    }

    /// Found indicators (unexpired at `now`), the `(tenant, indicator)` pairs Redis did not know
    /// in the current generation, and that generation.
    async fn read_cache(&self, tenant: &str, indicators: &[String], now: DateTime<Utc>) -> Result<Lookup, CacheError> {
        let wanted: Vec<(String, String, String)> = indicators
            .iter()
            .collect::<HashSet<_>>()
            .into_iter()
            .flat_map(|indicator| self.lookup_keys(tenant, indicator).into_iter().map(move |(owner, key)| (owner, indicator.clone(), key)))
            .collect();
        let mut mget = redis::cmd("MGET");
        mget.arg(self.generation_key());
        for (_, _, key) in &wanted {
            mget.arg(key);
        }
        let mut values: Vec<Option<String>> = self.cache.query("ioc lookup", mget).await?;
        let generation = match values.first().cloned().flatten() {
            Some(text) => text.parse::<i64>().map_err(|error| CacheError::Corrupt {
                what: "ioc lookup",
                key: self.generation_key(),
                message: error.to_string(),
            })?,
            None => 0,
        };
        let keys = wanted.len() as u64;
        let tag = format!("{generation}|");
        let mut lookup = Lookup { found: Vec::new(), missing: Vec::new(), generation };
        for ((owner, indicator, key), value) in wanted.into_iter().zip(values.drain(..).skip(1)) {
            match value.as_deref().and_then(|value| value.strip_prefix(&tag)) {
                None => lookup.missing.push((owner, indicator)),
                Some(ABSENT) => {}
                Some(json) => {
                    let cached: TiIndicator = serde_json::from_str(json).map_err(|error| CacheError::Corrupt {
                        what: "ioc lookup",
                        key,
                        message: error.to_string(),
                    })?;
                    if cached.expires_at > now {
                        lookup.found.push(cached);
                    }
                }
            }
        }
        // Counted by key: each indicator is looked up as the tenant's and as every tenant's.
        metrics::counter!("aluskort_ioc_cache_lookups_total", "result" => "miss").increment(lookup.missing.len() as u64);
        metrics::counter!("aluskort_ioc_cache_lookups_total", "result" => "hit")
            .increment(keys.saturating_sub(lookup.missing.len() as u64));
        Ok(lookup)
    }

    /// Remembers, under `generation`, what the store holds for `missing` (`stored`: every
    /// indicator of those names, expired or not).
    async fn fill(&self, missing: &[(String, String)], stored: &[TiIndicator], generation: i64) -> Result<(), CacheError> {
        let by_key: HashMap<(&str, &str), &TiIndicator> =
            stored.iter().map(|found| ((found.tenant_id.as_str(), found.indicator.as_str()), found)).collect();
        let mut pipe = redis::pipe();
        for (owner, indicator) in missing {
            let key = self.key(owner, indicator);
            let (value, ttl) = match by_key.get(&(owner.as_str(), indicator.as_str())) {
                Some(found) => match serde_json::to_string(found) {
                    Ok(json) => (json, ttl_for_confidence(found.confidence)),
                    Err(_) => continue,
                },
                None => (ABSENT.to_owned(), self.cache.negative_ttl_secs),
            };
            pipe.cmd("SET").arg(key).arg(format!("{generation}|{value}")).arg("EX").arg(ttl).ignore();
        }
        self.cache.query::<()>("ioc fill", pipe).await
    }
}

/// What one cache read found.
struct Lookup {
    found: Vec<TiIndicator>,
    missing: Vec<(String, String)>,
    generation: i64,
}

#[async_trait]
impl ThreatIntelStore for CachedThreatIntel {
    async fn upsert_indicators(&self, indicators: &[TiIndicator]) -> StoreResult<u64> {
        let written = self.store.upsert_indicators(indicators).await?;
        if let Err(error) = self.cache.query::<i64>("ioc invalidate", redis::cmd("INCR").arg(self.generation_key())).await {
            // The store holds them; entries cached before may hide them until they expire.
            tracing::error!(%error, count = indicators.len(), negative_ttl_secs = self.cache.negative_ttl_secs,
                "threat-intel indicators stored but the redis IOC cache was not invalidated: cached misses may hide them until they expire");
        }
        Ok(written)
    }

    async fn match_indicators(&self, tenant: &str, indicators: &[String], now: DateTime<Utc>) -> StoreResult<Vec<TiIndicator>> {
        if indicators.is_empty() {
            return Ok(Vec::new());
        }
        let Lookup { mut found, missing, generation } = match self.read_cache(tenant, indicators, now).await {
            Ok(lookup) => lookup,
            Err(error) => {
                tracing::debug!(%error, "ioc cache unavailable: asking the case store");
                metrics::counter!("aluskort_ioc_cache_lookups_total", "result" => "fallback").increment(indicators.len() as u64);
                return self.store.match_indicators(tenant, indicators, now).await;
            }
        };
        if missing.is_empty() {
            return Ok(found);
        }
        let asked: Vec<String> = missing.iter().map(|(_, indicator)| indicator.clone()).collect::<HashSet<_>>().into_iter().collect();
        // Every stored indicator of those names, expired or not (1970 is before any expiry), so
        // the cached answer holds for any later `now`.
        let stored = self.store.match_indicators(tenant, &asked, DateTime::<Utc>::UNIX_EPOCH).await?;
        if let Err(error) = self.fill(&missing, &stored, generation).await {
            tracing::debug!(%error, "ioc cache not filled");
        }
        let wanted: HashSet<(&str, &str)> = missing.iter().map(|(owner, indicator)| (owner.as_str(), indicator.as_str())).collect();
        found.extend(stored.into_iter().filter(|indicator| {
            indicator.expires_at > now && wanted.contains(&(indicator.tenant_id.as_str(), indicator.indicator.as_str()))
        }));
        Ok(found)
    }
}
