-- Identity and provider connections.
--
-- One set of SQL for SQLite and PostgreSQL: TEXT, BIGINT and nothing else.
-- Timestamps are unix milliseconds (BIGINT); ids are TEXT (UUID strings);
-- secrets are AES-256-GCM ciphertexts in the text form `v1.<key_id>.<base64>`.

CREATE TABLE principals (
    id TEXT PRIMARY KEY,
    created_at BIGINT NOT NULL
);

CREATE TABLE connections (
    id TEXT PRIMARY KEY,
    principal_id TEXT NOT NULL REFERENCES principals (id) ON DELETE CASCADE,
    provider_id TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('active', 'reauthorization_required')),
    -- space separated
    scopes TEXT NOT NULL,
    -- ciphertext, bound to `connections:<id>:access_token`
    access_token TEXT NOT NULL,
    -- ciphertext, bound to `connections:<id>:refresh_token`
    refresh_token TEXT,
    -- the key both tokens of this row are encrypted under
    key_id TEXT NOT NULL,
    -- NULL: the token never expires (Bondora's `expires_in: 0`)
    expires_at BIGINT,
    -- optimistic concurrency: every write bumps it
    version BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (principal_id, provider_id)
);

CREATE INDEX connections_key_id ON connections (key_id);

CREATE TABLE oauth_states (
    -- SHA-256 (hex) of the state value; the value itself is never stored
    state_hash TEXT PRIMARY KEY,
    principal_id TEXT NOT NULL REFERENCES principals (id) ON DELETE CASCADE,
    provider_id TEXT NOT NULL,
    redirect_to TEXT,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at BIGINT
);

CREATE INDEX oauth_states_expires_at ON oauth_states (expires_at);

-- Every write a principal makes. `detail` is JSON and never holds secrets.
-- No foreign key: the log outlives what it talks about.
CREATE TABLE audit_log (
    id TEXT PRIMARY KEY,
    at BIGINT NOT NULL,
    principal_id TEXT NOT NULL,
    action TEXT NOT NULL,
    provider_id TEXT,
    target TEXT,
    detail TEXT NOT NULL
);

CREATE INDEX audit_log_principal_at ON audit_log (principal_id, at, id);
