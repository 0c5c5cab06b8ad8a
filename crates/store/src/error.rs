//! sqlx errors as `finmesh_core::Error`s. Messages name the operation and what went
//! wrong, never a bound value (only ciphertexts and hashes reach the database anyway)
//! nor the SQL.

use finmesh_core::{Error, ErrorKind};

/// Maps an error of the operation `op` (a method name).
pub(crate) fn db_error(op: &'static str) -> impl FnOnce(sqlx::Error) -> Error {
    move |e| map(op, &e)
}

fn map(op: &'static str, e: &sqlx::Error) -> Error {
    match e {
        sqlx::Error::Database(db) if db.is_unique_violation() => Error::new(
            ErrorKind::Conflict,
            format!("{op}: a record with the same key already exists"),
        ),
        sqlx::Error::Database(db) => Error::internal(format!(
            "{op}: database error{}: {}",
            db.code().map(|c| format!(" {c}")).unwrap_or_default(),
            db.message()
        )),
        sqlx::Error::PoolTimedOut => {
            Error::internal(format!("{op}: timed out waiting for a database connection"))
        }
        sqlx::Error::PoolClosed => Error::internal(format!("{op}: the store is closed")),
        sqlx::Error::Io(io) => Error::internal(format!("{op}: database unreachable: {io}")),
        other => Error::internal(format!("{op}: database error: {other}")),
    }
}

pub(crate) fn migrate_error(e: sqlx::migrate::MigrateError) -> Error {
    match e {
        sqlx::migrate::MigrateError::Execute(e) => map("migrate", &e),
        other => Error::internal(format!("migrate: {other}")),
    }
}
