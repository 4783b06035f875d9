//! Builds the gateway a configuration describes: one provider instance per configured vendor
//! (so one breaker each, shared by every tier that uses it), a route per tier with its model and
//! price, the fallback routes, and the deterministic provider as the last resort.

use std::collections::HashMap;
use std::sync::Arc;

use aluskort_audit::AuditLog;
use aluskort_config::{LlmConfig, LlmProviderConfig, OpenAiFlavorConfig};
use aluskort_llm::anthropic::{AnthropicConfig, AnthropicProvider};
use aluskort_llm::deterministic::DeterministicProvider;
use aluskort_llm::openai::{OpenAiConfig, OpenAiFlavor, OpenAiProvider, StructuredMode};
use aluskort_llm::{BatchProvider, Provider, RetryPolicy, VendorError};
use aluskort_store::UsageStore;
use tokio_util::sync::CancellationToken;

use crate::gateway::{Gateway, TenantTier};
use crate::quarantine::TechniqueCatalog;
use crate::router::{Route, Router, TierRoutes};
use crate::spend::{Price, SpendGuard, SpendLimits, default_price};
use crate::tier::Tier;

/// Anthropic models take 200K tokens; the OpenAI fallbacks 128K (§3.5).
const ANTHROPIC_CONTEXT: u64 = 200_000;
const OPENAI_CONTEXT: u64 = 128_000;

/// What the gateway needs besides its configuration.
pub struct GatewayParts {
    pub ledger: Arc<dyn UsageStore>,
    pub audit: Arc<AuditLog>,
    pub catalog: Arc<dyn TechniqueCatalog>,
    /// Answers for tasks that have a deterministic implementation.
    pub deterministic: DeterministicProvider,
}

/// A built provider and, for Anthropic, its batch API.
#[derive(Clone)]
struct Built {
    provider: Arc<dyn Provider>,
    batch: Option<Arc<dyn BatchProvider>>,
    context_window: u64,
    thinking: bool,
}

fn build_provider(
    config: &LlmConfig,
    provider: &LlmProviderConfig,
    name: &str,
    cancel: &CancellationToken,
) -> Result<Option<Built>, VendorError> {
    let retry = RetryPolicy { max_retries: config.max_retries, base: config.retry_base };
    Ok(match provider {
        LlmProviderConfig::Deterministic => None,
        LlmProviderConfig::Anthropic { url, api_key } => {
            let anthropic = Arc::new(AnthropicProvider::new(
                AnthropicConfig {
                    base_url: url.trim_end_matches('/').to_owned(),
                    api_key: api_key.expose().to_owned(),
                    name: name.to_owned(),
                    timeout: config.request_timeout,
                    retry,
                },
                cancel.clone(),
            )?);
            Some(Built { provider: anthropic.clone(), batch: Some(anthropic), context_window: ANTHROPIC_CONTEXT, thinking: true })
        }
        LlmProviderConfig::OpenAiCompatible { url, api_key, flavor, json_object } => {
            let flavor = match flavor {
                OpenAiFlavorConfig::OpenAi => OpenAiFlavor::OpenAi,
                OpenAiFlavorConfig::Azure { api_version } => OpenAiFlavor::Azure { api_version: api_version.clone() },
            };
            let openai = OpenAiProvider::new(
                OpenAiConfig {
                    name: name.to_owned(),
                    base_url: url.trim_end_matches('/').to_owned(),
                    api_key: api_key.as_ref().map(|key| key.expose().to_owned()),
                    flavor,
                    timeout: config.request_timeout,
                    retry,
                    structured: if *json_object { StructuredMode::JsonObject } else { StructuredMode::Tools },
                },
                cancel.clone(),
            )?;
            Some(Built { provider: Arc::new(openai), batch: None, context_window: OPENAI_CONTEXT, thinking: false })
        }
    })
}

fn price(config: &LlmConfig, model: &str) -> Price {
    config.prices.get(model).map_or_else(|| default_price(model), |(input, output)| Price { input: *input, output: *output })
}

fn route(config: &LlmConfig, built: &Built, tier: Tier, model: &str) -> Route {
    Route {
        provider: Arc::clone(&built.provider),
        model: model.to_owned(),
        price: price(config, model),
        context_window: built.context_window,
        thinking: built.thinking && tier == Tier::T1Plus,
        batch: if tier == Tier::T2 { built.batch.clone() } else { None },
    }
}

/// The router alone (also what `aluskort llm` commands show).
pub fn build_router(config: &LlmConfig, deterministic: DeterministicProvider, cancel: &CancellationToken) -> Result<Router, VendorError> {
    let primary = build_provider(config, &config.primary, config.primary.name(), cancel)?;
    let fallback = match &config.fallback {
        Some(fallback) => build_provider(config, fallback, fallback.name(), cancel)?,
        None => None,
    };
    let mut tiers = HashMap::new();
    if let Some(primary) = &primary {
        for tier in Tier::ALL {
            let Some(model) = config.models.get(tier.as_str()) else { continue };
            let fallbacks = match (&fallback, config.fallback_models.get(tier.as_str())) {
                (Some(built), Some(model)) => vec![route(config, built, tier, model)],
                _ => Vec::new(),
            };
            tiers.insert(tier, TierRoutes { primary: route(config, primary, tier, model), fallbacks });
        }
    }
    Ok(Router::new(tiers, Some(Arc::new(deterministic))))
}

pub fn build_gateway(config: &LlmConfig, parts: GatewayParts, cancel: &CancellationToken) -> Result<Gateway, VendorError> {
    let router = build_router(config, parts.deterministic, cancel)?;
    let limits = SpendLimits {
        daily_soft_usd: config.spend.daily_soft_usd,
        daily_hard_usd: config.spend.daily_hard_usd,
        monthly_soft_usd: config.spend.monthly_soft_usd,
        monthly_hard_usd: config.spend.monthly_hard_usd,
    };
    let tenants = config
        .tenants
        .iter()
        .map(|(tenant, level)| {
            let level = match level.as_str() {
                "premium" => TenantTier::Premium,
                "trial" => TenantTier::Trial,
                _ => TenantTier::Standard,
            };
            (tenant.clone(), level)
        })
        .collect();
    Ok(Gateway::new(router, parts.ledger, parts.audit, SpendGuard::new(limits), parts.catalog, tenants))
}
