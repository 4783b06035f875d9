//! Kill switches switched on at run time, shared by every worker (REQUIREMENTS §1.9 "Kill
//! switch", H02 "kill switch effective < 1 min").
//!
//! Each switch is `kill_switch:{dimension}:{value}` = `{activated_by, activated_at, reason,
//! dimension, value}`; the set `kill_switch:index` lists them, so a refresh is two commands
//! however large the keyspace. Every worker's [`refresh`] loop puts the configuration file's
//! switches joined with these in force every `kill_switch_refresh_secs`.
//!
//! When Redis cannot be read, the switches last read stay in force (neither dropped nor
//! invented): the design's "fail-open" would let a switched-off scope auto-close again during a
//! Redis outage, which is the opposite of what a kill switch is for.

use std::time::Duration;

use aluskort_config::{KillDimension, KillSwitches, SharedKillSwitches};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::{CacheError, RedisCache};

/// One switch as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KillSwitch {
    pub dimension: String,
    pub value: String,
    pub activated_by: String,
    pub activated_at: DateTime<Utc>,
    pub reason: String,
}

/// Switching on, off and listing.
#[derive(Debug, Clone)]
pub struct KillSwitchStore {
    cache: RedisCache,
}

/// Why a switch request was refused, or the store failed.
#[derive(Debug, thiserror::Error)]
pub enum KillSwitchError {
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Cache(#[from] CacheError),
}

impl KillSwitchStore {
    pub fn new(cache: RedisCache) -> Self {
        KillSwitchStore { cache }
    }

    fn index_key(&self) -> String {
        self.cache.key("kill_switch:index")
    }

    fn switch_key(&self, member: &str) -> String {
        self.cache.key(&format!("kill_switch:{member}"))
    }

    /// Switches `value` off in `dimension`; the value is checked as the configuration file's
    /// would be (technique ids canonical). Returns the switch as stored.
    pub async fn activate(
        &self,
        dimension: KillDimension,
        value: &str,
        actor: &str,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<KillSwitch, KillSwitchError> {
        let value = dimension.canonical(value).map_err(|error| KillSwitchError::Invalid(format!("{dimension}: {error}")))?;
        if actor.trim().is_empty() {
            return Err(KillSwitchError::Invalid("actor: who switches it on must be named".to_owned()));
        }
        if reason.trim().is_empty() {
            return Err(KillSwitchError::Invalid("reason: say why automation stops here".to_owned()));
        }
        let switch = KillSwitch {
            dimension: dimension.as_str().to_owned(),
            value: value.clone(),
            activated_by: actor.trim().to_owned(),
            activated_at: now,
            reason: reason.trim().to_owned(),
        };
        let member = format!("{dimension}:{value}");
        let json = serde_json::to_string(&switch).map_err(|error| KillSwitchError::Invalid(error.to_string()))?;
        let mut pipe = redis::pipe();
        pipe.atomic().set(self.switch_key(&member), json).ignore().sadd(self.index_key(), &member).ignore();
        self.cache.query::<()>("kill switch on", pipe).await?;
        Ok(switch)
    }

    /// Switches it on again; `false` when it was not switched off.
    pub async fn deactivate(&self, dimension: KillDimension, value: &str) -> Result<bool, KillSwitchError> {
        let value = dimension.canonical(value).map_err(|error| KillSwitchError::Invalid(format!("{dimension}: {error}")))?;
        let member = format!("{dimension}:{value}");
        let mut pipe = redis::pipe();
        pipe.atomic().del(self.switch_key(&member)).srem(self.index_key(), &member);
        let (deleted, _): (u64, u64) = self.cache.query("kill switch off", pipe).await?;
        Ok(deleted > 0)
    }

    /// Every stored switch, by dimension then value.
    pub async fn list(&self) -> Result<Vec<KillSwitch>, CacheError> {
        let members: Vec<String> = self.cache.query("kill switch index", redis::cmd("SMEMBERS").arg(self.index_key())).await?;
        if members.is_empty() {
            return Ok(Vec::new());
        }
        let mut mget = redis::cmd("MGET");
        for member in &members {
            mget.arg(self.switch_key(member));
        }
        let values: Vec<Option<String>> = self.cache.query("kill switch read", mget).await?;
        let mut switches = Vec::with_capacity(values.len());
        for (member, value) in members.iter().zip(values) {
            // An index entry without its key was switched off between the two reads.
            let Some(value) = value else { continue };
            let switch: KillSwitch = serde_json::from_str(&value).map_err(|error| CacheError::Corrupt {
                what: "kill switch read",
                key: self.switch_key(member),
                message: error.to_string(),
            })?;
            switches.push(switch);
        }
        switches.sort_by(|a, b| (a.dimension.as_str(), a.value.as_str()).cmp(&(b.dimension.as_str(), b.value.as_str())));
        Ok(switches)
    }

    /// The stored switches as a set (a stored switch of an unknown dimension is skipped, logged).
    pub async fn current(&self) -> Result<KillSwitches, CacheError> {
        let mut switches = KillSwitches::default();
        for switch in self.list().await? {
            match KillDimension::parse(&switch.dimension) {
                Some(dimension) => switches.insert(dimension, switch.value),
                None => tracing::warn!(dimension = %switch.dimension, value = %switch.value, "kill switch of an unknown dimension ignored"),
            }
        }
        Ok(switches)
    }
}

/// Keeps `shared` = `configured` ∪ the stored switches, read every `period` until `shutdown`
/// (the first read is the caller's, before any alert is handled: `aluskort` loads the switches
/// when it opens its backends). A failed read keeps what is in force.
pub async fn refresh(
    store: KillSwitchStore,
    configured: KillSwitches,
    shared: SharedKillSwitches,
    period: Duration,
    shutdown: CancellationToken,
) {
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = ticker.tick() => {}
        }
        match store.current().await {
            Ok(stored) => {
                let next = configured.union(&stored);
                if *shared.snapshot() != next {
                    tracing::info!(switches = ?next, "kill switches in force changed");
                    shared.replace(next);
                }
            }
            Err(error) => tracing::warn!(%error, "kill switches not refreshed: the last ones read stay in force"),
        }
    }
}
