//! Idempotency records: what makes a money-moving write exactly-once from the
//! caller's view. A record is written before the upstream call, holds a lease
//! while one request works on it, and ends with the recorded outcome.

use chrono::{DateTime, Utc};
use finmesh_core::{Error, Result};
use sqlx::any::AnyRow;

use crate::error::db_error;
use crate::{Store, check_id, from_ms, get, new_id, now_ms};

/// Where an idempotent operation stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdempotencyState {
    /// A request holds the lease and is talking to the platform.
    InFlight,
    /// The platform may or may not have acted (timeout, dropped connection):
    /// reconcile before anything else.
    Ambiguous,
    /// Done; `result` is the answer to replay.
    Succeeded,
    /// Refused by the platform; `result` is the error to replay.
    Failed,
}

impl IdempotencyState {
    fn as_str(self) -> &'static str {
        match self {
            IdempotencyState::InFlight => "in_flight",
            IdempotencyState::Ambiguous => "ambiguous",
            IdempotencyState::Succeeded => "succeeded",
            IdempotencyState::Failed => "failed",
        }
    }

    fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "in_flight" => IdempotencyState::InFlight,
            "ambiguous" => IdempotencyState::Ambiguous,
            "succeeded" => IdempotencyState::Succeeded,
            "failed" => IdempotencyState::Failed,
            other => {
                return Err(Error::internal(format!(
                    "unknown idempotency state `{other}` in the database"
                )));
            }
        })
    }
}

/// What a caller starts.
#[derive(Debug, Clone)]
pub struct NewIdempotencyRecord {
    pub principal: String,
    pub key: String,
    pub operation: String,
    pub provider: String,
    /// A digest of the request; the same key with another request is a conflict.
    pub fingerprint: String,
    /// The platform record the operation is about, when known up front (a confirm's transfer).
    pub target: Option<String>,
    pub lease_until: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct IdempotencyRecord {
    /// Also the marker the gateway puts on the platform's record to find it again.
    pub id: String,
    pub principal: String,
    pub key: String,
    pub operation: String,
    pub provider: String,
    pub fingerprint: String,
    pub target: Option<String>,
    pub state: IdempotencyState,
    pub result: Option<serde_json::Value>,
    pub lease_until: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// `SELECT` of every column of `idempotency_records`, followed by the given clause.
macro_rules! select_record {
    ($clause:literal) => {
        concat!(
            "SELECT id, principal_id, idempotency_key, operation, provider_id, fingerprint, \
             target, state, result, lease_until, created_at, updated_at FROM idempotency_records ",
            $clause
        )
    };
}

/// Longest idempotency key a caller may choose.
const MAX_KEY_LEN: usize = 255;

impl Store {
    /// Records a new in-flight operation, or returns the one already recorded
    /// under this principal and key; `true` when this call created it.
    pub async fn begin_idempotent(
        &self,
        new: &NewIdempotencyRecord,
    ) -> Result<(IdempotencyRecord, bool)> {
        check_id("principal", &new.principal)?;
        if new.key.is_empty()
            || new.key.len() > MAX_KEY_LEN
            || new.key.chars().any(char::is_control)
        {
            return Err(Error::invalid_input(
                "idempotencyKey",
                format!(
                    "an idempotency key must be 1 to {MAX_KEY_LEN} bytes without control characters"
                ),
            ));
        }
        self.ensure_principal(&new.principal).await?;
        let now = now_ms();
        let inserted = sqlx::query(
            "INSERT INTO idempotency_records \
             (id, principal_id, idempotency_key, operation, provider_id, fingerprint, target, \
              state, result, lease_until, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, 'in_flight', NULL, $8, $9, $9) \
             ON CONFLICT (principal_id, idempotency_key) DO NOTHING",
        )
        .bind(new_id())
        .bind(&new.principal)
        .bind(&new.key)
        .bind(&new.operation)
        .bind(&new.provider)
        .bind(&new.fingerprint)
        .bind(new.target.as_deref())
        .bind(new.lease_until.timestamp_millis())
        .bind(now)
        .execute(self.pool())
        .await
        .map_err(db_error("begin_idempotent"))?
        .rows_affected()
            == 1;
        let record = self
            .idempotency_record(&new.principal, &new.key)
            .await?
            .ok_or_else(|| Error::internal("an idempotency record vanished as it was written"))?;
        Ok((record, inserted))
    }

    pub async fn idempotency_record(
        &self,
        principal: &str,
        key: &str,
    ) -> Result<Option<IdempotencyRecord>> {
        let row = sqlx::query(select_record!(
            "WHERE principal_id = $1 AND idempotency_key = $2"
        ))
        .bind(principal)
        .bind(key)
        .fetch_optional(self.pool())
        .await
        .map_err(db_error("idempotency_record"))?;
        row.as_ref().map(record).transpose()
    }

    /// Takes the lease of an unfinished record whose holder is gone (its lease
    /// ended); `false` if someone else took it first or it finished.
    pub async fn claim_idempotent(
        &self,
        id: &str,
        seen_lease_until: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE idempotency_records SET state = 'in_flight', lease_until = $1, updated_at = $2 \
             WHERE id = $3 AND lease_until = $4 AND state IN ('in_flight', 'ambiguous')",
        )
        .bind(lease_until.timestamp_millis())
        .bind(now_ms())
        .bind(id)
        .bind(seen_lease_until.timestamp_millis())
        .execute(self.pool())
        .await
        .map_err(db_error("claim_idempotent"))?;
        Ok(done.rows_affected() == 1)
    }

    /// Records the outcome and ends the lease.
    pub async fn finish_idempotent(
        &self,
        id: &str,
        state: IdempotencyState,
        result: Option<&serde_json::Value>,
    ) -> Result<()> {
        let result = result.map(serde_json::to_string).transpose().map_err(|e| {
            Error::internal(format!("an idempotent result is not serializable: {e}"))
        })?;
        sqlx::query(
            "UPDATE idempotency_records SET state = $1, result = $2, lease_until = 0, updated_at = $3 \
             WHERE id = $4",
        )
        .bind(state.as_str())
        .bind(result)
        .bind(now_ms())
        .bind(id)
        .execute(self.pool())
        .await
        .map_err(db_error("finish_idempotent"))?;
        Ok(())
    }

    /// Forgets a record whose request provably never reached the platform, so
    /// the caller may use the key again.
    pub async fn release_idempotent(&self, id: &str) -> Result<()> {
        sqlx::query("DELETE FROM idempotency_records WHERE id = $1")
            .bind(id)
            .execute(self.pool())
            .await
            .map_err(db_error("release_idempotent"))?;
        Ok(())
    }

    /// Records left unfinished: ambiguous ones, and in-flight ones whose lease
    /// ended (their process died). Reconciled at start.
    pub async fn unfinished_idempotent(&self) -> Result<Vec<IdempotencyRecord>> {
        let rows = sqlx::query(select_record!(
            "WHERE state = 'ambiguous' OR (state = 'in_flight' AND lease_until < $1) \
             ORDER BY created_at"
        ))
        .bind(now_ms())
        .fetch_all(self.pool())
        .await
        .map_err(db_error("unfinished_idempotent"))?;
        rows.iter().map(record).collect()
    }
}

fn record(row: &AnyRow) -> Result<IdempotencyRecord> {
    let result: Option<String> = get(row, "result")?;
    let state: String = get(row, "state")?;
    Ok(IdempotencyRecord {
        id: get(row, "id")?,
        principal: get(row, "principal_id")?,
        key: get(row, "idempotency_key")?,
        operation: get(row, "operation")?,
        provider: get(row, "provider_id")?,
        fingerprint: get(row, "fingerprint")?,
        target: get(row, "target")?,
        state: IdempotencyState::parse(&state)?,
        result: result
            .map(|r| serde_json::from_str(&r))
            .transpose()
            .map_err(|e| Error::internal(format!("a stored idempotent result is not JSON: {e}")))?,
        lease_until: from_ms(get(row, "lease_until")?)?,
        created_at: from_ms(get(row, "created_at")?)?,
        updated_at: from_ms(get(row, "updated_at")?)?,
    })
}
