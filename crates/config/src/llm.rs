//! `[llm]`: model providers, tier models, prices, spend limits, tenant service levels and queue
//! concurrency (REQUIREMENTS §3.5, FR-ING-006/007).
//!
//! `provider = "auto"` (the default) picks Anthropic when `ANTHROPIC_API_KEY` is set, else an
//! OpenAI-compatible server when `OPENAI_BASE_URL` or `OPENAI_API_KEY` is set, else the
//! deterministic provider: a machine with no keys needs no configuration. With both Anthropic and
//! an OpenAI-compatible server, the latter is the fallback per tier (`gpt-4o-mini` for tier 0,
//! `gpt-4o` for tiers 1 and 1+, none for the batch tier).

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use serde::Deserialize;

use crate::{SecretString, interpolate};

pub const TIERS: [&str; 4] = ["tier_0", "tier_1", "tier_1_plus", "tier_2"];
pub const ANTHROPIC_URL: &str = "https://api.anthropic.com";
pub const OPENAI_URL: &str = "https://api.openai.com";

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLlm {
    /// `auto` (default), `anthropic`, `openai_compatible` or `deterministic`.
    pub provider: Option<String>,
    /// Use the OpenAI-compatible server as fallback when Anthropic is primary (default true).
    pub fallback: Option<bool>,
    pub anthropic_url: Option<String>,
    pub anthropic_api_key: Option<String>,
    pub openai_url: Option<String>,
    pub openai_api_key: Option<String>,
    /// `openai` (default; also Ollama, vLLM, llama.cpp) or `azure`.
    pub openai_flavor: Option<String>,
    pub azure_api_version: Option<String>,
    /// `tools` (default) or `json_object` for servers without tool calling.
    pub openai_structured: Option<String>,
    pub request_timeout_secs: Option<u64>,
    pub max_retries: Option<u32>,
    pub retry_base_ms: Option<u64>,
    /// Stream answers over SSE (default false).
    pub stream: Option<bool>,
    /// Model per tier for the primary provider.
    #[serde(default)]
    pub models: BTreeMap<String, String>,
    /// Model per tier for the fallback provider.
    #[serde(default)]
    pub fallback_models: BTreeMap<String, String>,
    /// Dollars per million tokens by model id, overriding the built-in table.
    #[serde(default)]
    pub prices: BTreeMap<String, RawPrice>,
    #[serde(default)]
    pub spend: RawSpend,
    /// Tenant id → `premium`, `standard` or `trial` (unknown tenants are standard).
    #[serde(default)]
    pub tenants: BTreeMap<String, String>,
    /// Concurrent jobs for the critical, high, normal and low queues (default [8, 4, 2, 1]).
    pub queue_concurrency: Option<Vec<usize>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPrice {
    pub input: f64,
    pub output: f64,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSpend {
    pub daily_soft_usd: Option<f64>,
    pub daily_hard_usd: Option<f64>,
    pub monthly_soft_usd: Option<f64>,
    pub monthly_hard_usd: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpenAiFlavorConfig {
    OpenAi,
    Azure { api_version: String },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LlmProviderConfig {
    Deterministic,
    Anthropic { url: String, api_key: SecretString },
    OpenAiCompatible { url: String, api_key: Option<SecretString>, flavor: OpenAiFlavorConfig, json_object: bool },
}

impl LlmProviderConfig {
    pub fn name(&self) -> &'static str {
        match self {
            LlmProviderConfig::Deterministic => "deterministic",
            LlmProviderConfig::Anthropic { .. } => "anthropic",
            LlmProviderConfig::OpenAiCompatible { .. } => "openai_compatible",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SpendConfig {
    pub daily_soft_usd: f64,
    pub daily_hard_usd: f64,
    pub monthly_soft_usd: f64,
    pub monthly_hard_usd: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct LlmConfig {
    pub primary: LlmProviderConfig,
    pub fallback: Option<LlmProviderConfig>,
    /// Tier (`tier_0` ...) → model id, for the primary and the fallback.
    pub models: BTreeMap<String, String>,
    pub fallback_models: BTreeMap<String, String>,
    pub request_timeout: Duration,
    pub max_retries: u32,
    pub retry_base: Duration,
    pub stream: bool,
    /// Model id → (input, output) dollars per million tokens.
    pub prices: BTreeMap<String, (f64, f64)>,
    pub spend: SpendConfig,
    /// Tenant → `premium` / `standard` / `trial`.
    pub tenants: BTreeMap<String, String>,
    pub queue_concurrency: [usize; 4],
}

impl Default for LlmConfig {
    fn default() -> Self {
        LlmConfig {
            primary: LlmProviderConfig::Deterministic,
            fallback: None,
            models: BTreeMap::new(),
            fallback_models: BTreeMap::new(),
            request_timeout: Duration::from_secs(300),
            max_retries: 3,
            retry_base: Duration::from_secs(1),
            stream: false,
            prices: BTreeMap::new(),
            spend: SpendConfig { daily_soft_usd: 30.0, daily_hard_usd: 50.0, monthly_soft_usd: 500.0, monthly_hard_usd: 1_000.0 },
            tenants: BTreeMap::new(),
            queue_concurrency: [8, 4, 2, 1],
        }
    }
}

/// Default models: Anthropic per §3.5; OpenAI models for an OpenAI-compatible primary or fallback.
pub fn default_models(provider: &LlmProviderConfig) -> BTreeMap<String, String> {
    let names: [&str; 4] = match provider {
        LlmProviderConfig::Anthropic { .. } => {
            ["claude-haiku-4-5-20251001", "claude-sonnet-4-5-20250929", "claude-opus-4-6", "claude-sonnet-4-5-20250929"]
        }
        LlmProviderConfig::OpenAiCompatible { .. } => ["gpt-4o-mini", "gpt-4o", "gpt-4o", "gpt-4o"],
        LlmProviderConfig::Deterministic => return BTreeMap::new(),
    };
    TIERS.iter().zip(names).map(|(tier, model)| ((*tier).to_owned(), model.to_owned())).collect()
}

fn check_models(field: &str, models: &BTreeMap<String, String>, errors: &mut Vec<String>) {
    for (tier, model) in models {
        if !TIERS.contains(&tier.as_str()) {
            errors.push(format!("`llm.{field}.{tier}`: unknown tier (expected one of {})", TIERS.join(", ")));
        }
        if model.trim().is_empty() {
            errors.push(format!("`llm.{field}.{tier}`: model id is empty"));
        }
    }
}

pub(crate) fn validate_llm(raw: RawLlm, env: &HashMap<String, String>, errors: &mut Vec<String>) -> LlmConfig {
    let defaults = LlmConfig::default();
    let mut text = |field: &str, value: Option<&String>| value.map(|v| interpolate(&format!("llm.{field}"), v, env, errors));
    let anthropic_key = text("anthropic_api_key", raw.anthropic_api_key.as_ref()).or_else(|| env.get("ANTHROPIC_API_KEY").cloned());
    let anthropic_url = text("anthropic_url", raw.anthropic_url.as_ref()).unwrap_or_else(|| ANTHROPIC_URL.to_owned());
    let openai_key = text("openai_api_key", raw.openai_api_key.as_ref()).or_else(|| env.get("OPENAI_API_KEY").cloned());
    let openai_url = text("openai_url", raw.openai_url.as_ref()).or_else(|| env.get("OPENAI_BASE_URL").cloned());
    let azure_version = text("azure_api_version", raw.azure_api_version.as_ref());
    crate::sources::check_url("llm.anthropic_url", Some(&anthropic_url), errors);
    crate::sources::check_url("llm.openai_url", openai_url.as_deref(), errors);
    let anthropic_key = anthropic_key.filter(|key| !key.trim().is_empty());
    let openai_key = openai_key.filter(|key| !key.trim().is_empty());

    let flavor = match raw.openai_flavor.as_deref().unwrap_or("openai") {
        "openai" => OpenAiFlavorConfig::OpenAi,
        "azure" => match azure_version {
            Some(api_version) if !api_version.is_empty() => OpenAiFlavorConfig::Azure { api_version },
            _ => {
                errors.push("`llm.azure_api_version` is required for openai_flavor = \"azure\"".to_owned());
                OpenAiFlavorConfig::OpenAi
            }
        },
        other => {
            errors.push(format!("`llm.openai_flavor`: unknown flavor {other:?} (expected \"openai\" or \"azure\")"));
            OpenAiFlavorConfig::OpenAi
        }
    };
    let json_object = match raw.openai_structured.as_deref().unwrap_or("tools") {
        "tools" => false,
        "json_object" => true,
        other => {
            errors.push(format!("`llm.openai_structured`: unknown mode {other:?} (expected \"tools\" or \"json_object\")"));
            false
        }
    };
    let openai = (openai_url.is_some() || openai_key.is_some()).then(|| LlmProviderConfig::OpenAiCompatible {
        url: openai_url.clone().unwrap_or_else(|| OPENAI_URL.to_owned()),
        api_key: openai_key.clone().map(SecretString::new),
        flavor: flavor.clone(),
        json_object,
    });
    let anthropic =
        anthropic_key.clone().map(|key| LlmProviderConfig::Anthropic { url: anthropic_url.clone(), api_key: SecretString::new(key) });

    let primary = match raw.provider.as_deref().unwrap_or("auto") {
        "auto" => anthropic.clone().or_else(|| openai.clone()).unwrap_or(LlmProviderConfig::Deterministic),
        "deterministic" => LlmProviderConfig::Deterministic,
        "anthropic" => anthropic.clone().unwrap_or_else(|| {
            errors.push("`llm.anthropic_api_key` (or ANTHROPIC_API_KEY) is required for provider = \"anthropic\"".to_owned());
            LlmProviderConfig::Deterministic
        }),
        "openai_compatible" => openai.clone().unwrap_or_else(|| {
            errors
                .push("`llm.openai_url` (or OPENAI_BASE_URL / OPENAI_API_KEY) is required for provider = \"openai_compatible\"".to_owned());
            LlmProviderConfig::Deterministic
        }),
        other => {
            errors.push(format!(
                "`llm.provider`: unknown provider {other:?} (expected \"auto\", \"anthropic\", \"openai_compatible\" or \"deterministic\")"
            ));
            LlmProviderConfig::Deterministic
        }
    };
    if let (LlmProviderConfig::OpenAiCompatible { url, api_key: None, flavor, .. }, true) = (&primary, true)
        && (url.starts_with(OPENAI_URL) || matches!(flavor, OpenAiFlavorConfig::Azure { .. }))
    {
        errors.push("`llm.openai_api_key` (or OPENAI_API_KEY) is required for OpenAI and Azure OpenAI".to_owned());
    }
    let fallback = match (&primary, raw.fallback.unwrap_or(true)) {
        (LlmProviderConfig::Anthropic { .. }, true) => openai,
        _ => None,
    };

    check_models("models", &raw.models, errors);
    check_models("fallback_models", &raw.fallback_models, errors);
    let mut models = default_models(&primary);
    models.extend(raw.models);
    let mut fallback_models = fallback.as_ref().map(default_models).unwrap_or_default();
    // Tier 2 is the batch tier: only Anthropic has a batch API, so no fallback by default.
    fallback_models.remove("tier_2");
    fallback_models.extend(raw.fallback_models);

    let request_timeout = Duration::from_secs(raw.request_timeout_secs.unwrap_or(300));
    if request_timeout.is_zero() {
        errors.push("`llm.request_timeout_secs` must be > 0".to_owned());
    }
    let max_retries = raw.max_retries.unwrap_or(3);
    if max_retries > 10 {
        errors.push("`llm.max_retries` must be at most 10".to_owned());
    }
    let retry_base = Duration::from_millis(raw.retry_base_ms.unwrap_or(1_000));

    let mut prices = BTreeMap::new();
    for (model, price) in raw.prices {
        if !(price.input.is_finite() && price.output.is_finite() && price.input >= 0.0 && price.output >= 0.0) {
            errors.push(format!("`llm.prices.{model}`: prices must be finite and >= 0"));
        }
        prices.insert(model, (price.input, price.output));
    }

    let spend = SpendConfig {
        daily_soft_usd: raw.spend.daily_soft_usd.unwrap_or(defaults.spend.daily_soft_usd),
        daily_hard_usd: raw.spend.daily_hard_usd.unwrap_or(defaults.spend.daily_hard_usd),
        monthly_soft_usd: raw.spend.monthly_soft_usd.unwrap_or(defaults.spend.monthly_soft_usd),
        monthly_hard_usd: raw.spend.monthly_hard_usd.unwrap_or(defaults.spend.monthly_hard_usd),
    };
    for (name, value) in [
        ("daily_soft_usd", spend.daily_soft_usd),
        ("daily_hard_usd", spend.daily_hard_usd),
        ("monthly_soft_usd", spend.monthly_soft_usd),
        ("monthly_hard_usd", spend.monthly_hard_usd),
    ] {
        if !value.is_finite() || value < 0.0 {
            errors.push(format!("`llm.spend.{name}` must be a finite amount >= 0"));
        }
    }
    if spend.daily_soft_usd > spend.daily_hard_usd {
        errors.push("`llm.spend.daily_soft_usd` must not exceed `llm.spend.daily_hard_usd`".to_owned());
    }
    if spend.monthly_soft_usd > spend.monthly_hard_usd {
        errors.push("`llm.spend.monthly_soft_usd` must not exceed `llm.spend.monthly_hard_usd`".to_owned());
    }

    for (tenant, level) in &raw.tenants {
        if !matches!(level.as_str(), "premium" | "standard" | "trial") {
            errors.push(format!("`llm.tenants.{tenant}`: unknown service level {level:?} (expected premium, standard or trial)"));
        }
    }

    let queue_concurrency = match raw.queue_concurrency.as_deref() {
        None => defaults.queue_concurrency,
        Some([critical, high, normal, low]) if [critical, high, normal, low].iter().all(|n| (1..=256).contains(*n)) => {
            [*critical, *high, *normal, *low]
        }
        Some(_) => {
            errors.push("`llm.queue_concurrency` must be four numbers 1..=256 (critical, high, normal, low)".to_owned());
            defaults.queue_concurrency
        }
    };

    LlmConfig {
        primary,
        fallback,
        models,
        fallback_models,
        request_timeout,
        max_retries,
        retry_base,
        stream: raw.stream.unwrap_or(false),
        prices,
        spend,
        tenants: raw.tenants,
        queue_concurrency,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn auto_picks_anthropic_then_openai_then_deterministic_from_the_environment() {
        let mut errors = Vec::new();
        let none = validate_llm(RawLlm::default(), &env(&[]), &mut errors);
        assert_eq!(none.primary, LlmProviderConfig::Deterministic);
        assert!(none.models.is_empty());

        let both = validate_llm(RawLlm::default(), &env(&[("ANTHROPIC_API_KEY", "sk-ant-x"), ("OPENAI_API_KEY", "sk-o")]), &mut errors);
        assert_eq!(both.primary.name(), "anthropic");
        assert_eq!(both.fallback.as_ref().map(LlmProviderConfig::name), Some("openai_compatible"));
        assert_eq!(both.models.get("tier_1_plus").map(String::as_str), Some("claude-opus-4-6"));
        assert_eq!(both.fallback_models.get("tier_0").map(String::as_str), Some("gpt-4o-mini"));
        assert!(!both.fallback_models.contains_key("tier_2"), "no batch fallback");
        assert!(!format!("{both:?}").contains("sk-ant-x"), "keys never print");

        let local = validate_llm(RawLlm::default(), &env(&[("OPENAI_BASE_URL", "http://127.0.0.1:11434")]), &mut errors);
        assert!(matches!(local.primary, LlmProviderConfig::OpenAiCompatible { api_key: None, .. }), "Ollama needs no key");
        assert!(errors.is_empty(), "{errors:?}");
    }

    #[test]
    fn every_problem_is_named() {
        let raw = RawLlm {
            provider: Some("anthropic".to_owned()),
            openai_url: Some("http://10.0.0.5:8000".to_owned()),
            openai_flavor: Some("azure".to_owned()),
            models: BTreeMap::from([("tier_9".to_owned(), "x".to_owned())]),
            spend: RawSpend { daily_soft_usd: Some(60.0), ..RawSpend::default() },
            tenants: BTreeMap::from([("acme".to_owned(), "gold".to_owned())]),
            queue_concurrency: Some(vec![8, 4, 2]),
            ..RawLlm::default()
        };
        let mut errors = Vec::new();
        validate_llm(raw, &env(&[]), &mut errors);
        for expected in [
            "`llm.openai_url`",
            "`llm.azure_api_version` is required",
            "`llm.anthropic_api_key` (or ANTHROPIC_API_KEY) is required",
            "`llm.models.tier_9`: unknown tier",
            "`llm.spend.daily_soft_usd` must not exceed",
            "`llm.tenants.acme`: unknown service level \"gold\"",
            "`llm.queue_concurrency` must be four numbers",
        ] {
            assert!(errors.iter().any(|e| e.starts_with(expected)), "missing {expected}: {errors:#?}");
        }
    }
}
