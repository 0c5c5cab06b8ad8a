//! finmesh persistence: principals, provider connections (tokens encrypted at rest),
//! OAuth states, the audit log, idempotency records for money-moving writes, and
//! webhook events (deduplicated, claimed for exactly-once processing).
//!
//! One set of SQL runs on SQLite (the embedded default) and PostgreSQL (production)
//! through sqlx's `Any` driver: portable types only (TEXT and BIGINT; timestamps are
//! unix milliseconds, ciphertexts are text), `$n` placeholders (SQLite reads `$1` as
//! the first argument), `ON CONFLICT` upserts and `RETURNING`.
//!
//! Tokens never reach the database in clear: [`SecretCipher`] encrypts them with
//! AES-256-GCM, bound to their row and column. In memory they are
//! [`secrecy::SecretString`]s, so `Debug` output never shows them.

mod cipher;
mod error;
mod idempotency;
mod migrations;
mod model;
pub mod testing;
mod webhooks;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use finmesh_core::{Error, ErrorKind, Result};
use secrecy::SecretString;
use sha2::{Digest, Sha256};
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::migrate::Migrate;
use sqlx::{AnyPool, Connection as _, Row};

pub use cipher::SecretCipher;
pub use idempotency::{IdempotencyRecord, IdempotencyState, NewIdempotencyRecord};
pub use model::{
    AuditEntry, AuditRecord, Backend, Connection, ConnectionInfo, ConnectionStatus, NewConnection,
    NewOAuthState, OAuthStateRecord, StateProblem,
};
pub use webhooks::{StoredWebhookEvent, WebhookClaim};

use error::{db_error, migrate_error};

/// `SELECT` of every column of `connections`, followed by the given clause.
macro_rules! select_connection {
    ($clause:literal) => {
        concat!(
            "SELECT id, principal_id, provider_id, status, scopes, access_token, \
             refresh_token, key_id, expires_at, version, created_at, updated_at \
             FROM connections ",
            $clause
        )
    };
}

/// Longest principal or provider id the store accepts.
const MAX_ID_LEN: usize = 255;
/// Rows re-encrypted per batch by [`Store::rotate_key`].
const ROTATE_BATCH: i64 = 200;

/// Pool settings for [`Store::connect_with`].
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Most connections the pool opens (an in-memory SQLite database always uses one).
    pub max_connections: u32,
    /// How long a query waits for a free connection before failing.
    pub acquire_timeout: Duration,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            max_connections: 10,
            acquire_timeout: Duration::from_secs(10),
        }
    }
}

/// The persistence layer. Cheap to clone: the pool and the keyring are shared.
#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    cipher: Arc<SecretCipher>,
    backend: Backend,
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("backend", &self.backend)
            .field("cipher", &self.cipher)
            .finish_non_exhaustive()
    }
}

impl Store {
    /// Connects to `sqlite://path/to/file.db` (the file is created if missing;
    /// `sqlite::memory:` for a throwaway database) or `postgres://…`.
    ///
    /// Does not migrate: call [`Store::migrate`].
    pub async fn connect(url: &str, cipher: SecretCipher) -> Result<Store> {
        Store::connect_with(url, cipher, StoreOptions::default()).await
    }

    /// [`Store::connect`] with pool settings.
    pub async fn connect_with(
        url: &str,
        cipher: SecretCipher,
        options: StoreOptions,
    ) -> Result<Store> {
        sqlx::any::install_default_drivers();
        let target = ConnectTarget::parse(url)?;
        let mut pool = AnyPoolOptions::new()
            .max_connections(options.max_connections.max(1))
            .acquire_timeout(options.acquire_timeout);
        if target.in_memory {
            // Every new connection would open a new, empty in-memory database:
            // keep exactly one, forever.
            pool = pool
                .min_connections(1)
                .max_connections(1)
                .idle_timeout(None)
                .max_lifetime(None);
        } else if target.backend == Backend::Sqlite && !target.url.contains("mode=ro") {
            // WAL lets readers and one writer work at the same time; the mode is stored in
            // the file, so setting it once (before the pool opens) covers every connection.
            // sqlx's default busy timeout (5 s) makes concurrent writers wait, not fail.
            let mut conn = sqlx::AnyConnection::connect(&target.url)
                .await
                .map_err(|e| {
                    let mut err = db_error("connect")(e);
                    err.message
                        .push_str(" (does the directory exist, and may finmesh write to it?)");
                    err
                })?;
            sqlx::query("PRAGMA journal_mode = WAL")
                .execute(&mut conn)
                .await
                .map_err(db_error("connect"))?;
            conn.close().await.map_err(db_error("connect"))?;
        }
        let pool = pool
            .connect(&target.url)
            .await
            .map_err(db_error("connect"))?;
        tracing::debug!(backend = %target.backend, "store connected");
        Ok(Store {
            pool,
            cipher: Arc::new(cipher),
            backend: target.backend,
        })
    }

    /// The URL of a SQLite database file at `path`, for [`Store::connect`].
    pub fn sqlite_url(path: &std::path::Path) -> String {
        let mut url = String::from("sqlite://");
        for c in path.to_string_lossy().chars() {
            match c {
                '%' | '?' | '#' => url.push_str(&format!("%{:02X}", c as u32)),
                c => url.push(c),
            }
        }
        url
    }

    /// The same database with another keyring (e.g. for `finmesh rotate-key`, or to
    /// check which rows an older keyring can still read).
    pub fn with_cipher(&self, cipher: SecretCipher) -> Store {
        Store {
            pool: self.pool.clone(),
            cipher: Arc::new(cipher),
            backend: self.backend,
        }
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub fn cipher(&self) -> &SecretCipher {
        &self.cipher
    }

    /// The connection pool, for tests and tools. Application code goes through the
    /// methods, which keep secrets encrypted.
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Closes every pooled connection; queries afterwards fail.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Applies the embedded migrations that have not run yet. Safe to run at every
    /// start and from several replicas at once (PostgreSQL takes an advisory lock).
    pub async fn migrate(&self) -> Result<()> {
        let migrator = migrations::migrator();
        migrator.run(&self.pool).await.map_err(migrate_error)?;
        tracing::info!(
            backend = %self.backend,
            version = migrations::latest_version(),
            "database schema is up to date"
        );
        Ok(())
    }

    /// Whether the database answers (for `/readyz`).
    pub async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map_err(db_error("ping"))?;
        Ok(())
    }

    /// Whether every embedded migration has been applied, unchanged (for `/readyz`).
    pub async fn migrations_applied(&self) -> Result<bool> {
        let migrator = migrations::migrator();
        let mut conn = self
            .pool
            .acquire()
            .await
            .map_err(db_error("migrations_applied"))?;
        let applied = match conn.list_applied_migrations(&migrator.table_name).await {
            Ok(applied) => applied,
            // No migrations table yet.
            Err(sqlx::migrate::MigrateError::Execute(sqlx::Error::Database(_))) => {
                return Ok(false);
            }
            Err(e) => return Err(migrate_error(e)),
        };
        if conn
            .dirty_version(&migrator.table_name)
            .await
            .map_err(migrate_error)?
            .is_some()
        {
            return Ok(false);
        }
        Ok(migrator.iter().all(|m| {
            applied
                .iter()
                .any(|a| a.version == m.version && a.checksum == m.checksum)
        }))
    }

    /// Records a principal (the `sub` of a frontend token) if it is new.
    pub async fn ensure_principal(&self, id: &str) -> Result<()> {
        check_id("principal", id)?;
        sqlx::query(
            "INSERT INTO principals (id, created_at) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING",
        )
        .bind(id)
        .bind(now_ms())
        .execute(&self.pool)
        .await
        .map_err(db_error("ensure_principal"))?;
        Ok(())
    }

    /// Stores a new OAuth state (as a SHA-256 hash) for the principal and provider.
    pub async fn create_oauth_state(&self, state: &NewOAuthState) -> Result<()> {
        check_id("provider", &state.provider)?;
        if secrecy::ExposeSecret::expose_secret(&state.state).is_empty() {
            return Err(Error::invalid_input(
                "state",
                "an OAuth state must not be empty",
            ));
        }
        self.ensure_principal(&state.principal).await?;
        sqlx::query(
            "INSERT INTO oauth_states \
             (state_hash, principal_id, provider_id, redirect_to, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(hash_state(secrecy::ExposeSecret::expose_secret(
            &state.state,
        )))
        .bind(&state.principal)
        .bind(&state.provider)
        .bind(state.redirect_to.as_deref())
        .bind(now_ms())
        .bind(state.expires_at.timestamp_millis())
        .execute(&self.pool)
        .await
        .map_err(db_error("create_oauth_state"))?;
        Ok(())
    }

    /// Takes an OAuth state back at the callback. Single use: the state is atomically
    /// marked used, so of two concurrent callbacks with the same state exactly one gets
    /// the record. Unknown, expired and already-used states are told apart.
    pub async fn take_oauth_state(
        &self,
        state: &str,
        now: DateTime<Utc>,
    ) -> Result<std::result::Result<OAuthStateRecord, StateProblem>> {
        let hash = hash_state(state);
        let now = now.timestamp_millis();
        let taken = sqlx::query(
            "UPDATE oauth_states SET used_at = $2 \
             WHERE state_hash = $1 AND used_at IS NULL AND expires_at > $2 \
             RETURNING principal_id, provider_id, redirect_to, created_at, expires_at",
        )
        .bind(&hash)
        .bind(now)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error("take_oauth_state"))?;
        if let Some(row) = taken {
            return Ok(Ok(OAuthStateRecord {
                principal: get(&row, "principal_id")?,
                provider: get(&row, "provider_id")?,
                redirect_to: get(&row, "redirect_to")?,
                created_at: from_ms(get(&row, "created_at")?)?,
                expires_at: from_ms(get(&row, "expires_at")?)?,
            }));
        }
        let existing = sqlx::query("SELECT used_at FROM oauth_states WHERE state_hash = $1")
            .bind(&hash)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_error("take_oauth_state"))?;
        Ok(Err(match existing {
            None => StateProblem::Unknown,
            Some(row) => match get::<Option<i64>>(&row, "used_at")? {
                Some(_) => StateProblem::Used,
                None => StateProblem::Expired,
            },
        }))
    }

    /// Deletes OAuth states that expired before `before`; returns how many.
    pub async fn purge_oauth_states(&self, before: DateTime<Utc>) -> Result<u64> {
        let done = sqlx::query("DELETE FROM oauth_states WHERE expires_at <= $1")
            .bind(before.timestamp_millis())
            .execute(&self.pool)
            .await
            .map_err(db_error("purge_oauth_states"))?;
        Ok(done.rows_affected())
    }

    /// Stores the tokens of a (re)connected account: creates the connection or
    /// replaces its tokens, sets it back to active and bumps its version. The
    /// principal is recorded if new.
    pub async fn upsert_connection(&self, tokens: &NewConnection) -> Result<Connection> {
        check_id("provider", &tokens.provider)?;
        self.ensure_principal(&tokens.principal).await?;
        let scopes = join_scopes(&tokens.scopes);
        let expires_at = tokens.expires_at.map(|t| t.timestamp_millis());
        // Ciphertexts are bound to the row id, so the id must be known before
        // encrypting. If a concurrent upsert creates the row first, the `WHERE` below
        // refuses to overwrite it with ciphertexts bound to another id: read the
        // winner's id and try again.
        for _ in 0..3 {
            let existing: Option<String> = sqlx::query_scalar(
                "SELECT id FROM connections WHERE principal_id = $1 AND provider_id = $2",
            )
            .bind(&tokens.principal)
            .bind(&tokens.provider)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_error("upsert_connection"))?;
            let id = existing.unwrap_or_else(new_id);
            let access = self
                .cipher
                .encrypt(&tokens.access_token, &aad(&id, ACCESS))?;
            let refresh = tokens
                .refresh_token
                .as_ref()
                .map(|r| self.cipher.encrypt(r, &aad(&id, REFRESH)))
                .transpose()?;
            let now = now_ms();
            let row = sqlx::query(
                "INSERT INTO connections (id, principal_id, provider_id, status, scopes, \
                 access_token, refresh_token, key_id, expires_at, version, created_at, updated_at) \
                 VALUES ($1, $2, $3, 'active', $4, $5, $6, $7, $8, 1, $9, $9) \
                 ON CONFLICT (principal_id, provider_id) DO UPDATE SET \
                 status = 'active', scopes = excluded.scopes, \
                 access_token = excluded.access_token, refresh_token = excluded.refresh_token, \
                 key_id = excluded.key_id, expires_at = excluded.expires_at, \
                 version = connections.version + 1, updated_at = excluded.updated_at \
                 WHERE connections.id = excluded.id \
                 RETURNING version, created_at, updated_at",
            )
            .bind(&id)
            .bind(&tokens.principal)
            .bind(&tokens.provider)
            .bind(&scopes)
            .bind(&access)
            .bind(refresh.as_deref())
            .bind(self.cipher.active_key_id())
            .bind(expires_at)
            .bind(now)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_error("upsert_connection"))?;
            if let Some(row) = row {
                return Ok(Connection {
                    id,
                    principal: tokens.principal.clone(),
                    provider: tokens.provider.clone(),
                    status: ConnectionStatus::Active,
                    scopes: split_scopes(&scopes),
                    access_token: tokens.access_token.clone(),
                    refresh_token: tokens.refresh_token.clone(),
                    expires_at: expires_at.map(from_ms).transpose()?,
                    version: get(&row, "version")?,
                    created_at: from_ms(get(&row, "created_at")?)?,
                    updated_at: from_ms(get(&row, "updated_at")?)?,
                });
            }
        }
        Err(Error::new(
            ErrorKind::Conflict,
            "the connection was changed concurrently; try again",
        ))
    }

    /// The principal's connection at a provider, tokens decrypted.
    pub async fn connection(&self, principal: &str, provider: &str) -> Result<Option<Connection>> {
        let row = sqlx::query(select_connection!(
            "WHERE principal_id = $1 AND provider_id = $2"
        ))
        .bind(principal)
        .bind(provider)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error("connection"))?;
        row.map(|row| self.connection_from_row(&row)).transpose()
    }

    /// A connection by its id, tokens decrypted.
    pub async fn connection_by_id(&self, connection_id: &str) -> Result<Option<Connection>> {
        let row = sqlx::query(select_connection!("WHERE id = $1"))
            .bind(connection_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_error("connection_by_id"))?;
        row.map(|row| self.connection_from_row(&row)).transpose()
    }

    /// The principal's connections, without secrets, ordered by provider.
    pub async fn connections(&self, principal: &str) -> Result<Vec<ConnectionInfo>> {
        let rows = sqlx::query(
            "SELECT provider_id, status, scopes, expires_at, created_at, updated_at \
             FROM connections WHERE principal_id = $1 ORDER BY provider_id",
        )
        .bind(principal)
        .fetch_all(&self.pool)
        .await
        .map_err(db_error("connections"))?;
        rows.iter()
            .map(|row| {
                Ok(ConnectionInfo {
                    provider: get(row, "provider_id")?,
                    status: status(&get::<String>(row, "status")?)?,
                    scopes: split_scopes(&get::<String>(row, "scopes")?),
                    expires_at: get::<Option<i64>>(row, "expires_at")?
                        .map(from_ms)
                        .transpose()?,
                    created_at: from_ms(get(row, "created_at")?)?,
                    updated_at: from_ms(get(row, "updated_at")?)?,
                })
            })
            .collect()
    }

    /// Replaces the tokens after a refresh, if the connection is still at
    /// `expected_version` (compare-and-swap): `false` if someone else changed (or
    /// deleted) it first. A `None` refresh token keeps the stored one. The connection
    /// becomes active and its version is bumped.
    pub async fn replace_tokens(
        &self,
        connection_id: &str,
        expected_version: i64,
        access_token: &SecretString,
        refresh_token: Option<&SecretString>,
        expires_at: Option<DateTime<Utc>>,
    ) -> Result<bool> {
        let refresh = match refresh_token {
            Some(token) => Some(self.cipher.encrypt(token, &aad(connection_id, REFRESH))?),
            None => {
                let row = sqlx::query(
                    "SELECT refresh_token, key_id, version FROM connections WHERE id = $1",
                )
                .bind(connection_id)
                .fetch_optional(&self.pool)
                .await
                .map_err(db_error("replace_tokens"))?;
                let Some(row) = row else {
                    return Ok(false);
                };
                if get::<i64>(&row, "version")? != expected_version {
                    return Ok(false);
                }
                // Both tokens of a row are under one key (`key_id`): keep the stored
                // refresh token, re-encrypted if the active key changed since.
                match get::<Option<String>>(&row, "refresh_token")? {
                    Some(stored)
                        if get::<String>(&row, "key_id")? != self.cipher.active_key_id() =>
                    {
                        let aad = aad(connection_id, REFRESH);
                        let plain = self.cipher.decrypt(&stored, &aad)?;
                        Some(self.cipher.encrypt(&plain, &aad)?)
                    }
                    kept => kept,
                }
            }
        };
        let access = self
            .cipher
            .encrypt(access_token, &aad(connection_id, ACCESS))?;
        let done = sqlx::query(
            "UPDATE connections SET access_token = $1, refresh_token = $2, key_id = $3, \
             expires_at = $4, status = 'active', version = version + 1, updated_at = $5 \
             WHERE id = $6 AND version = $7",
        )
        .bind(&access)
        .bind(refresh.as_deref())
        .bind(self.cipher.active_key_id())
        .bind(expires_at.map(|t| t.timestamp_millis()))
        .bind(now_ms())
        .bind(connection_id)
        .bind(expected_version)
        .execute(&self.pool)
        .await
        .map_err(db_error("replace_tokens"))?;
        Ok(done.rows_affected() == 1)
    }

    /// Marks a connection as needing the user to authorize again (a refresh failed).
    /// Bumps the version, so refreshes already in flight lose their compare-and-swap.
    /// A connection that no longer exists is left alone.
    pub async fn mark_reauthorization_required(&self, connection_id: &str) -> Result<()> {
        sqlx::query(
            "UPDATE connections SET status = 'reauthorization_required', \
             version = version + 1, updated_at = $2 WHERE id = $1",
        )
        .bind(connection_id)
        .bind(now_ms())
        .execute(&self.pool)
        .await
        .map_err(db_error("mark_reauthorization_required"))?;
        Ok(())
    }

    /// Deletes the principal's connection at a provider; `false` if there was none.
    pub async fn delete_connection(&self, principal: &str, provider: &str) -> Result<bool> {
        let done =
            sqlx::query("DELETE FROM connections WHERE principal_id = $1 AND provider_id = $2")
                .bind(principal)
                .bind(provider)
                .execute(&self.pool)
                .await
                .map_err(db_error("delete_connection"))?;
        Ok(done.rows_affected() > 0)
    }

    /// Appends to the audit log. Keys in `detail` that name a secret are redacted.
    pub async fn audit(&self, entry: &AuditEntry) -> Result<()> {
        check_id("principal", &entry.principal)?;
        if entry.action.is_empty() {
            return Err(Error::invalid_input(
                "action",
                "an audit action must not be empty",
            ));
        }
        // UUIDv7: ordered by creation within the process; `at` is its timestamp, so
        // (at, id) orders entries even within one millisecond.
        let id = uuid::Uuid::now_v7();
        let at = id
            .get_timestamp()
            .and_then(|ts| {
                let (secs, nanos) = ts.to_unix();
                let secs = i64::try_from(secs).ok()?;
                secs.checked_mul(1000)?
                    .checked_add(i64::from(nanos / 1_000_000))
            })
            .unwrap_or_else(now_ms);
        let mut detail = entry.detail.clone();
        redact(&mut detail);
        let detail = serde_json::to_string(&detail)
            .map_err(|e| Error::internal(format!("audit detail is not serializable: {e}")))?;
        sqlx::query(
            "INSERT INTO audit_log (id, at, principal_id, action, provider_id, target, detail) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(id.to_string())
        .bind(at)
        .bind(&entry.principal)
        .bind(&entry.action)
        .bind(entry.provider.as_deref())
        .bind(entry.target.as_deref())
        .bind(detail)
        .execute(&self.pool)
        .await
        .map_err(db_error("audit"))?;
        Ok(())
    }

    /// The principal's most recent audit entries, newest first.
    pub async fn audit_log(&self, principal: &str, limit: u32) -> Result<Vec<AuditRecord>> {
        let rows = sqlx::query(
            "SELECT id, at, principal_id, action, provider_id, target, detail FROM audit_log \
             WHERE principal_id = $1 ORDER BY at DESC, id DESC LIMIT $2",
        )
        .bind(principal)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(db_error("audit_log"))?;
        rows.iter()
            .map(|row| {
                let detail: String = get(row, "detail")?;
                Ok(AuditRecord {
                    id: get(row, "id")?,
                    at: from_ms(get(row, "at")?)?,
                    principal: get(row, "principal_id")?,
                    action: get(row, "action")?,
                    provider: get(row, "provider_id")?,
                    target: get(row, "target")?,
                    detail: serde_json::from_str(&detail).map_err(|e| {
                        Error::internal(format!("a stored audit detail is not JSON: {e}"))
                    })?,
                })
            })
            .collect()
    }

    /// Re-encrypts every stored secret that is not under the active key; returns how
    /// many rows were re-encrypted. Old keys must stay in the keyring until this has
    /// run; afterwards the operator may remove them. Safe to run while the gateway
    /// serves: a row changed concurrently is already under the active key of the
    /// writer and is left alone.
    pub async fn rotate_key(&self) -> Result<u64> {
        let active = self.cipher.active_key_id().to_owned();
        let mut after = String::new();
        let mut rotated = 0;
        loop {
            let rows = sqlx::query(
                "SELECT id, access_token, refresh_token, key_id FROM connections \
                 WHERE key_id <> $1 AND id > $2 ORDER BY id LIMIT $3",
            )
            .bind(&active)
            .bind(&after)
            .bind(ROTATE_BATCH)
            .fetch_all(&self.pool)
            .await
            .map_err(db_error("rotate_key"))?;
            let Some(last) = rows.last() else {
                break;
            };
            after = get(last, "id")?;
            for row in &rows {
                let id: String = get(row, "id")?;
                let old_access: String = get(row, "access_token")?;
                let access = self.reencrypt(&old_access, &aad(&id, ACCESS))?;
                let refresh = get::<Option<String>>(row, "refresh_token")?
                    .map(|ct| self.reencrypt(&ct, &aad(&id, REFRESH)))
                    .transpose()?;
                // Compare on the old ciphertext (unique: random nonce), not on the
                // version, so a concurrent refresh neither loses nor is undone.
                let done = sqlx::query(
                    "UPDATE connections SET access_token = $1, refresh_token = $2, key_id = $3 \
                     WHERE id = $4 AND access_token = $5",
                )
                .bind(&access)
                .bind(refresh.as_deref())
                .bind(&active)
                .bind(&id)
                .bind(&old_access)
                .execute(&self.pool)
                .await
                .map_err(db_error("rotate_key"))?;
                rotated += done.rows_affected();
            }
        }
        if rotated > 0 {
            tracing::info!(rotated, key_id = %active, "re-encrypted stored secrets under the active key");
        }
        Ok(rotated)
    }

    fn reencrypt(&self, ciphertext: &str, aad: &str) -> Result<String> {
        let plain = self.cipher.decrypt(ciphertext, aad)?;
        self.cipher.encrypt(&plain, aad)
    }

    fn connection_from_row(&self, row: &AnyRow) -> Result<Connection> {
        let id: String = get(row, "id")?;
        let access: String = get(row, "access_token")?;
        let refresh: Option<String> = get(row, "refresh_token")?;
        Ok(Connection {
            access_token: self.cipher.decrypt(&access, &aad(&id, ACCESS))?,
            refresh_token: refresh
                .map(|ct| self.cipher.decrypt(&ct, &aad(&id, REFRESH)))
                .transpose()?,
            principal: get(row, "principal_id")?,
            provider: get(row, "provider_id")?,
            status: status(&get::<String>(row, "status")?)?,
            scopes: split_scopes(&get::<String>(row, "scopes")?),
            expires_at: get::<Option<i64>>(row, "expires_at")?
                .map(from_ms)
                .transpose()?,
            version: get(row, "version")?,
            created_at: from_ms(get(row, "created_at")?)?,
            updated_at: from_ms(get(row, "updated_at")?)?,
            id,
        })
    }
}

const ACCESS: &str = "access_token";
const REFRESH: &str = "refresh_token";

/// Associated data binding a token ciphertext to its row and column.
fn aad(connection_id: &str, column: &str) -> String {
    format!("connections:{connection_id}:{column}")
}

/// What the store keeps of an OAuth state: lowercase hex SHA-256.
fn hash_state(state: &str) -> String {
    Sha256::digest(state.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl NewOAuthState {
    /// A fresh random state value (256 bits, base64url), to put in an authorize URL.
    pub fn generate_state() -> SecretString {
        use base64::Engine as _;
        let bytes: [u8; 32] = rand::random();
        SecretString::from(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
    }
}

struct ConnectTarget {
    backend: Backend,
    url: String,
    in_memory: bool,
}

impl ConnectTarget {
    fn parse(url: &str) -> Result<Self> {
        let scheme = url.split(':').next().unwrap_or_default();
        match scheme {
            "sqlite" => {
                let in_memory = url.contains(":memory:") || url.contains("mode=memory");
                let url = if in_memory || url.contains("mode=") {
                    url.to_owned()
                } else {
                    let sep = if url.contains('?') { '&' } else { '?' };
                    format!("{url}{sep}mode=rwc")
                };
                Ok(ConnectTarget {
                    backend: Backend::Sqlite,
                    url,
                    in_memory,
                })
            }
            "postgres" | "postgresql" => Ok(ConnectTarget {
                backend: Backend::Postgres,
                url: url.to_owned(),
                in_memory: false,
            }),
            _ => Err(Error::invalid_input(
                "database.url",
                format!(
                    "unsupported database URL scheme `{}`: use `sqlite://<path>` or `postgres://…`",
                    scheme.escape_debug()
                ),
            )),
        }
    }
}

fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

fn from_ms(ms: i64) -> Result<DateTime<Utc>> {
    DateTime::from_timestamp_millis(ms)
        .ok_or_else(|| Error::internal(format!("a stored timestamp is out of range: {ms}")))
}

fn get<'r, T>(row: &'r AnyRow, column: &str) -> Result<T>
where
    T: sqlx::Decode<'r, sqlx::Any> + sqlx::Type<sqlx::Any>,
{
    row.try_get(column)
        .map_err(|e| Error::internal(format!("reading column `{column}`: {e}")))
}

fn status(s: &str) -> Result<ConnectionStatus> {
    ConnectionStatus::parse(s)
        .ok_or_else(|| Error::internal(format!("unknown connection status `{s}` in the database")))
}

fn join_scopes(scopes: &[String]) -> String {
    scopes
        .iter()
        .flat_map(|s| s.split_whitespace())
        .collect::<Vec<_>>()
        .join(" ")
}

fn split_scopes(s: &str) -> Vec<String> {
    s.split_whitespace().map(str::to_owned).collect()
}

fn check_id(what: &'static str, id: &str) -> Result<()> {
    if id.is_empty() || id.len() > MAX_ID_LEN || id.chars().any(char::is_control) {
        return Err(Error::invalid_input(
            what,
            format!("a {what} id must be 1 to {MAX_ID_LEN} bytes without control characters"),
        ));
    }
    Ok(())
}

/// Replaces the values of object keys that name a secret, at any depth.
fn redact(value: &mut serde_json::Value) {
    const SECRET_WORDS: [&str; 6] = [
        "token",
        "secret",
        "password",
        "authorization",
        "private_key",
        "privatekey",
    ];
    match value {
        serde_json::Value::Object(map) => {
            for (key, v) in map.iter_mut() {
                let key = key.to_ascii_lowercase();
                if SECRET_WORDS.iter().any(|w| key.contains(w)) {
                    *v = serde_json::Value::String("[REDACTED]".into());
                } else {
                    redact(v);
                }
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(redact),
        _ => {}
    }
}

/// The embedded migrations, `(version, description)` in order (for `finmesh migrate`).
pub fn embedded_migrations() -> Vec<(i64, String)> {
    migrations::migrator()
        .iter()
        .map(|m| (m.version, m.description.to_string()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let t = ConnectTarget::parse("sqlite:///tmp/x.db").unwrap();
        assert_eq!(t.backend, Backend::Sqlite);
        assert_eq!(t.url, "sqlite:///tmp/x.db?mode=rwc");
        assert!(!t.in_memory);
        assert_eq!(
            ConnectTarget::parse("sqlite:///tmp/x.db?mode=ro")
                .unwrap()
                .url,
            "sqlite:///tmp/x.db?mode=ro"
        );
        assert!(ConnectTarget::parse("sqlite::memory:").unwrap().in_memory);
        assert_eq!(
            ConnectTarget::parse("postgresql://u@h/db").unwrap().backend,
            Backend::Postgres
        );
        let err = ConnectTarget::parse("mysql://root:hunter2@h/db")
            .err()
            .unwrap();
        assert!(err.message.contains("`mysql`") && !err.message.contains("hunter2"));
        assert_eq!(
            Store::sqlite_url(std::path::Path::new("/tmp/a?b#c%d.db")),
            "sqlite:///tmp/a%3Fb%23c%25d.db"
        );
    }

    #[test]
    fn redaction() {
        let mut v = serde_json::json!({
            "provider": "zonky",
            "access_token": "abc",
            "nested": [{"clientSecret": "x", "scopes": ["a"]}],
            "Authorization": "Bearer y",
        });
        redact(&mut v);
        assert_eq!(
            v,
            serde_json::json!({
                "provider": "zonky",
                "access_token": "[REDACTED]",
                "nested": [{"clientSecret": "[REDACTED]", "scopes": ["a"]}],
                "Authorization": "[REDACTED]",
            })
        );
    }

    #[test]
    fn state_hash_is_hex_sha256() {
        assert_eq!(
            hash_state("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let s = NewOAuthState::generate_state();
        assert_eq!(secrecy::ExposeSecret::expose_secret(&s).len(), 43);
    }
}
