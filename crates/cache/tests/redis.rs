//! The Redis hot paths against the real server (`ALUSKORT_TEST_REDIS_URL`, which `scripts/test`
//! sets to the machine's 127.0.0.1:6379; unset, these tests skip, and with `CI` set the script
//! fails instead of skipping). Each test works under its own key prefix and deletes it after.
//!
//! The cached stores are also held to the case store's own conformance suites, run through the
//! cache with the real SQLite store behind it: a cache must answer exactly what the store would.

use std::sync::Arc;
use std::time::Duration;

use aluskort_cache::fp::CachedContext;
use aluskort_cache::kill::{KillSwitchStore, refresh};
use aluskort_cache::quota::RedisQuota;
use aluskort_cache::ti::{CachedThreatIntel, ttl_for_confidence};
use aluskort_cache::{CacheError, RedisCache};
use aluskort_config::{KillDimension, KillSwitches, RedisConfig, SecretString, SharedKillSwitches};
use aluskort_store::sqlite::SqliteStore;
use aluskort_store::{ContextStore, FpPattern, FpStatus, ThreatIntelStore, TiIndicator, conformance};
use chrono::{Duration as ChronoDuration, Utc};

fn redis_url() -> Option<String> {
    aluskort_testkit::redis_test_url()
}

/// A connection under a fresh prefix, or `None` (skip) without a test server.
async fn cache(name: &str) -> Option<RedisCache> {
    let url = redis_url()?;
    let config = RedisConfig {
        url: SecretString::new(url),
        key_prefix: format!("aluskort-test:{name}:{}:", uuid::Uuid::new_v4().simple()),
        timeout: Duration::from_secs(2),
        negative_ttl_secs: 600,
        kill_switch_refresh: Duration::from_secs(1),
    };
    Some(RedisCache::connect(&config).await.expect("the test Redis server answers"))
}

/// Deletes every key under the cache's prefix.
async fn clean(cache: &RedisCache) {
    cache.clear_prefix().await.expect("clear");
    let left: Vec<String> = cache.query("keys", redis::cmd("KEYS").arg(format!("{}*", cache.prefix()))).await.expect("keys");
    assert!(left.is_empty(), "{left:?}");
}

async fn sqlite() -> Arc<SqliteStore> {
    Arc::new(SqliteStore::in_memory().await.expect("sqlite"))
}

#[tokio::test]
async fn the_ioc_cache_passes_the_stores_threat_intel_conformance_suite() {
    let Some(cache) = cache("ti-conformance").await else { return };
    let cached = CachedThreatIntel::new(cache.clone(), sqlite().await);
    // Twice: the first pass fills the cache from the store, the second is answered from it.
    conformance::threat_intel_matches_exactly_and_expires(&cached).await;
    conformance::threat_intel_matches_exactly_and_expires(&cached).await;
    clean(&cache).await;
}

#[tokio::test]
async fn the_fp_hot_cache_passes_the_stores_context_conformance_suites() {
    let Some(cache) = cache("fp-conformance").await else { return };
    // Each suite on a fresh store (they assume an empty one), all through one Redis.
    conformance::fp_patterns_match_by_tenant_status_and_expiry(&CachedContext::new(cache.clone(), sqlite().await)).await;
    conformance::fp_patterns_are_listed_by_tenant_and_status(&CachedContext::new(cache.clone(), sqlite().await)).await;
    conformance::user_risk_is_case_insensitive_and_replaced_on_reimport(&CachedContext::new(cache.clone(), sqlite().await)).await;
    conformance::exposures_correlate_by_asset_and_zone(&CachedContext::new(cache.clone(), sqlite().await)).await;
    conformance::context_writes_are_validated(&CachedContext::new(cache.clone(), sqlite().await)).await;
    clean(&cache).await;
}

fn indicator(tenant: &str, value: &str, confidence: u8, days: i64) -> TiIndicator {
    TiIndicator {
        tenant_id: tenant.to_owned(),
        indicator: value.to_owned(),
        confidence,
        source: "feed".to_owned(),
        description: "seen in a campaign".to_owned(),
        expires_at: Utc::now() + ChronoDuration::days(days),
    }
}

/// FR-ENR-004: a second lookup is answered by Redis (the store behind it is not asked), keys are
/// `ioc:{tenant}:{type}:{value}` with the confidence TTLs, a miss is cached, and a write through
/// the cache is visible to the next lookup at once.
#[tokio::test]
async fn lookups_are_served_from_redis_and_writes_are_seen_at_once() {
    let Some(cache) = cache("ti-hits").await else { return };
    let store = sqlite().await;
    let cached = CachedThreatIntel::new(cache.clone(), store.clone());
    cached
        .upsert_indicators(&[indicator("", "ipv4:203.0.113.7", 90, 60), indicator("acme", "domain:evil.example", 60, 60)])
        .await
        .expect("import");
    let wanted = ["ipv4:203.0.113.7".to_owned(), "domain:evil.example".to_owned(), "url:http://nobody.example/".to_owned()];
    let first = cached.match_indicators("acme", &wanted, Utc::now()).await.expect("first lookup");
    assert_eq!(first.len(), 2);

    let ttl = |key: String| {
        let cache = cache.clone();
        async move { cache.query::<i64>("ttl", redis::cmd("TTL").arg(cache.key(&key))).await.expect("ttl") }
    };
    let global = ttl("ioc:*:ipv4:203.0.113.7".to_owned()).await;
    assert!(global > 2_591_000 && global <= 2_592_000, "confidence 90 lives 30 days: {global}");
    let tenant = ttl("ioc:acme:domain:evil.example".to_owned()).await;
    assert!(tenant > 604_000 && tenant <= 604_800, "confidence 60 lives 7 days: {tenant}");
    let miss = ttl("ioc:acme:url:http://nobody.example/".to_owned()).await;
    assert!(miss > 0 && miss <= 600, "a miss lives negative_ttl_secs: {miss}");
    assert_eq!(
        (ttl_for_confidence(81), ttl_for_confidence(80), ttl_for_confidence(50), ttl_for_confidence(49)),
        (2_592_000, 604_800, 604_800, 86_400)
    );

    // Written to the store behind the cache's back: the cache still answers from what it holds,
    // which proves the second lookup never reached the store.
    store.upsert_indicators(&[indicator("acme", "url:http://nobody.example/", 95, 60)]).await.expect("behind the cache");
    let second = cached.match_indicators("acme", &wanted, Utc::now()).await.expect("second lookup");
    assert_eq!(second.len(), 2, "answered from Redis: {second:?}");

    // Written through the cache: seen at once, despite the cached miss.
    cached.upsert_indicators(&[indicator("acme", "url:http://nobody.example/", 95, 60)]).await.expect("through the cache");
    let third = cached.match_indicators("acme", &wanted, Utc::now()).await.expect("third lookup");
    assert_eq!(third.len(), 3, "{third:?}");
    // Other tenants see the global feed only.
    let other = cached.match_indicators("globex", &wanted, Utc::now()).await.expect("other tenant");
    assert_eq!(other.iter().map(|i| i.indicator.as_str()).collect::<Vec<_>>(), ["ipv4:203.0.113.7"]);
    // Expiry is judged by each lookup's own time, also for cached entries.
    let later = cached.match_indicators("acme", &wanted, Utc::now() + ChronoDuration::days(61)).await.expect("later");
    assert!(later.is_empty(), "all expired by then: {later:?}");
    clean(&cache).await;
}

/// Fail-open to the store: with Redis unreachable every lookup is the store's answer, and the
/// breaker stops trying after three failures instead of paying the timeout each time.
#[tokio::test]
async fn a_dead_redis_falls_back_to_the_store_and_opens_the_breaker() {
    let Some(cache) = cache("ti-dead").await else { return };
    clean(&cache).await;
    // A port nothing listens on: connecting fails at once, clearly.
    let dead = RedisConfig {
        url: SecretString::new("redis://:secret-password@127.0.0.1:1/".to_owned()),
        key_prefix: String::new(),
        timeout: Duration::from_millis(300),
        negative_ttl_secs: 60,
        kill_switch_refresh: Duration::from_secs(1),
    };
    let error = RedisCache::connect(&dead).await.expect_err("nothing listens on port 1");
    assert!(!error.to_string().contains("secret-password"), "the password stays out of errors: {error}");

    // A server that stops answering is simulated by a blocking pop that outlasts the timeout
    // (it blocks only this connection, not the server the other tests share).
    let slow = RedisConfig {
        url: SecretString::new(redis_url().unwrap_or_default()),
        key_prefix: format!("{}slow:", cache.prefix()),
        timeout: Duration::from_millis(200),
        negative_ttl_secs: 60,
        kill_switch_refresh: Duration::from_secs(1),
    };
    let slow = RedisCache::connect(&slow).await.expect("connect");
    for _ in 0..3 {
        let outcome: Result<Option<Vec<String>>, CacheError> =
            slow.query("stall", redis::cmd("BLPOP").arg(slow.key("nothing")).arg(1)).await;
        assert!(
            outcome.as_ref().is_err_and(|error| error.to_string().contains("timed out") || matches!(error, CacheError::Timeout { .. })),
            "{outcome:?}"
        );
    }
    let store = sqlite().await;
    store.upsert_indicators(&[indicator("", "ipv4:198.51.100.9", 90, 30)]).await.expect("import");
    let cached = CachedThreatIntel::new(slow.clone(), store);
    let started = std::time::Instant::now();
    let found = cached.match_indicators("acme", &["ipv4:198.51.100.9".to_owned()], Utc::now()).await.expect("store answers");
    assert_eq!(found.len(), 1, "the store's answer");
    let outcome: Result<String, CacheError> = slow.query("ping", redis::cmd("PING")).await;
    assert!(matches!(outcome, Err(CacheError::CircuitOpen { .. })), "the breaker is open: {outcome:?}");
    assert!(started.elapsed() < Duration::from_millis(200), "no timeout paid while open: {:?}", started.elapsed());
    clean(&cache).await;
}

fn pattern(id: &str, status: FpStatus) -> FpPattern {
    FpPattern {
        pattern_id: id.to_owned(),
        tenant: Some("acme".to_owned()),
        name: format!("pattern {id}"),
        alert_name_regex: Some("(?i)^backup job .* failed$".to_owned()),
        entity_patterns: Vec::new(),
        confidence_threshold: 0.9,
        status,
        approved_by: vec!["alice".to_owned(), "bob".to_owned()],
        approval_date: Some(Utc::now()),
        expires_at: Some(Utc::now() + ChronoDuration::days(90)),
        created_at: Utc::now(),
        reason: "nightly backups".to_owned(),
    }
}

/// FR-RAG-005: the hot list is served from Redis, and a revocation through any worker's cache is
/// seen by every other worker's next read (the generation counter), never hidden for a TTL.
#[tokio::test]
async fn a_revocation_through_one_worker_is_seen_by_the_next_read_of_another() {
    let Some(cache) = cache("fp-revoke").await else { return };
    let store = sqlite().await;
    let worker_a = CachedContext::new(cache.clone(), store.clone());
    let worker_b = CachedContext::new(cache.clone(), store.clone());
    let active = pattern("fp-backup", FpStatus::Active);
    worker_a.upsert_fp_pattern(&active).await.expect("upsert");
    assert_eq!(worker_b.matchable_fp_patterns("acme", Utc::now()).await.expect("read").len(), 1);
    // Behind the caches' back: still served from Redis, so the read did not reach the store.
    let mut behind = active.clone();
    behind.status = FpStatus::Revoked;
    store.upsert_fp_pattern(&behind).await.expect("behind the cache");
    assert_eq!(worker_b.matchable_fp_patterns("acme", Utc::now()).await.expect("cached").len(), 1, "served from Redis");
    store.upsert_fp_pattern(&active).await.expect("restore");
    // Through worker A's cache: worker B sees it at once.
    let mut revoked = active.clone();
    revoked.status = FpStatus::Revoked;
    worker_a.replace_fp_pattern(&active, &revoked).await.expect("revoke");
    assert!(worker_b.matchable_fp_patterns("acme", Utc::now()).await.expect("fresh").is_empty(), "revocation seen at once");
    clean(&cache).await;
}

/// Kill switches switched on at run time reach every worker's switches in force within one
/// refresh period, joined with the configuration file's; switching off removes them; bad values
/// are refused with the field and the reason.
#[tokio::test]
async fn kill_switches_reach_every_worker_within_a_refresh() {
    let Some(cache) = cache("kill").await else { return };
    let store = KillSwitchStore::new(cache.clone());
    let configured = KillSwitches { sources: vec!["splunk".to_owned()], ..KillSwitches::default() };
    let shared = SharedKillSwitches::new(configured.clone());
    let shutdown = tokio_util::sync::CancellationToken::new();
    let refresher = tokio::spawn(refresh(store.clone(), configured.clone(), shared.clone(), Duration::from_millis(50), shutdown.clone()));

    let switch =
        store.activate(KillDimension::Technique, "t1078.004", "alice", "suspected mass false negatives", Utc::now()).await.expect("on");
    assert_eq!((switch.dimension.as_str(), switch.value.as_str()), ("technique", "T1078.004"), "canonical id stored");
    store.activate(KillDimension::Pattern, "fp-backup", "alice", "pattern under review", Utc::now()).await.expect("on");
    let raw: Option<String> = cache.query("get", redis::cmd("GET").arg(cache.key("kill_switch:technique:T1078.004"))).await.expect("get");
    let stored: serde_json::Value = serde_json::from_str(&raw.expect("the design's key")).expect("json");
    for field in ["activated_by", "activated_at", "reason", "dimension", "value"] {
        assert!(stored.get(field).is_some(), "{field} in {stored}");
    }
    let in_force = wait_for(&shared, |switches| switches.patterns.len() == 1 && switches.techniques.len() == 1).await;
    assert_eq!(in_force.sources, ["splunk"], "the configuration file's switches stay");
    assert!(in_force.applies("acme", "sentinel", ["T1078.004"]).is_some());
    assert!(in_force.blocks_pattern("fp-backup").is_some());

    assert!(store.deactivate(KillDimension::Pattern, "fp-backup").await.expect("off"));
    assert!(!store.deactivate(KillDimension::Pattern, "fp-backup").await.expect("off again"), "already off");
    let in_force = wait_for(&shared, |switches| switches.patterns.is_empty()).await;
    assert_eq!(in_force.techniques, ["T1078.004"]);

    let refused = store.activate(KillDimension::Technique, "T10", "alice", "why", Utc::now()).await.expect_err("bad id").to_string();
    assert!(refused.starts_with("technique: \"T10\" is not a technique id"), "{refused}");
    let refused = store.activate(KillDimension::Tenant, "acme", "alice", " ", Utc::now()).await.expect_err("no reason").to_string();
    assert!(refused.starts_with("reason:"), "{refused}");
    shutdown.cancel();
    refresher.await.expect("refresher stops on shutdown");
    clean(&cache).await;
}

async fn wait_for(shared: &SharedKillSwitches, done: impl Fn(&KillSwitches) -> bool) -> Arc<KillSwitches> {
    for _ in 0..100 {
        let now = shared.snapshot();
        if done(&now) {
            return now;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("kill switches not refreshed in 2 s: {:?}", shared.snapshot());
}

/// FR-ING-007: the hourly quota is taken atomically: of 40 concurrent requests from workers
/// sharing one Redis against a limit of 25, exactly 25 are allowed; other tenants are unaffected.
#[tokio::test]
async fn the_hourly_quota_is_taken_atomically_across_workers() {
    let Some(cache) = cache("quota").await else { return };
    let now = Utc::now();
    let mut tasks = Vec::new();
    for _ in 0..40 {
        let quota = RedisQuota::new(cache.clone());
        tasks.push(tokio::spawn(async move { quota.take("acme", 25, now).await.expect("take") }));
    }
    let mut allowed = 0;
    for task in tasks {
        if task.await.expect("task").allowed {
            allowed += 1;
        }
    }
    assert_eq!(allowed, 25);
    let quota = RedisQuota::new(cache.clone());
    let refused = quota.take("acme", 25, now).await.expect("take");
    assert_eq!((refused.allowed, refused.used), (false, 25));
    assert!(quota.take("globex", 25, now).await.expect("other tenant").allowed);
    // The window slides: an hour and a minute later the calls have left it.
    let later = quota.take("acme", 25, now + ChronoDuration::minutes(61)).await.expect("later");
    assert_eq!((later.allowed, later.used), (true, 1));
    clean(&cache).await;
}
