//! Store errors: a kind callers branch on, and the underlying cause for logs.

/// What kind of failure; the API maps these to HTTP status codes, the pipeline to retry or fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreErrorKind {
    NotFound,
    Conflict,
    Unavailable,
    Timeout,
    Invalid,
    Internal,
}

#[derive(Debug, thiserror::Error)]
#[error("store error ({kind:?}): {source:#}")]
pub struct StoreError {
    pub kind: StoreErrorKind,
    #[source]
    pub source: anyhow::Error,
}

pub type StoreResult<T> = Result<T, StoreError>;

impl StoreError {
    pub fn new(kind: StoreErrorKind, source: impl Into<anyhow::Error>) -> Self {
        StoreError { kind, source: source.into() }
    }

    pub fn invalid(message: impl std::fmt::Display) -> Self {
        StoreError::new(StoreErrorKind::Invalid, anyhow::anyhow!("{message}"))
    }

    /// A mistake of the store's own code (not the data, not the database's availability).
    pub fn internal(message: impl std::fmt::Display) -> Self {
        StoreError::new(StoreErrorKind::Internal, anyhow::anyhow!("{message}"))
    }

    pub fn is_retryable(&self) -> bool {
        matches!(self.kind, StoreErrorKind::Unavailable | StoreErrorKind::Timeout | StoreErrorKind::Conflict)
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(error: sqlx::Error) -> Self {
        let kind = match &error {
            sqlx::Error::RowNotFound => StoreErrorKind::NotFound,
            sqlx::Error::PoolTimedOut => StoreErrorKind::Timeout,
            sqlx::Error::Io(_) | sqlx::Error::Tls(_) | sqlx::Error::PoolClosed | sqlx::Error::WorkerCrashed => StoreErrorKind::Unavailable,
            sqlx::Error::Database(db) if db.is_unique_violation() => StoreErrorKind::Conflict,
            sqlx::Error::Database(db) if db.message().contains("database is locked") => StoreErrorKind::Unavailable,
            sqlx::Error::ColumnDecode { .. } | sqlx::Error::Decode(_) | sqlx::Error::TypeNotFound { .. } => StoreErrorKind::Invalid,
            _ => StoreErrorKind::Internal,
        };
        StoreError::new(kind, error)
    }
}

impl From<serde_json::Error> for StoreError {
    fn from(error: serde_json::Error) -> Self {
        StoreError::new(StoreErrorKind::Invalid, error)
    }
}
