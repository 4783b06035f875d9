//! Embeddings behind a trait (FR-RAG-*): every vector carries the model id and dimensions that
//! made it, so vectors of different models are never compared.
//!
//! - [`HashingEmbedder`]: built in, no network, no model file. Feature hashing of word unigrams,
//!   word bigrams and character trigrams into 384 signed buckets, sublinear term frequency, L2
//!   normalised. It is a lexical model: texts sharing vocabulary (tool names, commands, indicator
//!   types, ATT&CK wording) land close; paraphrases with no shared words do not. It keeps incident
//!   memory and report search working with no provider configured. Measured with `aluskort attack
//!   eval --embedder` (nearest held-out ATT&CK procedure examples vote for their technique): top-1
//!   0.452, top-3 0.659, top-5 0.753 over 531 sampled examples, against 0.649/0.824/0.880 for the
//!   BM25 suggester on the full split.
//! - [`OpenAiCompatible`]: `POST {base_url}/v1/embeddings` as OpenAI, Azure OpenAI, Ollama, vLLM and
//!   TEI serve it (`{"model", "input": [...]}` → `{"data": [{"index", "embedding"}], "model"}`,
//!   <https://platform.openai.com/docs/api-reference/embeddings/create>).

use async_trait::async_trait;
use serde_json::{Value, json};

/// Which model made a vector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelInfo {
    pub id: String,
    pub dimensions: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum EmbedError {
    #[error("embedding provider unavailable: {0}")]
    Unavailable(String),
    #[error("embedding provider refused the request ({status}): {detail}")]
    Rejected { status: u16, detail: String },
    #[error("embedding provider answered in an unexpected shape: {0}")]
    Malformed(String),
}

#[async_trait]
pub trait Embedder: Send + Sync {
    fn model(&self) -> &ModelInfo;
    /// One vector per text, in order, each `model().dimensions` long.
    async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError>;
}

/// The built-in lexical embedder.
#[derive(Debug, Clone)]
pub struct HashingEmbedder {
    model: ModelInfo,
}

impl Default for HashingEmbedder {
    fn default() -> Self {
        HashingEmbedder { model: ModelInfo { id: "aluskort-hashing-v1".to_owned(), dimensions: 384 } }
    }
}

impl HashingEmbedder {
    pub fn embed_one(&self, text: &str) -> Vec<f32> {
        let dimensions = self.model.dimensions.max(1);
        // Summed per bucket, then each touched bucket scaled by `ln(1 + |sum|)` (zero stays zero).
        // Features are hashed as their bytes stream in (FNV-1a), never built as strings: this runs
        // for every alert (similar-incident recall).
        let mut sums = vec![0.0_f32; dimensions];
        let mut add = |hash: u64, weight: f32| {
            // Low bits choose the bucket, one high bit the sign (collisions cancel out on average).
            let bucket = (hash % dimensions as u64) as usize;
            sums[bucket] += if hash >> 63 == 0 { weight } else { -weight };
        };
        let words = crate::suggest::tokens(text);
        for word in &words {
            add(crate::stix::fnv1a(word.as_bytes(), crate::stix::FNV_OFFSET), 1.0);
            // Character trigrams of " word ".
            let chars: Vec<char> = std::iter::once(' ').chain(word.chars()).chain(std::iter::once(' ')).collect();
            for trigram in chars.windows(3) {
                let mut buffer = [0_u8; 12];
                let mut hash = crate::stix::FNV_OFFSET;
                for c in trigram {
                    hash = crate::stix::fnv1a(c.encode_utf8(&mut buffer).as_bytes(), hash);
                }
                add(hash, 0.3);
            }
        }
        for pair in words.windows(2) {
            // "first second"
            let first = crate::stix::fnv1a(pair[0].as_bytes(), crate::stix::FNV_OFFSET);
            add(crate::stix::fnv1a(pair[1].as_bytes(), crate::stix::fnv1a(b" ", first)), 0.7);
        }
        let mut vector: Vec<f32> = sums.into_iter().map(|value| value.signum() * value.abs().ln_1p()).collect();
        vector.truncate(self.model.dimensions);
        normalise(&mut vector);
        vector
    }
}

#[async_trait]
impl Embedder for HashingEmbedder {
    fn model(&self) -> &ModelInfo {
        &self.model
    }

    async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        Ok(texts.iter().map(|text| self.embed_one(text)).collect())
    }
}

/// Scales `vector` to unit length (a zero vector stays zero).
pub fn normalise(vector: &mut [f32]) {
    let norm = vector.iter().map(|v| v * v).sum::<f32>().sqrt();
    if norm > 0.0 {
        vector.iter_mut().for_each(|v| *v /= norm);
    }
}

/// Cosine similarity of two vectors of one model.
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let (dot, na, nb) = a.iter().zip(b).fold((0.0, 0.0, 0.0), |(dot, na, nb), (x, y)| (dot + x * y, na + x * x, nb + y * y));
    if na == 0.0 || nb == 0.0 { 0.0 } else { dot / (na.sqrt() * nb.sqrt()) }
}

/// An OpenAI-compatible `/v1/embeddings` endpoint.
pub struct OpenAiCompatible {
    client: reqwest::Client,
    base_url: String,
    api_key: Option<String>,
    model: ModelInfo,
}

impl OpenAiCompatible {
    /// `base_url` without the `/v1/embeddings` suffix; `dimensions` is checked on every answer.
    pub fn new(
        base_url: &str,
        api_key: Option<String>,
        model: &str,
        dimensions: usize,
        timeout: std::time::Duration,
    ) -> Result<Self, EmbedError> {
        let client = reqwest::Client::builder().timeout(timeout).build().map_err(|e| EmbedError::Unavailable(e.to_string()))?;
        Ok(OpenAiCompatible {
            client,
            base_url: base_url.trim_end_matches('/').to_owned(),
            api_key,
            model: ModelInfo { id: model.to_owned(), dimensions },
        })
    }
}

#[async_trait]
impl Embedder for OpenAiCompatible {
    fn model(&self) -> &ModelInfo {
        &self.model
    }

    async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let mut request =
            self.client.post(format!("{}/v1/embeddings", self.base_url)).json(&json!({"model": self.model.id, "input": texts}));
        if let Some(key) = &self.api_key {
            request = request.bearer_auth(key);
        }
        let response = request.send().await.map_err(|e| EmbedError::Unavailable(e.to_string()))?;
        let status = response.status();
        let body = response.text().await.map_err(|e| EmbedError::Unavailable(e.to_string()))?;
        if !status.is_success() {
            return Err(EmbedError::Rejected { status: status.as_u16(), detail: body.chars().take(300).collect() });
        }
        let value: Value = serde_json::from_str(&body).map_err(|e| EmbedError::Malformed(format!("not JSON: {e}")))?;
        let data = value.get("data").and_then(Value::as_array).ok_or_else(|| EmbedError::Malformed("no data array".to_owned()))?;
        let mut vectors: Vec<Option<Vec<f32>>> = vec![None; texts.len()];
        for (position, item) in data.iter().enumerate() {
            let index = item.get("index").and_then(Value::as_u64).map_or(position, |i| i as usize);
            let embedding: Vec<f32> = item
                .get("embedding")
                .and_then(Value::as_array)
                .ok_or_else(|| EmbedError::Malformed(format!("data[{position}] has no embedding array")))?
                .iter()
                .map(|v| v.as_f64().map(|f| f as f32))
                .collect::<Option<_>>()
                .ok_or_else(|| EmbedError::Malformed(format!("data[{position}].embedding holds a non-number")))?;
            if embedding.len() != self.model.dimensions {
                return Err(EmbedError::Malformed(format!(
                    "data[{position}] has {} dimensions, the configured model {} has {}",
                    embedding.len(),
                    self.model.id,
                    self.model.dimensions
                )));
            }
            let slot =
                vectors.get_mut(index).ok_or_else(|| EmbedError::Malformed(format!("data[{position}].index {index} out of range")))?;
            *slot = Some(embedding);
        }
        vectors
            .into_iter()
            .enumerate()
            .map(|(i, v)| v.ok_or_else(|| EmbedError::Malformed(format!("no embedding for input {i}"))))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashing_vectors_are_unit_length_and_lexically_close() {
        let embedder = HashingEmbedder::default();
        let a = embedder.embed_one("mimikatz dumped credentials from lsass memory on ws-01");
        let b = embedder.embed_one("credential dumping of LSASS memory with mimikatz");
        let c = embedder.embed_one("phishing email with a malicious invoice attachment");
        assert_eq!(a.len(), 384);
        assert!((a.iter().map(|v| v * v).sum::<f32>() - 1.0).abs() < 1e-4);
        assert!(cosine(&a, &b) > cosine(&a, &c) + 0.2, "{} vs {}", cosine(&a, &b), cosine(&a, &c));
        assert_eq!(embedder.embed_one(""), vec![0.0; 384]);
    }

    /// The vectors are those of hashing each feature's text (word, trigram of " word ", "a b"
    /// pair): vectors stored by earlier builds stay comparable with new ones.
    #[test]
    fn features_hash_as_their_text() {
        let embedder = HashingEmbedder::default();
        let reference = |text: &str| {
            let mut counts: std::collections::HashMap<usize, f32> = std::collections::HashMap::new();
            let mut add = |feature: &str, weight: f32| {
                let hash = crate::stix::fnv1a(feature.as_bytes(), crate::stix::FNV_OFFSET);
                let sign = if hash >> 63 == 0 { 1.0 } else { -1.0 };
                *counts.entry((hash % 384) as usize).or_default() += sign * weight;
            };
            let words = crate::suggest::tokens(text);
            for word in &words {
                add(word, 1.0);
                let chars: Vec<char> = format!(" {word} ").chars().collect();
                for trigram in chars.windows(3) {
                    add(&trigram.iter().collect::<String>(), 0.3);
                }
            }
            for pair in words.windows(2) {
                add(&format!("{} {}", pair[0], pair[1]), 0.7);
            }
            let mut vector = vec![0.0_f32; 384];
            for (bucket, value) in counts {
                vector[bucket] = value.signum() * value.abs().ln_1p();
            }
            normalise(&mut vector);
            vector
        };
        for text in ["Suspicious credential dump from LSASS on fs-paris-02", "a", "User clicked a malicious URL: login-contoso", ""] {
            assert_eq!(embedder.embed_one(text), reference(text), "{text}");
        }
    }
}

#[cfg(test)]
mod provider {
    use std::time::Duration;

    use aluskort_testkit::fake::Fault;
    use aluskort_testkit::fake::openai::{API_KEY, FakeEmbeddings, vector_for};

    use super::*;

    #[tokio::test]
    async fn openai_compatible_vectors_come_back_in_input_order_with_errors_named() {
        let fake = FakeEmbeddings::start(8).await;
        let embedder =
            OpenAiCompatible::new(&fake.base_url(), Some(API_KEY.to_owned()), "text-embedding-3-small", 8, Duration::from_secs(5))
                .expect("client");
        let texts = vec!["first".to_owned(), "second".to_owned(), "third".to_owned()];
        let vectors = embedder.embed(&texts).await.expect("embeddings");
        assert_eq!(vectors, texts.iter().map(|t| vector_for(t, 8)).collect::<Vec<_>>(), "ordered by index, not by position");
        assert_eq!(embedder.model(), &ModelInfo { id: "text-embedding-3-small".to_owned(), dimensions: 8 });

        fake.handle.fail_next(Fault::throttled(1));
        assert!(matches!(embedder.embed(&texts).await, Err(EmbedError::Rejected { status: 429, .. })));
        let wrong_size =
            OpenAiCompatible::new(&fake.base_url(), Some(API_KEY.to_owned()), "m", 16, Duration::from_secs(5)).expect("client");
        let error = wrong_size.embed(&texts).await.expect_err("dimension mismatch");
        assert!(error.to_string().contains("has 8 dimensions, the configured model m has 16"), "{error}");
        let no_key = OpenAiCompatible::new(&fake.base_url(), None, "m", 8, Duration::from_secs(5)).expect("client");
        assert!(matches!(no_key.embed(&texts).await, Err(EmbedError::Rejected { status: 401, .. })));
    }
}
