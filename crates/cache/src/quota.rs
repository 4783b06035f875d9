//! Tenant model-call quotas over a sliding hour (FR-ING-007, NFR-SCL-003), shared by every
//! worker: `ratelimit:tenant:{id}:{minute}` counters, checked and taken in one Lua script so two
//! workers cannot both take the last call.

use chrono::{DateTime, Utc};

use crate::{CacheError, RedisCache};

/// Minutes in the sliding window.
const WINDOW_MINUTES: i64 = 60;

/// Sums the window's counters; under `limit`, counts one more call in the current minute.
/// KEYS: the window's minute counters, oldest first, the current one last. ARGV[1]: the limit;
/// ARGV[2]: the current counter's lifetime in seconds. Returns {taken (0/1), calls in the window}.
const TAKE: &str = r"
local used = 0
for _, value in ipairs(redis.call('MGET', unpack(KEYS))) do
  if value then used = used + tonumber(value) end
end
if used >= tonumber(ARGV[1]) then
  return {0, used}
end
local current = KEYS[#KEYS]
redis.call('INCR', current)
redis.call('EXPIRE', current, tonumber(ARGV[2]))
return {1, used + 1}
";

/// The outcome of asking for one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuotaDecision {
    pub allowed: bool,
    /// Calls in the last hour, this one included when allowed.
    pub used: u64,
}

#[derive(Debug, Clone)]
pub struct RedisQuota {
    cache: RedisCache,
    script: std::sync::Arc<redis::Script>,
}

impl RedisQuota {
    pub fn new(cache: RedisCache) -> Self {
        RedisQuota { cache, script: std::sync::Arc::new(redis::Script::new(TAKE)) }
    }

    /// Takes one call of `tenant`'s hourly `limit` at `now`, or says it is used up.
    pub async fn take(&self, tenant: &str, limit: u64, now: DateTime<Utc>) -> Result<QuotaDecision, CacheError> {
        let minute = now.timestamp().div_euclid(60);
        let mut invocation = self.script.prepare_invoke();
        for offset in (0..WINDOW_MINUTES).rev() {
            invocation.key(self.cache.key(&format!("ratelimit:tenant:{tenant}:{}", minute - offset)));
        }
        invocation.arg(limit).arg(WINDOW_MINUTES * 60 + 60);
        let (allowed, used): (u8, u64) = self.cache.invoke("quota", invocation).await?;
        Ok(QuotaDecision { allowed: allowed == 1, used })
    }
}
