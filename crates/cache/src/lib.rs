//! Redis hot paths for a multi-worker deployment (issue 9; REQUIREMENTS §3.9 "Other stores",
//! FR-ENR-004, FR-RAG-005, FR-ING-007, NFR-PRF-008):
//!
//! - [`ti::CachedThreatIntel`]: IOC exact matches, `ioc:{tenant}:{type}:{value}`, in front of the
//!   case store's threat intel, TTL by confidence (30 d / 7 d / 24 h), "no such indicator" cached
//!   too and replaced the moment an indicator is written through the cache.
//! - [`fp::CachedContext`]: the FP patterns that may close a tenant's alerts, `fp:{tenant}`,
//!   invalidated by a generation counter that every pattern write increments.
//! - [`kill::KillSwitchStore`]: kill switches switched on at run time, `kill_switch:{dim}:{value}`,
//!   read by every worker's refresher within `kill_switch_refresh_secs` (< 1 min, H02).
//! - [`quota::RedisQuota`]: tenant model-call quotas over a sliding hour, one atomic script.
//!
//! Redis is a cache and a coordinator here, never the record: on any Redis error the caller falls
//! back to the case store (fail-open to the source of truth, REQUIREMENTS §3.12 "Redis down → PG
//! IOC lookup"), and a circuit breaker (3 failures in a minute → 10 s open, §3.11) keeps a dead
//! server from adding its timeout to every lookup.

pub mod fp;
pub mod kill;
pub mod quota;
pub mod ti;

use std::sync::Mutex;
use std::time::{Duration, Instant};

use aluskort_config::RedisConfig;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

/// Failures within [`BREAKER_WINDOW`] that open the breaker (§3.11: Redis 3/1 min → 10 s).
const BREAKER_FAILURES: usize = 3;
const BREAKER_WINDOW: Duration = Duration::from_secs(60);
const BREAKER_OPEN_FOR: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("redis {what}: {message}")]
    Redis { what: &'static str, message: String },
    #[error("redis {what}: no answer within {timeout:?}")]
    Timeout { what: &'static str, timeout: Duration },
    #[error("redis is skipped for {remaining:?} after repeated failures (circuit open)")]
    CircuitOpen { remaining: Duration },
    #[error("redis {what}: unreadable value under {key}: {message}")]
    Corrupt { what: &'static str, key: String, message: String },
}

/// A connection to the configured Redis with its key prefix, command timeout and breaker. Cheap
/// to clone (one multiplexed connection, re-established in the background when it drops).
#[derive(Clone)]
pub struct RedisCache {
    connection: ConnectionManager,
    prefix: String,
    timeout: Duration,
    negative_ttl_secs: u64,
    breaker: std::sync::Arc<Breaker>,
}

impl std::fmt::Debug for RedisCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may carry a password: never printed.
        f.debug_struct("RedisCache").field("prefix", &self.prefix).field("timeout", &self.timeout).finish_non_exhaustive()
    }
}

impl RedisCache {
    /// Connects (and checks with `PING`); a configured Redis that cannot be reached at start is an
    /// error, so a typo in `redis.url` is found at once rather than as a slow fallback.
    pub async fn connect(config: &RedisConfig) -> Result<Self, CacheError> {
        let client = redis::Client::open(config.url.expose())
            .map_err(|error| CacheError::Redis { what: "url", message: redact(&error.to_string(), config.url.expose()) })?;
        let manager_config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(config.timeout))
            .set_response_timeout(Some(config.timeout))
            .set_number_of_retries(2);
        let connect = client.get_connection_manager_with_config(manager_config);
        let connection = match tokio::time::timeout(config.timeout, connect).await {
            Ok(Ok(connection)) => connection,
            Ok(Err(error)) => {
                return Err(CacheError::Redis { what: "connect", message: redact(&error.to_string(), config.url.expose()) });
            }
            Err(_) => return Err(CacheError::Timeout { what: "connect", timeout: config.timeout }),
        };
        let cache = RedisCache {
            connection,
            prefix: config.key_prefix.clone(),
            timeout: config.timeout,
            negative_ttl_secs: config.negative_ttl_secs,
            breaker: std::sync::Arc::new(Breaker::default()),
        };
        let pong: String = cache.query("ping", redis::cmd("PING")).await?;
        if pong != "PONG" {
            return Err(CacheError::Redis { what: "ping", message: format!("unexpected answer {pong:?}") });
        }
        Ok(cache)
    }

    /// `parts` under this deployment's prefix.
    pub fn key(&self, parts: &str) -> String {
        format!("{}{parts}", self.prefix)
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Deletes every key under this prefix (tests and benchmarks under a prefix of their own;
    /// refused for an empty prefix, which would be the whole database). Returns how many.
    pub async fn clear_prefix(&self) -> Result<u64, CacheError> {
        if self.prefix.is_empty() {
            return Err(CacheError::Redis { what: "clear", message: "refusing to clear without a key prefix".to_owned() });
        }
        let mut cursor: u64 = 0;
        let mut deleted = 0;
        loop {
            let (next, keys): (u64, Vec<String>) = self
                .query("clear", redis::cmd("SCAN").arg(cursor).arg("MATCH").arg(format!("{}*", self.prefix)).arg("COUNT").arg(1_000))
                .await?;
            if !keys.is_empty() {
                deleted += self.query::<u64>("clear", redis::cmd("DEL").arg(keys)).await?;
            }
            if next == 0 {
                return Ok(deleted);
            }
            cursor = next;
        }
    }

    /// Runs one command (or a pipeline) under the timeout and the breaker.
    pub async fn query<T: redis::FromRedisValue>(&self, what: &'static str, command: impl Query) -> Result<T, CacheError> {
        self.guarded(what, async {
            let mut connection = self.connection.clone();
            command.run(&mut connection).await
        })
        .await
    }

    /// Runs a Lua script under the timeout and the breaker.
    pub async fn invoke<T: redis::FromRedisValue>(
        &self,
        what: &'static str,
        invocation: redis::ScriptInvocation<'_>,
    ) -> Result<T, CacheError> {
        self.guarded(what, async {
            let mut connection = self.connection.clone();
            invocation.invoke_async(&mut connection).await
        })
        .await
    }

    async fn guarded<T>(&self, what: &'static str, call: impl Future<Output = redis::RedisResult<T>>) -> Result<T, CacheError> {
        if let Some(remaining) = self.breaker.open_for() {
            return Err(CacheError::CircuitOpen { remaining });
        }
        let outcome = match tokio::time::timeout(self.timeout, call).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(error)) => Err(CacheError::Redis { what, message: error.to_string() }),
            Err(_) => Err(CacheError::Timeout { what, timeout: self.timeout }),
        };
        match &outcome {
            Ok(_) => self.breaker.success(),
            Err(_) => {
                metrics::counter!("aluskort_redis_errors_total", "op" => what).increment(1);
                self.breaker.failure();
            }
        }
        outcome
    }
}

/// A command or a pipeline, run the same way.
pub trait Query: Send {
    fn run<T: redis::FromRedisValue>(self, connection: &mut ConnectionManager) -> impl Future<Output = redis::RedisResult<T>> + Send;
}

impl Query for redis::Cmd {
    async fn run<T: redis::FromRedisValue>(self, connection: &mut ConnectionManager) -> redis::RedisResult<T> {
        self.query_async(connection).await
    }
}

impl Query for redis::Pipeline {
    async fn run<T: redis::FromRedisValue>(self, connection: &mut ConnectionManager) -> redis::RedisResult<T> {
        self.query_async(connection).await
    }
}

impl Query for &mut redis::Cmd {
    async fn run<T: redis::FromRedisValue>(self, connection: &mut ConnectionManager) -> redis::RedisResult<T> {
        self.query_async(connection).await
    }
}

impl Query for &mut redis::Pipeline {
    async fn run<T: redis::FromRedisValue>(self, connection: &mut ConnectionManager) -> redis::RedisResult<T> {
        self.query_async(connection).await
    }
}

/// `text` with `url` (which may hold a password) replaced.
fn redact(text: &str, url: &str) -> String {
    if url.is_empty() { text.to_owned() } else { text.replace(url, "redis://***") }
}

/// Closed until [`BREAKER_FAILURES`] failures fall within [`BREAKER_WINDOW`]; then open for
/// [`BREAKER_OPEN_FOR`], after which the next call is tried (half-open) and closes it on success.
#[derive(Debug, Default)]
struct Breaker {
    state: Mutex<BreakerState>,
}

#[derive(Debug, Default)]
struct BreakerState {
    failures: Vec<Instant>,
    open_until: Option<Instant>,
}

impl Breaker {
    fn open_for(&self) -> Option<Duration> {
        let state = self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        state.open_until.and_then(|until| until.checked_duration_since(Instant::now()))
    }

    fn success(&self) {
        let mut state = self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        state.failures.clear();
        state.open_until = None;
    }

    fn failure(&self) {
        let now = Instant::now();
        let mut state = self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        state.failures.retain(|at| now.duration_since(*at) < BREAKER_WINDOW);
        state.failures.push(now);
        if state.failures.len() >= BREAKER_FAILURES {
            tracing::warn!(open_for = ?BREAKER_OPEN_FOR, "redis failed {} times within a minute: falling back to the case store", state.failures.len());
            metrics::counter!("aluskort_redis_circuit_opened_total").increment(1);
            state.open_until = Some(now + BREAKER_OPEN_FOR);
            state.failures.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_breaker_opens_after_three_failures_within_a_minute_and_a_success_closes_it() {
        let breaker = Breaker::default();
        breaker.failure();
        breaker.failure();
        assert_eq!(breaker.open_for(), None, "two failures leave it closed");
        breaker.failure();
        let open = breaker.open_for().expect("open after the third");
        assert!(open <= BREAKER_OPEN_FOR && open > Duration::from_secs(9), "{open:?}");
        breaker.success();
        assert_eq!(breaker.open_for(), None);
    }

    #[test]
    fn a_url_with_a_password_is_redacted_from_errors() {
        let url = "redis://:hunter2@cache.internal:6379";
        assert_eq!(redact(&format!("cannot parse {url}"), url), "cannot parse redis://***");
    }
}
