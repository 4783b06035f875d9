//! Raw payloads and evidence packages as objects (ARCHITECTURE "Backends", REQUIREMENTS §3.8):
//! files under `<data_dir>/blobs` on one machine, or an S3-compatible bucket (AWS S3, MinIO, Ceph)
//! shared by every worker, both through `object_store`.
//!
//! Evidence is written once: [`BlobStore::put_new`] creates an object only where none exists
//! (a conditional `PUT` with `If-None-Match: *` on S3), and a second write of the same bytes is
//! idempotent, while different bytes under a taken key are refused, never overwritten.

use std::path::Path;
use std::sync::Arc;

use aluskort_config::BlobsConfig;
use bytes::Bytes;
use futures::TryStreamExt;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};
use sha2::{Digest, Sha256};

#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    #[error("blob store configuration: {0}")]
    Config(String),
    #[error("invalid object key {key:?}: {reason}")]
    Key { key: String, reason: String },
    #[error("no object at {0}")]
    NotFound(String),
    #[error("{key} already holds different content (sha256 {existing}); objects are never overwritten")]
    Conflict { key: String, existing: String },
    #[error("blob store {location}: {source}")]
    Backend {
        location: String,
        #[source]
        source: object_store::Error,
    },
}

/// What [`BlobStore::put_new`] left at a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredBlob {
    pub key: String,
    /// Hex SHA-256 of the content.
    pub sha256: String,
    pub size: u64,
    /// False when the same content was already there (an idempotent retry).
    pub created: bool,
}

/// An object store with this deployment's key prefix.
#[derive(Clone)]
pub struct BlobStore {
    store: Arc<dyn ObjectStore>,
    prefix: String,
    /// Where objects go, for messages: a directory or `s3://bucket` (never credentials).
    location: String,
}

impl std::fmt::Debug for BlobStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlobStore").field("location", &self.location).field("prefix", &self.prefix).finish()
    }
}

/// Hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

impl BlobStore {
    /// The store `[blobs]` configures; local files default to `<data_dir>/blobs`.
    pub fn open(config: &BlobsConfig, data_dir: &Path) -> Result<Self, BlobError> {
        match config {
            BlobsConfig::Local { path, key_prefix } => {
                let dir = path.clone().unwrap_or_else(|| data_dir.join("blobs"));
                std::fs::create_dir_all(&dir).map_err(|error| BlobError::Config(format!("cannot create {}: {error}", dir.display())))?;
                let store = object_store::local::LocalFileSystem::new_with_prefix(&dir)
                    .map_err(|source| BlobError::Backend { location: dir.display().to_string(), source })?;
                Ok(BlobStore { store: Arc::new(store), prefix: key_prefix.clone(), location: dir.display().to_string() })
            }
            BlobsConfig::S3(s3) => Self::s3(s3),
        }
    }

    #[cfg(feature = "s3")]
    fn s3(s3: &aluskort_config::S3Config) -> Result<Self, BlobError> {
        use object_store::aws::AmazonS3Builder;
        let location = match &s3.endpoint {
            Some(endpoint) => format!("s3://{} at {endpoint}", s3.bucket),
            None => format!("s3://{}", s3.bucket),
        };
        let mut builder = AmazonS3Builder::from_env().with_bucket_name(&s3.bucket).with_region(&s3.region).with_allow_http(s3.allow_http);
        if let Some(endpoint) = &s3.endpoint {
            // S3-compatible servers are addressed by path (`endpoint/bucket/key`).
            builder = builder.with_endpoint(endpoint).with_virtual_hosted_style_request(false);
        }
        if let (Some(id), Some(secret)) = (&s3.access_key_id, &s3.secret_access_key) {
            builder = builder.with_access_key_id(id.expose()).with_secret_access_key(secret.expose());
        }
        let store = builder.build().map_err(|source| BlobError::Backend { location: location.clone(), source })?;
        Ok(BlobStore { store: Arc::new(store), prefix: s3.key_prefix.clone(), location })
    }

    #[cfg(not(feature = "s3"))]
    fn s3(_: &aluskort_config::S3Config) -> Result<Self, BlobError> {
        Err(BlobError::Config("`blobs.backend = \"s3\"` needs a build with the `s3` feature".to_owned()))
    }

    /// Where objects go (a directory, or `s3://bucket`), for messages.
    pub fn location(&self) -> &str {
        &self.location
    }

    fn path(&self, key: &str) -> Result<ObjectPath, BlobError> {
        let full = if self.prefix.is_empty() { key.to_owned() } else { format!("{}/{key}", self.prefix.trim_end_matches('/')) };
        let invalid = |reason: &str| BlobError::Key { key: key.to_owned(), reason: reason.to_owned() };
        if key.is_empty() || key.starts_with('/') || key.ends_with('/') {
            return Err(invalid("must be a relative path naming an object"));
        }
        ObjectPath::parse(&full).map_err(|error| invalid(&error.to_string()))
    }

    fn backend(&self, source: object_store::Error) -> BlobError {
        BlobError::Backend { location: self.location.clone(), source }
    }

    /// Writes `bytes` under `key` unless an object is there already. The same content again is
    /// an idempotent success (`created: false`); different content is [`BlobError::Conflict`].
    pub async fn put_new(&self, key: &str, bytes: Bytes) -> Result<StoredBlob, BlobError> {
        let path = self.path(key)?;
        let sha256 = sha256_hex(&bytes);
        let size = bytes.len() as u64;
        let options = PutOptions { mode: PutMode::Create, ..PutOptions::default() };
        match self.store.put_opts(&path, PutPayload::from_bytes(bytes), options).await {
            Ok(_) => Ok(StoredBlob { key: key.to_owned(), sha256, size, created: true }),
            Err(object_store::Error::AlreadyExists { .. }) => {
                let existing = sha256_hex(&self.get(key).await?);
                if existing == sha256 {
                    Ok(StoredBlob { key: key.to_owned(), sha256, size, created: false })
                } else {
                    Err(BlobError::Conflict { key: key.to_owned(), existing })
                }
            }
            Err(error) => Err(self.backend(error)),
        }
    }

    /// The object at `key`.
    pub async fn get(&self, key: &str) -> Result<Bytes, BlobError> {
        let path = self.path(key)?;
        match self.store.get(&path).await {
            Ok(result) => result.bytes().await.map_err(|error| self.backend(error)),
            Err(object_store::Error::NotFound { .. }) => Err(BlobError::NotFound(key.to_owned())),
            Err(error) => Err(self.backend(error)),
        }
    }

    /// Keys under `prefix` (a folder, without the store's own prefix), sorted.
    pub async fn list(&self, prefix: &str) -> Result<Vec<String>, BlobError> {
        let base = if self.prefix.is_empty() { String::new() } else { format!("{}/", self.prefix.trim_end_matches('/')) };
        let folder = ObjectPath::parse(format!("{base}{prefix}"))
            .map_err(|error| BlobError::Key { key: prefix.to_owned(), reason: error.to_string() })?;
        let metas: Vec<object_store::ObjectMeta> =
            self.store.list(Some(&folder)).try_collect().await.map_err(|error| self.backend(error))?;
        let mut keys: Vec<String> = metas
            .into_iter()
            .map(|meta| meta.location.as_ref().strip_prefix(base.as_str()).unwrap_or(meta.location.as_ref()).to_owned())
            .collect();
        keys.sort();
        Ok(keys)
    }
}

#[cfg(test)]
mod tests;
