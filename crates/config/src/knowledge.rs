//! `[knowledge]`: incident memory's embedder and vector index (FR-RAG-*). Defaults need nothing:
//! the built-in hashing embedder and the embedded exact index under `data_dir/vectors`.

use std::collections::HashMap;

use serde::Deserialize;

use crate::{SecretString, interpolate};

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawKnowledge {
    /// Recall similar closed incidents during enrichment (default true).
    pub incident_memory: Option<bool>,
    /// `hashing` (default) or `openai_compatible`.
    pub embedder: Option<String>,
    pub embedding_url: Option<String>,
    pub embedding_model: Option<String>,
    pub embedding_dimensions: Option<usize>,
    pub embedding_api_key: Option<String>,
    /// `embedded` (default) or `qdrant`.
    pub vector_index: Option<String>,
    pub qdrant_url: Option<String>,
    pub qdrant_api_key: Option<String>,
    pub qdrant_collection_prefix: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EmbedderConfig {
    Hashing,
    OpenAiCompatible { url: String, model: String, dimensions: usize, api_key: Option<SecretString> },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VectorIndexConfig {
    Embedded,
    Qdrant { url: String, api_key: Option<SecretString>, collection_prefix: String },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnowledgeConfig {
    pub incident_memory: bool,
    pub embedder: EmbedderConfig,
    pub vector_index: VectorIndexConfig,
}

impl Default for KnowledgeConfig {
    fn default() -> Self {
        KnowledgeConfig { incident_memory: true, embedder: EmbedderConfig::Hashing, vector_index: VectorIndexConfig::Embedded }
    }
}

pub(crate) fn validate_knowledge(raw: RawKnowledge, env: &HashMap<String, String>, errors: &mut Vec<String>) -> KnowledgeConfig {
    let mut text = |field: &str, value: Option<&String>| value.map(|v| interpolate(&format!("knowledge.{field}"), v, env, errors));
    let embedding_url = text("embedding_url", raw.embedding_url.as_ref());
    let embedding_key = text("embedding_api_key", raw.embedding_api_key.as_ref());
    let qdrant_url = text("qdrant_url", raw.qdrant_url.as_ref());
    let qdrant_key = text("qdrant_api_key", raw.qdrant_api_key.as_ref());
    let embedder = match raw.embedder.as_deref().unwrap_or("hashing") {
        "hashing" => EmbedderConfig::Hashing,
        "openai_compatible" => {
            let model = raw.embedding_model.clone().unwrap_or_default();
            let dimensions = raw.embedding_dimensions.unwrap_or(0);
            if embedding_url.is_none() {
                errors.push("`knowledge.embedding_url` is required for embedder = \"openai_compatible\"".to_owned());
            }
            if model.is_empty() {
                errors.push("`knowledge.embedding_model` is required for embedder = \"openai_compatible\"".to_owned());
            }
            if !(1..=16_384).contains(&dimensions) {
                errors.push("`knowledge.embedding_dimensions` must be 1..=16384 for embedder = \"openai_compatible\"".to_owned());
            }
            EmbedderConfig::OpenAiCompatible {
                url: embedding_url.unwrap_or_default(),
                model,
                dimensions,
                api_key: embedding_key.map(SecretString::new),
            }
        }
        other => {
            errors.push(format!("`knowledge.embedder`: unknown embedder {other:?} (expected \"hashing\" or \"openai_compatible\")"));
            EmbedderConfig::Hashing
        }
    };
    let vector_index = match raw.vector_index.as_deref().unwrap_or("embedded") {
        "embedded" => VectorIndexConfig::Embedded,
        "qdrant" => {
            if qdrant_url.is_none() {
                errors.push("`knowledge.qdrant_url` is required for vector_index = \"qdrant\"".to_owned());
            }
            VectorIndexConfig::Qdrant {
                url: qdrant_url.unwrap_or_default(),
                api_key: qdrant_key.map(SecretString::new),
                collection_prefix: raw.qdrant_collection_prefix.clone().unwrap_or_else(|| "aluskort".to_owned()),
            }
        }
        other => {
            errors.push(format!("`knowledge.vector_index`: unknown index {other:?} (expected \"embedded\" or \"qdrant\")"));
            VectorIndexConfig::Embedded
        }
    };
    KnowledgeConfig { incident_memory: raw.incident_memory.unwrap_or(true), embedder, vector_index }
}
