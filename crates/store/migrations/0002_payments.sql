-- Exactly-once money movement: one record per (principal, idempotency key),
-- written before any upstream call and finished with the outcome.
CREATE TABLE idempotency_records (
    id TEXT PRIMARY KEY,
    principal_id TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    operation TEXT NOT NULL,
    provider_id TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    target TEXT,
    state TEXT NOT NULL CHECK (state IN ('in_flight', 'ambiguous', 'succeeded', 'failed')),
    result TEXT,
    lease_until BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (principal_id, idempotency_key)
);

CREATE INDEX idempotency_records_open ON idempotency_records (state, lease_until);
