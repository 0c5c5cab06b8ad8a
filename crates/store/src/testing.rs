//! Test support: fresh, migrated stores on every backend, and a raw view of tables.
//!
//! SQLite: a new database file in its own temporary directory (removed when the
//! [`TestStore`] drops). PostgreSQL: a new schema in the database at
//! `FINMESH_TEST_POSTGRES_URL`, so parallel tests never see each other's rows; test
//! schemas older than two hours are dropped by later runs. Without the variable the
//! PostgreSQL store is skipped with a note, except under `CI=true`, where its absence
//! (like a failed connection, always) fails the test.

use std::io::Write as _;
use std::ops::Deref;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use finmesh_core::{Error, Result};
use sqlx::{AssertSqlSafe, Connection as _, Row as _};
use tempfile::TempDir;

use crate::{SecretCipher, Store};

/// The variable naming the PostgreSQL database tests run against.
pub const POSTGRES_URL_VAR: &str = "FINMESH_TEST_POSTGRES_URL";
const SCHEMA_PREFIX: &str = "finmesh_t_";
const STALE_SCHEMA_AGE: Duration = Duration::from_secs(2 * 60 * 60);

/// A migrated store for one test, with a label (`sqlite` or `postgres`) for messages.
/// Dereferences to [`Store`].
#[derive(Debug)]
pub struct TestStore {
    pub label: String,
    pub store: Store,
    /// Where the SQLite file lives; deleted on drop.
    _dir: Option<TempDir>,
}

impl Deref for TestStore {
    type Target = Store;

    fn deref(&self) -> &Store {
        &self.store
    }
}

/// A fresh store on every backend available: SQLite always, PostgreSQL when
/// `FINMESH_TEST_POSTGRES_URL` is set (required under `CI=true`). Each uses its own
/// random demo keyring.
///
/// # Panics
/// When a backend cannot be set up: this is test support, failing loudly is the point.
pub async fn test_stores() -> Vec<TestStore> {
    let mut stores = vec![sqlite_store(SecretCipher::generate_for_demo()).await];
    stores.extend(postgres_store(SecretCipher::generate_for_demo()).await);
    stores
}

/// Like [`test_stores`], every store with a clone of `cipher`.
pub async fn test_stores_with(cipher: &SecretCipher) -> Vec<TestStore> {
    let mut stores = vec![sqlite_store(cipher.clone()).await];
    stores.extend(postgres_store(cipher.clone()).await);
    stores
}

/// A migrated store on a new SQLite file in a temporary directory.
///
/// # Panics
/// When the directory or database cannot be created.
pub async fn sqlite_store(cipher: SecretCipher) -> TestStore {
    let dir = match tempfile::Builder::new().prefix("finmesh-store-").tempdir() {
        Ok(dir) => dir,
        Err(e) => panic!("cannot create a temporary directory for a SQLite test store: {e}"),
    };
    let url = Store::sqlite_url(&dir.path().join("finmesh.db"));
    let store = match connect_and_migrate(&url, cipher).await {
        Ok(store) => store,
        Err(e) => panic!("SQLite test store: {e}"),
    };
    TestStore {
        label: "sqlite".to_owned(),
        store,
        _dir: Some(dir),
    }
}

/// A migrated store in a new schema of the PostgreSQL database at
/// `FINMESH_TEST_POSTGRES_URL`; `None` (with a note on stderr) when the variable is
/// not set and `CI` is not `true`.
///
/// # Panics
/// When the variable is set but the database cannot be reached or set up, or when it
/// is missing under `CI=true`.
pub async fn postgres_store(cipher: SecretCipher) -> Option<TestStore> {
    let url = match std::env::var(POSTGRES_URL_VAR) {
        Ok(url) if !url.trim().is_empty() => url,
        _ => {
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!(
                    "{POSTGRES_URL_VAR} is not set, but CI=true requires the PostgreSQL tests \
                     (e.g. {POSTGRES_URL_VAR}=postgres://postgres@127.0.0.1:5432/test)"
                );
            }
            static NOTED: AtomicBool = AtomicBool::new(false);
            if !NOTED.swap(true, Ordering::Relaxed) {
                // Straight to stderr: libtest captures `eprintln!` of passing tests.
                let _ = writeln!(
                    std::io::stderr(),
                    "note: {POSTGRES_URL_VAR} is not set: skipping the PostgreSQL store tests \
                     (they run against SQLite only)"
                );
            }
            return None;
        }
    };
    match fresh_postgres_schema(&url, cipher).await {
        Ok(store) => Some(store),
        Err(e) => panic!("PostgreSQL test store ({POSTGRES_URL_VAR}): {e}"),
    }
}

async fn fresh_postgres_schema(url: &str, cipher: SecretCipher) -> Result<TestStore> {
    let url = fresh_postgres_url(url).await?;
    let store = connect_and_migrate(&url, cipher).await?;
    Ok(TestStore {
        label: "postgres".to_owned(),
        store,
        _dir: None,
    })
}

/// A database for a whole gateway under test, which opens and migrates it itself.
#[derive(Debug)]
pub struct TestDatabase {
    pub label: String,
    pub url: String,
    /// Where the SQLite file lives; deleted on drop.
    _dir: Option<TempDir>,
}

/// An empty database per backend available, as [`test_stores`] chooses them.
///
/// # Panics
/// As [`test_stores`].
pub async fn test_databases() -> Vec<TestDatabase> {
    let dir = match tempfile::Builder::new().prefix("finmesh-db-").tempdir() {
        Ok(dir) => dir,
        Err(e) => panic!("cannot create a temporary directory for a SQLite test database: {e}"),
    };
    let mut databases = vec![TestDatabase {
        label: "sqlite".to_owned(),
        url: Store::sqlite_url(&dir.path().join("finmesh.db")),
        _dir: Some(dir),
    }];
    if let Some(store) = postgres_store(SecretCipher::generate_for_demo()).await {
        // Only to learn that PostgreSQL is there and usable; the gateway gets its own schema.
        store.close().await;
        let base = std::env::var(POSTGRES_URL_VAR).unwrap_or_default();
        match fresh_postgres_url(&base).await {
            Ok(url) => databases.push(TestDatabase {
                label: "postgres".to_owned(),
                url,
                _dir: None,
            }),
            Err(e) => panic!("PostgreSQL test database ({POSTGRES_URL_VAR}): {e}"),
        }
    }
    databases
}

/// Creates a new empty schema and returns a URL whose connections use it.
async fn fresh_postgres_url(url: &str) -> Result<String> {
    sqlx::any::install_default_drivers();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    let schema = format!("{SCHEMA_PREFIX}{now}_{:016x}", rand::random::<u64>());
    let mut admin = sqlx::AnyConnection::connect(url)
        .await
        .map_err(|e| Error::internal(format!("cannot connect: {e}")))?;
    drop_stale_schemas(&mut admin, now).await;
    sqlx::query(AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
        .execute(&mut admin)
        .await
        .map_err(|e| Error::internal(format!("cannot create schema `{schema}`: {e}")))?;
    let _ = admin.close().await;

    let sep = if url.contains('?') { '&' } else { '?' };
    Ok(format!("{url}{sep}options[search_path]={schema}"))
}

/// Best effort: drops test schemas left by runs more than two hours ago.
async fn drop_stale_schemas(admin: &mut sqlx::AnyConnection, now: u64) {
    let Ok(rows) = sqlx::query(
        "SELECT nspname FROM pg_catalog.pg_namespace WHERE nspname LIKE 'finmesh\\_t\\_%'",
    )
    .fetch_all(&mut *admin)
    .await
    else {
        return;
    };
    for row in rows {
        let Ok(name) = row.try_get::<String, _>(0) else {
            continue;
        };
        let created = name
            .strip_prefix(SCHEMA_PREFIX)
            .and_then(|rest| rest.split('_').next())
            .and_then(|secs| secs.parse::<u64>().ok());
        let is_valid_name = name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if let Some(created) = created
            && is_valid_name
            && now.saturating_sub(created) > STALE_SCHEMA_AGE.as_secs()
        {
            let _ = sqlx::query(AssertSqlSafe(format!(
                "DROP SCHEMA IF EXISTS {name} CASCADE"
            )))
            .execute(&mut *admin)
            .await;
        }
    }
}

async fn connect_and_migrate(url: &str, cipher: SecretCipher) -> Result<Store> {
    let store = Store::connect(url, cipher).await?;
    store.migrate().await?;
    Ok(store)
}

/// Every row of `table`, each as `column=value` pairs joined by `|`, every value read
/// as text (`NULL` for null): for "no secret in clear in the database" checks.
pub async fn raw_rows(store: &Store, table: &str) -> Result<Vec<String>> {
    if table.is_empty()
        || !table
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_')
    {
        return Err(Error::invalid_input("table", "not a plain table name"));
    }
    let rows = sqlx::query(AssertSqlSafe(format!("SELECT * FROM {table}")))
        .fetch_all(store.pool())
        .await
        .map_err(|e| Error::internal(format!("raw_rows({table}): {e}")))?;
    Ok(rows
        .iter()
        .map(|row| {
            sqlx::Row::columns(row)
                .iter()
                .enumerate()
                .map(|(i, column)| {
                    let value = if let Ok(v) = row.try_get::<Option<String>, _>(i) {
                        v
                    } else if let Ok(v) = row.try_get::<Option<i64>, _>(i) {
                        v.map(|v| v.to_string())
                    } else if let Ok(v) = row.try_get::<Option<f64>, _>(i) {
                        v.map(|v| v.to_string())
                    } else if let Ok(v) = row.try_get::<Option<bool>, _>(i) {
                        v.map(|v| v.to_string())
                    } else if let Ok(v) = row.try_get::<Option<Vec<u8>>, _>(i) {
                        v.map(|v| String::from_utf8_lossy(&v).into_owned())
                    } else {
                        Some("<unreadable>".to_owned())
                    };
                    format!(
                        "{}={}",
                        sqlx::Column::name(column),
                        value.as_deref().unwrap_or("NULL")
                    )
                })
                .collect::<Vec<_>>()
                .join("|")
        })
        .collect())
}
