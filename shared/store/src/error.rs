//! SQLSTATE codes mapped to the few outcomes callers act on.

/// Why a store operation failed, in terms a service can turn into a gRPC status.
/// The SQL text never leaves this type's `Display` for the `Internal` arm.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// No row matched.
    #[error("not found")]
    NotFound,
    /// A unique constraint refused the write (SQLSTATE 23505).
    #[error("already exists ({constraint})")]
    AlreadyExists {
        /// The constraint that refused it.
        constraint: String,
    },
    /// A referenced row does not exist (SQLSTATE 23503).
    #[error("refers to something that does not exist ({constraint})")]
    MissingReference {
        /// The constraint that refused it.
        constraint: String,
    },
    /// A CHECK or NOT NULL constraint refused the value (SQLSTATE 23514, 23502, 22xxx).
    #[error("value refused by the database ({constraint})")]
    InvalidValue {
        /// The constraint or column that refused it.
        constraint: String,
    },
    /// Serialization failure or deadlock (SQLSTATE 40001, 40P01): the caller may retry.
    #[error("concurrent update, try again")]
    Conflict,
    /// The database cannot be reached or the pool is exhausted.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// A stored value the code cannot read (a name outside the schema's set, JSON that does
    /// not decode): reported, never read as a default.
    #[error("stored data cannot be read: {0}")]
    Corrupt(String),
    /// Anything else: logged in full, reported as internal.
    #[error("database error: {0}")]
    Internal(#[source] sqlx::Error),
}

impl StoreError {
    /// True when repeating the same operation may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Conflict | Self::Unavailable(_))
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(error: sqlx::Error) -> Self {
        match &error {
            sqlx::Error::RowNotFound => Self::NotFound,
            sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => {
                Self::Unavailable(error.to_string())
            }
            sqlx::Error::Database(db) => {
                let constraint = db.constraint().unwrap_or_default().to_owned();
                match db.code().as_deref() {
                    Some("23505") => Self::AlreadyExists { constraint },
                    Some("23503") => Self::MissingReference { constraint },
                    Some("23514" | "23502") => Self::InvalidValue { constraint },
                    Some(code) if code.starts_with("22") => Self::InvalidValue {
                        constraint: db.message().to_owned(),
                    },
                    Some("40001" | "40P01") => Self::Conflict,
                    Some(code) if code.starts_with("08") || code.starts_with("57P") => {
                        Self::Unavailable(db.message().to_owned())
                    }
                    _ => Self::Internal(error),
                }
            }
            _ => Self::Internal(error),
        }
    }
}
